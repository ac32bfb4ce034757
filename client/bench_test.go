package client

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// benchFamilies is a federate response the size of ten copies of a
// Prometheus' own metrics: 120 families, 3840 series (gauges and
// histograms), four labels each.
func benchFamilies(now time.Time) []*dto.MetricFamily {
	var fams []*dto.MetricFamily
	ts := now.UnixMilli()
	for f := 0; f < 120; f++ {
		fam := &dto.MetricFamily{Name: proto.String(fmt.Sprintf("prometheus_metric_%d_total", f)), Help: proto.String("help"), Type: dto.MetricType_GAUGE.Enum()}
		if f%6 == 0 {
			fam.Type = dto.MetricType_HISTOGRAM.Enum()
		}
		for m := 0; m < 32; m++ {
			met := &dto.Metric{TimestampMs: proto.Int64(ts), Label: []*dto.LabelPair{
				{Name: proto.String("instance"), Value: proto.String("127.0.0.1:9090")},
				{Name: proto.String("job"), Value: proto.String("prometheus")},
				{Name: proto.String("copy"), Value: proto.String(fmt.Sprint(m % 10))},
				{Name: proto.String("handler"), Value: proto.String(fmt.Sprintf("/api/v1/h%d", m))},
			}}
			if fam.GetType() == dto.MetricType_HISTOGRAM {
				h := &dto.Histogram{SampleCount: proto.Uint64(10), SampleSum: proto.Float64(1.5)}
				for b := 0; b < 8; b++ {
					h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(float64(b)), CumulativeCount: proto.Uint64(uint64(b))})
				}
				met.Histogram = h
			} else {
				met.Gauge = &dto.Gauge{Value: proto.Float64(float64(m))}
			}
			fam.Metric = append(fam.Metric, met)
		}
		fams = append(fams, fam)
	}
	return fams
}

// BenchmarkCycle is the client's work per upload after the federate
// request: transform, set the /authorize labels, encode.
func BenchmarkCycle(b *testing.B) {
	now := time.Now()
	fams := benchFamilies(now)
	tr := &Transformer{Elide: DefaultElideLabels(), Rename: DefaultRename(), MaxAge: time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		out, _ := tr.Transform(fams, now)
		out = WithLabels(out, map[string]string{"_id": "cluster"})
		if _, err := EncodePayload(out); err != nil {
			b.Fatal(err)
		}
	}
}
