package decode_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/test/load"
)

// promSelf returns testdata/prometheus-self.prom.gz (a Prometheus server's
// own /metrics: 237 families, from prometheus/prometheus
// model/textparse/testdata, Apache 2.0) as MetricFamilies carrying the
// labels federation adds (job, instance), sorted by name.
func promSelf(t *testing.T) []*dto.MetricFamily {
	f, err := os.Open("testdata/prometheus-self.prom.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.MetricFamily
	for _, mf := range byName {
		for _, m := range mf.Metric {
			m.Label = append(m.Label,
				&dto.LabelPair{Name: proto.String("instance"), Value: proto.String("10.128.2.17:9091")},
				&dto.LabelPair{Name: proto.String("job"), Value: proto.String("prometheus-k8s")},
				&dto.LabelPair{Name: proto.String("namespace"), Value: proto.String("openshift-monitoring")})
			m.TimestampMs = proto.Int64(1700000000000)
		}
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// asWriteRequest turns families into the remote write Prometheus would send
// for them: one TimeSeries per text-format series, labels sorted.
func asWriteRequest(t *testing.T, mfs []*dto.MetricFamily) []byte {
	var raw bytes.Buffer
	if err := decode.EncodeMetricFamilies(&raw, mfs); err != nil {
		t.Fatal(err)
	}
	b := &batch.Batch{}
	if _, err := decode.UnmarshalMetricFamilies(raw.Bytes(), b, 1700000000000, false, decode.Limits{}); err != nil {
		t.Fatal(err)
	}
	wr := &prompb.WriteRequest{}
	for _, s := range b.Series {
		ts := prompb.TimeSeries{}
		for _, l := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		slices.SortFunc(ts.Labels, func(a, b prompb.Label) int {
			if a.Name < b.Name {
				return -1
			}
			return 1
		})
		for _, x := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: x.Timestamp, Value: x.Value})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	data, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// histogramUpload is a telemeter upload of classic histograms: families
// metrics each with labels label pairs (realistic OpenShift names and
// values) and buckets buckets with realistic bounds and counts.
func histogramUpload(families, metrics, labels, buckets int) []*dto.MetricFamily {
	names := []string{"namespace", "pod", "container", "instance", "job", "endpoint", "service", "prometheus",
		"verb", "resource", "scope", "component", "group", "version", "subresource", "code", "handler", "le_group", "cluster", "node"}
	values := []string{"openshift-kube-apiserver", "kube-apiserver-ip-10-0-140-93.ec2.internal", "kube-apiserver",
		"10.0.140.93:6443", "apiserver", "https", "kubernetes", "openshift-monitoring/k8s", "LIST", "pods", "cluster",
		"apiserver", "apps", "v1", "status", "200", "/api/v1/query", "default", "prod-eu-1", "ip-10-0-140-93.ec2.internal"}
	var out []*dto.MetricFamily
	for f := range families {
		mf := &dto.MetricFamily{Name: proto.String(fmt.Sprintf("apiserver_request_duration_seconds_%d", f)), Type: dto.MetricType_HISTOGRAM.Enum()}
		for m := range metrics {
			met := &dto.Metric{Histogram: &dto.Histogram{SampleSum: proto.Float64(1234.5678 + float64(m)), SampleCount: proto.Uint64(uint64(100000 + m))}, TimestampMs: proto.Int64(1700000000000)}
			for l := range labels {
				v := values[l%len(values)]
				if l == 1 {
					v = fmt.Sprintf("%s-%d", v, m)
				}
				met.Label = append(met.Label, &dto.LabelPair{Name: proto.String(names[l%len(names)]), Value: proto.String(v)})
			}
			ub := 0.005
			for i := range buckets {
				met.Histogram.Bucket = append(met.Histogram.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(uint64(1000 * (i + 1)))})
				ub *= 1.6
			}
			mf.Metric = append(mf.Metric, met)
		}
		out = append(out, mf)
	}
	return out
}

// TestHonestAmplification measures the batch bytes the decoders charge per
// decoded byte on honest payloads (the figures documented at the budget
// multiples) and checks they stay under the multiple alone, without the
// budget's constant.
func TestHonestAmplification(t *testing.T) {
	rwPerByte := decode.RemoteWriteBudget(1) - decode.RemoteWriteBudget(0)
	upPerByte := decode.UploadBudget(1) - decode.UploadBudget(0)
	check := func(name string, data []byte, upload bool) {
		t.Helper()
		var st decode.Stats
		var err error
		per := rwPerByte
		if upload {
			per = upPerByte
			st, err = decode.UnmarshalMetricFamilies(data, &batch.Batch{}, 1700000000000, false, decode.Limits{})
		} else {
			st, err = decode.UnmarshalWriteRequest(data, &batch.Batch{}, decode.Limits{})
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ratio := float64(st.BatchBytes) / float64(len(data))
		t.Logf("%-48s %8d decoded bytes %6d series %9d batch bytes: %5.2f per decoded byte", name, len(data), st.Series, st.BatchBytes, ratio)
		if st.BatchBytes > per*len(data) {
			t.Errorf("%s: honest payload charges %.2f bytes per decoded byte, over the multiple %d", name, ratio, per)
		}
	}
	upload := func(mfs []*dto.MetricFamily) []byte {
		var raw bytes.Buffer
		if err := decode.EncodeMetricFamilies(&raw, mfs); err != nil {
			t.Fatal(err)
		}
		return raw.Bytes()
	}
	self := promSelf(t)
	check("prometheus self-metrics, remote write", asWriteRequest(t, self), false)
	check("prometheus self-metrics, upload", upload(self), true)
	wr, err := load.DefaultSpec.WriteRequest(1700000000000).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	check("test/load.DefaultSpec, remote write", wr, false)
	check("test/load.DefaultSpec, upload", upload(load.DefaultSpec.Families(1700000000000)), true)
	for _, h := range []struct{ labels, buckets int }{{3, 12}, {5, 12}, {10, 12}, {10, 40}, {20, 12}, {20, 40}} {
		mfs := histogramUpload(5, 50, h.labels, h.buckets)
		check(fmt.Sprintf("histograms %d labels %d buckets, upload", h.labels, h.buckets), upload(mfs), true)
		check(fmt.Sprintf("histograms %d labels %d buckets, remote write", h.labels, h.buckets), asWriteRequest(t, mfs), false)
	}
}
