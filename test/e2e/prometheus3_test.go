package e2e

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/test/e2e/harness"
)

// prometheus3AllowlistYAML is the e2e allowlist plus the native histogram
// a Prometheus 3 exposes about its own HTTP API, so that what happens to
// it is the gateway's doing, not the allowlist's. Prometheus scraping with
// scrape_native_histograms keeps only the native form (no _bucket, _sum,
// _count series), so a native histogram that is not forwarded leaves no
// trace of that name downstream.
const prometheus3AllowlistYAML = allowlistYAML + `# owners: (@telegate/e2e)
# Prometheus 3's own request latency, a native histogram when scraped with
# scrape_native_histograms (issue 14).
- '{__name__=~"prometheus_http_request_duration_seconds(_bucket|_sum|_count)?"}'
`

const nativeHistogram = "prometheus_http_request_duration_seconds"

// rwExchange is one remote write request a Prometheus sent through
// rwRecorder and the gateway's answer to it.
type rwExchange struct {
	proto      string // Content-Type's proto parameter ("" for 1.0 without it)
	version    string // X-Prometheus-Remote-Write-Version
	status     int
	dropped    string // X-Telegate-Dropped-Samples
	samplesHdr string // X-Prometheus-Remote-Write-Samples-Written
	histsHdr   string // X-Prometheus-Remote-Write-Histograms-Written
}

// rwRecorder is a reverse proxy in front of the gateway that records each
// remote write exchange (the sending Prometheus does not show the answers'
// headers anywhere).
type rwRecorder struct {
	url string
	mu  sync.Mutex
	log []rwExchange
}

func newRWRecorder(t *testing.T, gatewayURL string) *rwRecorder {
	t.Helper()
	target, err := url.Parse(gatewayURL)
	must(t, err)
	r := &rwRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		_, params, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		r.mu.Lock()
		r.log = append(r.log, rwExchange{
			proto:      params["proto"],
			version:    req.Header.Get("X-Prometheus-Remote-Write-Version"),
			status:     resp.StatusCode,
			dropped:    resp.Header.Get("X-Telegate-Dropped-Samples"),
			samplesHdr: resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"),
			histsHdr:   resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"),
		})
		r.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *rwRecorder) exchanges() []rwExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rwExchange(nil), r.log...)
}

// waitFor polls cond every 200ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startPrometheus3Path starts a receiving Prometheus 3 (downstream), the
// gateway forwarding to it with the allowlist above, and a recorder in
// front of the gateway.
func startPrometheus3Path(t *testing.T) (down *harness.Prometheus, gw *gatewayProc, rec *rwRecorder) {
	t.Helper()
	bin := harness.Prometheus3Binary(t)
	down = harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream3", Binary: bin, EnableRemoteWriteReceiver: true})
	gw = startBudgetGateway(t, budgetGatewayOpts{
		downstream:    down.RemoteWriteURL(),
		shippedLimits: true, // a Prometheus 3 batch of native histograms is larger than the small test caps
		limits:        "  upload_interval: 4m30s",
		files:         map[string]string{"allowlist.yaml": prometheus3AllowlistYAML},
	})
	return down, gw, newRWRecorder(t, gw.url)
}

// startPrometheus3Sender starts a stock Prometheus 3 scraping itself with
// native histograms on and remote writing msg (harness.RemoteWrite1 or
// RemoteWrite2) with native histograms through rec as cluster id.
func startPrometheus3Sender(t *testing.T, rec *rwRecorder, msg, id string) *harness.Prometheus {
	t.Helper()
	return harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:                   "sender3",
		Binary:                 harness.Prometheus3Binary(t),
		SelfScrapeJob:          "sender",
		ScrapeNativeHistograms: true,
		RemoteWrite: []harness.RemoteWriteTarget{{
			URL:                  rec.url + "/api/v1/receive",
			BearerToken:          harness.CompositeToken("fleet-token", id),
			ProtobufMessage:      msg,
			SendNativeHistograms: true,
		}},
	})
}

// assertOnlyAllowlisted checks the downstream holds exactly the
// allowlisted series of the sender (prometheus_build_info, its up and its
// native histogram, still native: no classic series made of it), all
// stamped with _id, none with instance.
func assertOnlyAllowlisted(t *testing.T, down *harness.Prometheus, id string) {
	t.Helper()
	v := down.QueryEventually(t, `prometheus_build_info`, harness.NonEmpty, 60*time.Second)
	if got := string(v[0].Metric["_id"]); got != id {
		t.Fatalf("prometheus_build_info _id = %q, want %q", got, id)
	}
	if !strings.HasPrefix(string(v[0].Metric["version"]), "3.") {
		t.Fatalf("sender is not a Prometheus 3: %v", v[0].Metric)
	}
	down.QueryEventually(t, fmt.Sprintf(`up{job="sender",_id=%q}`, id), harness.Len(1), 30*time.Second)
	for _, s := range down.QueryEventually(t, nativeHistogram, harness.NonEmpty, 30*time.Second) {
		if s.Histogram == nil {
			t.Fatalf("%s arrived downstream, but not as a native histogram: %v", nativeHistogram, s)
		}
	}
	if got := names(down.Query(t, `count by (__name__) ({__name__=~".+"})`)); strings.Join(got, ",") != "prometheus_build_info,"+nativeHistogram+",up" {
		t.Fatalf("metric names downstream: %v (want only the allowlisted ones)", got)
	}
	if v := down.Query(t, fmt.Sprintf(`{__name__=~".+",_id!=%q}`, id)); len(v) != 0 {
		t.Fatalf("series without the right _id: %v", v)
	}
	if v := down.Query(t, `{__name__=~".+",instance!=""}`); len(v) != 0 {
		t.Fatalf("series with instance: %v", v)
	}
}

// probeRemoteWrite2 sends a tiny remote write 2.0 request (one sample of a
// series outside the allowlist, so nothing is stored) and returns the
// gateway's status.
func probeRemoteWrite2(t *testing.T, gwURL, token string) (int, http.Header) {
	t.Helper()
	req := writev2.Request{
		Symbols: []string{"", "__name__", "telegate_e2e_rw2_probe", "job", "probe"},
		Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{1, 2, 3, 4},
			Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		}},
	}
	pb, err := req.Marshal()
	must(t, err)
	hreq, err := http.NewRequest(http.MethodPost, gwURL+"/api/v1/receive", bytes.NewReader(snappy.Encode(nil, pb)))
	must(t, err)
	hreq.Header.Set("Content-Type", "application/x-protobuf;proto="+harness.RemoteWrite2)
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	hreq.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hreq)
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestPrometheus3RemoteWrite2: a stock Prometheus 3 sends remote write 2.0
// (with native histograms) through the gateway into a receiving
// Prometheus 3; the allowlisted series, floats and native histogram,
// arrive stamped, nothing else, and the gateway's answers carry the 2.0
// written-counts Prometheus needs (without them it drops the data).
// Skipped while the gateway answers 415 to 2.0; it turns on by itself
// when 2.0 receive lands.
func TestPrometheus3RemoteWrite2(t *testing.T) {
	down, gw, rec := startPrometheus3Path(t)
	const id = "cluster-p3-rw2"
	status, h := probeRemoteWrite2(t, gw.url, harness.CompositeToken("fleet-token", id))
	if status == http.StatusUnsupportedMediaType {
		t.Skip("remote write 2.0 is not accepted yet (issue 14)")
	}
	if status/100 != 2 {
		t.Fatalf("2.0 probe: status %d, want 2xx or 415", status)
	}
	if got := h.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "0" && got != "" {
		t.Fatalf("2.0 probe of a series outside the allowlist: Samples-Written = %q, want 0", got)
	}

	startPrometheus3Sender(t, rec, harness.RemoteWrite2, id)
	assertOnlyAllowlisted(t, down, id)

	var written, hists int
	for _, x := range rec.exchanges() {
		if x.proto != harness.RemoteWrite2 || !strings.HasPrefix(x.version, "2.") {
			t.Fatalf("sender configured for 2.0 sent proto=%q version=%q", x.proto, x.version)
		}
		if x.status/100 != 2 {
			t.Fatalf("gateway answered %d to a 2.0 request (X-Telegate-Dropped-Samples %q)", x.status, x.dropped)
		}
		n, _ := strconv.Atoi(x.samplesHdr)
		written += n
		n, _ = strconv.Atoi(x.histsHdr)
		hists += n
		if droppedBy(x.dropped, "unsupported") > 0 {
			t.Fatalf("gateway dropped samples as unsupported: %q", x.dropped)
		}
	}
	if written == 0 || hists == 0 {
		t.Fatalf("the answers to the 2.0 requests reported %d samples and %d histograms written, want both > 0", written, hists)
	}
	t.Logf("%d exchanges; written per the 2.0 headers: %d samples, %d histograms", len(rec.exchanges()), written, hists)
}
