package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"

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
