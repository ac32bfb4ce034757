package decode

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/telegate/telegate/batch"
)

// genNative adds native histogram fields to h: mostly a valid integer or
// float histogram, sometimes an invalid one, a no-op span, an unknown
// schema or fields Prometheus ignores.
func genNative(r *rand.Rand, h *dto.Histogram) {
	fl := r.IntN(3) == 0
	schema := int32(r.IntN(13) - 4)
	switch r.IntN(20) {
	case 0:
		schema = 9
	case 1:
		schema = -53
	}
	h.Schema = ptr(schema)
	if r.IntN(2) == 0 {
		h.ZeroThreshold = ptr([]float64{0, 1e-128, 0.001}[r.IntN(3)])
	}
	var total uint64
	var totalF float64
	zc := r.Uint64N(4)
	if zc > 0 || r.IntN(2) == 0 {
		if fl {
			h.ZeroCountFloat = ptr(float64(zc) + 0.5)
			totalF += float64(zc) + 0.5
		} else {
			h.ZeroCount = ptr(zc)
			total += zc
		}
	}
	side := func() (spans []*dto.BucketSpan, deltas []int64, counts []float64) {
		var last int64
		for i := range r.IntN(4) {
			off := int32(r.IntN(4))
			if i == 0 {
				off = int32(r.IntN(8) - 4)
			}
			n := uint32(r.IntN(4))
			spans = append(spans, &dto.BucketSpan{Offset: ptr(off), Length: ptr(n)})
			for range n {
				c := int64(r.IntN(5))
				deltas = append(deltas, c-last)
				last = c
				counts = append(counts, float64(c)/2)
				total += uint64(c)
				totalF += float64(c) / 2
			}
		}
		return spans, deltas, counts
	}
	ps, pd, pc := side()
	ns, nd, nc := side()
	h.PositiveSpan, h.NegativeSpan = ps, ns
	if fl {
		h.PositiveCount, h.NegativeCount = pc, nc
		h.SampleCountFloat = ptr(totalF)
	} else {
		h.PositiveDelta, h.NegativeDelta = pd, nd
		h.SampleCount = ptr(total)
	}
	if len(ps)+len(ns) == 0 && r.IntN(2) == 0 {
		h.PositiveSpan = []*dto.BucketSpan{{Offset: ptr(int32(0)), Length: ptr(uint32(0))}} // no-op span
	}
	switch r.IntN(12) {
	case 0: // inconsistent
		h.PositiveDelta = append(h.PositiveDelta, 1)
		h.PositiveCount = append(h.PositiveCount, 1)
	case 1: // wrong count
		h.SampleCount = ptr(h.GetSampleCount() + 1)
	case 2: // negative bucket
		h.NegativeDelta = append(h.NegativeDelta, -100)
		h.NegativeCount = append(h.NegativeCount, -1)
		h.NegativeSpan = append(h.NegativeSpan, &dto.BucketSpan{Length: ptr(uint32(1))})
	case 3: // a negative offset after the first span
		h.PositiveSpan = append(h.PositiveSpan, &dto.BucketSpan{Offset: ptr(int32(-2))})
	case 4: // the other kind's buckets too
		h.PositiveDelta, h.PositiveCount = pd, pc
	}
}

// refNative converts h as Prometheus' protobuf parser does (see
// histenc.go for the one extension) and validates it; nil when h is not a
// native histogram.
func refNative(h *dto.Histogram, gauge bool) (*histogram.FloatHistogram, bool, error) {
	if h == nil || len(h.PositiveSpan) == 0 && len(h.NegativeSpan) == 0 && !(h.GetZeroThreshold() > 0) && h.GetZeroCount() == 0 { // NaN is not > 0
		return nil, false, nil
	}
	spans := func(in []*dto.BucketSpan) []histogram.Span {
		var out []histogram.Span
		for _, s := range in {
			out = append(out, histogram.Span{Offset: s.GetOffset(), Length: s.GetLength()})
		}
		return out
	}
	// The encoder joins spans; an offset carried over empty spans must
	// still fit an int32.
	for _, ss := range [][]*dto.BucketSpan{h.PositiveSpan, h.NegativeSpan} {
		var carry int64
		for _, s := range ss {
			if s.GetLength() == 0 {
				carry += int64(s.GetOffset())
				continue
			}
			if o := carry + int64(s.GetOffset()); o != int64(int32(o)) {
				return nil, false, errors.New("joined offset out of range")
			}
			carry = 0
		}
	}
	hint := histogram.UnknownCounterReset
	if gauge {
		hint = histogram.GaugeType
	}
	if h.GetSampleCountFloat() > 0 || h.GetZeroCountFloat() > 0 ||
		len(h.PositiveDelta)+len(h.NegativeDelta) == 0 && len(h.PositiveCount)+len(h.NegativeCount) > 0 {
		fh := &histogram.FloatHistogram{
			CounterResetHint: hint, Schema: h.GetSchema(), Count: h.GetSampleCountFloat(), Sum: h.GetSampleSum(),
			ZeroThreshold: h.GetZeroThreshold(), ZeroCount: h.GetZeroCountFloat(),
			PositiveSpans: spans(h.PositiveSpan), PositiveBuckets: h.PositiveCount,
			NegativeSpans: spans(h.NegativeSpan), NegativeBuckets: h.NegativeCount,
		}
		return fh, true, fh.Validate()
	}
	ih := &histogram.Histogram{
		CounterResetHint: hint, Schema: h.GetSchema(), Count: h.GetSampleCount(), Sum: h.GetSampleSum(),
		ZeroThreshold: h.GetZeroThreshold(), ZeroCount: h.GetZeroCount(),
		PositiveSpans: spans(h.PositiveSpan), PositiveBuckets: h.PositiveDelta,
		NegativeSpans: spans(h.NegativeSpan), NegativeBuckets: h.NegativeDelta,
	}
	if err := ih.Validate(); err != nil {
		return nil, false, err
	}
	return ih.ToFloat(nil), false, nil
}

// checkRawHistogram decodes raw as a remote write prometheus.Histogram,
// which must pass Validate and equal want's histogram (both compacted).
func checkRawHistogram(t testing.TB, raw []byte, want refSeries) {
	t.Helper()
	var ph prompb.Histogram
	if err := ph.Unmarshal(raw); err != nil {
		t.Fatalf("raw histogram %x: %v", raw, err)
	}
	if ph.Timestamp != want.ts || ph.IsFloatHistogram() != want.hFloat {
		t.Fatalf("raw histogram %+v: want ts %d, float %v", ph, want.ts, want.hFloat)
	}
	var got *histogram.FloatHistogram
	if ph.IsFloatHistogram() {
		got = ph.ToFloatHistogram()
		if err := got.Validate(); err != nil {
			t.Fatalf("raw float histogram %+v: %v", ph, err)
		}
	} else {
		ih := ph.ToIntHistogram()
		if err := ih.Validate(); err != nil {
			t.Fatalf("raw histogram %+v: %v", ph, err)
		}
		got = ih.ToFloat(nil)
	}
	for _, s := range [][]histogram.Span{got.PositiveSpans, got.NegativeSpans} {
		for _, sp := range s {
			if sp.Length == 0 {
				t.Fatalf("raw histogram %+v has an empty span", ph)
			}
		}
	}
	w := want.h.Copy()
	if got.CounterResetHint != w.CounterResetHint || math.Float64bits(got.ZeroThreshold) != math.Float64bits(w.ZeroThreshold) {
		t.Fatalf("raw histogram %v, want %v", got, w)
	}
	got.ZeroThreshold, w.ZeroThreshold = 0, 0 // Equals fails on NaN
	if !got.Compact(0).Equals(w.Compact(0)) {
		t.Fatalf("raw histogram\n%v\nwant\n%v", got, w)
	}
}

func nativeFamily(typ dto.MetricType, hs ...*dto.Histogram) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: ptr("h"), Type: typ.Enum()}
	for i, h := range hs {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label:     []*dto.LabelPair{{Name: ptr("i"), Value: ptr(string(rune('a' + i)))}},
			Histogram: h,
		})
	}
	return mf
}

func TestUnmarshalMetricFamiliesNative(t *testing.T) {
	intH := &dto.Histogram{ // what client_golang exposes
		SampleCount: ptr(uint64(7)), SampleSum: ptr(12.5), Schema: ptr(int32(3)),
		ZeroThreshold: ptr(2.938735877055719e-39), ZeroCount: ptr(uint64(1)),
		NegativeSpan:  []*dto.BucketSpan{{Offset: ptr(int32(-2)), Length: ptr(uint32(1))}},
		NegativeDelta: []int64{1},
		PositiveSpan: []*dto.BucketSpan{
			{Offset: ptr(int32(-1)), Length: ptr(uint32(2))},
			{Offset: ptr(int32(3)), Length: ptr(uint32(0))}, // dropped, offset carried
			{Offset: ptr(int32(0)), Length: ptr(uint32(1))},
		},
		PositiveDelta: []int64{2, -1, 1},
	}
	floatH := &dto.Histogram{ // what Prometheus' /federate exposes
		SampleCountFloat: ptr(3.5), SampleSum: ptr(-1.0), Schema: ptr(int32(0)),
		ZeroThreshold: ptr(0.001), ZeroCountFloat: ptr(0.5),
		PositiveSpan:  []*dto.BucketSpan{{Offset: ptr(int32(0)), Length: ptr(uint32(1))}, {Offset: ptr(int32(0)), Length: ptr(uint32(1))}},
		PositiveCount: []float64{1, 2},
	}
	empty := &dto.Histogram{Schema: ptr(int32(8)), PositiveSpan: []*dto.BucketSpan{{Offset: ptr(int32(0)), Length: ptr(uint32(0))}}}
	both := &dto.Histogram{ // classic buckets and native ones
		SampleCount: ptr(uint64(2)), SampleSum: ptr(3.0), Schema: ptr(int32(1)), ZeroThreshold: ptr(1e-9),
		Bucket:       []*dto.Bucket{{UpperBound: ptr(1.0), CumulativeCount: ptr(uint64(1))}},
		PositiveSpan: []*dto.BucketSpan{{Offset: ptr(int32(1)), Length: ptr(uint32(1))}}, PositiveDelta: []int64{2},
	}
	classic := &dto.Histogram{SampleCount: ptr(uint64(0)), Schema: ptr(int32(3))} // no span: classic

	mfs := []*dto.MetricFamily{
		nativeFamily(dto.MetricType_HISTOGRAM, intH, floatH, empty, both, classic),
		nativeFamily(dto.MetricType_GAUGE_HISTOGRAM, intH),
	}
	mfs[1].Name = ptr("gh")
	data := encodeFamilies(t, mfs)
	b := &batch.Batch{}
	st, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{MaxBatchBytes: UploadBudget(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
	var got []string
	for _, s := range b.Series {
		var ls []string
		for _, l := range s.Labels {
			ls = append(ls, l.Name+"="+l.Value)
		}
		k := strings.Join(ls, ",")
		if len(s.Histograms) > 0 {
			k += " native"
		}
		got = append(got, k)
	}
	want := []string{
		"__name__=h,i=a native", "__name__=h,i=b native", "__name__=h,i=c native",
		"__name__=h,i=d native", "__name__=h_bucket,i=d,le=1", "__name__=h_bucket,i=d,le=+Inf", "__name__=h_sum,i=d", "__name__=h_count,i=d",
		"__name__=h_bucket,i=e,le=+Inf", "__name__=h_sum,i=e", "__name__=h_count,i=e",
		"__name__=gh,i=a native",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st.Histograms != 5 || st.Samples != 7 || st.Series != 12 {
		t.Fatalf("stats %+v", st)
	}
	var ph prompb.Histogram
	if err := ph.Unmarshal(b.Series[0].Histograms[0].Raw); err != nil {
		t.Fatal(err)
	}
	wantSpans := []prompb.BucketSpan{{Offset: -1, Length: 2}, {Offset: 3, Length: 1}}
	if ph.GetCountInt() != 7 || ph.GetZeroCountInt() != 1 || ph.Schema != 3 || ph.Sum != 12.5 ||
		!sameSpans(ph.PositiveSpans, wantSpans) || !slices.Equal(ph.PositiveDeltas, []int64{2, -1, 1}) ||
		!slices.Equal(ph.NegativeDeltas, []int64{1}) || ph.ResetHint != prompb.Histogram_UNKNOWN {
		t.Fatalf("integer histogram %+v", ph)
	}
	ph = prompb.Histogram{}
	if err := ph.Unmarshal(b.Series[1].Histograms[0].Raw); err != nil {
		t.Fatal(err)
	}
	if ph.GetCountFloat() != 3.5 || ph.GetZeroCountFloat() != 0.5 || !slices.Equal(ph.PositiveCounts, []float64{1, 2}) ||
		!sameSpans(ph.PositiveSpans, []prompb.BucketSpan{{Offset: 0, Length: 2}}) || ph.Timestamp != testNow {
		t.Fatalf("float histogram %+v", ph)
	}
	ph = prompb.Histogram{}
	if err := ph.Unmarshal(b.Series[len(b.Series)-1].Histograms[0].Raw); err != nil {
		t.Fatal(err)
	}
	if ph.ResetHint != prompb.Histogram_GAUGE {
		t.Fatalf("gauge histogram %+v", ph)
	}
	// Raws do not overlap: each is clipped, and appending to one leaves
	// the next intact.
	r0, r1 := b.Series[0].Histograms[0].Raw, b.Series[1].Histograms[0].Raw
	keep := slices.Clone(r1)
	_ = append(r0, 0xff)
	if cap(r0) != len(r0) || !slices.Equal(r1, keep) {
		t.Fatal("raw histograms share capacity")
	}
}

func TestUnmarshalMetricFamiliesNativeInvalid(t *testing.T) {
	base := func() *dto.Histogram {
		return &dto.Histogram{SampleCount: ptr(uint64(3)), SampleSum: ptr(1.0), Schema: ptr(int32(0)),
			PositiveSpan: []*dto.BucketSpan{{Offset: ptr(int32(0)), Length: ptr(uint32(2))}}, PositiveDelta: []int64{1, 1}}
	}
	for _, tc := range []struct {
		name   string
		mod    func(h *dto.Histogram)
		substr string
	}{
		{"spans need more deltas", func(h *dto.Histogram) { h.PositiveDelta = h.PositiveDelta[:1] }, "positive side: spans need 2 buckets, have 1"},
		{"negative bucket", func(h *dto.Histogram) { h.PositiveDelta = []int64{1, -2} }, "positive side: negative bucket count"},
		{"count mismatch", func(h *dto.Histogram) { h.SampleCount = ptr(uint64(4)) }, "3 observations in buckets, but the count is 4"},
		{"schema", func(h *dto.Histogram) { h.Schema = ptr(int32(9)) }, "invalid schema 9"},
		{"negative offset", func(h *dto.Histogram) {
			h.PositiveSpan = append(h.PositiveSpan, &dto.BucketSpan{Offset: ptr(int32(-3)), Length: ptr(uint32(1))})
			h.PositiveDelta = append(h.PositiveDelta, 0)
			h.SampleCount = ptr(uint64(5))
		}, "positive side: a span after the first has a negative offset"},
		{"negative float count", func(h *dto.Histogram) {
			h.PositiveDelta, h.PositiveCount, h.SampleCountFloat = nil, []float64{1, -1}, ptr(1.0)
		}, "positive side: negative bucket count"},
		{"float spans", func(h *dto.Histogram) { h.SampleCountFloat = ptr(3.0) }, "positive side: spans need 2 buckets, have 0"},
		{"custom buckets", func(h *dto.Histogram) { h.Schema = ptr(int32(-53)) }, "custom buckets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := base()
			tc.mod(h)
			data := encodeFamilies(t, []*dto.MetricFamily{nativeFamily(dto.MetricType_HISTOGRAM, h)})
			_, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{})
			wantError(t, err, 400, `metric family "h": invalid native histogram: `+tc.substr)
			checkMetricFamiliesAgree(t, data)
		})
	}
	// The NaN sum of a histogram that observed NaN allows fewer
	// observations in the buckets than the count.
	h := base()
	h.SampleSum, h.SampleCount = ptr(math.NaN()), ptr(uint64(5))
	data := encodeFamilies(t, []*dto.MetricFamily{nativeFamily(dto.MetricType_HISTOGRAM, h)})
	if _, err := UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
}

// Native fields merge like the reference's: a metric's Histogram fields
// merge, repeated fields concatenate, deltas and counts may be packed or
// not, spans' fields may repeat.
func TestUnmarshalMetricFamiliesNativeWire(t *testing.T) {
	span := func(off int32, length uint32) []byte {
		b := protowire.AppendTag(nil, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(off)))
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, 99) // overridden
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(length))
	}
	var h1, h2 []byte
	h1 = protowire.AppendVarint(protowire.AppendTag(h1, 1, protowire.VarintType), 4)
	h1 = protowire.AppendBytes(protowire.AppendTag(h1, 12, protowire.BytesType), span(-1, 1))
	h1 = protowire.AppendVarint(protowire.AppendTag(h1, 13, protowire.VarintType), protowire.EncodeZigZag(1)) // unpacked
	h1 = protowire.AppendVarint(protowire.AppendTag(h1, 5, protowire.VarintType), protowire.EncodeZigZag(2))
	h2 = protowire.AppendBytes(protowire.AppendTag(h2, 12, protowire.BytesType), span(2, 2))
	packed := protowire.AppendVarint(protowire.AppendVarint(nil, protowire.EncodeZigZag(0)), protowire.EncodeZigZag(1))
	h2 = protowire.AppendBytes(protowire.AppendTag(h2, 13, protowire.BytesType), packed)
	h2 = protowire.AppendFixed64(protowire.AppendTag(h2, 6, protowire.Fixed64Type), math.Float64bits(0.5))
	h2 = protowire.AppendFixed64(protowire.AppendTag(h2, 13, protowire.Fixed64Type), 7) // wrong type: unknown
	var m []byte
	m = protowire.AppendBytes(protowire.AppendTag(m, 7, protowire.BytesType), h1)
	m = protowire.AppendBytes(protowire.AppendTag(m, 7, protowire.BytesType), h2)
	var mf []byte
	mf = protowire.AppendString(protowire.AppendTag(mf, 1, protowire.BytesType), "h")
	mf = protowire.AppendVarint(protowire.AppendTag(mf, 3, protowire.VarintType), typeHistogram)
	mf = protowire.AppendBytes(protowire.AppendTag(mf, 4, protowire.BytesType), m)
	data := protowire.AppendBytes(nil, mf)

	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
	var ph prompb.Histogram
	if len(b.Series) != 1 || ph.Unmarshal(b.Series[0].Histograms[0].Raw) != nil {
		t.Fatalf("series %v", b.Series)
	}
	if ph.Schema != 2 || ph.GetCountInt() != 4 || ph.ZeroThreshold != 0.5 || !slices.Equal(ph.PositiveDeltas, []int64{1, 0, 1}) ||
		!sameSpans(ph.PositiveSpans, []prompb.BucketSpan{{Offset: -1, Length: 1}, {Offset: 2, Length: 2}}) {
		t.Fatalf("histogram %+v", ph)
	}
}

// Native histograms are charged to the budget: many of them in a small
// body are refused.
func TestUnmarshalMetricFamiliesNativeBudget(t *testing.T) {
	h := &dto.Histogram{Schema: ptr(int32(0)), ZeroThreshold: ptr(1.0)}
	var hs []*dto.Histogram
	for range 2000 {
		hs = append(hs, h)
	}
	data := encodeFamilies(t, []*dto.MetricFamily{nativeFamily(dto.MetricType_HISTOGRAM, hs...)})
	b := &batch.Batch{}
	st, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{MaxBatchBytes: UploadBudget(len(data))})
	if err != nil || st.Histograms != 2000 {
		t.Fatal(err, st)
	}
	raw := 0
	for _, s := range b.Series {
		raw += len(s.Histograms[0].Raw)
	}
	if st.BatchBytes < raw+2000*(histogramBytes+seriesBytes) {
		t.Fatalf("charged %d, raw histograms alone take %d", st.BatchBytes, raw)
	}
	_, err = UnmarshalMetricFamilies(data, &batch.Batch{}, testNow, false, Limits{MaxBatchBytes: st.BatchBytes - 1})
	wantError(t, err, 413, "upload expands to more than")
}

func sameSpans(a, b []prompb.BucketSpan) bool {
	return slices.EqualFunc(a, b, func(x, y prompb.BucketSpan) bool { return x.Offset == y.Offset && x.Length == y.Length })
}

// A histogram family is skimmed only when its own name is refused too:
// its native histogram series is named so.
func TestUnmarshalMetricFamiliesNativeFiltered(t *testing.T) {
	h := &dto.Histogram{Schema: ptr(int32(0)), ZeroThreshold: ptr(1.0)}
	mf := nativeFamily(dto.MetricType_HISTOGRAM, h)
	mf.Metric[0].Label = append(mf.Metric[0].Label, &dto.LabelPair{Name: ptr("_id"), Value: ptr("c")})
	data := encodeFamilies(t, []*dto.MetricFamily{mf})
	for _, tc := range []struct {
		wanted string
		labels int
	}{{"h", 3}, {"other", 2}} {
		f := &NameFilter{Wanted: func(n string) bool { return n == tc.wanted }, KeepLabel: "_id"}
		b := &batch.Batch{}
		if _, err := UnmarshalMetricFamiliesFiltered(data, b, testNow, true, Limits{}, f); err != nil {
			t.Fatal(err)
		}
		if len(b.Series) != 1 || len(b.Series[0].Labels) != tc.labels || len(b.Series[0].Histograms) != 1 {
			t.Fatalf("wanted %q: series %v", tc.wanted, b.Series)
		}
	}
}

// Exemplars go onto the series Prometheus' scrape puts them on; merged
// Exemplar messages concatenate their labels.
func TestUnmarshalMetricFamiliesExemplars(t *testing.T) {
	ex := func(id string, v float64, tsMs int64) *dto.Exemplar {
		x := &dto.Exemplar{Label: []*dto.LabelPair{{Name: ptr("trace_id"), Value: ptr(id)}}, Value: ptr(v)}
		if tsMs != 0 {
			x.Timestamp = timestamppb.New(time.UnixMilli(tsMs))
		}
		return x
	}
	bucketsWith := func(exs ...*dto.Exemplar) []*dto.Bucket {
		var bs []*dto.Bucket
		for i, x := range exs {
			bs = append(bs, &dto.Bucket{UpperBound: ptr(float64(i + 1)), CumulativeCount: ptr(uint64(i)), Exemplar: x})
		}
		return bs
	}
	native := func() *dto.Histogram {
		return &dto.Histogram{Schema: ptr(int32(0)), ZeroThreshold: ptr(1e-9), SampleCount: ptr(uint64(0))}
	}
	withList := native()
	withList.Exemplars = []*dto.Exemplar{ex("n1", 1, 0), ex("n2", 2, 5000)} // n1 has no timestamp: dropped
	withBuckets := native()
	withBuckets.Bucket = bucketsWith(ex("b1", 1, 0), ex("b2", 2, 6000))
	mfs := []*dto.MetricFamily{
		{Name: ptr("c"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Counter: &dto.Counter{Value: ptr(1.0), Exemplar: ex("c1", 0.5, 0)}}}},
		nativeFamily(dto.MetricType_HISTOGRAM, withList, withBuckets),
	}
	data := encodeFamilies(t, mfs)
	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
	got := map[string][]string{}
	for _, s := range b.Series {
		k := s.Name()
		if le, ok := s.Get("le"); ok {
			k += "{" + le + "}"
		}
		if i, ok := s.Get("i"); ok {
			k += "/" + i
		}
		for _, x := range s.Exemplars {
			got[k] = append(got[k], fmt.Sprintf("%s=%g@%d", x.Labels[0].Value, x.Value, x.Timestamp))
		}
	}
	want := map[string][]string{
		"c":             {fmt.Sprintf("c1=0.5@%d", testNow)},
		"h/a":           {"n2=2@5000"},
		"h/b":           {"b2=2@6000"}, // from the buckets, timestamped only
		"h_bucket{1}/b": {fmt.Sprintf("b1=1@%d", testNow)},
		"h_bucket{2}/b": {"b2=2@6000"},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("exemplars %v, want %v", got, want)
	}

	// Two Counter fields, each with an exemplar: one merged exemplar.
	exm := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
		protowire.AppendString(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a"), 2, protowire.BytesType), "1"))
	counter := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), exm)
	var m []byte
	m = protowire.AppendBytes(protowire.AppendTag(m, 3, protowire.BytesType), counter)
	m = protowire.AppendBytes(protowire.AppendTag(m, 3, protowire.BytesType), counter)
	var mf []byte
	mf = protowire.AppendString(protowire.AppendTag(mf, 1, protowire.BytesType), "c")
	mf = protowire.AppendBytes(protowire.AppendTag(mf, 4, protowire.BytesType), m)
	data = protowire.AppendBytes(nil, mf)
	b = &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkMetricFamiliesAgree(t, data)
	if len(b.Series) != 1 || len(b.Series[0].Exemplars) != 1 || len(b.Series[0].Exemplars[0].Labels) != 2 {
		t.Fatalf("merged exemplar: %v", b.Series)
	}
}

// Honest uploads of native histograms (client_golang's, with exemplars,
// native only or beside classic buckets) charge far below the upload
// multiple.
func TestHonestAmplificationUploadNative(t *testing.T) {
	for _, c := range []struct {
		labels  int
		classic bool
	}{{3, false}, {3, true}, {10, false}, {20, true}} {
		reg := prometheus.NewRegistry()
		var names []string
		for i := range c.labels {
			names = append(names, fmt.Sprintf("label_%d", i))
		}
		opts := prometheus.HistogramOpts{Name: "request_duration_seconds", Help: "h", NativeHistogramBucketFactor: 1.1}
		if c.classic {
			opts.Buckets = prometheus.DefBuckets
		}
		hv := prometheus.NewHistogramVec(opts, names)
		reg.MustRegister(hv)
		r := rand.New(rand.NewPCG(1, 2))
		for s := range 50 {
			var vals []string
			for i := range c.labels {
				vals = append(vals, fmt.Sprintf("value-%d-%d", i, s))
			}
			o := hv.WithLabelValues(vals...)
			for n := range 1000 {
				v := r.ExpFloat64() / 10
				if n%50 == 0 {
					o.(prometheus.ExemplarObserver).ObserveWithExemplar(v, prometheus.Labels{"trace_id": fmt.Sprintf("%032x", r.Uint64())})
				} else {
					o.Observe(v)
				}
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		data := encodeFamilies(t, mfs)
		b := &batch.Batch{}
		st, err := UnmarshalMetricFamilies(data, b, testNow, false, Limits{})
		if err != nil || st.Histograms != 50 {
			t.Fatalf("%+v %v", st, err)
		}
		for _, s := range b.Series {
			for _, h := range s.Histograms {
				var ph prompb.Histogram
				if err := ph.Unmarshal(h.Raw); err != nil || ph.ToIntHistogram().Validate() != nil {
					t.Fatalf("%+v: %v", ph, err)
				}
			}
		}
		ratio := float64(st.BatchBytes) / float64(len(data))
		t.Logf("native histograms %2d labels, classic buckets %5v: %7d decoded bytes, %d exemplars pushed, %5.2f per decoded byte",
			c.labels, c.classic, len(data), b.Exemplars(), ratio)
		if st.BatchBytes > uploadPerByte*len(data) {
			t.Errorf("over the multiple %d", uploadPerByte)
		}
	}
}
