package gateway

import (
	"testing"

	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/relabel"
)

// The decoders get the request caps, and a labels-per-series cap that
// leaves room for the labels the pipeline strips and the cluster-ID label.
func TestDecodeLimits(t *testing.T) {
	p := relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod"}, MaxLabels: 30})
	g := New(Options{Pipeline: p, Limits: Limits{MaxSeriesPerRequest: 100, MaxLabelsPerSeries: 30}})
	want := decode.Limits{MaxSeries: 100, MaxLabelsPerSeries: 30 + 2 + 1, MaxBatchBytes: 12345}
	if got := g.decodeLimits(12345, nil); got.MaxSeries != want.MaxSeries || got.MaxLabelsPerSeries != want.MaxLabelsPerSeries || got.MaxBatchBytes != want.MaxBatchBytes || got.Reserve != nil {
		t.Fatalf("decodeLimits = %+v, want %+v", got, want)
	}
	g = New(Options{Pipeline: p, Limits: Limits{MaxSeriesPerRequest: 100}})
	if got := g.decodeLimits(1, nil); got.MaxLabelsPerSeries != 0 {
		t.Fatalf("max_labels_per_series 0 must leave the decoder's cap off: %+v", got)
	}
}
