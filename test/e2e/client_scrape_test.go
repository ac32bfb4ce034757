package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/test/e2e/harness"
)

// scrapeAllowlist allows one series of Prometheus' own /metrics and the
// installer histogram's buckets and counter of the static OpenMetrics
// file; the client applies exactly these (--match-from-gateway).
const scrapeAllowlist = `matches:
- '{__name__="prometheus_build_info"}'
- '{__name__="assisted_installer_cluster_installation_minutes_bucket"}'
- '{__name__="assisted_installer_clusters_created_total"}'
`

// startScrapeGateway runs the real gateway with scrapeAllowlist, forwarding
// to downstream, accepting one upload per installation per second.
func startScrapeGateway(t *testing.T, downstream string) *gatewayProc {
	t.Helper()
	return runGateway(t, map[string]string{"allowlist.yaml": scrapeAllowlist}, fmt.Sprintf(`authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
limits:
  upload_interval: 1s
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
`, downstream))
}

// runOnce runs a client binary to completion and returns its exit code
// and standard error.
func runOnce(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	must(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), stdout.String(), stderr.String()
		}
		must(t, err)
		return 0, stdout.String(), stderr.String()
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%s %q did not exit:\n%s", bin, args, stderr.String())
		return -1, "", ""
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestClientScrapeEndToEnd: the lean client binary, without --id, scrapes
// a real Prometheus' own /metrics (OpenMetrics, negotiated) and a static
// OpenMetrics file served by a plain file server (text/plain, recognised
// by its # EOF), applies the gateway's allowlist itself and uploads once
// (--once, exit 0) through the real gateway into a real Prometheus. The
// series arrive with _id = the UUID the client generated and kept in
// --state-dir (what --print-id prints), the histogram gives the expected
// quantile, and nothing outside the allowlist arrives. A second run
// (`telegate client --once`, the full binary) keeps the same ID; an
// unreachable gateway makes --once exit 1.
func TestClientScrapeEndToEnd(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startScrapeGateway(t, down.RemoteWriteURL())
	source := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "source"})

	files := t.TempDir()
	om, err := os.ReadFile("../../client/testdata/installer.om")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(files, "installer.om"), om, 0o644))
	static := httptest.NewServer(http.FileServer(http.Dir(files)))
	defer static.Close()

	lean := harness.BuildBinary(t, "./cmd/telegate-client")
	full := harness.BuildBinary(t, "./cmd/telegate")
	state := t.TempDir()
	args := []string{"--once", "--from-scrape=" + source.URL() + "/metrics", "--from-scrape=" + static.URL + "/installer.om",
		"--to=" + gw.url, "--to-token=fleet-token", "--match-from-gateway", "--state-dir=" + state}

	code, _, stderr := runOnce(t, lean, args...)
	if code != 0 {
		t.Fatalf("telegate-client --once exited %d:\n%s", code, stderr)
	}
	for _, want := range []string{"generated a new installation ID", "telemetry is enabled", "--disabled", "sent telemetry", gw.url + "/upload"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the client's log lacks %q:\n%s", want, stderr)
		}
	}
	code, out, stderr := runOnce(t, lean, "--print-id", "--state-dir="+state)
	id := strings.TrimSpace(out)
	if code != 0 || !uuidV4.MatchString(id) {
		t.Fatalf("--print-id: exit %d, %q\n%s", code, out, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "installation-id")); strings.TrimSpace(string(b)) != id {
		t.Errorf("state file holds %q, --print-id says %q", b, id)
	}

	// Prometheus' own /metrics, read by the client.
	v := down.QueryEventually(t, fmt.Sprintf(`prometheus_build_info{_id=%q}`, id), harness.Len(1), 30*time.Second)
	if v[0].Metric["version"] == "" {
		t.Errorf("prometheus_build_info labels %v", v[0].Metric)
	}
	// The static OpenMetrics file: every bucket, and the quantile a
	// Prometheus scraping the file would compute (rank 5 of 10 between the
	// 10 (3) and 30 (7) buckets: 20).
	down.QueryEventually(t, fmt.Sprintf(`assisted_installer_cluster_installation_minutes_bucket{_id=%q}`, id), harness.Len(6), 30*time.Second)
	q := down.Query(t, fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (assisted_installer_cluster_installation_minutes_bucket{_id=%q}))`, id))
	if len(q) != 1 || float64(q[0].Value) != 20 {
		t.Errorf("median installation minutes %v, want 20", q)
	}
	down.QueryEventually(t, fmt.Sprintf(`assisted_installer_clusters_created_total{_id=%q,platform="baremetal"} == 42`, id), harness.Len(1), 30*time.Second)
	// Nothing the allowlist does not name, and nothing without the ID.
	for _, sel := range []string{`{__name__=~"go_.+|process_.+|prometheus_http_.+"}`, `{__name__=~"internal_debug.+"}`,
		`{__name__=~"assisted_installer_cluster_installation_minutes_(sum|count|created)"}`, fmt.Sprintf(`{__name__=~".+",_id!=%q}`, id)} {
		if v := down.Query(t, sel); len(v) != 0 {
			t.Errorf("%s: %v", sel, v)
		}
	}

	// A second run (the full binary's `telegate client`) uses the same ID.
	time.Sleep(1100 * time.Millisecond) // the gateway's upload_interval
	code, _, stderr = runOnce(t, full, append([]string{"client"}, args...)...)
	if code != 0 || strings.Contains(stderr, "generated a new installation ID") {
		t.Fatalf("second run: exit %d:\n%s", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(state, "installation-id")); strings.TrimSpace(string(again)) != id {
		t.Errorf("the ID changed to %q", again)
	}
	if v := down.Query(t, `count by (_id) (prometheus_build_info)`); len(v) != 1 || string(v[0].Metric["_id"]) != id {
		t.Errorf("installations downstream: %v", v)
	}

	// --once exits 1 when the gateway cannot be reached (retried within
	// the interval, then given up).
	code, _, stderr = runOnce(t, lean, "--once", "--from-scrape="+static.URL+"/installer.om", "--to=http://127.0.0.1:1",
		"--to-token=fleet-token", "--match=assisted_installer_hosts", "--state-dir="+state, "--interval=3s", "--min-backoff=100ms", "--max-backoff=300ms")
	if code != 1 || !strings.Contains(stderr, "giving up") {
		t.Errorf("unreachable gateway: exit %d, want 1:\n%s", code, stderr)
	}
}
