package forward

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// toProm builds the gogo request for the same series.
func toProm(series []batch.Series) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range series {
		ts := prompb.TimeSeries{}
		for _, l := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		for _, smp := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

// checkDecodes asserts that gogo decodes data back into series. -0 is
// expected to come back as +0 (proto3 omits it, as gogo's Marshal does).
func checkDecodes(t *testing.T, data []byte, series []batch.Series) {
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
		if len(g.Labels) != len(s.Labels) || len(g.Samples) != len(s.Samples) {
			t.Fatalf("series %d: got %d labels %d samples, want %d %d", i, len(g.Labels), len(g.Samples), len(s.Labels), len(s.Samples))
		}
		for j, l := range s.Labels {
			if g.Labels[j].Name != l.Name || g.Labels[j].Value != l.Value {
				t.Fatalf("series %d label %d: got %q=%q want %q=%q", i, j, g.Labels[j].Name, g.Labels[j].Value, l.Name, l.Value)
			}
		}
		for j, smp := range s.Samples {
			want := smp.Value
			if want == 0 {
				want = 0 // -0 -> +0
			}
			if g.Samples[j].Timestamp != smp.Timestamp || math.Float64bits(g.Samples[j].Value) != math.Float64bits(want) {
				t.Fatalf("series %d sample %d: got %v@%d want %v@%d", i, j, g.Samples[j].Value, g.Samples[j].Timestamp, want, smp.Timestamp)
			}
		}
	}
}

func checkAgainstGogo(t *testing.T, series []batch.Series) {
	t.Helper()
	got := AppendWriteRequest(nil, series)
	want, err := toProm(series).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from gogo Marshal:\n got %x\nwant %x", got, want)
	}
	if n := EncodedSize(series); n != len(got) {
		t.Fatalf("EncodedSize = %d, encoded %d bytes", n, len(got))
	}
	checkDecodes(t, got, series)
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
	}
	return series
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
	}
	for name, series := range cases {
		t.Run(name, func(t *testing.T) { checkAgainstGogo(t, series) })
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		series := randSeries(r, r.IntN(20))
		t.Run(fmt.Sprintf("random%d", i), func(t *testing.T) { checkAgainstGogo(t, series) })
	}
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
// (same labels slice) back together.
func flatten(groups [][]batch.Series) []batch.Series {
	var out []batch.Series
	for _, g := range groups {
		for _, s := range g {
			if n := len(out); n > 0 && len(s.Labels) > 0 && len(out[n-1].Labels) > 0 && &out[n-1].Labels[0] == &s.Labels[0] {
				out[n-1].Samples = append(out[n-1].Samples, s.Samples...)
				continue
			}
			out = append(out, batch.Series{Labels: s.Labels, Samples: append([]batch.Sample(nil), s.Samples...)})
		}
	}
	return out
}

func sameSeries(a, b []batch.Series) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].Labels) != len(b[i].Labels) || len(a[i].Samples) != len(b[i].Samples) {
			return false
		}
		for j := range a[i].Labels {
			if a[i].Labels[j] != b[i].Labels[j] {
				return false
			}
		}
		for j := range a[i].Samples {
			if a[i].Samples[j] != b[i].Samples[j] {
				return false
			}
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
			if n := EncodedSize(g); n > maxBytes && (len(g) != 1 || len(g[0].Samples) > 1) {
				// Only a lone series with one sample may exceed the limit.
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
	return labelsLen(s.Labels) + samplesLen(s.Samples)
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
			out = splitSamples(out, series[i], maxBytes)
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
