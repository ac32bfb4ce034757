package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/deploy"
	"github.com/telegate/telegate/test/e2e/harness"
)

// exposedNames scrapes url and returns every sample name it exposes
// (histograms as _bucket, _sum, _count; summaries as NAME, _sum, _count).
func exposedNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	must(t, err)
	out := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// TestDashboardAndRuleMetricsExist runs the real gateway (with every
// optional subsystem the dashboards show: spool, authorizer cache, budget
// overrides) and the real client, and checks that every metric name the
// Grafana dashboards and Prometheus rules in deploy/monitoring use is on
// the /metrics of the binary they are about.
//
// Nearly every series is pre-initialised at start (counter vectors with
// their label values at 0). The exception is the public API's
// telegate_http_requests_total{handler,code} and
// telegate_http_request_duration_seconds{handler}: their code label only
// exists once a request was answered with it, so the test first lets the
// client authorize and upload once (a real 200), as any running gateway
// does within one interval. `up` is Prometheus's own series, not the
// binaries'.
func TestDashboardAndRuleMetricsExist(t *testing.T) {
	queries, err := deploy.Queries(deploy.FS)
	must(t, err)
	names, err := deploy.MetricNames(deploy.FS, queries)
	must(t, err)

	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(clientAllowlist), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "overrides.yaml"), []byte("overrides:\n  cluster-e2e:\n    active_series: {max: 1000}\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(fmt.Sprintf(`web: {listen_address: %s, internal_listen_address: %s}
authn:
  tokens_file: tokens.yaml
  # Never contacted: the static token answers first. Present so the
  # authorizer cache metrics are registered.
  authorizer: {url: "http://127.0.0.1:1/authorize"}
allowlist: {file: allowlist.yaml}
limits:
  upload_interval: 1s
  budgets: {overrides_file: overrides.yaml}
forward:
  url: %s
  spool:
    bucket: {type: FILESYSTEM, config: {directory: %s}}
`, pub, internal, down.RemoteWriteURL(), filepath.Join(dir, "spool"))), 0o600))
	gw := harness.StartProcess(t, harness.ProcessOptions{
		Name: "telegate-gateway", Binary: bin, Dir: dir,
		Args: []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml")},
	})
	gw.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)

	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	cl := startTelegateClient(t, clientArgs(cluster.URL(), "http://"+pub, "--interval=2s")...)
	cl.waitMetric(t, "one snapshot sent", 60*time.Second, func(v float64) bool { return v >= 1 }, "telegate_client_snapshots_total", "result", "sent")
	down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 30*time.Second)

	exposed := map[string]map[string]bool{
		"gateway": exposedNames(t, "http://"+internal+"/metrics"),
		"client":  exposedNames(t, cl.url+"/metrics"),
	}
	var missing []string
	checked := 0
	for name, where := range names {
		if name == "up" {
			continue
		}
		for _, w := range where {
			binary := "gateway"
			if strings.Contains(w, "telegate-client") {
				binary = "client"
			}
			checked++
			if !exposed[binary][name] {
				missing = append(missing, fmt.Sprintf("%s (the %s does not expose it; used in %s)", name, binary, w))
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Error(m)
	}
	if checked < 50 {
		t.Errorf("only %d uses checked", checked)
	}
	t.Logf("checked %d uses of %d metric names against the gateway's %d and the client's %d exposed names",
		checked, len(names), len(exposed["gateway"]), len(exposed["client"]))
}
