package store

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
)

// intHist is a schema 0 histogram: 5 observations in (1,2], 5 in (2,4]
// (so its median is 2 whatever the interpolation), sum 20.
func intHist(scale uint64) *histogram.Histogram {
	return &histogram.Histogram{
		Schema: 0, Count: 10 * scale, Sum: 20 * float64(scale), ZeroThreshold: 0.001,
		PositiveSpans:   []histogram.Span{{Offset: 1, Length: 2}},
		PositiveBuckets: []int64{5 * int64(scale), 0},
	}
}

func rawInt(t testing.TB, ts int64, h *histogram.Histogram) []byte {
	t.Helper()
	p := prompb.FromIntHistogram(ts, h)
	raw, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func rawFloat(t testing.TB, ts int64, h *histogram.FloatHistogram) []byte {
	t.Helper()
	p := prompb.FromFloatHistogram(ts, h)
	raw, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// readHistograms returns the histogram samples of name{_id=id} as float
// histograms, with their timestamps.
func readHistograms(t *testing.T, s *Store, name, id string) ([]int64, []*histogram.FloatHistogram) {
	t.Helper()
	q, err := s.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, "__name__", name), labels.MustNewMatcher(labels.MatchEqual, "_id", id))
	var (
		tss []int64
		out []*histogram.FloatHistogram
	)
	for set.Next() {
		it := set.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				tss = append(tss, ts)
				out = append(out, fh)
			default:
				t.Fatalf("unexpected value type %v", vt)
			}
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return tss, out
}

func TestDecodeHistogramMatchesPrompb(t *testing.T) {
	fh := &histogram.FloatHistogram{
		Schema: 2, Count: 7.5, ZeroCount: 1.5, ZeroThreshold: 0.01, Sum: -3.25, CounterResetHint: histogram.GaugeType,
		PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []float64{1, 2, 0.5},
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []float64{2.5},
	}
	ih := &histogram.Histogram{
		Schema: -1, Count: 12, ZeroCount: 2, ZeroThreshold: 0.001, Sum: 18.4, CounterResetHint: histogram.NotCounterReset,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}}, PositiveBuckets: []int64{1, 1, -1, 0},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{3},
	}
	nhcb := &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 6, Sum: 9,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []int64{1, 1, 0}, CustomValues: []float64{0.5, 1, 5},
	}
	for name, raw := range map[string][]byte{
		"float": rawFloat(t, 1, fh), "int": rawInt(t, 2, ih), "custom buckets": rawInt(t, 3, nhcb),
		// 2.0's start_timestamp (17) is ignored.
		"int with start_timestamp": protowire.AppendVarint(protowire.AppendTag(rawInt(t, 2, ih), 17, protowire.VarintType), 12345),
	} {
		var p prompb.Histogram
		if err := p.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		h, f, err := decodeHistogram(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.IsFloatHistogram() {
			if h != nil || !sameFloatHistogram(f, p.ToFloatHistogram()) {
				t.Errorf("%s: decoded %#v %#v, want %#v", name, h, f, p.ToFloatHistogram())
			}
		} else if f != nil || !sameIntHistogram(h, p.ToIntHistogram()) {
			t.Errorf("%s: decoded %#v %#v, want %#v", name, h, f, p.ToIntHistogram())
		}
	}
	// A reserved schema above 8 is reduced to 8, as Prometheus' receiver
	// does.
	hi := &histogram.Histogram{Schema: 10, Count: 4, Sum: 4, PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}}, PositiveBuckets: []int64{1, 0, 0, 0}}
	h, _, err := decodeHistogram(rawInt(t, 1, hi))
	if err != nil || h.Schema != 8 || h.Validate() != nil {
		t.Fatalf("schema 10: %v %v", h, err)
	}
	// ... and one whose spans need more buckets than it has is refused
	// as invalid, not a panic.
	hi.PositiveBuckets = hi.PositiveBuckets[:1]
	if _, _, err := decodeHistogram(rawInt(t, 1, hi)); err == nil {
		t.Fatal("schema 10 with too few buckets decoded")
	} else if r, ok := refusal(err); !ok || r != "invalid" {
		t.Fatalf("schema 10 with too few buckets: %v", err)
	}
	for name, raw := range map[string][]byte{
		"truncated":            rawInt(t, 2, ih)[:5],
		"wrong wire type":      protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 1),
		"packed doubles split": protowire.AppendBytes(protowire.AppendTag(nil, 13, protowire.BytesType), []byte{1, 2, 3}),
		"bad span":             protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), []byte{0x0a}),
		"unknown reset hint":   protowire.AppendVarint(protowire.AppendTag(nil, 14, protowire.VarintType), 9),
		"garbage":              []byte("\xff\xff\xff\xff"),
	} {
		if _, _, err := decodeHistogram(raw); !errors.Is(err, errRawHistogram) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeHistogram: decodeHistogram never panics, and whatever gogo's
// prompb.Histogram decodes it decodes the same.
func FuzzDecodeHistogram(f *testing.F) {
	f.Add(rawInt(f, 1, intHist(1)))
	f.Add(rawFloat(f, 1, intHist(3).ToFloat(nil)))
	f.Add(rawInt(f, 1, &histogram.Histogram{Schema: histogram.CustomBucketsSchema, Count: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{1}, CustomValues: []float64{1}}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, fh, err := decodeHistogram(raw)
		var p prompb.Histogram
		perr := p.Unmarshal(raw)
		if err != nil {
			if !errors.Is(err, errRawHistogram) && !histogram.IsExponentialSchemaReserved(p.Schema) {
				t.Fatalf("error %v is not errRawHistogram", err)
			}
			return
		}
		if perr != nil {
			// gogo reads past a packed run whose length splits an
			// element; decodeHistogram refuses it, never the reverse.
			t.Fatalf("decoded what prompb refuses (%v): %v %v", perr, h, fh)
		}
		if p.Schema > histogram.ExponentialSchemaMax && histogram.IsExponentialSchemaReserved(p.Schema) {
			return // reduced
		}
		if p.IsFloatHistogram() {
			want := p.ToFloatHistogram()
			if h != nil || !sameFloatHistogram(fh, want) {
				t.Fatalf("decoded %#v, prompb %#v", fh, want)
			}
		} else {
			want := p.ToIntHistogram()
			if fh != nil || !sameIntHistogram(h, want) {
				t.Fatalf("decoded %#v, prompb %#v", h, want)
			}
		}
	})
}

// sameIntHistogram compares field by field, nil and empty slices alike,
// NaN equal to NaN.
func sameIntHistogram(a, b *histogram.Histogram) bool {
	return a.CounterResetHint == b.CounterResetHint && a.Schema == b.Schema && sameFloat(a.ZeroThreshold, b.ZeroThreshold) &&
		a.ZeroCount == b.ZeroCount && a.Count == b.Count && sameFloat(a.Sum, b.Sum) &&
		sameSlice(a.PositiveSpans, b.PositiveSpans) && sameSlice(a.NegativeSpans, b.NegativeSpans) &&
		sameSlice(a.PositiveBuckets, b.PositiveBuckets) && sameSlice(a.NegativeBuckets, b.NegativeBuckets) &&
		sameFloats(a.CustomValues, b.CustomValues)
}

func sameFloatHistogram(a, b *histogram.FloatHistogram) bool {
	return a.CounterResetHint == b.CounterResetHint && a.Schema == b.Schema && sameFloat(a.ZeroThreshold, b.ZeroThreshold) &&
		sameFloat(a.ZeroCount, b.ZeroCount) && sameFloat(a.Count, b.Count) && sameFloat(a.Sum, b.Sum) &&
		sameSlice(a.PositiveSpans, b.PositiveSpans) && sameSlice(a.NegativeSpans, b.NegativeSpans) &&
		sameFloats(a.PositiveBuckets, b.PositiveBuckets) && sameFloats(a.NegativeBuckets, b.NegativeBuckets) &&
		sameFloats(a.CustomValues, b.CustomValues)
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameFloat(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameSlice[T comparable](a, b []T) bool {
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

func TestAppendHistogramsAndExemplars(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir, Options{})
	ctx := context.Background()
	t0 := now()
	fh := intHist(2).ToFloat(nil)
	fh.Count += 0.5 // a float count: a float histogram
	fh.ZeroCount = 0.5
	sr := []batch.Series{
		{
			Labels:     []batch.Label{{Name: "__name__", Value: "lat"}, {Name: "_id", Value: "c"}},
			Histograms: []batch.Histogram{{Timestamp: t0, Raw: rawInt(t, t0, intHist(1))}, {Timestamp: t0 + 1000, Raw: rawInt(t, t0+1000, intHist(2))}},
			Exemplars: []batch.Exemplar{
				{Labels: []batch.Label{{Name: "trace_id", Value: "abc"}}, Value: 1.5, Timestamp: t0},
				{Labels: []batch.Label{{Name: "trace_id", Value: "def"}}, Value: 3, Timestamp: t0 + 1000},
			},
		},
		{
			Labels:     []batch.Label{{Name: "__name__", Value: "flat"}, {Name: "_id", Value: "c"}},
			Histograms: []batch.Histogram{{Timestamp: t0, Raw: rawFloat(t, t0, fh)}},
		},
		{
			Labels:    []batch.Label{{Name: "__name__", Value: "up"}, {Name: "_id", Value: "c"}},
			Samples:   []batch.Sample{{Timestamp: t0, Value: 1}},
			Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: "x"}}, Value: 1, Timestamp: t0}},
		},
	}
	w, err := s.AppendWritten(ctx, "c", sr)
	if err != nil {
		t.Fatal(err)
	}
	if w != (Written{Samples: 1, Histograms: 3, Exemplars: 3}) {
		t.Fatalf("written %+v", w)
	}
	if n := testutil.ToFloat64(s.m.appended); n != 4 {
		t.Errorf("appended samples = %v, want float and histogram samples", n)
	}
	if n := testutil.ToFloat64(s.m.appendedHistograms); n != 3 {
		t.Errorf("appended histograms = %v", n)
	}
	if n := testutil.ToFloat64(s.m.appendedExemplars); n != 3 {
		t.Errorf("appended exemplars = %v", n)
	}
	check := func(s *Store) {
		t.Helper()
		ts, hs := readHistograms(t, s, "lat", "c")
		if len(hs) < 2 || ts[1] != t0+1000 || hs[1].Count != 20 || hs[1].Sum != 40 {
			t.Fatalf("lat: %v %v", ts, hs)
		}
		if _, hs := readHistograms(t, s, "flat", "c"); len(hs) != 1 || hs[0].Count != 20.5 || hs[0].ZeroCount != 0.5 {
			t.Fatalf("flat: %v", hs)
		}
		eq, err := s.db.ExemplarQuerier(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := eq.Select(t0, t0+1000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "lat")})
		if err != nil || len(res) != 1 || len(res[0].Exemplars) != 2 || res[0].Exemplars[1].Labels.Get("trace_id") != "def" {
			t.Fatalf("exemplars %v %v", res, err)
		}
	}
	check(s)

	// The newest histogram and exemplar again (a retry) are accepted;
	// an exemplar already stored is not stored twice but counts as
	// written, as in Prometheus.
	retry := sr[0]
	retry.Histograms, retry.Exemplars = retry.Histograms[1:], retry.Exemplars[1:]
	if w, err := s.AppendWritten(ctx, "c", []batch.Series{retry}); err != nil || w != (Written{Histograms: 1, Exemplars: 1}) {
		t.Fatalf("identical resend: %+v %v", w, err)
	}
	check(s)

	// Refusals: a histogram that does not decode, one Validate refuses
	// (count below its buckets), one out of order, another histogram at a
	// stored timestamp; an out-of-order exemplar is dropped without
	// failing the request. The good sample is stored.
	bad := intHist(1)
	bad.Count = 3
	w, err = s.AppendWritten(ctx, "c", []batch.Series{
		{
			Labels: []batch.Label{{Name: "__name__", Value: "lat"}, {Name: "_id", Value: "c"}},
			Histograms: []batch.Histogram{
				{Timestamp: t0 + 2000, Raw: []byte("\x0a\xff")},
				{Timestamp: t0 + 2000, Raw: rawInt(t, t0+2000, bad)},
				{Timestamp: t0 - 1000, Raw: rawInt(t, t0-1000, intHist(1))},
				{Timestamp: t0 + 1000, Raw: rawInt(t, t0+1000, intHist(3))},
				{Timestamp: t0 + 3000, Raw: rawInt(t, t0+3000, intHist(3))},
			},
			Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: "old"}}, Value: 1, Timestamp: t0 - 5000}},
		},
	})
	var fe *forward.Error
	if !errors.As(err, &fe) || fe.Recoverable || fe.Status != http.StatusBadRequest {
		t.Fatalf("want non-recoverable 400, got %#v", err)
	}
	if w != (Written{Histograms: 1}) {
		t.Fatalf("written %+v", w)
	}
	for reason, want := range map[string]float64{"invalid": 2, "out_of_order": 1, "duplicate": 1} {
		if n := testutil.ToFloat64(s.m.refused.WithLabelValues(reason)); n != want {
			t.Errorf("refused{%s} = %v, want %v", reason, n, want)
		}
	}
	if n := testutil.ToFloat64(s.m.refusedExemplars.WithLabelValues("out_of_order")); n != 1 {
		t.Errorf("refused exemplars{out_of_order} = %v", n)
	}
	if ts, _ := readHistograms(t, s, "lat", "c"); len(ts) != 3 || ts[2] != t0+3000 {
		t.Fatalf("after refusals: %v", ts)
	}

	// WAL replay brings histograms and exemplars back.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := openTest(t, dir, Options{})
	check(s2)
}

func TestExemplarStorageOff(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{MaxExemplars: -1})
	t0 := now()
	w, err := s.AppendWritten(context.Background(), "c", []batch.Series{{
		Labels:    []batch.Label{{Name: "__name__", Value: "up"}},
		Samples:   []batch.Sample{{Timestamp: t0, Value: 1}},
		Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: "x"}}, Value: 1, Timestamp: t0}},
	}})
	if err != nil || w != (Written{Samples: 1}) {
		t.Fatalf("%+v %v", w, err)
	}
}

// Exemplar labels alias the request buffer like series labels.
func TestExemplarsDoNotAliasTheRequestBuffer(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{NoWALFsync: true})
	buf := []byte("trace_id" + "abc")
	t0 := now()
	ex := batch.Exemplar{Labels: []batch.Label{{Name: unsafe.String(&buf[0], 8), Value: unsafe.String(&buf[8], 3)}}, Value: 1, Timestamp: t0}
	if err := s.Append(context.Background(), "c", []batch.Series{{
		Labels: []batch.Label{{Name: "__name__", Value: "up"}}, Samples: []batch.Sample{{Timestamp: t0, Value: 1}}, Exemplars: []batch.Exemplar{ex},
	}}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXXXXX")
	eq, _ := s.db.ExemplarQuerier(context.Background())
	res, err := eq.Select(t0, t0, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")})
	if err != nil || len(res) != 1 || res[0].Exemplars[0].Labels.Get("trace_id") != "abc" {
		t.Fatalf("exemplar labels overwritten with the request buffer: %v %v", res, err)
	}
}

func TestSendStoresHistogramsAndExemplars(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{})
	t0 := now()
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     []prompb.Label{{Name: "__name__", Value: "lat"}, {Name: "_id", Value: "c"}},
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(t0, intHist(1))},
		Exemplars:  []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "a"}}, Value: 2, Timestamp: t0}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), "c", snappy.Encode(nil, raw)); err != nil {
		t.Fatal(err)
	}
	if ts, hs := readHistograms(t, s, "lat", "c"); len(hs) != 1 || ts[0] != t0 || hs[0].Count != 10 {
		t.Fatalf("read %v %v", ts, hs)
	}
	if n := testutil.ToFloat64(s.m.appendedExemplars); n != 1 {
		t.Fatalf("exemplars appended = %v", n)
	}
	// A histogram breaking the rules (count below its buckets) is a 400.
	bad := intHist(1)
	bad.Count = 1
	wr.Timeseries[0].Histograms = []prompb.Histogram{prompb.FromIntHistogram(t0+1000, bad)}
	wr.Timeseries[0].Exemplars = nil
	if raw, err = wr.Marshal(); err != nil {
		t.Fatal(err)
	}
	var fe *forward.Error
	if err := s.Send(context.Background(), "c", snappy.Encode(nil, raw)); !errors.As(err, &fe) || fe.Status != http.StatusBadRequest {
		t.Fatalf("invalid histogram: %#v", err)
	}
}

func BenchmarkAppendHistograms(b *testing.B) {
	s, err := Open(b.TempDir(), Options{NoWALFsync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const nSeries = 100
	t0 := now()
	sr := make([]batch.Series, nSeries)
	h := &histogram.Histogram{
		Schema: 3, Count: 100, Sum: 250, ZeroThreshold: 1e-128,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 10}, {Offset: 2, Length: 10}}, PositiveBuckets: []int64{5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for i := range sr {
		sr[i].Labels = []batch.Label{{Name: "__name__", Value: "lat"}, {Name: "i", Value: strconv.Itoa(i)}}
		sr[i].Histograms = []batch.Histogram{{}}
	}
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		at := t0 + int64(n)
		for i := range sr {
			sr[i].Histograms[0] = batch.Histogram{Timestamp: at, Raw: rawInt(b, at, h)}
		}
		if err := s.Append(context.Background(), "c", sr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*nSeries)/b.Elapsed().Seconds(), "histograms/s")
}
