package config

import (
	"strings"
	"testing"
)

const budgetsMinimal = "forward:\n  url: http://127.0.0.1:9090/api/v1/write\n"

func TestBudgetsConfig(t *testing.T) {
	c, err := Parse([]byte(budgetsMinimal), "t.yaml", osFS{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if !l.Budgets.ActiveSeries.Enforce || !l.Budgets.SamplesRate.Enforce || !l.Budgets.UploadInterval.Enforce || !c.Allowlist.Enforce {
		t.Fatal("budgets and allowlist must enforce by default")
	}
	if l.MaxConcurrentRequests != 128 || l.Redis.KeyPrefix != "telegate:" || !l.Redis.FailOpen || l.FailedAuth.PerMinute != 30 {
		t.Fatalf("defaults: %+v", l)
	}
	c, err = Parse([]byte(budgetsMinimal+`allowlist:
  enforce: false
limits:
  max_concurrent_requests: 10
  budgets:
    active_series: {max: 5000, window: 10m, enforce: false}
    samples_rate: {per_second: 50, burst: 20000}
    overrides_file: overrides.yaml
  redis:
    address: redis:6379
    password: s3cr3t
    key_prefix: "tg:"
    fail_open: false
`), "t.yaml", osFS{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Allowlist.Enforce || c.Limits.Budgets.ActiveSeries.Max != 5000 || c.Limits.Budgets.ActiveSeries.Enforce || c.Limits.Redis.FailOpen || string(c.Limits.Redis.Password) != "s3cr3t" {
		t.Fatalf("parsed: %+v", c.Limits)
	}
	for bad, want := range map[string]string{
		"limits:\n  budgets:\n    active_series: {max: -1}\n":                 "limits.budgets.active_series.max",
		"limits:\n  budgets:\n    samples_rate: {per_second: -1}\n":           "limits.budgets.samples_rate",
		"limits:\n  redis: {address: nope}\n":                                 "limits.redis.address",
		"limits:\n  redis: {address: 'r:1', password: a, password_file: b}\n": "password_file",
		"limits:\n  redis: {timeout: 0s}\n":                                   "limits.redis.timeout",
		"limits:\n  max_concurrent_requests: -1\n":                            "max_concurrent_requests",
		"limits:\n  failed_auth: {per_minute: 5, burst: 0}\n":                 "limits.failed_auth",
		"limits:\n  failed_auth: {trusted_proxies: [10.0.0.0/33]}\n":          "limits.failed_auth.trusted_proxies",
		"limits:\n  failed_auth: {trusted_proxies: [router.local]}\n":         "router.local",
		"limits:\n  budgets:\n    active_series: {maxx: 1}\n":                 "maxx",
	} {
		_, err := Parse([]byte(budgetsMinimal+bad), "t.yaml", osFS{}, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c, err := Parse([]byte(budgetsMinimal+"limits:\n  failed_auth:\n    trusted_proxies: [10.128.0.0/14, 192.168.1.7, '::ffff:172.16.0.1', 'fd00::/8', 10.1.2.3/8]\n"), "t.yaml", osFS{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Limits.FailedAuth.TrustedProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if want := "10.128.0.0/14 192.168.1.7/32 172.16.0.1/32 fd00::/8 10.0.0.0/8"; strings.Join(s, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(s, " "), want)
	}
}
