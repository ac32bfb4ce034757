package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/client"
	"github.com/telegate/telegate/test/e2e/harness"
)

// clusterRules makes the cluster Prometheus record a series carrying
// labels that must be anonymized (node) or stripped (instance, pod), and
// fire an always-on alert (ALERTS, renamed to alerts by the client).
const clusterRules = `groups:
- name: telemetry
  rules:
  - record: cluster:node_info
    expr: label_replace(label_replace(up{job="cluster"}, "node", "worker-1", "", ""), "pod", "prometheus-0", "", "")
  - alert: Watchdog
    expr: vector(1)
    labels:
      severity: none
`

const clientAllowlist = `matches:
- '{__name__="cluster:node_info"}'
- '{__name__="alerts"}'
`

// startUploadGateway runs the real gateway with a short upload interval,
// an allowlist for the client tests, and the static tokens of
// gateway_test.go.
func startUploadGateway(t *testing.T, downstream string) *gatewayProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(clientAllowlist), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	cfg := fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
limits:
  upload_interval: 1s
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
`, pub, internal, downstream)
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-gateway",
		Binary: bin,
		Args:   []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml"), "--log.level=debug"},
		Dir:    dir,
	})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)
	return &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}
}

type clientProc struct {
	*harness.Process
	url string // the --listen address
}

// startTelegateClient runs `telegate client` with args plus --listen.
func startTelegateClient(t *testing.T, args ...string) *clientProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	listen := harness.FreeAddr(t)
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-client",
		Binary: bin,
		Args:   append([]string{"client", "--listen=" + listen, "--log.level=debug"}, args...),
	})
	p.WaitHTTP("http://"+listen+"/-/ready", 30*time.Second)
	return &clientProc{Process: p, url: "http://" + listen}
}

// metric reads one series of the client's /metrics (-1 when absent).
func (c *clientProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return scrapeValue(t, http.DefaultClient, c.url+"/metrics", name, labels...)
}

func (c *clientProc) waitMetric(t *testing.T, what string, timeout time.Duration, cond func(float64) bool, name string, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := c.metric(t, name, labels...)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s%v = %v after %s", what, name, labels, v, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startCluster(t *testing.T) *harness.Prometheus {
	return harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:          "cluster",
		SelfScrapeJob: "cluster",
		RuleFiles:     []string{clusterRules},
	})
}

func clientArgs(prom, gw string, extra ...string) []string {
	return append([]string{
		"--from=" + prom,
		"--to=" + gw,
		"--id=cluster-e2e",
		"--to-token=fleet-token",
		`--match={__name__="cluster:node_info"}`,
		`--match={__name__="ALERTS"}`,
		"--anonymize-labels=node",
		"--anonymize-salt=pepper",
	}, extra...)
}

// TestClientEndToEnd: a real Prometheus records a series and fires an
// alert; `telegate client` federates it every 2s into the real gateway,
// which forwards to a real downstream Prometheus. The downstream holds the
// recorded series with _id, the node label anonymized, instance and pod
// gone, and ALERTS renamed to alerts. What was sent is visible at
// /last-payload and with `telegate client inspect`.
func TestClientEndToEnd(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	cluster.QueryEventually(t, `ALERTS{alertname="Watchdog"}`, harness.Len(1), 30*time.Second)

	staging := t.TempDir()
	cl := startTelegateClient(t, clientArgs(cluster.URL(), gw.url, "--interval=2s", "--staging-dir="+staging, "--staging-keep=3")...)

	v := down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 60*time.Second)
	m := v[0].Metric
	wantNode := client.Anonymize("pepper", "worker-1")
	if string(m["node"]) != wantNode || m["node"] == "worker-1" {
		t.Errorf("node = %q, want the anonymized %q", m["node"], wantNode)
	}
	if m["instance"] != "" || m["pod"] != "" || m["job"] != "cluster" {
		t.Errorf("labels downstream: %v", m)
	}
	a := down.QueryEventually(t, `alerts{_id="cluster-e2e",alertname="Watchdog"}`, harness.Len(1), 30*time.Second)
	if a[0].Metric["severity"] != "none" {
		t.Errorf("alert labels %v", a[0].Metric)
	}
	if v := down.Query(t, `ALERTS`); len(v) != 0 {
		t.Errorf("ALERTS arrived un-renamed: %v", v)
	}
	if v := down.Query(t, `{__name__=~".+",_id!="cluster-e2e"}`); len(v) != 0 {
		t.Errorf("series without _id: %v", v)
	}
	// Several cycles, every one sent.
	cl.waitMetric(t, "three snapshots sent", 30*time.Second, func(v float64) bool { return v >= 3 }, "telegate_client_snapshots_total", "result", "sent")
	if v := cl.metric(t, "telegate_client_samples_sent_total"); v < 6 {
		t.Errorf("samples sent %v", v)
	}
	if v := cl.metric(t, "telegate_client_last_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success %v", v)
	}

	// Transparency: a startup line says telemetry is on, where it goes
	// and how to turn it off; the last payload is served as text.
	if log := cl.Stderr(); !strings.Contains(log, "telemetry is enabled") || !strings.Contains(log, "--disabled") || !strings.Contains(log, gw.url+"/upload") {
		t.Errorf("no consent line in the log:\n%s", log)
	}
	resp, err := http.Get(cl.url + "/last-payload")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cluster:node_info{_id="cluster-e2e",`, `node="` + wantNode + `"`, `alerts{`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/last-payload lacks %q:\n%s", want, body)
		}
	}
	// The staging dir keeps 3 payloads; inspect prints the newest.
	files, err := client.StagedPayloads(staging)
	must(t, err)
	if len(files) != 3 {
		t.Errorf("staged %d payloads, want 3", len(files))
	}
	out, err := exec.Command(harness.BuildBinary(t, "./cmd/telegate"), "client", "inspect", staging).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "# payload ") || !strings.Contains(string(out), `node="`+wantNode+`"`) || strings.Contains(string(out), "worker-1") {
		t.Errorf("inspect: %v\n%s", err, out)
	}

	// A dry run against the same Prometheus prints the transformed
	// snapshot and contacts no gateway (--to points at a closed port).
	dry, err := exec.Command(harness.BuildBinary(t, "./cmd/telegate"), append([]string{"client", "--dry-run"},
		clientArgs(cluster.URL(), "http://127.0.0.1:1")...)...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Logf("dry run stderr: %s", ee.Stderr)
	}
	if err != nil || !strings.Contains(string(dry), "# telegate client dry run: nothing was sent.") ||
		!strings.Contains(string(dry), `cluster:node_info{instance="`) || !strings.Contains(string(dry), `node="`+wantNode+`"`) {
		t.Errorf("dry run: %v\n%s", err, dry)
	}
}

// TestClientGatewayDownThenBack: the gateway is down when the first
// snapshot is taken; the client retries that same snapshot with backoff
// (visible in its metrics) and it arrives once the gateway is back, well
// before the next cycle would replace it.
func TestClientGatewayDownThenBack(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	must(t, gw.Stop())
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)

	cl := startTelegateClient(t, clientArgs(cluster.URL(), gw.url, "--interval=2m", "--min-backoff=200ms", "--max-backoff=1s")...)
	cl.waitMetric(t, "retries while the gateway is down", 30*time.Second, func(v float64) bool { return v >= 3 }, "telegate_client_retries_total")
	if v := cl.metric(t, "telegate_client_upload_attempts_total", "result", "network_error"); v < 3 {
		t.Errorf("network_error attempts %v", v)
	}
	if v := cl.metric(t, "telegate_client_backoff_seconds_total"); v <= 0 {
		t.Errorf("backoff seconds %v", v)
	}
	gw.Restart()
	gw.WaitHTTP(gw.internal+"/-/ready", 30*time.Second)
	down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 30*time.Second)
	// One federate, one snapshot, sent by a retry (the next cycle is 2m away).
	if v := cl.metric(t, "telegate_client_federate_requests_total", "result", "success"); v != 1 {
		t.Errorf("federated %v times", v)
	}
	cl.waitMetric(t, "snapshot sent", 10*time.Second, func(v float64) bool { return v == 1 }, "telegate_client_snapshots_total", "result", "sent")
	if v := cl.metric(t, "telegate_client_snapshots_total", "result", "replaced"); v != 0 {
		t.Errorf("replaced %v", v)
	}
}

// faultInjector proxies to the real gateway, but answers /upload itself
// while fault returns a status.
type faultInjector struct {
	*httptest.Server
	mu      sync.Mutex
	uploads []time.Time
}

func newFaultInjector(t *testing.T, gatewayURL string, fault func(n int, w http.ResponseWriter) bool) *faultInjector {
	target, err := url.Parse(gatewayURL)
	must(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &faultInjector{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			f.mu.Lock()
			n := len(f.uploads)
			f.uploads = append(f.uploads, time.Now())
			f.mu.Unlock()
			if fault(n, w) {
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *faultInjector) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.uploads...)
}

// TestClientHonoursRetryAfter: the first upload gets 429 with
// Retry-After: 3; the client waits that long (its max backoff is far
// shorter) and then the real gateway takes the data.
func TestClientHonoursRetryAfter(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	inj := newFaultInjector(t, gw.url, func(n int, w http.ResponseWriter) bool {
		if n > 0 {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":"one upload per cluster per 4m30s","reason":"upload_interval","retry_after_seconds":3}`)
		return true
	})
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	cl := startTelegateClient(t, clientArgs(cluster.URL(), inj.URL, "--interval=1m", "--min-backoff=100ms", "--max-backoff=500ms")...)
	down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 30*time.Second)
	ts := inj.times()
	if len(ts) != 2 {
		t.Fatalf("%d uploads, want the refused one and one retry", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < 3*time.Second {
		t.Fatalf("retried %s after a 429 with Retry-After: 3", gap)
	}
	if v := cl.metric(t, "telegate_client_upload_attempts_total", "result", "rate_limited"); v != 1 {
		t.Errorf("rate_limited attempts %v", v)
	}
	if !strings.Contains(cl.Stderr(), "one upload per cluster per 4m30s") {
		t.Error("the gateway's message is not in the client's log")
	}
}

// TestClientDoesNotRetry400: a 400 is final: one upload per cycle, no
// retries, the gateway's message logged.
func TestClientDoesNotRetry400(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	inj := newFaultInjector(t, gw.url, func(n int, w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"series claims another cluster's _id","reason":"invalid_series"}`)
		return true
	})
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	cl := startTelegateClient(t, clientArgs(cluster.URL(), inj.URL, "--interval=3s", "--min-backoff=100ms", "--max-backoff=200ms")...)
	cl.waitMetric(t, "two rejected snapshots", 30*time.Second, func(v float64) bool { return v >= 2 }, "telegate_client_snapshots_total", "result", "rejected")
	time.Sleep(time.Second)
	cycles := cl.metric(t, "telegate_client_federate_requests_total", "result", "success")
	if n := len(inj.times()); float64(n) != cycles {
		t.Errorf("%d uploads in %v cycles: a 400 was retried", n, cycles)
	}
	if v := cl.metric(t, "telegate_client_retries_total"); v != 0 {
		t.Errorf("retries %v", v)
	}
	if !strings.Contains(cl.Stderr(), "series claims another cluster") {
		t.Error("the gateway's message is not in the client's log")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := down.QueryErr(ctx, `{_id="cluster-e2e"}`); err != nil || len(v) != 0 {
		t.Errorf("downstream: %v %v", v, err)
	}
}

// TestClientConfigFileSIGHUPAndMatchFromGateway: the client starts
// disabled from --config.file (nothing is sent), the file is edited to
// enable it and SIGHUP reloads it; it then federates exactly the real
// gateway's allowlist (match_from_gateway) and the data arrives.
func TestClientConfigFileSIGHUPAndMatchFromGateway(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte("fleet-token\n"), 0o600))
	cfgPath := filepath.Join(dir, "client.yaml")
	write := func(disabled bool) {
		must(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`disabled: %v
from: %s
to: %s
id: cluster-e2e
to_token_file: token
match_from_gateway: true
interval: 2s
`, disabled, cluster.URL(), gw.url)), 0o600))
	}
	write(true)
	cl := startTelegateClient(t, "--config.file="+cfgPath)
	time.Sleep(3 * time.Second)
	if v := cl.metric(t, "telegate_client_federate_requests_total", "result", "success"); v != 0 {
		t.Fatalf("disabled client federated %v times", v)
	}
	if !strings.Contains(cl.Stderr(), "telemetry is disabled") {
		t.Error("no startup line saying telemetry is disabled")
	}
	write(false)
	must(t, syscall.Kill(cl.Pid(), syscall.SIGHUP))
	cl.waitMetric(t, "reloaded", 10*time.Second, func(v float64) bool { return v == 1 }, "telegate_client_enabled")
	v := down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 30*time.Second)
	if v[0].Metric["node"] != "worker-1" {
		t.Errorf("node %q: nothing asked to anonymize it", v[0].Metric["node"])
	}
	if !strings.Contains(cl.Stderr(), "federating the gateway's allowlist") {
		t.Error("the allowlist fetch is not logged")
	}
	// POST /-/reload re-reads the file too; a broken file is refused and
	// the running config kept.
	must(t, os.WriteFile(cfgPath, []byte("disabled: [\n"), 0o600))
	resp, err := http.Post(cl.url+"/-/reload", "", nil)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || cl.metric(t, "telegate_client_config_last_reload_successful") != 0 || cl.metric(t, "telegate_client_enabled") != 1 {
		t.Errorf("broken config reload: %d", resp.StatusCode)
	}
	write(true)
	resp, err = http.Post(cl.url+"/-/reload", "", nil)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || cl.metric(t, "telegate_client_enabled") != 0 {
		t.Errorf("reload to disabled: %d", resp.StatusCode)
	}
}

// TestClientUsesProxyFromEnvironment: with HTTP_PROXY set, requests to the
// gateway go through the proxy (the gateway's name resolves only there).
func TestClientUsesProxyFromEnvironment(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startUploadGateway(t, down.RemoteWriteURL())
	target, err := url.Parse(gw.url)
	must(t, err)
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		mu.Lock()
		seen = append(seen, r.In.Host+r.In.URL.Path)
		mu.Unlock()
		r.SetURL(target)
		r.Out.URL.Path = r.In.URL.Path
	}})
	t.Cleanup(proxy.Close)
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)

	bin := harness.BuildBinary(t, "./cmd/telegate")
	listen := harness.FreeAddr(t)
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-client",
		Binary: bin,
		Args:   append([]string{"client", "--listen=" + listen}, clientArgs(cluster.URL(), "http://telemetry-gateway.example:9003", "--interval=2s")...),
		Env:    []string{"HTTP_PROXY=" + proxy.URL, "NO_PROXY=prometheus.example"},
	})
	p.WaitHTTP("http://"+listen+"/-/ready", 30*time.Second)
	down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0] != "telemetry-gateway.example:9003/authorize" || seen[1] != "telemetry-gateway.example:9003/upload" {
		t.Fatalf("proxy saw %v", seen)
	}
}
