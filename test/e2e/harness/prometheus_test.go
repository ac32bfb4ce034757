package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func renderMap(t *testing.T, opts PrometheusOptions, rules []string) map[string]any {
	t.Helper()
	b, err := renderPrometheusConfig(opts, rules)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("rendered YAML does not parse: %v\n%s", err, b)
	}
	return m
}

func TestRenderPrometheusConfigDefaults(t *testing.T) {
	m := renderMap(t, PrometheusOptions{}, nil)
	g := m["global"].(map[string]any)
	if g["scrape_interval"] != "1s" || g["evaluation_interval"] != "1s" {
		t.Fatalf("global = %v", g)
	}
	for _, k := range []string{"scrape_configs", "remote_write", "rule_files"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s present in an empty config", k)
		}
	}
	m = renderMap(t, PrometheusOptions{ScrapeInterval: 2 * time.Minute, EvaluationInterval: 500 * time.Millisecond,
		ExternalLabels: map[string]string{"replica": "b"}}, []string{"/r.yml"})
	g = m["global"].(map[string]any)
	if g["scrape_interval"] != "2m" || g["evaluation_interval"] != "500ms" || g["external_labels"].(map[string]any)["replica"] != "b" {
		t.Fatalf("global = %v", g)
	}
	if rf := m["rule_files"].([]any); len(rf) != 1 || rf[0] != "/r.yml" {
		t.Fatalf("rule_files = %v", rf)
	}
}

func TestRenderPrometheusConfigScrapes(t *testing.T) {
	m := renderMap(t, PrometheusOptions{
		ListenAddress: "127.0.0.1:9999",
		SelfScrapeJob: "me",
		ScrapeConfigs: `
- job_name: gw
  scrape_interval: 5s
  static_configs: [{targets: ["127.0.0.1:8080"]}]
`,
	}, nil)
	sc := m["scrape_configs"].([]any)
	if len(sc) != 2 {
		t.Fatalf("scrape_configs = %v", sc)
	}
	self := sc[0].(map[string]any)
	target := self["static_configs"].([]any)[0].(map[string]any)["targets"].([]any)[0]
	if self["job_name"] != "me" || target != "127.0.0.1:9999" {
		t.Fatalf("self scrape = %v", self)
	}
	if gw := sc[1].(map[string]any); gw["job_name"] != "gw" || gw["scrape_interval"] != "5s" {
		t.Fatalf("raw scrape = %v", gw)
	}

	for _, bad := range []string{"job_name: x", "- [unclosed"} {
		if _, err := renderPrometheusConfig(PrometheusOptions{ScrapeConfigs: bad}, nil); err == nil || !strings.Contains(err.Error(), "ScrapeConfigs") {
			t.Errorf("ScrapeConfigs %q: err = %v", bad, err)
		}
	}
}

func TestRenderPrometheusConfigRemoteWrite(t *testing.T) {
	m := renderMap(t, PrometheusOptions{RemoteWrite: []RemoteWriteTarget{
		{URL: "http://a/w", Name: "a", BearerToken: "tok", Headers: map[string]string{"THANOS-TENANT": "t1"}},
		{
			URL: "http://b/w", AuthorizationType: "Custom", Credentials: "secret",
			RemoteTimeout: 3 * time.Second, BatchSendDeadline: 2 * time.Second, MinBackoff: time.Second, MaxBackoff: 4 * time.Second,
			RetryOnRateLimit: true, DisableMetadata: true,
			WriteRelabelConfigs: `[{source_labels: [__name__], regex: "up", action: keep}]`,
		},
		{URL: "http://c/w", Credentials: "c"},
	}}, nil)
	rw := m["remote_write"].([]any)
	a, b, c := rw[0].(map[string]any), rw[1].(map[string]any), rw[2].(map[string]any)

	if a["url"] != "http://a/w" || a["name"] != "a" || a["remote_timeout"] != "5s" {
		t.Fatalf("a = %v", a)
	}
	if auth := a["authorization"].(map[string]any); auth["type"] != "Bearer" || auth["credentials"] != "tok" {
		t.Fatalf("a.authorization = %v", auth)
	}
	if a["headers"].(map[string]any)["THANOS-TENANT"] != "t1" {
		t.Fatalf("a.headers = %v", a["headers"])
	}
	q := a["queue_config"].(map[string]any)
	if q["batch_send_deadline"] != "1s" || q["min_backoff"] != "50ms" || q["max_backoff"] != "1s" || q["retry_on_http_429"] != false {
		t.Fatalf("a.queue_config defaults = %v", q)
	}
	if _, ok := a["metadata_config"]; ok {
		t.Fatal("metadata_config set without DisableMetadata")
	}

	if auth := b["authorization"].(map[string]any); auth["type"] != "Custom" || auth["credentials"] != "secret" {
		t.Fatalf("b.authorization = %v", auth)
	}
	q = b["queue_config"].(map[string]any)
	if b["remote_timeout"] != "3s" || q["batch_send_deadline"] != "2s" || q["min_backoff"] != "1s" || q["max_backoff"] != "4s" || q["retry_on_http_429"] != true {
		t.Fatalf("b = %v", b)
	}
	if b["metadata_config"].(map[string]any)["send"] != false {
		t.Fatalf("b.metadata_config = %v", b["metadata_config"])
	}
	if rl := b["write_relabel_configs"].([]any); len(rl) != 1 || rl[0].(map[string]any)["action"] != "keep" {
		t.Fatalf("b.write_relabel_configs = %v", rl)
	}
	if auth := c["authorization"].(map[string]any); auth["type"] != "Bearer" || auth["credentials"] != "c" {
		t.Fatalf("c.authorization = %v", auth)
	}

	for name, rw := range map[string]RemoteWriteTarget{
		"URL is empty":                  {},
		"mutually exclusive":            {URL: "http://x", BearerToken: "a", Credentials: "b"},
		"without Credentials":           {URL: "http://x", AuthorizationType: "Custom"},
		"WriteRelabelConfigs must be a": {URL: "http://x", WriteRelabelConfigs: "action: keep"},
	} {
		_, err := renderPrometheusConfig(PrometheusOptions{RemoteWrite: []RemoteWriteTarget{rw}}, nil)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "RemoteWrite[0]") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestRenderPrometheus3Options: the Prometheus 3 keys are written when
// asked for and absent otherwise (Prometheus 2.42 refuses them).
func TestRenderPrometheus3Options(t *testing.T) {
	m := renderMap(t, PrometheusOptions{ScrapeNativeHistograms: true, RemoteWrite: []RemoteWriteTarget{
		{URL: "http://a/w", ProtobufMessage: RemoteWrite2, SendNativeHistograms: true},
		{URL: "http://b/w", ProtobufMessage: RemoteWrite1},
		{URL: "http://c/w"},
	}}, nil)
	if g := m["global"].(map[string]any); g["scrape_native_histograms"] != true {
		t.Fatalf("global = %v", g)
	}
	rw := m["remote_write"].([]any)
	a, b, c := rw[0].(map[string]any), rw[1].(map[string]any), rw[2].(map[string]any)
	if a["protobuf_message"] != "io.prometheus.write.v2.Request" || a["send_native_histograms"] != true {
		t.Fatalf("a = %v", a)
	}
	if b["protobuf_message"] != "prometheus.WriteRequest" {
		t.Fatalf("b = %v", b)
	}
	for _, k := range []string{"protobuf_message", "send_native_histograms"} {
		if _, ok := c[k]; ok {
			t.Errorf("c has %s: %v", k, c)
		}
	}
	if g := renderMap(t, PrometheusOptions{}, nil)["global"].(map[string]any); g["scrape_native_histograms"] != nil {
		t.Fatalf("scrape_native_histograms written by default: %v", g)
	}
	_, err := renderPrometheusConfig(PrometheusOptions{RemoteWrite: []RemoteWriteTarget{{URL: "http://x", ProtobufMessage: "v2"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "ProtobufMessage") {
		t.Fatalf("bad ProtobufMessage: err = %v", err)
	}
}

// TestRenderedConfigPassesPromtool checks a config using every option with
// the real promtool of the installed Prometheus.
func TestRenderedConfigPassesPromtool(t *testing.T) {
	promtool := RequireBinary(t, "", "run `make test`, which installs the prometheus package", "/usr/bin/promtool")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, []byte("groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: sum(up)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := renderPrometheusConfig(PrometheusOptions{
		ListenAddress:  "127.0.0.1:9090",
		SelfScrapeJob:  "self",
		ExternalLabels: map[string]string{"replica": "a"},
		ScrapeConfigs:  `[{job_name: gw, static_configs: [{targets: ["127.0.0.1:1"]}]}]`,
		RemoteWrite: []RemoteWriteTarget{
			{URL: "http://127.0.0.1:1/api/v1/receive", Name: "gw", BearerToken: CompositeToken("t", "c"), Headers: map[string]string{"THANOS-TENANT": "x"},
				RetryOnRateLimit: true, DisableMetadata: true, WriteRelabelConfigs: `[{regex: pod, action: labeldrop}]`},
		},
	}, []string{rules})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s\n--- config ---\n%s", err, out, cfg)
	}
}

// TestStartPrometheusBadConfigFailsFast: a config Prometheus rejects makes
// StartPrometheus fail at once with the reason, not after StartTimeout.
func TestStartPrometheusBadConfigFailsFast(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := runTB(t, func(tb testing.TB) {
		StartPrometheus(tb, PrometheusOptions{Name: "bad", RuleFiles: []string{"groups: [{name: g, rules: [{record: x, expr: 'sum('}]}]"}})
	})
	fatal, _ := r.result()
	if !strings.Contains(fatal, "process exited") || !strings.Contains(fatal, "exit status 1") {
		t.Fatalf("fatal = %q", fatal)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %s", d)
	}
}
