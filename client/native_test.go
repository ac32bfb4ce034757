package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
)

// nativeFamilies are native histograms as Prometheus' /federate exposes
// them (float histograms, a family per histogram kind) and as
// client_golang does (integer deltas, classic buckets beside).
func nativeFamilies(ts int64) []*dto.MetricFamily {
	span := func(off int32, n uint32) *dto.BucketSpan {
		return &dto.BucketSpan{Offset: proto.Int32(off), Length: proto.Uint32(n)}
	}
	return []*dto.MetricFamily{
		{Name: proto.String("req_seconds"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
			Label: lp("job", "api", "instance", "i1"), TimestampMs: proto.Int64(ts),
			Histogram: &dto.Histogram{
				SampleCountFloat: proto.Float64(6), SampleSum: proto.Float64(1.25), Schema: proto.Int32(3),
				ZeroThreshold: proto.Float64(2.938735877055719e-39), ZeroCountFloat: proto.Float64(1),
				PositiveSpan: []*dto.BucketSpan{span(-3, 2), span(1, 1)}, PositiveCount: []float64{1, 2, 1},
				NegativeSpan: []*dto.BucketSpan{span(0, 1)}, NegativeCount: []float64{1},
			},
		}}},
		{Name: proto.String("queue_depth"), Type: dto.MetricType_GAUGE_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
			Label: lp("job", "api"), TimestampMs: proto.Int64(ts),
			Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(3), SampleSum: proto.Float64(9), Schema: proto.Int32(0),
				PositiveSpan: []*dto.BucketSpan{span(2, 2)}, PositiveDelta: []int64{1, 1},
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(4), CumulativeCount: proto.Uint64(1)}},
			},
		}}},
	}
}

// A native histogram federated in the protobuf format keeps every native
// field through Transform, WithLabels and EncodePayload, and the gateway's
// decoder makes it a valid native histogram sample.
func TestNativeHistogramSurvivesFederateTransformEncode(t *testing.T) {
	now := time.Unix(1700000000, 0)
	in := nativeFamilies(now.UnixMilli())
	prom := newFakeProm(t, in...)
	f := &Federator{Client: http.DefaultClient, URL: prom.URL + "/federate", Limit: 1 << 20}
	fams, _, err := f.Federate(context.Background(), []string{"{job=\"api\"}"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transformer{Rename: map[string]string{"req_seconds": "cluster:req_seconds"}, Elide: []string{"instance"}, Anonymize: []string{"job"}, Salt: "s"}
	out, st := tr.Transform(fams, now)
	if len(out) != 2 || st.In != st.Out || len(st.Filtered) != 0 {
		t.Fatalf("transform: %d families, stats %+v", len(out), st)
	}
	// One native sample each; the gauge histogram's classic buckets too.
	if st.Out != 1+(1+2+2) {
		t.Fatalf("transform counts %d samples", st.Out)
	}
	out = WithLabels(out, map[string]string{"_id": "c"})
	body, err := EncodePayload(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayload(body)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range got {
		byName[mf.GetName()] = mf
	}
	for name, want := range map[string]*dto.MetricFamily{"cluster:req_seconds": in[0], "queue_depth": in[1]} {
		mf := byName[name]
		if mf == nil || mf.GetType() != want.GetType() || len(mf.Metric) != 1 {
			t.Fatalf("%s: %v", name, mf)
		}
		if !proto.Equal(mf.Metric[0].Histogram, want.Metric[0].Histogram) {
			t.Fatalf("%s: histogram\n%v\nwant\n%v", name, mf.Metric[0].Histogram, want.Metric[0].Histogram)
		}
	}

	// The gateway's side of the same body.
	raw, err := io.ReadAll(snappy.NewReader(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	b := &batch.Batch{}
	ds, err := decode.UnmarshalMetricFamilies(raw, b, now.UnixMilli(), false, decode.Limits{})
	if err != nil || ds.Histograms != 2 {
		t.Fatalf("decode: %+v %v", ds, err)
	}
	for _, s := range b.Series {
		for _, h := range s.Histograms {
			var ph prompb.Histogram
			if err := ph.Unmarshal(h.Raw); err != nil {
				t.Fatal(err)
			}
			if ph.IsFloatHistogram() {
				err = ph.ToFloatHistogram().Validate()
			} else {
				err = ph.ToIntHistogram().Validate()
			}
			if err != nil || h.Timestamp != now.UnixMilli() {
				t.Fatalf("%s: %+v: %v", s.Name(), ph, err)
			}
		}
	}
}
