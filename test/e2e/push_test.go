package e2e

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/test/e2e/harness"
)

// pushAllowlistYAML keeps the installer service's metrics.
const pushAllowlistYAML = allowlistYAML + `# owners: (@telegate/e2e)
# The installer service's pushed metrics.
- '{__name__=~"assisted_installer_.*"}'
`

// installerExposition is the installer-style histogram of issue 16:
// installation minutes with le buckets 1 to 60 (cumulative count i*i at
// le=i), as text 0.0.4 or as OpenMetrics 1.0 (with _created and # EOF).
func installerExposition(om bool) string {
	var sb strings.Builder
	sb.WriteString("# HELP assisted_installer_cluster_installation_minutes Minutes an installation took.\n")
	sb.WriteString("# TYPE assisted_installer_cluster_installation_minutes histogram\n")
	for le := 1; le <= 60; le++ {
		fmt.Fprintf(&sb, "assisted_installer_cluster_installation_minutes_bucket{le=\"%d\"} %d\n", le, le*le)
	}
	sb.WriteString("assisted_installer_cluster_installation_minutes_bucket{le=\"+Inf\"} 3600\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_sum 126000\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_count 3600\n")
	if om {
		sb.WriteString("assisted_installer_cluster_installation_minutes_created 1.7e+09\n# EOF\n")
	}
	return sb.String()
}

const installerQuantile = `histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket))`

// startPushGateway runs the real binary forwarding to downstream with
// pushAllowlistYAML.
func startPushGateway(t *testing.T, downstream string) *gatewayProc {
	t.Helper()
	return runGateway(t, map[string]string{"allowlist.yaml": pushAllowlistYAML}, fmt.Sprintf(`authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
`, downstream))
}

// pushWithCurl pushes body with the curl binary, as the docs show; with
// Go's client when curl is missing. It returns the status code.
func pushWithCurl(t *testing.T, url, bearer, contentType, body string) int {
	t.Helper()
	if curl, err := exec.LookPath("curl"); err == nil {
		dir := t.TempDir()
		f, answer := filepath.Join(dir, "body"), filepath.Join(dir, "answer")
		must(t, os.WriteFile(f, []byte(body), 0o600))
		out, err := exec.Command(curl, "-sS", "-o", answer, "-w", "%{http_code}",
			"-H", "Authorization: Bearer "+bearer, "-H", "Content-Type: "+contentType,
			"--data-binary", "@"+f, url).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		var code int
		fmt.Sscan(string(out), &code)
		if code != http.StatusOK {
			b, _ := os.ReadFile(answer)
			t.Logf("push answer: %s", b)
		}
		return code
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Logf("push answer: %s", b)
	}
	return resp.StatusCode
}

// directQuantile is installerQuantile answered by a Prometheus scraping
// the text exposition straight from a /metrics endpoint.
func directQuantile(t *testing.T) float64 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, installerExposition(false))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	direct := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:          "direct",
		ScrapeConfigs: fmt.Sprintf("- job_name: installer\n  static_configs: [{targets: [\"127.0.0.1:%s\"]}]\n", port),
	})
	v := direct.QueryEventually(t, installerQuantile, harness.Len(1), 30*time.Second)
	t.Logf("scraped directly: %s = %v", installerQuantile, v[0].Value)
	return float64(v[0].Value)
}

func sameQuantile(t *testing.T, where string, v model.Vector, want float64) {
	t.Helper()
	if len(v) != 1 || math.Abs(float64(v[0].Value)-want) > 1e-9 {
		t.Fatalf("%s: %s = %v, want %v (the directly scraped answer)", where, installerQuantile, v, want)
	}
}

// TestPushInstallerHistogramToPrometheus: the installer histogram pushed
// as text (with curl, to /metrics/v1/push), as OpenMetrics (to the
// Pushgateway path form) and by client_golang's push helper through the
// gateway into a stock Prometheus'
// remote-write receiver gives the histogram_quantile a Prometheus
// scraping the same exposition directly gives, every bucket stamped with
// the pushing service's _id.
func TestPushInstallerHistogramToPrometheus(t *testing.T) {
	want := directQuantile(t)
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startPushGateway(t, down.RemoteWriteURL())
	tok := harness.CompositeToken("fleet-token", "installer-service")

	if code := pushWithCurl(t, gw.url+"/metrics/v1/push", tok, "text/plain; version=0.0.4", installerExposition(false)); code != http.StatusOK {
		t.Fatalf("text push: %d", code)
	}
	v := down.QueryEventually(t, `count(assisted_installer_cluster_installation_minutes_bucket{_id="installer-service"})`, harness.NonEmpty, 30*time.Second)
	if v[0].Value != 61 {
		t.Fatalf("%v buckets arrived, want 61", v[0].Value)
	}
	sameQuantile(t, "text push", down.Query(t, installerQuantile), want)

	// OpenMetrics through the Pushgateway path form, into a series of its
	// own (job="openmetrics"): both pushes now sum to twice the counts,
	// with the same median.
	if code := pushWithCurl(t, gw.url+"/metrics/job/openmetrics", tok, "application/openmetrics-text; version=1.0.0", installerExposition(true)); code != http.StatusOK {
		t.Fatalf("OpenMetrics push: %d", code)
	}
	down.QueryEventually(t, `assisted_installer_cluster_installation_minutes_count{job="openmetrics",_id="installer-service"}`, harness.Len(1), 30*time.Second)
	sameQuantile(t, "OpenMetrics push", down.Query(t, `histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket{job="openmetrics"}))`), want)
	sameQuantile(t, "both pushes", down.Query(t, installerQuantile), want)
	// _created is kept (the allowlist takes it).
	down.QueryEventually(t, `assisted_installer_cluster_installation_minutes_created{job="openmetrics"}`, harness.Len(1), 10*time.Second)

	// client_golang's push helper, unchanged (delimited protobuf, PUT to
	// the path form): the same buckets, observed.
	pushWithClientGolang(t, gw.url, tok)
	down.QueryEventually(t, `assisted_installer_cluster_installation_minutes_count{job="client-golang"}`, harness.Len(1), 30*time.Second)
	sameQuantile(t, "client_golang push", down.Query(t, `histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket{job="client-golang"}))`), want)
	// The three pushes name their buckets alike (le="1.0"): summed, still
	// 61 buckets and the same median.
	sameQuantile(t, "three pushes", down.Query(t, installerQuantile), want)
	if v := down.Query(t, `count(sum by (le) (assisted_installer_cluster_installation_minutes_bucket))`); len(v) != 1 || v[0].Value != 61 {
		t.Fatalf("buckets named differently across formats: %v", v)
	}

	// Malformed text is refused with its line and nothing arrives.
	if code := pushWithCurl(t, gw.url+"/metrics/job/broken", tok, "text/plain; version=0.0.4", "assisted_installer_ok 1\nassisted_installer_bad{ 1\n"); code != http.StatusBadRequest {
		t.Fatalf("malformed push: %d", code)
	}
	if v := down.Query(t, `assisted_installer_ok`); len(v) != 0 {
		t.Fatalf("part of a refused push stored: %v", v)
	}
}

// pushWithClientGolang observes the installer histogram's buckets (2i-1
// installations of i minutes, for i from 1 to 60: i*i at le=i) and pushes
// it with client_golang's push helper as job "client-golang".
func pushWithClientGolang(t *testing.T, url, bearer string) {
	t.Helper()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "assisted_installer_cluster_installation_minutes",
		Help:    "Minutes an installation took.",
		Buckets: prometheus.LinearBuckets(1, 1, 60),
	})
	for i := 1; i <= 60; i++ {
		for range 2*i - 1 {
			h.Observe(float64(i))
		}
	}
	err := push.New(url, "client-golang").Collector(h).
		Header(http.Header{"Authorization": {"Bearer " + bearer}}).Push()
	must(t, err)
}

// TestPushInstallerHistogramToEmbeddedStore: the same three pushes into the
// single binary's embedded TSDB give the same answer.
func TestPushInstallerHistogramToEmbeddedStore(t *testing.T) {
	want := directQuantile(t)
	gw := startEmbeddedGatewayWith(t, pushAllowlistYAML, "", "")
	tok := harness.CompositeToken("fleet-token", "installer-service")
	if code := pushWithCurl(t, gw.url+"/metrics/v1/push", tok, "text/plain; version=0.0.4", installerExposition(false)); code != http.StatusOK {
		t.Fatalf("text push: %d", code)
	}
	sameQuantile(t, "embedded, text push", gw.query.Query(t, installerQuantile), want)
	if code := pushWithCurl(t, gw.url+"/metrics/job/openmetrics", tok, "application/openmetrics-text; version=1.0.0", installerExposition(true)); code != http.StatusOK {
		t.Fatalf("OpenMetrics push: %d", code)
	}
	sameQuantile(t, "embedded, OpenMetrics push", gw.query.Query(t, `histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket{job="openmetrics",_id="installer-service"}))`), want)
	pushWithClientGolang(t, gw.url, tok)
	sameQuantile(t, "embedded, client_golang push", gw.query.Query(t, `histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket{job="client-golang"}))`), want)
	sameQuantile(t, "embedded, three pushes", gw.query.Query(t, installerQuantile), want)
	if strings.Contains(gw.Stderr(), "level=error") {
		t.Fatalf("errors logged:\n%s", gw.Stderr())
	}
}

// TestPushInstallerHistogramToThanos: the same text push through the
// gateway into a stock Thanos Receive, read back through Thanos Query: the
// median is the one a Prometheus scraping the exposition computes.
func TestPushInstallerHistogramToThanos(t *testing.T) {
	want := directQuantile(t)
	recv := harness.StartThanosReceive(t, harness.ThanosReceiveOptions{})
	q := harness.StartThanosQuery(t, harness.ThanosQueryOptions{Endpoints: []string{recv.GRPCAddr()}})
	harness.CheckThanosReadPath(t, recv, q, 60*time.Second)
	gw := startPushGateway(t, recv.RemoteWriteURL())
	tok := harness.CompositeToken("fleet-token", "installer-service")
	if code := pushWithCurl(t, gw.url+"/metrics/job/installer", tok, "text/plain; version=0.0.4", installerExposition(false)); code != http.StatusOK {
		t.Fatalf("text push: %d", code)
	}
	v := q.QueryEventually(t, `count(assisted_installer_cluster_installation_minutes_bucket{_id="installer-service",job="installer"})`, harness.NonEmpty, 60*time.Second)
	if v[0].Value != 61 {
		t.Fatalf("%v buckets in Thanos, want 61", v[0].Value)
	}
	sameQuantile(t, "push into Thanos", q.Query(t, installerQuantile), want)
}
