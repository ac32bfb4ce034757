package gateway

import (
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/test/e2e/harness"
)

// Metadata follows the allowlist: a family it drops leaves no help text
// behind; a histogram's family is kept through its _bucket series, a
// counter's through _total. Without an allowlist or in shadow mode all is
// kept.
func TestKeptMetadata(t *testing.T) {
	al, err := allowlist.Parse([]byte("matches:\n- '{__name__=~\"http_request_duration_seconds_bucket|up|requests_total\"}'\n"), "allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	md := func() []batch.Metadata {
		return []batch.Metadata{
			{Family: "http_request_duration_seconds", Type: 3, Help: "latency"},
			{Family: "secret_family", Type: 2, Help: "must not leave"},
			{Family: "up", Type: 2},
			{Family: "requests", Type: 1, Help: "requests"},
			{Family: "requests_total", Type: 1},
		}
	}
	got := keptMetadata(md(), al, false)
	want := []string{"http_request_duration_seconds", "up", "requests", "requests_total"}
	if len(got) != len(want) {
		t.Fatalf("kept %+v", got)
	}
	for i := range want {
		if got[i].Family != want[i] {
			t.Fatalf("kept %+v, want %v", got, want)
		}
	}
	if n := len(keptMetadata(md(), nil, false)); n != 5 {
		t.Fatalf("no allowlist: kept %d", n)
	}
	if n := len(keptMetadata(md(), al, true)); n != 5 {
		t.Fatalf("shadow mode: kept %d", n)
	}
}

// Prometheus' remote write 1.0 sends metadata in requests of their own,
// and exemplars in series without samples: both are forwarded.
func TestMetadataOnlyAndExemplarOnlyRequests(t *testing.T) {
	f := newFixture(t, nil)
	wr := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{MetricFamilyName: "cluster_version", Type: prompb.MetricMetadata_GAUGE, Help: "the version"},
		{MetricFamilyName: "secret_family", Type: prompb.MetricMetadata_GAUGE, Help: "must not leave"},
	}}
	raw, _ := wr.Marshal()
	status, body, _ := f.postRaw(t, "/api/v1/receive", harness.CompositeToken("dev", "c1"), "application/x-protobuf", raw)
	if status != http.StatusNoContent || len(f.fwd.reqs) != 1 {
		t.Fatalf("metadata only: %d %s, %d forwarded", status, body, len(f.fwd.reqs))
	}
	if md := f.fwd.reqs[0].Metadata; len(md) != 1 || md[0].MetricFamilyName != "cluster_version" || md[0].Help != "the version" {
		t.Fatalf("metadata forwarded: %+v", md)
	}

	s := ts(1, f.now.UnixMilli(), "__name__", "cluster_version")
	s.Samples = nil
	s.Exemplars = []prompb.Exemplar{
		{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 0.5, Timestamp: f.now.UnixMilli()},
		{Labels: []prompb.Label{{Name: "trace_id", Value: "old"}}, Value: 1, Timestamp: f.now.Add(-24 * 3600e9).UnixMilli()},
	}
	raw, _ = (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}).Marshal()
	status, body, _ = f.postRaw(t, "/api/v1/receive", harness.CompositeToken("dev", "c1"), "application/x-protobuf", raw)
	got := f.fwd.series()
	if status != http.StatusNoContent || len(got) != 1 || got[0] != "__name__=cluster_version,_id=c1 exemplar 0.5" {
		t.Fatalf("exemplar only: %d %s, forwarded %q", status, body, got)
	}
}
