package decode

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/telegate/telegate/batch"
)

const testNow = 1700000000999

type flatSeries struct {
	labels string
	ts     int64
	v      float64
}

// flatten renders each series as its sorted labels, for readable asserts.
func flatten(b *batch.Batch) []flatSeries {
	var out []flatSeries
	for _, s := range b.Series {
		var sb bytes.Buffer
		for i, l := range sortedLabels(s.Labels) {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(l.Name + "=" + l.Value)
		}
		for _, smp := range s.Samples {
			out = append(out, flatSeries{sb.String(), smp.Timestamp, smp.Value})
		}
	}
	return out
}

func decodeFamilies(t *testing.T, mfs []*dto.MetricFamily, serverTime bool) ([]flatSeries, Stats) {
	t.Helper()
	data := encodeFamilies(t, mfs)
	b := &batch.Batch{}
	st, err := UnmarshalMetricFamilies(data, b, testNow, serverTime, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
	return flatten(b), st
}

func TestUnmarshalMetricFamiliesTypes(t *testing.T) {
	lp := []*dto.LabelPair{{Name: ptr("job"), Value: ptr("j")}}
	mfs := []*dto.MetricFamily{
		{Name: ptr("c"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Label: lp, Counter: &dto.Counter{Value: ptr(5.0)}, TimestampMs: ptr(int64(42))}}},
		{Name: ptr("g"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: ptr(-1.5)}}}},
		{Name: ptr("u"), Type: dto.MetricType_UNTYPED.Enum(), Metric: []*dto.Metric{{Untyped: &dto.Untyped{Value: ptr(7.0)}, TimestampMs: ptr(int64(0))}}},
		{Name: ptr("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{Label: lp, Summary: &dto.Summary{
			SampleCount: ptr(uint64(10)), SampleSum: ptr(2.5),
			Quantile: []*dto.Quantile{{Quantile: ptr(0.5), Value: ptr(0.1)}, {Quantile: ptr(0.99), Value: ptr(0.2)}},
		}}}},
		{Name: ptr("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
			SampleCount: ptr(uint64(9)), SampleSum: ptr(3.0),
			Bucket: []*dto.Bucket{{UpperBound: ptr(0.0), CumulativeCount: ptr(uint64(1))}, {UpperBound: ptr(1e6), CumulativeCount: ptr(uint64(4))}},
		}}}},
		{Name: ptr("gh"), Type: dto.MetricType_GAUGE_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: &dto.Histogram{
			SampleCountFloat: ptr(2.5), SampleCount: ptr(uint64(100)), SampleSum: ptr(1.0),
			Bucket: []*dto.Bucket{{UpperBound: ptr(math.Copysign(0, -1)), CumulativeCountFloat: ptr(0.5), CumulativeCount: ptr(uint64(50))}, {UpperBound: ptr(math.Inf(1)), CumulativeCountFloat: ptr(2.5)}},
		}}}},
		{Name: ptr("empty"), Type: dto.MetricType_GAUGE.Enum()},
	}
	got, st := decodeFamilies(t, mfs, false)
	want := []flatSeries{
		{"__name__=c,job=j", 42, 5},
		{"__name__=g", testNow, -1.5},
		{"__name__=u", 0, 7},
		{"__name__=s,job=j,quantile=0.5", testNow, 0.1},
		{"__name__=s,job=j,quantile=0.99", testNow, 0.2},
		{"__name__=s_sum,job=j", testNow, 2.5},
		{"__name__=s_count,job=j", testNow, 10},
		{"__name__=h_bucket,le=0", testNow, 1},
		{"__name__=h_bucket,le=1e+06", testNow, 4},
		{"__name__=h_bucket,le=+Inf", testNow, 9},
		{"__name__=h_sum", testNow, 3},
		{"__name__=h_count", testNow, 9},
		{"__name__=gh_bucket,le=0", testNow, 0.5},
		{"__name__=gh_bucket,le=+Inf", testNow, 2.5},
		{"__name__=gh_sum", testNow, 1},
		{"__name__=gh_count", testNow, 2.5},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
	// Charged: 28 labels, 16 series and samples, the derived names of s, h
	// and gh (3*len(name)+len("_sum_count_bucket")), "0.5", "0.99", "1e+06".
	batchBytes := 28*labelBytes + 16*(seriesBytes+sampleBytes) + (20 + 20 + 23) + (3 + 4 + 5)
	if want := (Stats{Series: 16, Samples: 16, Metadata: 7, BatchBytes: batchBytes}); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}

	// Server time overrides metric timestamps.
	got, _ = decodeFamilies(t, mfs[:1], true)
	if got[0].ts != testNow {
		t.Fatalf("server time: got ts %d", got[0].ts)
	}
}

// The decoder's output matches what the Prometheus text encoder prints for
// the same families, line by line.
func TestUnmarshalMetricFamiliesMatchesTextFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		var mfs []*dto.MetricFamily
		for _, mf := range genFamilies(r) {
			if mf.GetName() != "" && len(mf.Metric) > 0 && expfmtOK(mf) && !hasNative(mf) {
				mfs = append(mfs, mf)
			}
		}
		var text bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
				t.Fatal(err)
			}
		}
		var lines int
		for _, l := range bytes.Split(text.Bytes(), []byte("\n")) {
			if len(l) > 0 && l[0] != '#' {
				lines++
			}
		}
		b := &batch.Batch{}
		if _, err := UnmarshalMetricFamilies(encodeFamilies(t, mfs), b, testNow, false, Limits{}); err != nil {
			t.Fatal(err)
		}
		if len(b.Series) != lines {
			t.Fatalf("%d series, text format has %d samples:\n%s", len(b.Series), lines, text.String())
		}
	}
}

// hasNative reports whether mf holds a native histogram, which the text
// format cannot show.
func hasNative(mf *dto.MetricFamily) bool {
	for _, m := range mf.Metric {
		if h, _, err := refNative(m.GetHistogram(), false); h != nil || err != nil {
			return true
		}
	}
	return false
}

func expfmtOK(mf *dto.MetricFamily) bool {
	_, err := expfmt.MetricFamilyToText(&bytes.Buffer{}, mf)
	return err == nil
}

func TestUnmarshalMetricFamiliesErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mfs    []*dto.MetricFamily
		status int
		substr string
	}{
		{"no name", []*dto.MetricFamily{{Type: dto.MetricType_GAUGE.Enum()}}, 400, "has no name"},
		{"counter without counter", []*dto.MetricFamily{{Name: ptr("x"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{}}}}}, 400, `metric family "x": type COUNTER but no counter value`},
		{"histogram without histogram", []*dto.MetricFamily{{Name: ptr("x"), Type: dto.MetricType_GAUGE_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Summary: &dto.Summary{}}}}}, 400, "type GAUGE_HISTOGRAM but no histogram value"},
		{"unknown type", []*dto.MetricFamily{{Name: ptr("x"), Type: dto.MetricType(9).Enum()}}, 400, "unknown metric type 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeFamilies(t, tc.mfs)
			_, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{})
			wantError(t, err, tc.status, tc.substr)
			checkMetricFamiliesAgree(t, data)
		})
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		substr string
	}{
		{"truncated family", []byte{0x05, 0x0a, 0x01}, "truncated metric family at offset 0"},
		{"absurd family length", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "truncated metric family"},
		{"varint overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, "varint overflow"},
		{"truncated name", []byte{0x03, 0x0a, 0x05, 'a'}, "truncated field 1"},
		{"field number too large", []byte{0x08, 0x0a, 0x01, 'a', 0x80, 0x80, 0x80, 0x80, 0x10}, "illegal field number"},
		{"mismatched group", []byte{0x05, 0x0a, 0x01, 'a', 0x33, 0x3c}, "mismatched end group"},
		{"bad packed doubles", []byte{0x0d, 0x0a, 0x01, 'a', 0x18, 0x04, 0x22, 0x06, 0x3a, 0x04, 0x5a, 0x02, 0, 0}, "not a multiple of 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalMetricFamilies(tc.data, &batch.Batch{}, testNow, false, Limits{})
			wantError(t, err, 400, tc.substr)
			checkMetricFamiliesAgree(t, tc.data)
		})
	}
}

func TestUnmarshalMetricFamiliesMaxSeries(t *testing.T) {
	mfs := []*dto.MetricFamily{{Name: ptr("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{Summary: &dto.Summary{
		Quantile: []*dto.Quantile{{Quantile: ptr(0.5)}},
	}}}}} // 3 series
	data := encodeFamilies(t, mfs)
	if _, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{MaxSeries: 3}); err != nil {
		t.Fatal(err)
	}
	_, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{MaxSeries: 2})
	wantError(t, err, 413, "max_series_per_request (2)")
}

// Wire-level proto2 behaviour the reference has: repeated optional messages
// merge, fields with an unexpected wire type are unknown, fields may come
// in any order.
func TestUnmarshalMetricFamiliesWireSemantics(t *testing.T) {
	var m []byte
	// Two gauge fields: the second sets no value, so the first value stays.
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendBytes(m, protowire.AppendFixed64(protowire.AppendTag(nil, 1, protowire.Fixed64Type), math.Float64bits(4)))
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendBytes(m, nil)
	// timestamp_ms with the wrong wire type: ignored.
	m = protowire.AppendTag(m, 6, protowire.Fixed32Type)
	m = protowire.AppendFixed32(m, 99)
	// A label after the value.
	lp := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k")
	lp = protowire.AppendString(protowire.AppendTag(lp, 2, protowire.BytesType), "v")
	m = protowire.AppendBytes(protowire.AppendTag(m, 1, protowire.BytesType), lp)

	var mf []byte
	mf = protowire.AppendBytes(protowire.AppendTag(mf, 4, protowire.BytesType), m) // metric before name and type
	mf = protowire.AppendString(protowire.AppendTag(mf, 1, protowire.BytesType), "ignored")
	mf = protowire.AppendString(protowire.AppendTag(mf, 1, protowire.BytesType), "g")
	mf = protowire.AppendVarint(protowire.AppendTag(mf, 3, protowire.VarintType), 1)
	mf = protowire.AppendFixed64(protowire.AppendTag(mf, 3, protowire.Fixed64Type), 0) // wrong type, unknown
	mf = append(mf, 0x83, 0x01, 0x08, 0x01, 0x84, 0x01)                                // group 16
	data := protowire.AppendBytes(nil, mf)

	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := []flatSeries{{"__name__=g,k=v", testNow, 4}}
	if got := flatten(b); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	checkMetricFamiliesAgree(t, data)
}

func TestUnmarshalMetricFamiliesDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		data := encodeFamilies(t, genFamilies(r))
		checkMetricFamiliesAgree(t, data)
		for range 5 {
			data = mutate(r, data)
			checkMetricFamiliesAgree(t, data)
		}
	}
}

func TestUnmarshalMetricFamiliesZeroAllocs(t *testing.T) {
	data := encodeFamilies(t, benchFamilies())
	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		b.Reset()
		if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per decode with a reused batch, want 0", allocs)
	}
}

func TestEncodeMetricFamiliesRoundTrip(t *testing.T) {
	mfs := benchFamilies()[:2]
	data := encodeFamilies(t, mfs)
	dec := expfmt.NewDecoder(bytes.NewReader(data), expfmt.NewFormat(expfmt.TypeProtoDelim))
	for i := range mfs {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			t.Fatal(err)
		}
		if mf.GetName() != mfs[i].GetName() || len(mf.Metric) != 50 {
			t.Fatalf("family %d: got %s with %d metrics", i, mf.GetName(), len(mf.Metric))
		}
	}
}

func FuzzUnmarshalMetricFamilies(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20 {
		f.Add(encodeFamilies(f, genFamilies(r)))
	}
	for _, data := range mfFastPathEdges() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMetricFamiliesAgree(t, data)
		checkMFSameAsRefLimits(t, data)
	})
}

func BenchmarkUnmarshalMetricFamilies(bm *testing.B) {
	data := encodeFamilies(bm, benchFamilies())
	b := &batch.Batch{}
	bm.ReportAllocs()
	bm.SetBytes(int64(len(data)))
	for bm.Loop() {
		b.Reset()
		if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
			bm.Fatal(err)
		}
	}
	bm.ReportMetric(float64(1000*bm.N)/bm.Elapsed().Seconds(), "samples/s")
}

// BenchmarkReferenceMetricFamilies decodes the same bytes into
// dto.MetricFamily with google.golang.org/protobuf (no conversion).
func BenchmarkReferenceMetricFamilies(bm *testing.B) {
	data := encodeFamilies(bm, benchFamilies())
	bm.ReportAllocs()
	bm.SetBytes(int64(len(data)))
	for bm.Loop() {
		dec := expfmt.NewDecoder(bytes.NewReader(data), expfmt.NewFormat(expfmt.TypeProtoDelim))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				break
			}
		}
	}
	bm.ReportMetric(float64(1000*bm.N)/bm.Elapsed().Seconds(), "samples/s")
}

// Derived series copy their metric's labels: many buckets decode in linear
// time, and the batch they make is bounded by UploadBudget.
func TestUnmarshalMetricFamiliesLabelAmplification(t *testing.T) {
	mk := func(labels, buckets int) []byte {
		m := &dto.Metric{Histogram: &dto.Histogram{}}
		for i := range labels {
			m.Label = append(m.Label, &dto.LabelPair{Name: ptr("l" + strconv.Itoa(i)), Value: ptr("v")})
		}
		for i := range buckets {
			m.Histogram.Bucket = append(m.Histogram.Bucket, &dto.Bucket{UpperBound: ptr(float64(i))})
		}
		return encodeFamilies(t, []*dto.MetricFamily{{Name: ptr("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{m}}})
	}
	b := &batch.Batch{}
	data := mk(3, 20000)
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{MaxBatchBytes: UploadBudget(len(data))}); err != nil {
		t.Fatal(err)
	}
	last := b.Series[len(b.Series)-1]
	if len(b.Series) != 20003 || len(last.Labels) != 4 || last.Labels[3] != (batch.Label{Name: "l2", Value: "v"}) {
		t.Fatalf("%d series, last %v", len(b.Series), last)
	}
	data = mk(200, 2000)
	_, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{MaxBatchBytes: UploadBudget(len(data))})
	wantError(t, err, 413, "upload expands to more than")
}

// A family is skimmed only when the filter refuses every name its series
// can have; a skimmed series keeps __name__, _id and its le/quantile.
func TestUnmarshalMetricFamiliesFiltered(t *testing.T) {
	lp := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: ptr(n), Value: ptr(v)} }
	hist := func(name string) *dto.MetricFamily {
		return &dto.MetricFamily{Name: ptr(name), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{lp("_id", "c"), lp("job", "j")},
			Histogram: &dto.Histogram{SampleCount: ptr(uint64(2)), SampleSum: ptr(3.0),
				Bucket: []*dto.Bucket{{UpperBound: ptr(1.0), CumulativeCount: ptr(uint64(1))}}},
		}}}
	}
	data := encodeFamilies(t, []*dto.MetricFamily{
		{Name: ptr("dropped_gauge"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{lp("a", "1"), lp("_id", "c"), lp("z", "2")}, Gauge: &dto.Gauge{Value: ptr(1.0)}}}},
		hist("dropped_hist"), // every name refused: skimmed
		hist("kept"),         // kept_sum wanted: nothing skimmed
	})
	f := &NameFilter{Wanted: func(n string) bool { return n == "kept_sum" }, KeepLabel: "_id"}
	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamiliesFiltered(data, b, testNow, true, Limits{}, f); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range b.Series {
		var ls []string
		for _, l := range s.Labels {
			ls = append(ls, l.Name+"="+l.Value)
		}
		got = append(got, strings.Join(ls, ","))
	}
	want := []string{
		"__name__=dropped_gauge,_id=c",
		"__name__=dropped_hist_bucket,_id=c,le=1", "__name__=dropped_hist_bucket,_id=c,le=+Inf",
		"__name__=dropped_hist_sum,_id=c", "__name__=dropped_hist_count,_id=c",
		"__name__=kept_bucket,_id=c,job=j,le=1", "__name__=kept_bucket,_id=c,job=j,le=+Inf",
		"__name__=kept_sum,_id=c,job=j", "__name__=kept_count,_id=c,job=j",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
