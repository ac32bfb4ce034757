package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// TestForwardRemoteWrite2IntoPrometheus3: a stock Prometheus 3 scrapes its
// own native histograms and remote writes them (1.0) through the gateway,
// which forwards them as remote write 2.0 (forward.protobuf_message) into
// a second stock Prometheus 3's receiver. The 90th percentile over a
// minute the receiver answers equals the sender's own; the series are
// stamped with _id, nothing outside the allowlist arrived, and the
// receiver's written headers counted samples and histograms.
func TestForwardRemoteWrite2IntoPrometheus3(t *testing.T) {
	recv := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name: "receiver-v2", Binary: harness.Prometheus3Binary(t), EnableRemoteWriteReceiver: true,
		ExtraArgs: []string{"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"},
	})
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream:    recv.RemoteWriteURL(),
		shippedLimits: true,
		limits:        "  upload_interval: 4m30s",
		files:         map[string]string{"allowlist.yaml": prometheus3AllowlistYAML},
		forward:       "  protobuf_message: io.prometheus.write.v2.Request",
	})
	const id = "cluster-fwd-v2"
	s := nativeSender(t, "sender-fwd-v2", gw.url, harness.RemoteWrite1, id)
	at := time.Now().Add(40 * time.Second).Truncate(time.Second)
	time.Sleep(time.Until(at.Add(2 * time.Second)))
	v := assertSameAnswer(t, s.PromAPI, recv.PromAPI, quantileQuery(""), quantileQuery(fmt.Sprintf("{_id=%q}", id)), at, 60*time.Second)
	t.Logf("histogram_quantile(0.9, ...) = %g on the sender and in the 2.0 receiver", v)
	assertStamped(t, recv.PromAPI, id)
	// The receiver's own written headers said what it took (counted only
	// for 2.0 answers). Remote-written metadata is not queryable in
	// Prometheus (/api/v1/metadata lists scraped targets' only).
	m := httpGet(t, gw.internal+"/metrics")
	for _, kind := range []string{"samples", "histograms"} {
		if !regexp.MustCompile(`(?m)^telegate_forward_written_total\{type="` + kind + `"\} [1-9]`).MatchString(m) {
			t.Fatalf("no %s written by the 2.0 receiver:\n%s", kind, grepLines(m, "telegate_forward_"))
		}
	}
	if !strings.Contains(m, "telegate_forward_unsupported_total 0") {
		t.Fatalf("the 2.0 receiver counted as unsupported:\n%s", grepLines(m, "telegate_forward_"))
	}
}

// TestForwardRemoteWrite2UnsupportedDownstream: forwarding remote write 2.0
// to a receiver that takes only 1.0 (a stock Prometheus 3 told to accept
// only prometheus.WriteRequest: it answers 415) is an error the sender
// sees (503, retried), counted in telegate_forward_unsupported_total and
// logged naming protobuf_message; nothing is spooled as if the receiver
// were only down, and nothing arrives.
func TestForwardRemoteWrite2UnsupportedDownstream(t *testing.T) {
	recv := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name: "receiver-v1-only", Binary: harness.Prometheus3Binary(t), EnableRemoteWriteReceiver: true,
		ExtraArgs: []string{"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest"},
	})
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream: recv.RemoteWriteURL(),
		limits:     "  upload_interval: 0s",
		forward:    "  protobuf_message: io.prometheus.write.v2.Request",
	})
	body := snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), 0, 3)))
	code, hdr, msg := post(t, gw.url+"/api/v1/receive", rwHeaders(harness.CompositeToken("fleet-token", "cluster-a")), body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("forward refused for its message: got %d %s (headers %v), want 503", code, msg, hdr)
	}
	m := httpGet(t, gw.internal+"/metrics")
	if !strings.Contains(m, "telegate_forward_unsupported_total 1") {
		t.Fatalf("unsupported not counted:\n%s", grepLines(m, "telegate_forward_"))
	}
	if strings.Contains(m, "telegate_spool_objects 1") {
		t.Fatalf("the refused body was spooled:\n%s", grepLines(m, "telegate_spool_"))
	}
	if !strings.Contains(gw.Stderr(), "protobuf_message") {
		t.Fatalf("the gateway log does not name protobuf_message:\n%s", gw.Stderr())
	}
	if v := recv.Query(t, `count(cluster_version)`); len(v) != 0 {
		t.Fatalf("data arrived at the 1.0-only receiver: %v", v)
	}
}

// TestForwardRemoteWrite2IntoRemoteWrite1Receiver: the gateway forwards 2.0
// into Debian's Prometheus 2.42, which only speaks 1.0 (it decodes the
// body as a 1.0 WriteRequest, finds nothing it knows and answers 204
// without the 2.0 Written headers). The gateway refuses the client's
// request (503 downstream_misconfigured, not a 2xx), counts
// telegate_forward_unsupported_total, logs protobuf_message, and the
// receiver stores nothing. Run without and with a spool: with one, the
// refusal is not recoverable, so nothing is spooled and the client gets
// the same 503.
func TestForwardRemoteWrite2IntoRemoteWrite1Receiver(t *testing.T) {
	t.Run("no-spool", func(t *testing.T) { forwardV2Unsupported(t, false) })
	t.Run("spool", func(t *testing.T) { forwardV2Unsupported(t, true) })
}

func forwardV2Unsupported(t *testing.T, spool bool) {
	forwardYAML := "  protobuf_message: " + harness.RemoteWrite2
	if spool {
		forwardYAML += "\n" + spoolConfig("64MiB")
	}
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "receiver242", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), forward: forwardYAML})
	ms := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: versionSeries(ms, 1, 3)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, hdr, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "cluster-fwd2-old"), req)
	must(t, err)
	if status/100 == 2 {
		t.Fatalf("gateway answered %d (%s) though the downstream wrote nothing", status, body)
	}
	// A downstream that does not speak the configured message is the
	// gateway's misconfiguration: the client may retry later (toHTTP).
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "downstream_misconfigured") || !strings.Contains(body, "remote write 2.0") {
		t.Fatalf("gateway answered %d %s, want 503 downstream_misconfigured naming remote write 2.0", status, body)
	}
	t.Logf("gateway answered %d, Retry-After %q: %s", status, hdr.Get("Retry-After"), strings.TrimSpace(body))
	if n := gatewayMetric(t, gw, "telegate_forward_unsupported_total"); n <= 0 {
		t.Fatalf("telegate_forward_unsupported_total = %v, want > 0", n)
	}
	if logs := gw.Stdout() + gw.Stderr(); !strings.Contains(logs, "protobuf_message") {
		t.Fatalf("gateway log does not name protobuf_message:\n%s", logs)
	}
	if v := down.Query(t, `{__name__=~".+"}`); len(v) != 0 {
		t.Fatalf("the 1.0-only receiver stored series: %v", v)
	}
	if v := down.Query(t, `cluster_version`); len(v) != 0 {
		t.Fatalf("cluster_version arrived: %v", v)
	}
	// With a spool the refusal is not spooled either: the downstream
	// would refuse it again (forward.Durable spools only "not now").
	if spool {
		if n := gatewayMetric(t, gw, "telegate_spool_objects"); n != 0 {
			t.Fatalf("telegate_spool_objects = %v: an unsupported message was spooled", n)
		}
		t.Log("spool configured: nothing spooled, the client got the refusal")
	}
}

// grepLines returns the lines of s containing substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
