package gateway

import (
	"testing"

	"github.com/telegate/telegate/batch"
)

// Metadata follows its family: what the allowlist or a budget dropped
// leaves no help text behind, a histogram's family keeps its metadata
// through its _bucket series.
func TestKeptMetadata(t *testing.T) {
	var b batch.Batch
	for _, name := range []string{"http_request_duration_seconds_bucket", "up", "requests_total"} {
		b.PushLabel("__name__", name)
		b.PushSample(1, 1)
		b.EndSeries()
	}
	md := []batch.Metadata{
		{Family: "http_request_duration_seconds", Type: 3, Help: "latency"},
		{Family: "secret_family", Type: 2, Help: "must not leave"},
		{Family: "up", Type: 2},
		{Family: "requests", Type: 1, Help: "requests"},
		{Family: "requests_total", Type: 1},
	}
	got := keptMetadata(md, b.Series)
	want := []string{"http_request_duration_seconds", "up", "requests", "requests_total"}
	if len(got) != len(want) {
		t.Fatalf("kept %+v", got)
	}
	for i := range want {
		if got[i].Family != want[i] {
			t.Fatalf("kept %+v, want %v", got, want)
		}
	}
}
