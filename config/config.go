package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/forward"
)

// Config is the gateway's whole configuration file.
type Config struct {
	Web       Web       `yaml:"web"`
	Authn     Authn     `yaml:"authn"`
	Allowlist Allowlist `yaml:"allowlist"`
	Relabel   Relabel   `yaml:"relabel"`
	Limits    Limits    `yaml:"limits"`
	Forward   Forward   `yaml:"forward"`
	Storage   Storage   `yaml:"storage"`

	// source reads the files the config points at: relative to the config
	// file's directory, or from the embedded example set.
	source fs.FS
	// dir is the directory relative paths are resolved against ("" for the
	// embedded set).
	dir string
	// Origin names where the config came from, for logs.
	Origin string `yaml:"-"`
}

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

// Forward is the remote-write destination.
type Forward struct {
	// Sender is a named field, not an embedded one, so forward.Config's
	// own UnmarshalYAML is not promoted and max_retry_time stays known.
	Sender forward.Config `yaml:",inline"`
	// MaxRetryTime bounds how long one request may spend retrying the
	// downstream before the client gets 503.
	MaxRetryTime model.Duration `yaml:"max_retry_time"`
	// MaxRequestBytes splits a request's series into several remote
	// writes of at most this many (uncompressed) bytes, below the
	// downstream's own limit.
	MaxRequestBytes Bytes `yaml:"max_request_bytes"`
	// Spool is the durable spool a request falls back to when the
	// downstream cannot take it.
	Spool Spool `yaml:"spool"`
	// SendExemplars passes the exemplars senders attach to their series
	// on (to the downstream or the embedded storage); false drops them.
	SendExemplars bool `yaml:"send_exemplars"`
	// SendMetadata passes metric metadata (type, help, unit) on; false
	// drops it.
	SendMetadata bool `yaml:"send_metadata"`
}

// Storage is the embedded TSDB used when forward.url is empty
// (single-binary mode).
type Storage struct {
	// Path is the TSDB directory (relative to the working directory).
	Path string `yaml:"path"`
	// RetentionTime deletes data older than this; 0 = no time limit.
	RetentionTime model.Duration `yaml:"retention_time"`
	// RetentionSize deletes the oldest blocks while the storage takes
	// more bytes than this; 0 = no size limit. Both 0: 15d.
	RetentionSize Bytes `yaml:"retention_size"`
	// OutOfOrderTimeWindow accepts samples up to this far behind a
	// series' newest one; 0 refuses them (400).
	OutOfOrderTimeWindow model.Duration `yaml:"out_of_order_time_window"`
	// WALFsync fsyncs the WAL before every acknowledgement, so a 2xx
	// survives power loss, not only a crash of the process.
	WALFsync bool `yaml:"wal_fsync"`
	// MaxExemplars is how many exemplars the TSDB keeps over all series
	// (a ring buffer, as Prometheus' storage.exemplars.max_exemplars);
	// 0 turns exemplar storage off.
	MaxExemplars int          `yaml:"max_exemplars"`
	Query        StorageQuery `yaml:"query"`
}

// StorageQuery configures the Prometheus query API over the embedded
// storage.
type StorageQuery struct {
	// ListenAddress serves the query API on its own listener; "" = on the
	// internal listener.
	ListenAddress string         `yaml:"listen_address"`
	Timeout       model.Duration `yaml:"timeout"`
	MaxSamples    int            `yaml:"max_samples"`
	MaxConcurrent int            `yaml:"max_concurrent"`
	LookbackDelta model.Duration `yaml:"lookback_delta"`
}

// EmbeddedStorage reports whether the gateway stores data itself
// (forward.url empty) instead of forwarding it.
func (c *Config) EmbeddedStorage() bool { return c.Forward.Sender.URL == "" }

// Spool configures forward.spool: where bodies the downstream could not
// take wait for replay.
type Spool struct {
	// Enabled turns the spool on (default). Off, a downstream outage is
	// answered 503 after max_retry_time.
	Enabled bool `yaml:"enabled"`
	// Bucket is an objstore config as Thanos reads it (type, config,
	// prefix); default FILESYSTEM in ./data/spool (relative to the working
	// directory).
	Bucket bucket.Config `yaml:"bucket"`
	// MaxBytes caps the spool, pending and dead-lettered objects
	// together; when full the gateway answers 503 with Retry-After. 0 =
	// no cap.
	MaxBytes Bytes `yaml:"max_bytes"`
	// MaxSampleAge dead-letters spooled objects whose newest sample is
	// older than this (the downstream would refuse them). 0 = never.
	MaxSampleAge model.Duration `yaml:"max_sample_age"`
	// DeadLetterRetention deletes dead-lettered objects (dead/) this long
	// after they were dead-lettered. 0 = keep until removed by hand.
	DeadLetterRetention model.Duration `yaml:"dead_letter_retention"`
	// SendDeadline is how long a request tries the downstream before its
	// data is spooled instead (at most max_retry_time minus 2s, kept for
	// the spool write).
	SendDeadline model.Duration `yaml:"send_deadline"`
	Replay       SpoolReplay    `yaml:"replay"`
}

// SpoolReplay tunes the background replay.
type SpoolReplay struct {
	Concurrency int            `yaml:"concurrency"`
	Timeout     model.Duration `yaml:"timeout"`
	MinBackoff  model.Duration `yaml:"min_backoff"`
	MaxBackoff  model.Duration `yaml:"max_backoff"`
	Interval    model.Duration `yaml:"interval"`
}

// UnmarshalYAML keeps the default FILESYSTEM bucket only when no bucket
// is given (a given bucket replaces it whole, not key by key).
func (s *Spool) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Spool
	p := plain(*s)
	p.Bucket = bucket.Config{}
	if err := unmarshal(&p); err != nil {
		return err
	}
	if p.Bucket.Type == "" && p.Bucket.Config == nil && p.Bucket.Prefix == "" {
		p.Bucket = bucket.DefaultConfig()
	}
	*s = Spool(p)
	return nil
}

func defaultSpool() Spool {
	return Spool{
		Enabled:             true,
		Bucket:              bucket.DefaultConfig(),
		MaxBytes:            1 << 30,
		MaxSampleAge:        model.Duration(2 * time.Hour),
		DeadLetterRetention: model.Duration(7 * 24 * time.Hour),
		SendDeadline:        model.Duration(forward.DefaultSendDeadline),
		Replay: SpoolReplay{
			Concurrency: forward.DefaultReplayConcurrency,
			Timeout:     model.Duration(forward.DefaultReplayTimeout),
			MinBackoff:  model.Duration(forward.DefaultReplayMinBackoff),
			MaxBackoff:  model.Duration(forward.DefaultReplayMaxBackoff),
			Interval:    model.Duration(forward.DefaultReplayInterval),
		},
	}
}

func defaultSender() forward.Config {
	f := forward.DefaultConfig
	f.Timeout = 10 * time.Second
	return f
}

// Default returns the built-in defaults every file is layered over.
func Default() *Config {
	return &Config{
		Web:       defaultWeb(),
		Authn:     defaultAuthn(),
		Allowlist: defaultAllowlist(),
		Relabel:   defaultRelabel(),
		Limits:    defaultLimits(),
		Forward:   defaultForward(),
		Storage:   defaultStorage(),
	}
}

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

func defaultForward() Forward {
	return Forward{
		Sender:          defaultSender(),
		MaxRetryTime:    model.Duration(30 * time.Second),
		Spool:           defaultSpool(),
		MaxRequestBytes: forward.DefaultMaxRequestBytes,
		SendExemplars:   true,
		SendMetadata:    true,
	}
}

func defaultStorage() Storage {
	return Storage{
		Path:          "./data",
		RetentionTime: model.Duration(15 * 24 * time.Hour),
		WALFsync:      true,
		MaxExemplars:  100000,
		Query: StorageQuery{
			Timeout:       model.Duration(2 * time.Minute),
			MaxSamples:    50000000,
			MaxConcurrent: 20,
			LookbackDelta: model.Duration(5 * time.Minute),
		},
	}
}

// Parse reads a config document over the defaults. name is used in errors;
// files it references are read from source, relative to dir.
func Parse(data []byte, name string, source fs.FS, dir string) (*Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	c.source, c.dir, c.Origin = source, dir, name
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadFile reads the config file at path. Relative file references resolve
// against the file's directory.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	c, err := Parse(data, path, osFS{}, dir)
	if err != nil {
		return nil, err
	}
	c.Forward.Sender.HTTPClientConfig.SetDirectory(dir)
	c.Authn.Authorizer.HTTPClientConfig.SetDirectory(dir)
	if c.Limits.Redis.TLSConfig != nil {
		c.Limits.Redis.TLSConfig.SetDirectory(dir)
	}
	return c, nil
}

// LoadEmbedded reads the config named name from an embedded file set
// (examples); its references resolve inside the same set.
func LoadEmbedded(fsys fs.FS, name string) (*Config, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return Parse(data, "embedded:"+name, fsys, "")
}

// ReadFile reads a file the config references (tokens, allowlist, keys).
func (c *Config) ReadFile(name string) ([]byte, error) {
	return fs.ReadFile(c.source, c.Path(name))
}

// Path resolves a referenced file name the way ReadFile will.
func (c *Config) Path(name string) string {
	if _, ok := c.source.(osFS); ok {
		if !filepath.IsAbs(name) {
			return filepath.Join(c.dir, name)
		}
		return name
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(name)), "./")
}

// Embedded reports whether the config and its files come from the binary.
func (c *Config) Embedded() bool {
	_, ok := c.source.(osFS)
	return c.source != nil && !ok
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// addFunc records one validation error for a key ("section.key: ...").
type addFunc func(key, format string, args ...any)

// Validate checks values that parse but cannot work. Each section checks
// its own keys; the order of the checks is the order of the errors.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	c.validateWeb(add)
	c.validateAuthn(add)
	c.validateAllowlist(add)
	c.validateRelabel(add)
	c.validateLimits(add)
	if c.Forward.Sender.URL != "" {
		if err := c.Forward.Sender.Validate(); err != nil {
			errs = append(errs, err)
		}
	} else {
		c.validateStorage(add)
	}
	c.validateRelabelConfigs(add)
	c.validateBudgets(add)
	c.validateForward(add)
	return errors.Join(errs...)
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

// validateForward checks the forward section but its sender
// (forward.Config.Validate, called only when forward.url is set).
func (c *Config) validateForward(add addFunc) {
	if c.Forward.MaxRetryTime <= 0 {
		add("forward.max_retry_time", "must be positive")
	}
	if c.Forward.MaxRequestBytes <= 0 {
		add("forward.max_request_bytes", "must be positive")
	}
	if sp := c.Forward.Spool; sp.Enabled {
		if err := sp.Bucket.Validate(); err != nil {
			add("forward.spool.bucket", "%v", err)
		}
		if sp.MaxSampleAge < 0 {
			add("forward.spool.max_sample_age", "must not be negative")
		}
		if sp.DeadLetterRetention < 0 {
			add("forward.spool.dead_letter_retention", "must not be negative")
		}
		if sp.SendDeadline <= 0 {
			add("forward.spool.send_deadline", "must be positive")
		}
		r := sp.Replay
		if r.Concurrency <= 0 || r.Timeout <= 0 || r.MinBackoff <= 0 || r.Interval <= 0 {
			add("forward.spool.replay", "concurrency, timeout, min_backoff and interval must be positive")
		}
		if r.MaxBackoff < r.MinBackoff {
			add("forward.spool.replay.max_backoff", "must not be below min_backoff")
		}
	}
}

// validateStorage checks the storage section (single-binary mode only:
// with forward.url set it is not used).
func (c *Config) validateStorage(add addFunc) {
	st := c.Storage
	if st.Path == "" {
		add("storage.path", "must not be empty when forward.url is empty (single-binary mode stores data there)")
	}
	q := st.Query
	if q.ListenAddress != "" {
		if _, _, err := net.SplitHostPort(q.ListenAddress); err != nil {
			add("storage.query.listen_address", "%v", err)
		}
		if q.ListenAddress == c.Web.ListenAddress || q.ListenAddress == c.Web.InternalListenAddress {
			add("storage.query.listen_address", "%q is already a web listener; leave it empty to serve the query API on the internal listener", q.ListenAddress)
		}
	}
	if q.Timeout <= 0 {
		add("storage.query.timeout", "must be positive")
	}
	if q.MaxSamples <= 0 {
		add("storage.query.max_samples", "must be positive")
	}
	if q.MaxConcurrent <= 0 {
		add("storage.query.max_concurrent", "must be positive")
	}
	if q.LookbackDelta <= 0 {
		add("storage.query.lookback_delta", "must be positive")
	}
	if c.Storage.MaxExemplars < 0 {
		add("storage.max_exemplars", "must not be negative (0 = exemplar storage off)")
	}
}

// cleanYAMLError drops the library's noise ("yaml: unmarshal errors:\n  ")
// and keeps the "line N: field X not found in type Y" lines.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if j := strings.Index(l, " not found in type "); j >= 0 {
			l = l[:j] + " is not a known key"
		}
		lines[i] = l
	}
	return errors.New(strings.Join(lines, "; "))
}

// osFS reads from the real filesystem with absolute or relative paths.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// ReadFile implements fs.ReadFileFS so paths need not be fs.ValidPath.
func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

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
