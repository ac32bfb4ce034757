package forward

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// toProm builds the gogo request for the same series and metadata.
func toProm(series []batch.Series, md ...batch.Metadata) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range series {
		ts := prompb.TimeSeries{Labels: toPromLabels(s.Labels)}
		for _, smp := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
		}
		for _, e := range s.Exemplars {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: toPromLabels(e.Labels), Value: e.Value, Timestamp: e.Timestamp})
		}
		for _, h := range s.Histograms {
			ts.Histograms = append(ts.Histograms, promHistogram(h.Raw))
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	for _, m := range md {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_MetricType(m.Type), MetricFamilyName: m.Family, Help: m.Help, Unit: m.Unit})
	}
	return req
}

func toPromLabels(ls []batch.Label) []prompb.Label {
	var out []prompb.Label
	for _, l := range ls {
		out = append(out, prompb.Label{Name: l.Name, Value: l.Value})
	}
	return out
}

// promHistogram decodes a histogram's Raw with gogo (a start_timestamp,
// field 17, lands in XXX_unrecognized).
func promHistogram(raw []byte) prompb.Histogram {
	var h prompb.Histogram
	if err := h.Unmarshal(raw); err != nil {
		panic(fmt.Sprintf("test histogram does not decode: %v", err))
	}
	return h
}

// checkDecodes asserts that gogo decodes data back into series and md. -0
// is expected to come back as +0 (proto3 omits it, as gogo's Marshal
// does).
func checkDecodes(t *testing.T, data []byte, series []batch.Series, md ...batch.Metadata) {
	t.Helper()
	var got prompb.WriteRequest
	if err := got.Unmarshal(data); err != nil {
		t.Fatalf("gogo Unmarshal: %v", err)
	}
	if len(got.Timeseries) != len(series) {
		t.Fatalf("got %d series, want %d", len(got.Timeseries), len(series))
	}
	for i, s := range series {
		g := got.Timeseries[i]
		if len(g.Labels) != len(s.Labels) || len(g.Samples) != len(s.Samples) || len(g.Histograms) != len(s.Histograms) || len(g.Exemplars) != len(s.Exemplars) {
			t.Fatalf("series %d: got %d labels %d samples %d histograms %d exemplars, want %d %d %d %d", i,
				len(g.Labels), len(g.Samples), len(g.Histograms), len(g.Exemplars), len(s.Labels), len(s.Samples), len(s.Histograms), len(s.Exemplars))
		}
		checkLabels(t, fmt.Sprintf("series %d", i), g.Labels, s.Labels)
		for j, smp := range s.Samples {
			if g.Samples[j].Timestamp != smp.Timestamp || !sameFloat(g.Samples[j].Value, smp.Value) {
				t.Fatalf("series %d sample %d: got %v@%d want %v@%d", i, j, g.Samples[j].Value, g.Samples[j].Timestamp, smp.Value, smp.Timestamp)
			}
		}
		for j, e := range s.Exemplars {
			ge := g.Exemplars[j]
			checkLabels(t, fmt.Sprintf("series %d exemplar %d", i, j), ge.Labels, e.Labels)
			if ge.Timestamp != e.Timestamp || !sameFloat(ge.Value, e.Value) {
				t.Fatalf("series %d exemplar %d: got %v@%d want %v@%d", i, j, ge.Value, ge.Timestamp, e.Value, e.Timestamp)
			}
		}
		for j, h := range s.Histograms {
			want := promHistogram(h.Raw)
			if !reflect.DeepEqual(g.Histograms[j], want) {
				t.Fatalf("series %d histogram %d:\n got %+v\nwant %+v", i, j, g.Histograms[j], want)
			}
			if g.Histograms[j].Timestamp != h.Timestamp {
				t.Fatalf("series %d histogram %d: timestamp %d, want %d", i, j, g.Histograms[j].Timestamp, h.Timestamp)
			}
		}
	}
	if len(got.Metadata) != len(md) {
		t.Fatalf("got %d metadata, want %d", len(got.Metadata), len(md))
	}
	for i, m := range md {
		g := got.Metadata[i]
		if uint8(g.Type) != uint8(m.Type) || g.MetricFamilyName != m.Family || g.Help != m.Help || g.Unit != m.Unit {
			t.Fatalf("metadata %d: got %+v want %+v", i, g, m)
		}
	}
}

func checkLabels(t *testing.T, what string, got []prompb.Label, want []batch.Label) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d labels, want %d", what, len(got), len(want))
	}
	for j, l := range want {
		if got[j].Name != l.Name || got[j].Value != l.Value {
			t.Fatalf("%s label %d: got %q=%q want %q=%q", what, j, got[j].Name, got[j].Value, l.Name, l.Value)
		}
	}
}

// sameFloat compares bit patterns, -0 matching the +0 it decodes as.
func sameFloat(got, want float64) bool {
	if want == 0 {
		want = 0 // -0 -> +0
	}
	return math.Float64bits(got) == math.Float64bits(want)
}

func checkAgainstGogo(t *testing.T, series []batch.Series, md ...batch.Metadata) {
	t.Helper()
	got := AppendMetadata(AppendWriteRequest(nil, series), md)
	want, err := toProm(series, md...).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from gogo Marshal:\n got %x\nwant %x", got, want)
	}
	if n := EncodedSize(series) + metadataSize(md); n != len(got) {
		t.Fatalf("EncodedSize = %d, encoded %d bytes", n, len(got))
	}
	checkDecodes(t, got, series, md...)
}

func randString(r *rand.Rand, maxLen int) string {
	n := r.IntN(maxLen + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randSeries(r *rand.Rand, n int) []batch.Series {
	specials := []float64{0, math.Copysign(0, -1), 1, -1, math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}
	stamps := []int64{0, 1, -1, 127, 128, math.MaxInt64, math.MinInt64, 1_700_000_000_000}
	series := make([]batch.Series, n)
	for i := range series {
		for range r.IntN(12) {
			maxLen := 20
			if r.IntN(10) == 0 {
				maxLen = 20000 // multi-byte length varints
			}
			series[i].Labels = append(series[i].Labels, batch.Label{Name: randString(r, maxLen), Value: randString(r, maxLen)})
		}
		for range r.IntN(5) {
			smp := batch.Sample{Timestamp: r.Int64() - r.Int64(), Value: r.NormFloat64() * 1e6}
			if r.IntN(3) == 0 {
				smp.Value = specials[r.IntN(len(specials))]
			}
			if r.IntN(3) == 0 {
				smp.Timestamp = stamps[r.IntN(len(stamps))]
			}
			series[i].Samples = append(series[i].Samples, smp)
		}
		if r.IntN(3) == 0 {
			for range r.IntN(4) {
				ts := r.Int64() - r.Int64()
				if r.IntN(3) == 0 {
					ts = stamps[r.IntN(len(stamps))]
				}
				series[i].Histograms = append(series[i].Histograms, batch.Histogram{Timestamp: ts, Raw: randHistogram(r, ts, 30)})
			}
		}
		if r.IntN(3) == 0 {
			for range r.IntN(4) {
				e := batch.Exemplar{Timestamp: r.Int64() - r.Int64(), Value: r.NormFloat64()}
				if r.IntN(3) == 0 {
					e.Value = specials[r.IntN(len(specials))]
				}
				if r.IntN(3) == 0 {
					e.Timestamp = stamps[r.IntN(len(stamps))]
				}
				for range r.IntN(3) {
					e.Labels = append(e.Labels, batch.Label{Name: randString(r, 10), Value: randString(r, 40)})
				}
				series[i].Exemplars = append(series[i].Exemplars, e)
			}
		}
	}
	return series
}

// randHistogram returns the gogo encoding of a random prometheus.Histogram
// at ts with up to maxBuckets buckets per side; a third of them carry a
// remote write 2.0 start_timestamp (field 17) after gogo's fields, as a 2.0
// decoder would leave it in Raw.
func randHistogram(r *rand.Rand, ts int64, maxBuckets int) []byte {
	h := prompb.Histogram{
		Timestamp:     ts,
		Schema:        int32(r.IntN(13)) - 4,
		Sum:           r.NormFloat64() * 100,
		ZeroThreshold: []float64{0, 1e-128, 0.001}[r.IntN(3)],
		ResetHint:     prompb.Histogram_ResetHint(r.IntN(4)),
	}
	spans := func() []prompb.BucketSpan {
		var out []prompb.BucketSpan
		for range r.IntN(3) {
			out = append(out, prompb.BucketSpan{Offset: int32(r.IntN(20)) - 10, Length: uint32(r.IntN(maxBuckets + 1))})
		}
		return out
	}
	h.PositiveSpans, h.NegativeSpans = spans(), spans()
	if r.IntN(2) == 0 {
		h.Count = &prompb.Histogram_CountInt{CountInt: r.Uint64N(1000)}
		h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: r.Uint64N(10)}
		for range r.IntN(maxBuckets + 1) {
			h.PositiveDeltas = append(h.PositiveDeltas, r.Int64N(100)-50)
		}
		for range r.IntN(maxBuckets + 1) {
			h.NegativeDeltas = append(h.NegativeDeltas, r.Int64N(100)-50)
		}
	} else {
		h.Count = &prompb.Histogram_CountFloat{CountFloat: r.Float64() * 1000}
		h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: r.Float64()}
		for range r.IntN(maxBuckets + 1) {
			h.PositiveCounts = append(h.PositiveCounts, r.Float64()*10)
		}
		if r.IntN(4) == 0 {
			h.Schema = -53
			h.CustomValues = append(h.CustomValues, 0.1, 1, 10)
		}
	}
	raw, err := h.Marshal()
	if err != nil {
		panic(err)
	}
	if r.IntN(3) == 0 {
		raw = appendStartTimestamp(raw, ts-r.Int64N(1_000_000))
	}
	return raw
}

// appendStartTimestamp adds remote write 2.0's Histogram.start_timestamp.
func appendStartTimestamp(raw []byte, st int64) []byte {
	return binary.AppendUvarint(append(raw, 0x88, 0x01), uint64(st)) // tag: field 17, varint
}

func randMetadata(r *rand.Rand, n int) []batch.Metadata {
	md := make([]batch.Metadata, n)
	for i := range md {
		md[i] = batch.Metadata{Family: randString(r, 30), Type: batch.MetricType(r.IntN(8)), Help: randString(r, 80), Unit: randString(r, 5)}
		if r.IntN(10) == 0 {
			md[i].Help = randString(r, 3000)
		}
	}
	return md
}

func TestAppendWriteRequestMatchesGogo(t *testing.T) {
	cases := map[string][]batch.Series{
		"nil":                nil,
		"empty series":       {{}},
		"empty label":        {{Labels: []batch.Label{{}}, Samples: []batch.Sample{{}}}},
		"empty name":         {{Labels: []batch.Label{{Value: "v"}}}},
		"empty value":        {{Labels: []batch.Label{{Name: "n"}}}},
		"negative zero":      {{Samples: []batch.Sample{{Timestamp: 5, Value: math.Copysign(0, -1)}}}},
		"negative timestamp": {{Samples: []batch.Sample{{Timestamp: -1, Value: 1}}}},
		"stale":              {{Labels: []batch.Label{{Name: "__name__", Value: "up"}}, Samples: []batch.Sample{{Timestamp: 1, Value: math.Float64frombits(value.StaleNaN)}}}},
		"long":               {{Labels: []batch.Label{{Name: strings.Repeat("n", 300), Value: strings.Repeat("v", 70000)}}}},
		// The one-byte fast path ends where a label's message reaches 128 bytes.
		"label of 127 bytes": {{Labels: []batch.Label{{Name: strings.Repeat("n", 60), Value: strings.Repeat("v", 63)}}}},
		"label of 128 bytes": {{Labels: []batch.Label{{Name: strings.Repeat("n", 60), Value: strings.Repeat("v", 64)}}}},
		"value of 127 bytes": {{Labels: []batch.Label{{Name: "n", Value: strings.Repeat("v", 127)}, {Name: "o", Value: "w"}}}},
		"empty histogram":    {{Histograms: []batch.Histogram{{}}}},
		"empty exemplar":     {{Exemplars: []batch.Exemplar{{}}}},
		"exemplar zeros":     {{Exemplars: []batch.Exemplar{{Labels: []batch.Label{{}, {Name: "trace_id"}}, Value: math.Copysign(0, -1)}}}},
		"exemplar only": {{Labels: []batch.Label{{Name: "__name__", Value: "x"}},
			Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: strings.Repeat("a", 200)}}, Value: 1.5, Timestamp: -7}}}},
		"histogram and samples": {{Labels: []batch.Label{{Name: "__name__", Value: "x"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 2}},
			Histograms: []batch.Histogram{{Timestamp: 3, Raw: mustMarshal(prompb.Histogram{Timestamp: 3, Count: &prompb.Histogram_CountInt{}, ZeroCount: &prompb.Histogram_ZeroCountInt{}})}},
			Exemplars:  []batch.Exemplar{{Value: 2, Timestamp: 1}}}},
		"long histogram": {{Histograms: []batch.Histogram{{Timestamp: 9, Raw: randHistogram(rand.New(rand.NewPCG(9, 9)), 9, 5000)}}}},
	}
	for name, series := range cases {
		t.Run(name, func(t *testing.T) { checkAgainstGogo(t, series) })
	}
	mdCases := map[string][]batch.Metadata{
		"empty":     {{}},
		"type only": {{Type: 7}},
		"full":      {{Family: "http_requests", Type: 1, Help: "Requests.", Unit: "requests"}, {Family: "up", Type: 2}},
		"long help": {{Family: "f", Help: strings.Repeat("h", 20000)}},
	}
	for name, md := range mdCases {
		t.Run("metadata "+name, func(t *testing.T) { checkAgainstGogo(t, cases["histogram and samples"], md...) })
		t.Run("metadata only "+name, func(t *testing.T) { checkAgainstGogo(t, nil, md...) })
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		series := randSeries(r, r.IntN(20))
		md := randMetadata(r, r.IntN(3))
		t.Run(fmt.Sprintf("random%d", i), func(t *testing.T) { checkAgainstGogo(t, series, md...) })
	}
}

func mustMarshal(h prompb.Histogram) []byte {
	raw, err := h.Marshal()
	if err != nil {
		panic(err)
	}
	return raw
}

func TestAppendWriteRequestKeepsPrefix(t *testing.T) {
	series := randSeries(rand.New(rand.NewPCG(3, 4)), 10)
	prefix := []byte("prefix")
	got := AppendWriteRequest(append([]byte(nil), prefix...), series)
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], AppendWriteRequest(nil, series)) {
		t.Fatal("AppendWriteRequest did not append after the existing bytes")
	}
}

func FuzzAppendWriteRequest(f *testing.F) {
	f.Add([]byte("\x02a\x01b\x00\x01\x02"), int64(0), 0.0)
	f.Add([]byte{}, int64(-1), math.Inf(1))
	f.Fuzz(func(t *testing.T, data []byte, ts int64, v float64) {
		// Carve data into labels: each label takes a length byte for
		// name and value; a zero length byte ends the series.
		var series []batch.Series
		cur := batch.Series{}
		for len(data) > 0 {
			n := int(data[0]) % (len(data))
			data = data[1:]
			if n == 0 {
				cur.Samples = append(cur.Samples, batch.Sample{Timestamp: ts, Value: v})
				series = append(series, cur)
				cur = batch.Series{}
				ts, v = ts*3+1, v*2
				continue
			}
			n = min(n, len(data))
			name := string(data[:n])
			data = data[n:]
			m := min(n/2, len(data))
			cur.Labels = append(cur.Labels, batch.Label{Name: name, Value: string(data[:m])})
			data = data[m:]
		}
		series = append(series, cur)
		checkAgainstGogo(t, series)
	})
}

func TestEncodeSnappyRoundTrip(t *testing.T) {
	series := randSeries(rand.New(rand.NewPCG(5, 6)), 50)
	var b Buffers
	body, err := b.Encode(series)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatalf("snappy block decode: %v", err)
	}
	if !bytes.Equal(raw, AppendWriteRequest(nil, series)) || !bytes.Equal(raw, b.Uncompressed()) {
		t.Fatal("decompressed body differs from the protobuf encoding")
	}
	checkDecodes(t, raw, series)

	// Reuse: a second, smaller encode must not carry over old bytes.
	body, err = b.Encode(series[:1])
	if err != nil {
		t.Fatal(err)
	}
	raw, err = snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	checkDecodes(t, raw, series[:1])
}

func benchSeries(n, labels int) []batch.Series {
	series := make([]batch.Series, n)
	for i := range series {
		ls := make([]batch.Label, labels)
		ls[0] = batch.Label{Name: "__name__", Value: "cluster:usage:workload:capacity_physical_cpu_cores:sum"}
		for j := 1; j < labels; j++ {
			ls[j] = batch.Label{Name: fmt.Sprintf("label_%02d", j), Value: fmt.Sprintf("value-%d-%d", i, j)}
		}
		series[i] = batch.Series{Labels: ls, Samples: []batch.Sample{{Timestamp: 1_700_000_000_000 + int64(i), Value: float64(i) * 1.5}}}
	}
	return series
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	series := benchSeries(500, 10)
	b := GetBuffers()
	defer PutBuffers(b)
	if _, err := b.Encode(series); err != nil { // warm up the buffers
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := b.Encode(series); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Encode allocated %v times per run, want 0", allocs)
	}
	dst := make([]byte, 0, EncodedSize(series))
	allocs = testing.AllocsPerRun(20, func() { dst = AppendWriteRequest(dst[:0], series) })
	if allocs != 0 {
		t.Fatalf("AppendWriteRequest allocated %v times per run, want 0", allocs)
	}
}

func TestPoolable(t *testing.T) {
	if poolable(nil) {
		t.Error("nil is poolable")
	}
	if !poolable(&Buffers{proto: make([]byte, 0, 1024)}) {
		t.Error("small buffers not poolable")
	}
	if poolable(&Buffers{proto: make([]byte, 0, maxPooledBufferBytes+1)}) || poolable(&Buffers{snappy: make([]byte, 0, maxPooledBufferBytes+1)}) {
		t.Error("huge buffers poolable")
	}
	PutBuffers(nil) // must not panic
}

func BenchmarkEncode(b *testing.B) {
	series := benchSeries(500, 10)
	bufs := GetBuffers()
	defer PutBuffers(bufs)
	body, _ := bufs.Encode(series)
	b.SetBytes(int64(len(bufs.Uncompressed())))
	b.ReportMetric(float64(len(body)), "compressed-bytes")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := bufs.Encode(series); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendWriteRequest(b *testing.B) {
	series := benchSeries(500, 10)
	dst := AppendWriteRequest(nil, series)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = AppendWriteRequest(dst[:0], series)
	}
}

func BenchmarkGogoMarshal(b *testing.B) {
	req := toProm(benchSeries(500, 10))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := req.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// flatten concatenates groups, merging consecutive pieces of a split series
// back together: consecutive series with the same labels merge (so compare
// with flatten of the input when it may repeat labels back to back).
func flatten(groups [][]batch.Series) []batch.Series {
	var out []batch.Series
	for _, g := range groups {
		for _, s := range g {
			if n := len(out); n > 0 && slices.Equal(out[n-1].Labels, s.Labels) {
				out[n-1].Samples = append(out[n-1].Samples, s.Samples...)
				out[n-1].Histograms = append(out[n-1].Histograms, s.Histograms...)
				out[n-1].Exemplars = append(out[n-1].Exemplars, s.Exemplars...)
				continue
			}
			out = append(out, batch.Series{Labels: s.Labels, Samples: append([]batch.Sample(nil), s.Samples...),
				Histograms: append([]batch.Histogram(nil), s.Histograms...), Exemplars: append([]batch.Exemplar(nil), s.Exemplars...)})
		}
	}
	return out
}

func sameSeries(a, b []batch.Series) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].Labels, b[i].Labels) ||
			!slices.EqualFunc(a[i].Samples, b[i].Samples, func(x, y batch.Sample) bool {
				return x.Timestamp == y.Timestamp && math.Float64bits(x.Value) == math.Float64bits(y.Value)
			}) ||
			!slices.EqualFunc(a[i].Histograms, b[i].Histograms, func(x, y batch.Histogram) bool { return x.Timestamp == y.Timestamp && bytes.Equal(x.Raw, y.Raw) }) ||
			!slices.EqualFunc(a[i].Exemplars, b[i].Exemplars, func(x, y batch.Exemplar) bool {
				return slices.Equal(x.Labels, y.Labels) && math.Float64bits(x.Value) == math.Float64bits(y.Value) && x.Timestamp == y.Timestamp
			}) {
			return false
		}
	}
	return true
}

func TestSplitSeries(t *testing.T) {
	if got := SplitSeries(nil, 100); got != nil {
		t.Fatalf("SplitSeries(nil) = %v, want nil", got)
	}
	series := benchSeries(200, 5)
	one := EncodedSize(series[:1])
	for _, maxBytes := range []int{one, one + 1, 3*one - 1, 3 * one, 10 * one, EncodedSize(series), EncodedSize(series) + 1} {
		groups := SplitSeries(series, maxBytes)
		for i, g := range groups {
			if n := EncodedSize(g); n > maxBytes && (len(g) != 1 || g[0].Points()+len(g[0].Exemplars) > 1) {
				// Only a lone series with one item may exceed the limit.
				t.Fatalf("max %d: group %d encodes to %d bytes", maxBytes, i, n)
			}
			if cap(g) != len(g) {
				t.Fatalf("max %d: group %d capacity not clipped", maxBytes, i)
			}
			// Greedy: the next series would not have fitted.
			if i+1 < len(groups) && EncodedSize(g)+EncodedSize(groups[i+1][:1]) <= maxBytes {
				t.Fatalf("max %d: group %d could have taken one more series", maxBytes, i)
			}
		}
		if !sameSeries(flatten(groups), series) {
			t.Fatalf("max %d: groups do not concatenate to the input", maxBytes)
		}
	}
	if got := SplitSeries(series, EncodedSize(series)); len(got) != 1 {
		t.Fatalf("exact fit split into %d groups", len(got))
	}
	if got := SplitSeries(series, 0); len(got) != 1 || len(got[0]) != len(series) {
		t.Fatalf("maxBytes 0 should use the 4 MiB default")
	}
}

func TestSplitSeriesSplitsLargeSeriesBySamples(t *testing.T) {
	big := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "big"}}}
	for i := range 1000 {
		big.Samples = append(big.Samples, batch.Sample{Timestamp: int64(i + 1), Value: float64(i)})
	}
	small := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "small"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 1}}}
	series := []batch.Series{small, big, small}
	const maxBytes = 1000
	groups := SplitSeries(series, maxBytes)
	if len(groups) < 1+EncodedSize(series[1:2])/maxBytes+1 {
		t.Fatalf("only %d groups", len(groups))
	}
	for i, g := range groups {
		if n := EncodedSize(g); n > maxBytes {
			t.Fatalf("group %d encodes to %d bytes", i, n)
		}
	}
	if !sameSeries(flatten(groups), series) {
		t.Fatal("groups do not concatenate to the input")
	}
	checkAgainstGogo(t, groups[1])
}

func TestSplitSeriesOversizedLabels(t *testing.T) {
	huge := batch.Series{Labels: []batch.Label{{Name: "x", Value: strings.Repeat("v", 500)}}, Samples: []batch.Sample{{Timestamp: 1, Value: 1}, {Timestamp: 2, Value: 2}}}
	empty := batch.Series{Labels: []batch.Label{{Name: "y", Value: strings.Repeat("v", 500)}}}
	groups := SplitSeries([]batch.Series{huge, empty}, 100)
	// One sample per group for huge, then empty alone.
	if len(groups) != 3 || len(groups[0][0].Samples) != 1 || len(groups[1][0].Samples) != 1 || len(groups[2][0].Samples) != 0 {
		t.Fatalf("unexpected groups %+v", groups)
	}
}

// EncodeSplit sends exactly the bodies of SplitSeries' groups, each
// encoded on its own, in order.
func TestEncodeSplitMatchesSplitSeries(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var b, ref Buffers
	for iter := range 300 {
		series := randSeries(r, r.IntN(40))
		maxBytes := []int{0, 1, 50, 200, 1000, 5000, 30000, 1 << 20}[iter%8]
		var want [][]byte
		for _, part := range SplitSeries(series, maxBytes) {
			body, err := ref.Encode(part)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, raw)
		}
		var got [][]byte
		err := b.EncodeSplit(series, maxBytes, func(body []byte) error {
			raw, err := snappy.Decode(nil, body)
			got = append(got, raw)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("iteration %d (max %d): %d requests, SplitSeries makes %d", iter, maxBytes, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("iteration %d (max %d): request %d differs", iter, maxBytes, i)
			}
		}
	}
	// An error from send stops the encoding.
	stop := errors.New("stop")
	calls := 0
	if err := b.EncodeSplit(randSeries(r, 30), 100, func([]byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d sends, want stop after 1", err, calls)
	}
}

// The reference the tests hold EncodeSplit to: sizing every series first
// and grouping them, then encoding each group with Encode.

func samplesLen(ss []batch.Sample) int {
	n := 0
	for i := range ss {
		n += fieldLen(sampleLen(&ss[i]))
	}
	return n
}

// seriesLen is the size of one TimeSeries message body.
func seriesLen(s *batch.Series) int {
	n := labelsLen(s.Labels) + samplesLen(s.Samples)
	for i := range s.Exemplars {
		n += fieldLen(exemplarLen(&s.Exemplars[i]))
	}
	for i := range s.Histograms {
		n += fieldLen(len(s.Histograms[i].Raw))
	}
	return n
}

// metadataSize is the encoded size of md as WriteRequest.metadata fields.
func metadataSize(md []batch.Metadata) int {
	n := 0
	for i := range md {
		n += fieldLen(metadataLen(&md[i]))
	}
	return n
}

// EncodedSize returns the size in bytes of the uncompressed
// prometheus.WriteRequest that AppendWriteRequest produces for series.
func EncodedSize(series []batch.Series) int {
	n := 0
	for i := range series {
		n += fieldLen(seriesLen(&series[i]))
	}
	return n
}

// SplitSeries splits series into consecutive groups whose encoded
// WriteRequest (uncompressed, as EncodedSize counts it) is at most maxBytes,
// with EncodeSplit's rules. Groups are sub-slices of series (capacity
// clipped) where possible; empty input yields no groups.
func SplitSeries(series []batch.Series, maxBytes int) [][]batch.Series {
	if len(series) == 0 {
		return nil
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	var out [][]batch.Series
	start, size := 0, 0
	for i := range series {
		n := fieldLen(seriesLen(&series[i]))
		if n > maxBytes {
			if start < i {
				out = append(out, series[start:i:i])
			}
			out = splitLarge(out, series[i], maxBytes)
			start, size = i+1, 0
			continue
		}
		if size+n > maxBytes {
			out = append(out, series[start:i:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(series) {
		out = append(out, series[start:len(series):len(series)])
	}
	return out
}

// TestEncodeSplitProto: the uncompressed requests are EncodeSplitMetadata's
// bodies decompressed, split alike.
func TestEncodeSplitProto(t *testing.T) {
	var series []batch.Series
	for i := range 50 {
		series = append(series, batch.Series{Labels: []batch.Label{{Name: "__name__", Value: fmt.Sprintf("m%d", i)}}, Samples: []batch.Sample{{Timestamp: 1, Value: float64(i)}}})
	}
	md := []batch.Metadata{{Family: "m0", Type: 1, Help: "h"}}
	var b Buffers
	var bodies, protos [][]byte
	if err := b.EncodeSplitMetadata(series, md, 300, func(body []byte) error { bodies = append(bodies, bytes.Clone(body)); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.EncodeSplitProto(series, md, 300, func(p []byte) error { protos = append(protos, bytes.Clone(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(bodies) < 2 || len(bodies) != len(protos) {
		t.Fatalf("%d bodies, %d requests", len(bodies), len(protos))
	}
	for i := range bodies {
		raw, err := snappy.Decode(nil, bodies[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, protos[i]) {
			t.Fatalf("request %d differs", i)
		}
	}
}
