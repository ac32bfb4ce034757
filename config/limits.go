package config

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Limits holds the per-request caps and the upload cadence.
type Limits struct {
	UploadInterval      model.Duration `yaml:"upload_interval"`
	MaxRequestBytes     Bytes          `yaml:"max_request_bytes"`
	MaxDecodedBytes     Bytes          `yaml:"max_decoded_bytes"`
	MaxSeriesPerRequest int            `yaml:"max_series_per_request"`
	MaxLabelsPerSeries  int            `yaml:"max_labels_per_series"`
	MaxLabelNameLength  int            `yaml:"max_label_name_length"`
	MaxLabelValueLength int            `yaml:"max_label_value_length"`
	// MaxConcurrentRequests bounds in-flight public API requests; more are
	// answered 503 at once. 0 = unbounded.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxConcurrentRequestsPerInstallation bounds one installation's
	// requests in flight; more get 429 at once. 0 = unbounded.
	MaxConcurrentRequestsPerInstallation int `yaml:"max_concurrent_requests_per_installation"`
	// MaxInflightBytes bounds the memory of all requests in flight
	// (bodies and decoded series, reserved before they are allocated);
	// MaxInflightBytesPerInstallation is one installation's share of it.
	MaxInflightBytes                Bytes `yaml:"max_inflight_bytes"`
	MaxInflightBytesPerInstallation Bytes `yaml:"max_inflight_bytes_per_installation"`
	// BodyMinRate is the slowest average rate (bytes per second) a request
	// body may arrive at once BodyGrace has passed; slower bodies get 408.
	// 0 = only web.read_timeout.
	BodyMinRate Bytes          `yaml:"body_min_rate"`
	BodyGrace   model.Duration `yaml:"body_grace"`
	FailedAuth  FailedAuth     `yaml:"failed_auth"`
	Budgets     Budgets        `yaml:"budgets"`
	Redis       Redis          `yaml:"redis"`
}

// InstallationShare is one installation's share of MaxInflightBytes:
// MaxInflightBytesPerInstallation, or all of it when that is 0; 0 when
// MaxInflightBytes is 0 (unbounded).
func (l Limits) InstallationShare() Bytes {
	if l.MaxInflightBytes <= 0 {
		return 0
	}
	if l.MaxInflightBytesPerInstallation <= 0 || l.MaxInflightBytesPerInstallation > l.MaxInflightBytes {
		return l.MaxInflightBytes
	}
	return l.MaxInflightBytesPerInstallation
}

// FailedAuth rate-limits failed authentication attempts per source
// address, so token guessing gets 429s. PerMinute 0 disables it.
type FailedAuth struct {
	PerMinute  float64 `yaml:"per_minute"`
	Burst      int     `yaml:"burst"`
	MaxSources int     `yaml:"max_sources"`
	// TrustedProxies (addresses or CIDRs) are the load balancers and
	// routers in front of the gateway: requests from them are charged to
	// the client address they put in X-Forwarded-For, or to the proxy
	// itself when they put none. Behind a proxy, leave it empty and every
	// client behind it is one source.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxConcurrentPerSource bounds one source's calls to the upstream
	// authorizer in flight; more get 429 at once, charged as failed
	// attempts. 0 = unbounded.
	MaxConcurrentPerSource int `yaml:"max_concurrent_per_source"`
}

// TrustedProxyPrefixes parses TrustedProxies; an address is its own /32
// or /128. Validate reports the entries that do not parse.
func (f FailedAuth) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(f.TrustedProxies))
	for _, s := range f.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Budgets are the per-cluster defaults; OverridesFile changes them per
// cluster.
type Budgets struct {
	ActiveSeries            ActiveSeriesBudget   `yaml:"active_series"`
	SamplesRate             SamplesRateBudget    `yaml:"samples_rate"`
	UploadInterval          UploadIntervalBudget `yaml:"upload_interval"`
	OverridesFile           string               `yaml:"overrides_file"`
	OverridesReloadInterval model.Duration       `yaml:"overrides_reload_interval"`
}

// ActiveSeriesBudget bounds the series a cluster sent within Window.
type ActiveSeriesBudget struct {
	Max     int            `yaml:"max"`
	Window  model.Duration `yaml:"window"`
	Enforce bool           `yaml:"enforce"`
}

// SamplesRateBudget is a per-cluster token bucket of samples per second.
type SamplesRateBudget struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
	Enforce   bool    `yaml:"enforce"`
}

// UploadIntervalBudget switches limits.upload_interval to shadow mode.
type UploadIntervalBudget struct {
	Enforce bool `yaml:"enforce"`
}

// Redis shares budget state across replicas; an empty address keeps it in
// memory (one replica).
type Redis struct {
	Address      string                 `yaml:"address"`
	Username     string                 `yaml:"username"`
	Password     config_util.Secret     `yaml:"password"`
	PasswordFile string                 `yaml:"password_file"`
	DB           int                    `yaml:"db"`
	TLSConfig    *config_util.TLSConfig `yaml:"tls_config"`
	KeyPrefix    string                 `yaml:"key_prefix"`
	Timeout      model.Duration         `yaml:"timeout"`
	FailOpen     bool                   `yaml:"fail_open"`
}

// defaultLimits returns the limits section's built-in defaults.
func defaultLimits() Limits {
	return Limits{
		UploadInterval:                       model.Duration(4*time.Minute + 30*time.Second),
		MaxRequestBytes:                      4 << 20,
		MaxDecodedBytes:                      8 << 20,
		MaxSeriesPerRequest:                  10000,
		MaxLabelsPerSeries:                   64,
		MaxLabelNameLength:                   256,
		MaxLabelValueLength:                  4096,
		MaxConcurrentRequests:                128,
		MaxConcurrentRequestsPerInstallation: 16,
		MaxInflightBytes:                     128 << 20,
		MaxInflightBytesPerInstallation:      32 << 20,
		BodyMinRate:                          10000,
		BodyGrace:                            model.Duration(5 * time.Second),
		FailedAuth:                           FailedAuth{PerMinute: 30, Burst: 20, MaxSources: 100000, MaxConcurrentPerSource: 4},
		Budgets: Budgets{
			ActiveSeries:            ActiveSeriesBudget{Enforce: true},
			SamplesRate:             SamplesRateBudget{Enforce: true},
			UploadInterval:          UploadIntervalBudget{Enforce: true},
			OverridesReloadInterval: model.Duration(10 * time.Second),
		},
		Redis: Redis{KeyPrefix: "telegate:", Timeout: model.Duration(time.Second), FailOpen: true},
	}
}

// validateLimits checks the per-request caps of the limits section
// (concurrency, memory, failed_auth, budgets, redis: validateBudgets).
func (c *Config) validateLimits(add addFunc) {
	if c.Limits.UploadInterval < 0 {
		add("limits.upload_interval", "must not be negative")
	}
	if c.Limits.MaxRequestBytes <= 0 {
		add("limits.max_request_bytes", "must be positive")
	}
	if c.Limits.MaxDecodedBytes < c.Limits.MaxRequestBytes {
		add("limits.max_decoded_bytes", "must be at least max_request_bytes (%s)", c.Limits.MaxRequestBytes)
	}
	if c.Limits.MaxDecodedBytes > 1<<30 {
		add("limits.max_decoded_bytes", "must be at most 1GiB")
	}
	for key, v := range map[string]int{
		"limits.max_series_per_request": c.Limits.MaxSeriesPerRequest,
		"limits.max_labels_per_series":  c.Limits.MaxLabelsPerSeries,
		"limits.max_label_name_length":  c.Limits.MaxLabelNameLength,
		"limits.max_label_value_length": c.Limits.MaxLabelValueLength,
	} {
		if v <= 0 {
			add(key, "must be positive")
		}
	}
}

// validateBudgets checks the limits section's concurrency and memory
// bounds, failed_auth, budgets and redis.
func (c *Config) validateBudgets(add addFunc) {
	l := c.Limits
	if l.MaxConcurrentRequests < 0 {
		add("limits.max_concurrent_requests", "must not be negative (0 = unbounded)")
	}
	if l.MaxConcurrentRequestsPerInstallation < 0 {
		add("limits.max_concurrent_requests_per_installation", "must not be negative (0 = unbounded)")
	}
	if l.MaxInflightBytesPerInstallation > l.MaxInflightBytes && l.MaxInflightBytes > 0 {
		add("limits.max_inflight_bytes_per_installation", "must be at most limits.max_inflight_bytes (%s)", l.MaxInflightBytes)
	}
	if share := l.InstallationShare(); share > 0 && share < l.MaxRequestBytes+l.MaxDecodedBytes {
		add("limits.max_inflight_bytes_per_installation", "%s leaves no room for one request of max_request_bytes + max_decoded_bytes (%s); raise it (or max_inflight_bytes) or lower those", share, l.MaxRequestBytes+l.MaxDecodedBytes)
	}
	if l.BodyGrace < 0 {
		add("limits.body_grace", "must not be negative")
	}
	if l.FailedAuth.PerMinute < 0 || l.FailedAuth.Burst < 0 || l.FailedAuth.MaxSources < 0 {
		add("limits.failed_auth", "per_minute, burst and max_sources must not be negative")
	}
	if l.FailedAuth.MaxConcurrentPerSource < 0 {
		add("limits.failed_auth.max_concurrent_per_source", "must not be negative (0 = unbounded)")
	}
	if l.FailedAuth.PerMinute > 0 && (l.FailedAuth.Burst <= 0 || l.FailedAuth.MaxSources <= 0) {
		add("limits.failed_auth", "burst and max_sources must be positive when per_minute is set")
	}
	if _, err := l.FailedAuth.TrustedProxyPrefixes(); err != nil {
		add("limits.failed_auth.trusted_proxies", "%v", err)
	}
	b := l.Budgets
	if b.ActiveSeries.Max < 0 {
		add("limits.budgets.active_series.max", "must not be negative (0 = no budget)")
	}
	if b.ActiveSeries.Window < 0 {
		add("limits.budgets.active_series.window", "must not be negative (0 = twice limits.upload_interval)")
	}
	if b.SamplesRate.PerSecond < 0 || b.SamplesRate.Burst < 0 {
		add("limits.budgets.samples_rate", "per_second and burst must not be negative")
	}
	if b.OverridesFile != "" && b.OverridesReloadInterval < 0 {
		add("limits.budgets.overrides_reload_interval", "must not be negative (0 = never reload)")
	}
	r := l.Redis
	if r.Address != "" {
		if _, _, err := net.SplitHostPort(r.Address); err != nil {
			add("limits.redis.address", "%q must be host:port", r.Address)
		}
	}
	if r.Password != "" && r.PasswordFile != "" {
		add("limits.redis", "set at most one of password and password_file")
	}
	if r.DB < 0 {
		add("limits.redis.db", "must not be negative")
	}
	if r.Timeout <= 0 {
		add("limits.redis.timeout", "must be positive")
	}
}
