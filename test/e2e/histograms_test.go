package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/test/e2e/harness"
)

// quantileQuery is the question the issue asks of native histograms: the
// 90th percentile of the sender's own request latency over one minute.
// sel narrows the series (e.g. `{_id="c"}` downstream).
func quantileQuery(sel string) string {
	return fmt.Sprintf(`histogram_quantile(0.9, sum(rate(%s%s[1m])))`, nativeHistogram, sel)
}

// sameFloat compares two PromQL answers computed from the same samples by
// two engines (Prometheus 3.16, Thanos' or telegate's embedded one): equal
// to within rounding.
func sameFloat(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// one returns the value of a one-sample answer, or NaN.
func one(v model.Vector) float64 {
	if len(v) != 1 {
		return math.NaN()
	}
	return float64(v[0].Value)
}

// assertSameAnswer evaluates query on the sender and downQuery on the
// store at the same instant at, until the store's answer equals the
// sender's (what arrived late is still arriving) or timeout passes.
func assertSameAnswer(t *testing.T, sender, store *harness.PromAPI, query, downQuery string, at time.Time, timeout time.Duration) float64 {
	t.Helper()
	want, err := sender.QueryAtErr(context.Background(), query, at)
	must(t, err)
	w := one(want)
	if math.IsNaN(w) {
		t.Fatalf("sender's %s at %s: %v (want one number)", query, at.Format(time.RFC3339), want)
	}
	var got model.Vector
	deadline := time.Now().Add(timeout)
	for {
		got, err = store.QueryAtErr(context.Background(), downQuery, at)
		if err == nil && sameFloat(one(got), w) {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s: store answers %v (err %v), the sender %v", downQuery, at.Format(time.RFC3339), got, err, w)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// nativeSender starts a stock Prometheus 3 scraping its own native
// histograms and remote writing them (msg: 1.0 or 2.0) to url as id.
func nativeSender(t *testing.T, name, url, msg, id string) *harness.Prometheus {
	t.Helper()
	return harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:                   name,
		Binary:                 harness.Prometheus3Binary(t),
		SelfScrapeJob:          "sender",
		ScrapeNativeHistograms: true,
		RemoteWrite: []harness.RemoteWriteTarget{{
			URL:                  url + "/api/v1/receive",
			BearerToken:          harness.CompositeToken("fleet-token", id),
			ProtobufMessage:      msg,
			SendNativeHistograms: true,
		}},
	})
}

// assertStamped checks that every series of id in store carries _id and no
// instance, and that only allowlisted metric names arrived.
func assertStamped(t *testing.T, store *harness.PromAPI, id string) {
	t.Helper()
	got := names(store.Query(t, fmt.Sprintf(`count by (__name__) ({_id=%q})`, id)))
	for _, n := range got {
		switch n {
		case "prometheus_build_info", "up", nativeHistogram:
		default:
			t.Fatalf("metric %q of %s arrived: not on the allowlist (all: %v)", n, id, got)
		}
	}
	if !strings.Contains(strings.Join(got, ","), nativeHistogram) {
		t.Fatalf("no %s of %s arrived (names: %v)", nativeHistogram, id, got)
	}
	if v := store.Query(t, fmt.Sprintf(`{_id=%q,instance!=""}`, id)); len(v) != 0 {
		t.Fatalf("series with instance: %v", v)
	}
}

// TestNativeHistogramsIntoThanos: two stock Prometheus 3 scrape their own
// native histograms and remote write them through the gateway into a
// stock Thanos Receive, one by remote write 1.0, one by 2.0. For each, the
// 90th percentile over a minute that Thanos Query answers equals the
// sender's own answer for the same window; the series are stamped with
// _id, and nothing outside the allowlist arrived.
func TestNativeHistogramsIntoThanos(t *testing.T) {
	recv, q := thanos(t)
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream:    recv.RemoteWriteURL(),
		shippedLimits: true,
		limits:        "  upload_interval: 4m30s",
		files:         map[string]string{"allowlist.yaml": prometheus3AllowlistYAML},
	})
	senders := map[string]*harness.Prometheus{
		"cluster-nh-rw1": nativeSender(t, "sender-rw1", gw.url, harness.RemoteWrite1, "cluster-nh-rw1"),
		"cluster-nh-rw2": nativeSender(t, "sender-rw2", gw.url, harness.RemoteWrite2, "cluster-nh-rw2"),
	}
	// A window the senders' samples fill (1s scrapes), evaluated once it
	// is past.
	at := time.Now().Add(40 * time.Second).Truncate(time.Second)
	time.Sleep(time.Until(at.Add(2 * time.Second)))
	for id, s := range senders {
		v := assertSameAnswer(t, s.PromAPI, q.PromAPI, quantileQuery(""), quantileQuery(fmt.Sprintf("{_id=%q}", id)), at, 60*time.Second)
		t.Logf("%s: histogram_quantile(0.9, ...) = %g on the sender and in Thanos", id, v)
		assertStamped(t, q.PromAPI, id)
	}
}

// TestNativeHistogramsIntoEmbeddedStore: the same through remote write 2.0
// into the gateway's embedded storage, asked over its query API.
func TestNativeHistogramsIntoEmbeddedStore(t *testing.T) {
	gw := startEmbeddedGatewayWith(t, prometheus3AllowlistYAML, "", "")
	const id = "cluster-nh-store"
	s := nativeSender(t, "sender-store", gw.url, harness.RemoteWrite2, id)
	at := time.Now().Add(40 * time.Second).Truncate(time.Second)
	time.Sleep(time.Until(at.Add(2 * time.Second)))
	v := assertSameAnswer(t, s.PromAPI, gw.query, quantileQuery(""), quantileQuery(fmt.Sprintf("{_id=%q}", id)), at, 60*time.Second)
	t.Logf("histogram_quantile(0.9, ...) = %g on the sender and in the embedded store", v)
	assertStamped(t, gw.query, id)
}

// TestClientUploadsNativeHistograms: telegate client federates a Prometheus
// 3's native histograms (the protobuf federation format carries them) and
// uploads them; with client timestamps the stored histogram is the
// sender's sample at the same instant.
func TestClientUploadsNativeHistograms(t *testing.T) {
	gw := startEmbeddedGatewayWith(t, prometheus3AllowlistYAML, "relabel:\n  upload_timestamps: client\n", "")
	sender := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:                   "cluster3",
		Binary:                 harness.Prometheus3Binary(t),
		SelfScrapeJob:          "cluster",
		ScrapeNativeHistograms: true,
	})
	const id = "cluster-nh-client"
	sel := `{handler="/metrics"}`
	sender.QueryEventually(t, "histogram_count("+nativeHistogram+sel+")", harness.NonEmpty, 30*time.Second)
	startTelegateClient(t,
		"--from="+sender.URL(),
		"--to="+gw.url,
		"--id="+id,
		"--to-token=fleet-token",
		`--match={__name__="`+nativeHistogram+`"}`,
		`--match={__name__="up"}`,
	)
	downSel := fmt.Sprintf(`{handler="/metrics",_id=%q}`, id)
	ts := gw.query.QueryEventually(t, "timestamp("+nativeHistogram+downSel+")", harness.Len(1), 60*time.Second)
	at := time.UnixMilli(int64(float64(ts[0].Value) * 1000))
	for _, f := range []string{"histogram_count(%s%s)", "histogram_sum(%s%s)", "histogram_quantile(0.9, %s%s)"} {
		v := assertSameAnswer(t, sender.PromAPI, gw.query, fmt.Sprintf(f, nativeHistogram, sel), fmt.Sprintf(f, nativeHistogram, downSel), at, 10*time.Second)
		t.Logf("%s = %g on the sender and after the upload", fmt.Sprintf(f, nativeHistogram, sel), v)
	}
	assertStamped(t, gw.query, id)
}
