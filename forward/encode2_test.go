package forward

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
)

// checkV2 decodes data with the upstream gogo writev2.Request, checks that
// re-marshalling it gives data back byte for byte, and that it holds series
// with the metadata wantMD(series) expects.
func checkV2(t *testing.T, data []byte, series []batch.Series, md []batch.Metadata) {
	t.Helper()
	var req writev2.Request
	if err := req.Unmarshal(data); err != nil {
		t.Fatalf("writev2 Unmarshal: %v", err)
	}
	again, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("encoding differs from gogo's Marshal of its decoding:\n got %x\nwant %x", data, again)
	}
	if len(req.Symbols) == 0 || req.Symbols[0] != "" {
		t.Fatalf("symbols %q do not start with the empty string", req.Symbols)
	}
	seen := map[string]bool{}
	for _, s := range req.Symbols {
		if seen[s] {
			t.Fatalf("symbol %q repeated", s)
		}
		seen[s] = true
	}
	sym := func(r uint32) string {
		if int(r) >= len(req.Symbols) {
			t.Fatalf("reference %d outside %d symbols", r, len(req.Symbols))
		}
		return req.Symbols[r]
	}
	labels := func(refs []uint32) []batch.Label {
		if len(refs)%2 != 0 {
			t.Fatalf("odd labels_refs %v", refs)
		}
		var out []batch.Label
		for i := 0; i < len(refs); i += 2 {
			out = append(out, batch.Label{Name: sym(refs[i]), Value: sym(refs[i+1])})
		}
		return out
	}
	if len(req.Timeseries) != len(series) {
		t.Fatalf("%d series, want %d", len(req.Timeseries), len(series))
	}
	var e encoder2
	e.init(md)
	for i, s := range series {
		g := req.Timeseries[i]
		what := fmt.Sprintf("series %d", i)
		if got := labels(g.LabelsRefs); !sameLabels(got, s.Labels) {
			t.Fatalf("%s: labels %v, want %v", what, got, s.Labels)
		}
		if len(g.Samples) != len(s.Samples) || len(g.Histograms) != len(s.Histograms) || len(g.Exemplars) != len(s.Exemplars) {
			t.Fatalf("%s: %d samples %d histograms %d exemplars, want %d %d %d", what, len(g.Samples), len(g.Histograms), len(g.Exemplars),
				len(s.Samples), len(s.Histograms), len(s.Exemplars))
		}
		for j, smp := range s.Samples {
			if g.Samples[j].Timestamp != smp.Timestamp || !sameFloat(g.Samples[j].Value, smp.Value) || g.Samples[j].StartTimestamp != 0 {
				t.Fatalf("%s sample %d: %+v, want %+v", what, j, g.Samples[j], smp)
			}
		}
		for j, h := range s.Histograms {
			var want writev2.Histogram
			if err := want.Unmarshal(h.Raw); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g.Histograms[j], want) || g.Histograms[j].Timestamp != h.Timestamp {
				t.Fatalf("%s histogram %d:\n got %+v\nwant %+v", what, j, g.Histograms[j], want)
			}
		}
		for j, ex := range s.Exemplars {
			ge := g.Exemplars[j]
			if !sameLabels(labels(ge.LabelsRefs), ex.Labels) || ge.Timestamp != ex.Timestamp || !sameFloat(ge.Value, ex.Value) {
				t.Fatalf("%s exemplar %d: %+v, want %+v", what, j, ge, ex)
			}
		}
		m := e.metadataFor(&s)
		if m == nil {
			m = &batch.Metadata{}
		}
		if int32(g.Metadata.Type) != int32(m.Type) || sym(g.Metadata.HelpRef) != m.Help || sym(g.Metadata.UnitRef) != m.Unit {
			t.Fatalf("%s: metadata %+v (help %q unit %q), want %+v", what, g.Metadata, sym(g.Metadata.HelpRef), sym(g.Metadata.UnitRef), *m)
		}
	}
}

// sameLabels compares label lists, nil matching empty.
func sameLabels(a, b []batch.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// namedSeries gives random series names of the metadata's families, some
// with a suffix, some of no family.
func namedSeries(r *rand.Rand, series []batch.Series, md []batch.Metadata) {
	for i := range series {
		name := fmt.Sprintf("other_%d", r.IntN(3))
		if len(md) > 0 && r.IntN(4) != 0 {
			name = md[r.IntN(len(md))].Family + []string{"", "", "_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_max"}[r.IntN(9)]
		}
		series[i].Labels = append([]batch.Label{{Name: "__name__", Value: name}}, series[i].Labels...)
	}
}

func TestAppendRequestV2(t *testing.T) {
	md := []batch.Metadata{{Family: "http_requests", Type: 1, Help: "Requests.", Unit: "requests"}, {Family: "latency", Type: 3, Help: "Latency."}, {Family: "up", Type: 2}}
	cases := map[string][]batch.Series{
		"nil":             nil,
		"empty series":    {{}},
		"empty label":     {{Labels: []batch.Label{{}}, Samples: []batch.Sample{{}}}},
		"empty histogram": {{Histograms: []batch.Histogram{{}}}},
		"empty exemplar":  {{Exemplars: []batch.Exemplar{{}}}},
		"family": {{Labels: []batch.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "a"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 2}},
			Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: "abc"}}, Value: 2, Timestamp: 1}}},
			{Labels: []batch.Label{{Name: "__name__", Value: "latency"}}, Histograms: []batch.Histogram{{Timestamp: 3, Raw: appendStartTimestamp(mustMarshal(prompb.Histogram{Timestamp: 3, Count: &prompb.Histogram_CountInt{}, ZeroCount: &prompb.Histogram_ZeroCountInt{}}), 2)}}},
			{Labels: []batch.Label{{Name: "__name__", Value: "latency_bucket"}, {Name: "le", Value: "+Inf"}}, Samples: []batch.Sample{{Timestamp: 3, Value: 1}}},
			{Labels: []batch.Label{{Name: "__name__", Value: "up"}}, Samples: []batch.Sample{{Timestamp: 3, Value: 1}}}},
		"long": {{Labels: []batch.Label{{Name: strings.Repeat("n", 300), Value: strings.Repeat("v", 70000)}}}},
	}
	for name, series := range cases {
		t.Run(name, func(t *testing.T) { checkV2(t, AppendRequestV2(nil, series, md), series, md) })
	}
	r := rand.New(rand.NewPCG(21, 22))
	for i := range 200 {
		md := randMetadata(r, r.IntN(4))
		series := randSeries(r, r.IntN(20))
		namedSeries(r, series, md)
		t.Run(fmt.Sprintf("random%d", i), func(t *testing.T) { checkV2(t, AppendRequestV2(nil, series, md), series, md) })
	}
}

// batch.MetricType's numbering (1.0's) is 2.0's too.
func TestMetricTypeNumberingV2(t *testing.T) {
	for n := range int32(8) {
		v1 := strings.ReplaceAll(prompb.MetricMetadata_MetricType(n).String(), "UNKNOWN", "UNSPECIFIED")
		v2 := strings.TrimPrefix(writev2.Metadata_MetricType(n).String(), "METRIC_TYPE_")
		if v1 != v2 {
			t.Errorf("type %d is %s in 1.0, %s in 2.0", n, v1, v2)
		}
	}
}

func TestEncodeSplitV2(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	var b Buffers
	for iter := range 300 {
		md := randMetadata(r, r.IntN(4))
		series := randSeries(r, r.IntN(30))
		if iter%2 == 1 {
			sharedLabels(r, series)
		}
		namedSeries(r, series, md)
		if iter%10 == 0 {
			big := bigSeries(r, 200, 30)
			big.Labels[0].Value = "big_count"
			series = append(series, big)
			md = append(md, batch.Metadata{Family: "big", Type: 3, Help: strings.Repeat("help ", 20), Unit: "seconds"})
		}
		maxBytes := []int{0, 1, 50, 200, 1000, 5000, 30000, 1 << 20}[iter%8]
		limit := maxBytes
		if limit <= 0 {
			limit = DefaultMaxRequestBytes
		}
		var groups [][]batch.Series
		err := b.EncodeSplitV2(series, md, maxBytes, func(body []byte) error {
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				return err
			}
			var req writev2.Request
			if err := req.Unmarshal(raw); err != nil {
				return err
			}
			// Rebuild the series to check them against the input.
			var part []batch.Series
			for _, ts := range req.Timeseries {
				var s batch.Series
				for i := 0; i < len(ts.LabelsRefs); i += 2 {
					s.Labels = append(s.Labels, batch.Label{Name: req.Symbols[ts.LabelsRefs[i]], Value: req.Symbols[ts.LabelsRefs[i+1]]})
				}
				for _, smp := range ts.Samples {
					s.Samples = append(s.Samples, batch.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
				}
				for _, h := range ts.Histograms {
					hr, _ := h.Marshal()
					s.Histograms = append(s.Histograms, batch.Histogram{Timestamp: h.Timestamp, Raw: hr})
				}
				for _, ex := range ts.Exemplars {
					e := batch.Exemplar{Value: ex.Value, Timestamp: ex.Timestamp}
					for i := 0; i < len(ex.LabelsRefs); i += 2 {
						e.Labels = append(e.Labels, batch.Label{Name: req.Symbols[ex.LabelsRefs[i]], Value: req.Symbols[ex.LabelsRefs[i+1]]})
					}
					s.Exemplars = append(s.Exemplars, e)
				}
				part = append(part, s)
			}
			checkV2(t, raw, part, md)
			if len(raw) > limit && !(testRequest{series: part}).lone() {
				t.Fatalf("iteration %d (max %d): body of %d bytes with %d series", iter, limit, len(raw), len(part))
			}
			groups = append(groups, part)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !sameSeries(normalize(flatten(groups)), normalize(flatten([][]batch.Series{series}))) {
			t.Fatalf("iteration %d (max %d): bodies do not concatenate to the input", iter, maxBytes)
		}
		if maxBytes == 1<<20 && len(groups) > 1 && iter%10 != 0 {
			t.Fatalf("iteration %d: small input split into %d bodies", iter, len(groups))
		}
	}
}

// sharedLabels gives the series labels from small sets of names and
// values, each series mostly its predecessor's with some labels changed,
// added or removed, as consecutive series of a real request are.
func sharedLabels(r *rand.Rand, series []batch.Series) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	values := []string{"", "x", "y", "z", strings.Repeat("w", 200)}
	var prev []batch.Label
	for i := range series {
		ls := slices.Clone(prev)
		for range r.IntN(3) {
			switch k := r.IntN(len(ls) + 1); {
			case k == len(ls) || r.IntN(3) == 0:
				ls = append(ls, batch.Label{Name: names[r.IntN(len(names))], Value: values[r.IntN(len(values))]})
			case r.IntN(2) == 0:
				ls[k].Value = values[r.IntN(len(values))]
			default:
				ls = slices.Delete(ls, k, k+1)
			}
		}
		series[i].Labels, prev = ls, ls
	}
}

// normalize makes -0 +0 (as it decodes) in series copies.
func normalize(series []batch.Series) []batch.Series {
	out := make([]batch.Series, len(series))
	for i, s := range series {
		s.Samples = append([]batch.Sample(nil), s.Samples...)
		for j := range s.Samples {
			if s.Samples[j].Value == 0 {
				s.Samples[j].Value = 0
			}
		}
		s.Exemplars = append([]batch.Exemplar(nil), s.Exemplars...)
		for j := range s.Exemplars {
			if s.Exemplars[j].Value == 0 {
				s.Exemplars[j].Value = 0
			}
			if len(s.Exemplars[j].Labels) == 0 {
				s.Exemplars[j].Labels = nil
			}
		}
		if len(s.Labels) == 0 {
			s.Labels = nil
		}
		out[i] = s
	}
	return out
}

func TestEncodeSplitV2DoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	series := benchHistogramSeries(r, 200, 10)
	md := []batch.Metadata{{Family: "cluster:usage:workload:capacity_physical_cpu_cores:sum", Type: 2, Help: "Help.", Unit: "cores"}}
	b := GetBuffers()
	defer PutBuffers(b)
	send := func([]byte) error { return nil }
	for _, maxBytes := range []int{0, 20000} {
		if err := b.EncodeSplitV2(series, md, maxBytes, send); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if err := b.EncodeSplitV2(series, md, maxBytes, send); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("max %d: EncodeSplitV2 allocated %v times per run", maxBytes, allocs)
		}
	}
}

func BenchmarkEncodeV2(b *testing.B) {
	series := benchSeries(500, 10)
	bufs := GetBuffers()
	defer PutBuffers(bufs)
	send := func([]byte) error { return nil }
	b.SetBytes(int64(len(AppendRequestV2(nil, series, nil))))
	if err := bufs.EncodeSplitV2(series, nil, 0, send); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := bufs.EncodeSplitV2(series, nil, 0, send); err != nil {
			b.Fatal(err)
		}
	}
}
