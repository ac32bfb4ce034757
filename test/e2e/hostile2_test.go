package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/test/e2e/harness"
)

// TestHostileRemoteWrite2E2E sends hostile remote write 2.0 requests to the
// real binary: broken references, a symbols table that breaks the spec,
// unsorted labels, native histograms with absurd bucket counts or
// inconsistent spans, a decompression bomb and an unknown message. Each
// gets its 4xx with a reason (and a 2.0 one the written headers at 0); none of it
// reaches storage, and a valid 2.0 request afterwards does.
func TestHostileRemoteWrite2E2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: "  upload_interval: 0s\n  failed_auth: {per_minute: 0}"})
	rw := gw.url + "/api/v1/receive"
	headers := func(ct string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + harness.CompositeToken("fleet-token", "cluster-a"), "Content-Type": ct, "Content-Encoding": "snappy"}
	}
	ms := time.Now().UnixMilli()
	// req builds a 2.0 request of one series cluster_untyped{case=name}
	// that mutate breaks.
	req := func(name string, mutate func(r *writev2.Request)) []byte {
		st := writev2.NewSymbolTable()
		ts := writev2.TimeSeries{
			LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("cluster_untyped"), st.Symbolize("case"), st.Symbolize(name)},
			Samples:    []writev2.Sample{{Value: 1, Timestamp: ms}},
		}
		r := &writev2.Request{Timeseries: []writev2.TimeSeries{ts}}
		r.Symbols = st.Symbols()
		if mutate != nil {
			mutate(r)
		}
		b, err := r.Marshal()
		must(t, err)
		return snappy.Encode(nil, b)
	}
	hist := func(h writev2.Histogram) func(r *writev2.Request) {
		return func(r *writev2.Request) {
			h.Timestamp = ms
			r.Timeseries[0].Samples = nil
			r.Timeseries[0].Histograms = []writev2.Histogram{h}
		}
	}
	count := func(n uint64) *writev2.Histogram_CountInt { return &writev2.Histogram_CountInt{CountInt: n} }
	manyDeltas := make([]int64, 20000) // 20000 buckets of count 0 but for the first
	manyDeltas[0] = 1
	v2 := decode.RemoteWriteV2ContentType
	for _, tc := range []struct {
		name   string
		ct     string
		body   []byte
		want   int
		reason string
	}{
		{"label reference outside the symbols table", v2, req("ref", func(r *writev2.Request) { r.Timeseries[0].LabelsRefs[3] = 1 << 30 }), 400, "malformed"},
		{"odd number of label references", v2, req("odd", func(r *writev2.Request) { r.Timeseries[0].LabelsRefs = r.Timeseries[0].LabelsRefs[:3] }), 400, "malformed"},
		{"symbols[0] not empty", v2, req("sym0", func(r *writev2.Request) { r.Symbols[0] = "x" }), 400, "malformed"},
		{"labels not sorted", v2, req("unsorted", func(r *writev2.Request) {
			l := r.Timeseries[0].LabelsRefs
			l[0], l[1], l[2], l[3] = l[2], l[3], l[0], l[1]
		}), 400, "malformed"},
		{"spans declaring 2^31 buckets", v2, req("spans", hist(writev2.Histogram{Count: count(1), Schema: 0,
			PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 1 << 31}}, PositiveDeltas: []int64{1}})), 400, "invalid_series"},
		{"20000 buckets, spans for one", v2, req("buckets", hist(writev2.Histogram{Count: count(1), Schema: 0,
			PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: manyDeltas})), 400, "invalid_series"},
		{"negative bucket count", v2, req("negative", hist(writev2.Histogram{Count: count(1), Schema: 0,
			PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, -3}})), 400, "invalid_series"},
		{"schema 52", v2, req("schema", hist(writev2.Histogram{Count: count(1), Schema: 52,
			PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{1}})), 400, "invalid_series"},
		{"decompression bomb", v2, snappy.Encode(nil, make([]byte, 1<<20)), 413, "too_large"},
		{"unknown message", "application/x-protobuf;proto=io.prometheus.write.v3.Request", req("v3", nil), 415, "unsupported_media_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(t, rw, headers(tc.ct), tc.body)
			if code != tc.want {
				t.Fatalf("got %d %s, want %d", code, body, tc.want)
			}
			var eb struct{ Error, Reason string }
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Reason != tc.reason {
				t.Fatalf("body %q (%v), want reason %q", body, err, tc.reason)
			}
			if tc.ct != v2 {
				return // not a 2.0 request: no written headers
			}
			for _, k := range []string{"Samples", "Histograms", "Exemplars"} {
				if v := hdr.Get("X-Prometheus-Remote-Write-" + k + "-Written"); v != "0" {
					t.Fatalf("%s written %q, want 0", k, v)
				}
			}
		})
	}
	code, hdr, body := post(t, rw, headers(v2), req("valid", nil))
	if code != 204 || hdr.Get("X-Prometheus-Remote-Write-Samples-Written") != "1" {
		t.Fatalf("valid 2.0 request: %d %s %v", code, body, hdr)
	}
	down.QueryEventually(t, `cluster_untyped{_id="cluster-a",case="valid"}`, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 1 }, 30*time.Second)
	if v := down.Query(t, `count by (case) (cluster_untyped{case!="valid"})`); len(v) != 0 {
		t.Fatalf("hostile requests stored: %v", v)
	}
}
