package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const minimal = `
forward:
  url: http://127.0.0.1:9090/api/v1/write
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "t.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.ListenAddress != "0.0.0.0:9003" || c.Web.InternalListenAddress != "127.0.0.1:9004" {
		t.Errorf("web defaults: %+v", c.Web)
	}
	if c.Authn.ClusterIDLabel != "_id" || c.Authn.TokensFile != "tokens.yaml" || time.Duration(c.Authn.Authorizer.CacheTTL) != 10*time.Minute || time.Duration(c.Authn.JWT.Expiry) != 24*time.Hour {
		t.Errorf("authn defaults: %+v", c.Authn)
	}
	if tc := c.Authn.JWT.TelemeterCompat; !tc.Accept || !tc.Issue {
		t.Errorf("telemeter_compat defaults (the migration case: both on): %+v", tc)
	}
	if c.Authn.Authorizer.MaxConcurrent != 64 || c.Limits.FailedAuth.MaxConcurrentPerSource != 4 {
		t.Errorf("authorizer call bounds: %d total, %d per source", c.Authn.Authorizer.MaxConcurrent, c.Limits.FailedAuth.MaxConcurrentPerSource)
	}
	if time.Duration(c.Limits.UploadInterval) != 4*time.Minute+30*time.Second || c.Limits.MaxRequestBytes != 4<<20 || c.Limits.MaxDecodedBytes != 8<<20 || c.Limits.MaxInflightBytes != 128<<20 || c.Limits.MaxConcurrentRequestsPerInstallation != 16 || c.Limits.MaxSeriesPerRequest != 10000 {
		t.Errorf("limits defaults: %+v", c.Limits)
	}
	if strings.Join(c.Relabel.DropLabels, ",") != "instance,pod,prometheus_replica" {
		t.Errorf("drop labels: %v", c.Relabel.DropLabels)
	}
	if c.Forward.Sender.Timeout != 10*time.Second {
		t.Errorf("forward timeout %v", c.Forward.Sender.Timeout)
	}
}

func TestOverridesAndUnits(t *testing.T) {
	c, err := Parse([]byte(`
relabel:
  drop_labels: [instance]
limits:
  max_request_bytes: 1MiB
  max_decoded_bytes: 2MB
  upload_interval: 1m
forward:
  url: https://thanos:19291/api/v1/receive
  headers: {THANOS-TENANT: telemetry}
  timeout: 3s
  tls_config:
    insecure_skip_verify: true
`), "t.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Relabel.DropLabels, ",") != "instance" {
		t.Errorf("drop labels not replaced: %v", c.Relabel.DropLabels)
	}
	if c.Limits.MaxRequestBytes != 1<<20 || c.Limits.MaxDecodedBytes != 2000000 || time.Duration(c.Limits.UploadInterval) != time.Minute {
		t.Errorf("limits: %+v", c.Limits)
	}
	if c.Forward.Sender.Headers["THANOS-TENANT"] != "telemetry" || c.Forward.Sender.Timeout != 3*time.Second || !c.Forward.Sender.HTTPClientConfig.TLSConfig.InsecureSkipVerify {
		t.Errorf("forward: %+v", c.Forward)
	}
	if c.Forward.Sender.MinBackoff == 0 {
		t.Errorf("forward backoff default lost")
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":               {"web:\n  listen_adress: x\n" + minimal, "line 2: field listen_adress is not a known key"},
		"unknown section":           {minimal + "bogus: 1\n", "line 4: field bogus is not a known key"},
		"bad size":                  {"limits:\n  max_request_bytes: 4 lots\n" + minimal, "invalid size"},
		"decoded < body":            {"limits:\n  max_request_bytes: 8MiB\n  max_decoded_bytes: 1MiB\n" + minimal, "limits.max_decoded_bytes"},
		"bad label":                 {"authn:\n  cluster_id_label: 1x\n" + minimal, "authn.cluster_id_label"},
		"drop id":                   {"relabel:\n  drop_labels: [_id]\n" + minimal, "relabel.drop_labels"},
		"bad timestamps":            {"relabel:\n  upload_timestamps: cluster\n" + minimal, "relabel.upload_timestamps"},
		"bad relabel":               {"relabel:\n  relabel_configs:\n  - action: replace\n    target_label: 1bad\n" + minimal, "relabel_configs"},
		"reserved header":           {"forward:\n  url: http://x/api\n  headers: {Content-Type: x}\n", "Content-Type"},
		"no auth":                   {"authn:\n  tokens_file: ''\n" + minimal, "never runs without authentication"},
		"bad authorizer":            {"authn:\n  authorizer: {url: 'ftp://x'}\n" + minimal, "authn.authorizer.url"},
		"negative timeout":          {"relabel:\n  max_sample_age: -1h\n" + minimal, ""},
		"negative authorizer bound": {"authn:\n  authorizer: {max_concurrent: -1}\n" + minimal, "authn.authorizer.max_concurrent"},
		"negative per-source bound": {"limits:\n  failed_auth: {max_concurrent_per_source: -1}\n" + minimal, "limits.failed_auth.max_concurrent_per_source"},
		"telemeter issue alone":     {"authn:\n  jwt: {telemeter_compat: {accept: false}}\n" + minimal, "authn.jwt.telemeter_compat.issue"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "gw.yaml", fstest.MapFS{}, "")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gw.yaml: ") {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestFileReferences(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte("tokens: []"), 0o600)
	os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(minimal), 0o600)
	c, err := LoadFile(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := c.ReadFile(c.Authn.TokensFile); err != nil || string(data) != "tokens: []" {
		t.Fatalf("relative file: %q %v", data, err)
	}
	if c.Embedded() {
		t.Fatal("file config claims to be embedded")
	}
	e, err := Parse([]byte(minimal), "embedded", fstest.MapFS{"tokens.yaml": {Data: []byte("x")}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := e.ReadFile("./tokens.yaml"); err != nil || string(data) != "x" || !e.Embedded() {
		t.Fatalf("embedded file: %q %v", data, err)
	}
}

func TestBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"0": 0, "10": 10, "4MiB": 4 << 20, "1 KiB": 1024, "2GB": 2e9, "5B": 5} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "x", "4TiB", "99999999999999GiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
	if s := Bytes(4 << 20).String(); s != "4MiB" {
		t.Errorf("String = %q", s)
	}
}

// TestEmbeddedStorage: without forward.url the gateway runs in
// single-binary mode on the storage section's defaults; its values are
// checked then.
func TestEmbeddedStorage(t *testing.T) {
	c, err := Parse([]byte("web: {}\n"), "t.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatalf("no forward.url must mean embedded storage, got %v", err)
	}
	if !c.EmbeddedStorage() {
		t.Fatal("EmbeddedStorage() = false without forward.url")
	}
	st := c.Storage
	if st.Path != "./data" || time.Duration(st.RetentionTime) != 15*24*time.Hour || st.RetentionSize != 0 ||
		st.OutOfOrderTimeWindow != 0 || !st.WALFsync || st.MaxExemplars != 100000 {
		t.Errorf("storage defaults: %+v", st)
	}
	if q := st.Query; q.ListenAddress != "" || time.Duration(q.Timeout) != 2*time.Minute || q.MaxSamples != 50000000 ||
		q.MaxConcurrent != 20 || time.Duration(q.LookbackDelta) != 5*time.Minute {
		t.Errorf("storage.query defaults: %+v", q)
	}
	c, err = Parse([]byte(`storage:
  path: /var/lib/telegate
  retention_time: 30d
  retention_size: 10GiB
  out_of_order_time_window: 10m
  wal_fsync: false
  max_exemplars: 0
  query: {listen_address: 127.0.0.1:9090, timeout: 30s, max_samples: 1000, max_concurrent: 2, lookback_delta: 1m}
`), "t.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatal(err)
	}
	st = c.Storage
	if st.Path != "/var/lib/telegate" || time.Duration(st.RetentionTime) != 30*24*time.Hour || st.RetentionSize != 10<<30 ||
		time.Duration(st.OutOfOrderTimeWindow) != 10*time.Minute || st.WALFsync || st.MaxExemplars != 0 || st.Query.ListenAddress != "127.0.0.1:9090" ||
		time.Duration(st.Query.Timeout) != 30*time.Second || st.Query.MaxSamples != 1000 || st.Query.MaxConcurrent != 2 ||
		time.Duration(st.Query.LookbackDelta) != time.Minute {
		t.Errorf("storage: %+v", st)
	}
	if c, err := Parse([]byte(minimal), "t.yaml", fstest.MapFS{}, ""); err != nil || c.EmbeddedStorage() {
		t.Fatalf("forward.url set: embedded=%v err=%v", c != nil && c.EmbeddedStorage(), err)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"empty path":         {"storage: {path: ''}\n", "storage.path"},
		"negative retention": {"storage: {retention_time: -1d}\n", "not a valid duration"},
		"negative size":      {"storage: {retention_size: -1}\n", "invalid size"},
		"negative ooo":       {"storage: {out_of_order_time_window: -1m}\n", "not a valid duration"},
		"negative exemplars": {"storage: {max_exemplars: -1}\n", "storage.max_exemplars"},
		"bad listen":         {"storage: {query: {listen_address: nope}}\n", "storage.query.listen_address"},
		"listener clash":     {"web: {internal_listen_address: '127.0.0.1:9004'}\nstorage: {query: {listen_address: '127.0.0.1:9004'}}\n", "already a web listener"},
		"zero timeout":       {"storage: {query: {timeout: 0s}}\n", "storage.query.timeout"},
		"zero samples":       {"storage: {query: {max_samples: 0}}\n", "storage.query.max_samples"},
		"zero concurrent":    {"storage: {query: {max_concurrent: 0}}\n", "storage.query.max_concurrent"},
		"zero lookback":      {"storage: {query: {lookback_delta: 0s}}\n", "storage.query.lookback_delta"},
		"unknown key":        {"storage: {retention: 1d}\n", "field retention is not a known key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "gw.yaml", fstest.MapFS{}, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not contain %q", err, tc.want)
			}
		})
	}
}
