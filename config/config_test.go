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
	if time.Duration(c.Limits.UploadInterval) != 4*time.Minute+30*time.Second || c.Limits.MaxRequestBytes != 4<<20 || c.Limits.MaxDecodedBytes != 32<<20 || c.Limits.MaxSeriesPerRequest != 10000 {
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
		"unknown key":      {"web:\n  listen_adress: x\n" + minimal, "line 2: field listen_adress is not a known key"},
		"unknown section":  {minimal + "bogus: 1\n", "line 4: field bogus is not a known key"},
		"bad size":         {"limits:\n  max_request_bytes: 4 lots\n" + minimal, "invalid size"},
		"no forward":       {"web: {}\n", "forward.url"},
		"decoded < body":   {"limits:\n  max_request_bytes: 8MiB\n  max_decoded_bytes: 1MiB\n" + minimal, "limits.max_decoded_bytes"},
		"bad label":        {"authn:\n  cluster_id_label: 1x\n" + minimal, "authn.cluster_id_label"},
		"drop id":          {"relabel:\n  drop_labels: [_id]\n" + minimal, "relabel.drop_labels"},
		"bad timestamps":   {"relabel:\n  upload_timestamps: cluster\n" + minimal, "relabel.upload_timestamps"},
		"bad relabel":      {"relabel:\n  relabel_configs:\n  - action: replace\n    target_label: 1bad\n" + minimal, "relabel_configs"},
		"reserved header":  {"forward:\n  url: http://x/api\n  headers: {Content-Type: x}\n", "Content-Type"},
		"no auth":          {"authn:\n  tokens_file: ''\n" + minimal, "never runs without authentication"},
		"bad authorizer":   {"authn:\n  authorizer: {url: 'ftp://x'}\n" + minimal, "authn.authorizer.url"},
		"negative timeout": {"relabel:\n  max_sample_age: -1h\n" + minimal, ""},
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
