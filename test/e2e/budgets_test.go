package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// budgetGatewayOpts configure startBudgetGateway.
type budgetGatewayOpts struct {
	downstream string
	// limits is the YAML under limits: (indented by two spaces).
	limits string
	// web is the YAML under web: besides the listen addresses.
	web string
	// files are written next to the config.
	files map[string]string
	// authn is extra YAML under authn:.
	authn string
	// shippedLimits keeps the default request caps instead of the small
	// ones the other tests use.
	shippedLimits bool
	// forward is extra YAML under forward: (indented by two spaces).
	forward string
}

// startBudgetGateway runs the real binary with the e2e allowlist, the
// static tokens and the given limits.
func startBudgetGateway(t *testing.T, o budgetGatewayOpts) *gatewayProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(allowlistYAML), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	for name, content := range o.files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	caps := "  max_request_bytes: 64KiB\n  max_decoded_bytes: 256KiB\n  max_series_per_request: 1000"
	if o.shippedLimits {
		caps = ""
	}
	cfg := fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
%s
authn:
  tokens_file: tokens.yaml
%s
allowlist:
  file: allowlist.yaml
relabel:
  max_future_skew: 1h
limits:
%s
%s
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
%s
`, pub, internal, o.web, o.authn, caps, o.limits, o.downstream, o.forward)
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-" + strings.ReplaceAll(pub, ":", "-"),
		Binary: bin,
		// --web.enable-lifecycle: the reload tests POST /-/reload.
		Args: []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml"), "--log.level=debug", "--web.enable-lifecycle"},
		Dir:  dir,
	})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)
	return &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}
}

// versionSeries returns n cluster_version series (distinct version
// labels from..from+n) with one sample at ms.
func versionSeries(ms int64, from, n int) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "cluster_version"}, {Name: "version", Value: strconv.Itoa(i)}},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: ms}},
		})
	}
	return out
}

// droppedBy parses X-Telegate-Dropped-Samples ("allowlist=1, budget=2").
func droppedBy(h string, reason string) int {
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == reason {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func scalar(t *testing.T, v model.Vector) int {
	t.Helper()
	if len(v) != 1 {
		t.Fatalf("want one sample, got %v", v)
	}
	return int(v[0].Value)
}

// TestSeriesBudgetAcrossReplicas: two replicas share a real redis-server.
// Requests alternate between them; the cluster is cut at its budget
// exactly once (not once per replica), known series keep flowing, and a
// restarted replica does not reset the budget.
func TestSeriesBudgetAcrossReplicas(t *testing.T) {
	const budget = 12
	redis := harness.StartRedis(t)
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	lim := fmt.Sprintf(`  upload_interval: 0s
  budgets:
    active_series: {max: %d, window: 10m}
    overrides_file: overrides.yaml
  redis:
    address: %s
    key_prefix: "e2e:"
    fail_open: false`, budget, redis.Addr())
	files := map[string]string{"overrides.yaml": "overrides:\n  big-cluster:\n    active_series: {max: 1000}\n"}
	a := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: lim, files: files})
	b := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: lim, files: files})
	replicas := []*gatewayProc{a, b}
	ctx := context.Background()
	tok := harness.CompositeToken("fleet-token", "noisy")

	send := func(gw *gatewayProc, token string, series []prompb.TimeSeries) (dropped int) {
		t.Helper()
		status, body, hdr, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", token, &prompb.WriteRequest{Timeseries: series})
		if err != nil || status != 204 {
			t.Fatalf("remote write: %d %s %v", status, body, err)
		}
		return droppedBy(hdr.Get("X-Telegate-Dropped-Samples"), "budget")
	}
	// Six requests of five new series each, alternating replicas: 30
	// series offered, exactly 12 admitted in total.
	ms := time.Now().UnixMilli()
	totalDropped := 0
	for i := 0; i < 6; i++ {
		totalDropped += send(replicas[i%2], tok, versionSeries(ms, i*5, 5))
	}
	if totalDropped != 30-budget {
		t.Fatalf("dropped %d across replicas, want %d", totalDropped, 30-budget)
	}
	q := `count(cluster_version{_id="noisy"})`
	down.QueryEventually(t, q, func(v model.Vector) bool { return len(v) == 1 && int(v[0].Value) == budget }, 30*time.Second)

	// Known series keep flowing through either replica.
	if d := send(b, tok, versionSeries(ms+1000, 0, budget)); d != 0 {
		t.Fatalf("known series dropped: %d", d)
	}

	// A restarted replica still sees the shared budget.
	a.Restart()
	a.WaitHTTP(a.internal+"/-/ready", 30*time.Second)
	if d := send(a, tok, versionSeries(ms+2000, 100, 5)); d != 5 {
		t.Fatalf("after restart: %d of 5 new series dropped, want all", d)
	}
	if d := send(a, tok, versionSeries(ms+2000, 0, 3)); d != 0 {
		t.Fatalf("after restart: known series dropped: %d", d)
	}

	// Another cluster has its own budget; an override raises one.
	if d := send(b, harness.CompositeToken("fleet-token", "quiet"), versionSeries(ms, 0, 10)); d != 0 {
		t.Fatalf("quiet cluster dropped %d", d)
	}
	if d := send(a, harness.CompositeToken("fleet-token", "big-cluster"), versionSeries(ms, 0, 40)); d != 0 {
		t.Fatalf("cluster with an override dropped %d", d)
	}
	down.QueryEventually(t, `count(cluster_version{_id="big-cluster"})`, func(v model.Vector) bool { return len(v) == 1 && int(v[0].Value) == 40 }, 30*time.Second)
	if n := scalar(t, down.Query(t, q)); n != budget {
		t.Fatalf("noisy cluster holds %d series downstream, want %d", n, budget)
	}
	// The offenders show up on the debug endpoint of the replicas.
	body := httpGet(t, b.internal+"/debug/limits")
	if !strings.Contains(body, `"cluster_version"`) {
		t.Fatalf("/debug/limits: %s", body)
	}
}

// TestShadowBudgetE2E: enforce: false forwards everything and reports what
// would have been dropped in the header and the metric.
func TestShadowBudgetE2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: `  upload_interval: 0s
  budgets:
    active_series: {max: 3, enforce: false}`})
	status, body, hdr, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "shadow"),
		&prompb.WriteRequest{Timeseries: versionSeries(time.Now().UnixMilli(), 0, 8)})
	if err != nil || status != 204 || hdr.Get("X-Telegate-Shadow-Dropped-Samples") != "budget=5" || hdr.Get("X-Telegate-Dropped-Samples") != "" {
		t.Fatalf("%d %s %v headers %v", status, body, err, hdr)
	}
	down.QueryEventually(t, `count(cluster_version{_id="shadow"})`, func(v model.Vector) bool { return len(v) == 1 && int(v[0].Value) == 8 }, 30*time.Second)
	if m := httpGet(t, gw.internal+"/metrics"); !strings.Contains(m, `telegate_shadow_dropped_samples_total{reason="budget"} 5`) {
		t.Fatal("shadow metric missing")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
