package forward

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// testRequest is one request of the reference split: series and metadata.
type testRequest struct {
	series []batch.Series
	md     []batch.Metadata
}

// splitRequests is the reference EncodeSplitMetadata is held to, sizing
// everything first: metadata pieces of at most maxBytes (at least one
// entry each), all but the last alone, the last in the first request of
// series; series grouped as SplitSeries groups them, the first group's
// room shrunk by that piece.
func splitRequests(series []batch.Series, md []batch.Metadata, maxBytes int) []testRequest {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	var pieces [][]batch.Metadata
	start, size := 0, 0
	for i := range md {
		n := fieldLen(metadataLen(&md[i]))
		if i > start && size+n > maxBytes {
			pieces = append(pieces, md[start:i])
			start, size = i, 0
		}
		size += n
	}
	if len(md) > 0 {
		pieces = append(pieces, md[start:])
	}
	var out []testRequest
	cur := testRequest{}
	reserve := 0
	for i, p := range pieces {
		if i < len(pieces)-1 {
			out = append(out, testRequest{md: p})
			continue
		}
		cur.md, reserve = p, metadataSize(p)
	}
	size = 0
	for i := range series {
		n := fieldLen(seriesLen(&series[i]))
		if size+n+reserve > maxBytes {
			if len(cur.series) > 0 || len(cur.md) > 0 {
				out = append(out, cur)
			}
			cur, size, reserve = testRequest{}, 0, 0
			if n > maxBytes {
				for _, part := range splitLarge(nil, series[i], maxBytes) {
					out = append(out, testRequest{series: part})
				}
				continue
			}
		}
		cur.series = append(cur.series, series[i])
		size += n
	}
	if len(cur.series) > 0 || len(cur.md) > 0 {
		out = append(out, cur)
	}
	return out
}

// lone reports whether req is one series with a single item or a single
// metadata entry: the only requests allowed over the cap.
func (req testRequest) lone() bool {
	if len(req.series) == 0 {
		return len(req.md) == 1
	}
	s := req.series[0]
	return len(req.series) == 1 && len(req.md) == 0 && s.Points()+len(s.Exemplars) <= 1
}

// collect runs EncodeSplitMetadata and returns the uncompressed bodies.
func collect(t *testing.T, b *Buffers, series []batch.Series, md []batch.Metadata, maxBytes int) [][]byte {
	t.Helper()
	var got [][]byte
	err := b.EncodeSplitMetadata(series, md, maxBytes, func(body []byte) error {
		raw, err := snappy.Decode(nil, body)
		got = append(got, raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEncodeSplitMetadataMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var b Buffers
	for iter := range 400 {
		series := randSeries(r, r.IntN(30))
		md := randMetadata(r, []int{0, 1, 3, 20}[r.IntN(4)])
		maxBytes := []int{0, 1, 50, 200, 1000, 5000, 30000, 1 << 20}[iter%8]
		want := splitRequests(series, md, maxBytes)
		got := collect(t, &b, series, md, maxBytes)
		if len(got) != len(want) {
			t.Fatalf("iteration %d (max %d): %d requests, the reference makes %d", iter, maxBytes, len(got), len(want))
		}
		limit := maxBytes
		if limit <= 0 {
			limit = DefaultMaxRequestBytes
		}
		var groups [][]batch.Series
		var mds []batch.Metadata
		for i, req := range want {
			wantRaw := AppendMetadata(AppendWriteRequest(nil, req.series), req.md)
			if !bytes.Equal(got[i], wantRaw) {
				t.Fatalf("iteration %d (max %d): request %d differs from the reference", iter, maxBytes, i)
			}
			gogo, err := toProm(req.series, req.md...).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[i], gogo) {
				t.Fatalf("iteration %d: request %d differs from gogo's Marshal", iter, i)
			}
			checkDecodes(t, got[i], req.series, req.md...)
			if len(got[i]) > limit && !req.lone() {
				t.Fatalf("iteration %d (max %d): request %d is %d bytes", iter, limit, i, len(got[i]))
			}
			groups = append(groups, req.series)
			mds = append(mds, req.md...)
		}
		if !sameSeries(flatten(groups), flatten([][]batch.Series{series})) {
			t.Fatalf("iteration %d: requests do not concatenate to the input series", iter)
		}
		if !slices.Equal(mds, md) {
			t.Fatalf("iteration %d: requests do not carry the metadata in order", iter)
		}
		if len(md) > 0 && metadataSize(md) <= limit && (len(want[0].md) != len(md)) {
			t.Fatalf("iteration %d: metadata that fits is not all in the first request", iter)
		}
	}
}

func TestEncodeSplitMetadataFirstBody(t *testing.T) {
	series := benchSeries(100, 5)
	md := []batch.Metadata{{Family: "cluster:usage:workload:capacity_physical_cpu_cores:sum", Type: 2, Help: "CPU cores.", Unit: "cores"}}
	var b Buffers
	maxBytes := EncodedSize(series[:10])
	if got := collect(t, &b, series, nil, maxBytes); EncodedSize(series[:10]) != len(got[0]) {
		t.Fatalf("without metadata the first body is %d bytes, want 10 series", len(got[0]))
	}
	got := collect(t, &b, series, md, maxBytes)
	var first prompb.WriteRequest
	if err := first.Unmarshal(got[0]); err != nil {
		t.Fatal(err)
	}
	if len(first.Metadata) != 1 || first.Metadata[0].MetricFamilyName != md[0].Family || first.Metadata[0].Type != prompb.MetricMetadata_GAUGE {
		t.Fatalf("first body's metadata %+v", first.Metadata)
	}
	// The metadata takes its share: one series fewer than without it.
	if n := len(first.Timeseries); n != 9 {
		t.Fatalf("first body holds %d series, want 9", n)
	}
	for i, raw := range got {
		if len(raw) > maxBytes {
			t.Fatalf("body %d is %d bytes, over %d", i, len(raw), maxBytes)
		}
		if i > 0 {
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(raw); err != nil || len(wr.Metadata) != 0 {
				t.Fatalf("body %d: %v, %d metadata", i, err, len(wr.Metadata))
			}
		}
	}
	// Without series the metadata goes alone; with neither nothing is sent.
	if got := collect(t, &b, nil, md, maxBytes); len(got) != 1 || !bytes.Equal(got[0], AppendMetadata(nil, md)) {
		t.Fatalf("metadata alone: %d bodies", len(got))
	}
	if got := collect(t, &b, nil, nil, maxBytes); len(got) != 0 {
		t.Fatalf("nothing to send made %d bodies", len(got))
	}
}

func TestEncodeSplitMetadataSpreads(t *testing.T) {
	var md []batch.Metadata
	for i := range 50 {
		md = append(md, batch.Metadata{Family: fmt.Sprintf("family_%d", i), Type: batch.MetricType(i % 8), Help: strings.Repeat("h", 90)})
	}
	huge := batch.Metadata{Family: "huge", Help: strings.Repeat("x", 2000)}
	md = slices.Insert(md, 20, huge)
	series := benchSeries(20, 5)
	const maxBytes = 1000
	var b Buffers
	got := collect(t, &b, series, md, maxBytes)
	var mds []batch.Metadata
	var all []batch.Series
	sawSeries := false
	for i, raw := range got {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if len(raw) > maxBytes && !(len(wr.Metadata) == 1 && wr.Metadata[0].MetricFamilyName == "huge" && len(wr.Timeseries) == 0) {
			t.Fatalf("body %d is %d bytes with %d series %d metadata", i, len(raw), len(wr.Timeseries), len(wr.Metadata))
		}
		if len(wr.Metadata) > 0 && sawSeries && len(wr.Timeseries) == 0 {
			t.Fatalf("body %d: metadata-only body after series", i)
		}
		for _, m := range wr.Metadata {
			mds = append(mds, batch.Metadata{Family: m.MetricFamilyName, Type: batch.MetricType(m.Type), Help: m.Help, Unit: m.Unit})
		}
		if len(wr.Timeseries) > 0 {
			sawSeries = true
		}
		for _, ts := range wr.Timeseries {
			s := batch.Series{}
			for _, l := range ts.Labels {
				s.Labels = append(s.Labels, batch.Label{Name: l.Name, Value: l.Value})
			}
			for _, smp := range ts.Samples {
				s.Samples = append(s.Samples, batch.Sample{Timestamp: smp.Timestamp, Value: smp.Value})
			}
			all = append(all, s)
		}
	}
	if !slices.Equal(mds, md) {
		t.Fatal("metadata lost or reordered")
	}
	if !sameSeries(all, series) {
		t.Fatal("series lost or reordered")
	}
	if len(got) < metadataSize(md)/maxBytes+1 {
		t.Fatalf("only %d bodies", len(got))
	}
}

// bigSeries is one series with n samples, then n histograms of about
// bucketBytes, then n exemplars.
func bigSeries(r *rand.Rand, n, buckets int) batch.Series {
	s := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "big"}, {Name: "job", Value: "j"}}}
	for i := range n {
		ts := int64(1_700_000_000_000 + i)
		s.Samples = append(s.Samples, batch.Sample{Timestamp: ts, Value: float64(i)})
		s.Histograms = append(s.Histograms, batch.Histogram{Timestamp: ts, Raw: randHistogram(r, ts, buckets)})
		s.Exemplars = append(s.Exemplars, batch.Exemplar{Labels: []batch.Label{{Name: "trace_id", Value: fmt.Sprintf("%032x", i)}}, Value: float64(i), Timestamp: ts})
	}
	return s
}

func TestEncodeSplitLargeSeriesWithHistogramsAndExemplars(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	small := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "small"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 1}}}
	big := bigSeries(r, 300, 40)
	series := []batch.Series{small, big, small}
	md := []batch.Metadata{{Family: "big", Type: 3, Help: "A big histogram."}}
	for _, maxBytes := range []int{600, 1000, 4000, 20000} {
		var b Buffers
		got := collect(t, &b, series, md, maxBytes)
		want := splitRequests(series, md, maxBytes)
		if len(got) != len(want) || len(got) < EncodedSize(series)/maxBytes {
			t.Fatalf("max %d: %d bodies, reference %d", maxBytes, len(got), len(want))
		}
		var groups [][]batch.Series
		for i, req := range want {
			checkDecodes(t, got[i], req.series, req.md...)
			if len(got[i]) > maxBytes && !req.lone() {
				t.Fatalf("max %d: body %d is %d bytes", maxBytes, i, len(got[i]))
			}
			groups = append(groups, req.series)
		}
		if !sameSeries(flatten(groups), series) {
			t.Fatalf("max %d: bodies do not concatenate to the input", maxBytes)
		}
		// Exemplars come after all of the series' points.
		lastPoint, firstExemplar := -1, len(want)
		for i, req := range want {
			for _, s := range req.series {
				if s.Name() != "big" {
					continue
				}
				if s.Points() > 0 {
					lastPoint = i
				}
				if len(s.Exemplars) > 0 && i < firstExemplar {
					firstExemplar = i
				}
			}
		}
		if firstExemplar < lastPoint {
			t.Fatalf("max %d: an exemplar (body %d) precedes a point (body %d)", maxBytes, firstExemplar, lastPoint)
		}
	}
}

// A histogram larger than maxBytes goes alone, between bodies that keep
// to the cap.
func TestEncodeSplitOversizedHistogram(t *testing.T) {
	s := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "h"}}}
	sizes := []int{5, 3000, 5, 5, 3000, 5} // buckets: 3000 make about 3 KB
	for i, buckets := range sizes {
		h := prompb.Histogram{Timestamp: int64(i + 1), Count: &prompb.Histogram_CountInt{CountInt: uint64(buckets)}, ZeroCount: &prompb.Histogram_ZeroCountInt{},
			PositiveSpans: []prompb.BucketSpan{{Length: uint32(buckets)}}, PositiveDeltas: make([]int64, buckets)}
		h.PositiveDeltas[0] = 1
		s.Histograms = append(s.Histograms, batch.Histogram{Timestamp: int64(i + 1), Raw: mustMarshal(h)})
	}
	const maxBytes = 2000
	var b Buffers
	got := collect(t, &b, []batch.Series{s}, nil, maxBytes)
	var n int
	for i, raw := range got {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if len(wr.Timeseries) != 1 {
			t.Fatalf("body %d: %d series", i, len(wr.Timeseries))
		}
		hs := wr.Timeseries[0].Histograms
		if len(raw) > maxBytes && len(hs) != 1 {
			t.Fatalf("body %d: %d bytes with %d histograms", i, len(raw), len(hs))
		}
		for _, h := range hs {
			if h.Timestamp != s.Histograms[n].Timestamp {
				t.Fatalf("histogram %d out of order", n)
			}
			if !bytes.Equal(mustMarshal(h), s.Histograms[n].Raw) {
				t.Fatalf("histogram %d differs", n)
			}
			n++
		}
	}
	if n != len(sizes) {
		t.Fatalf("%d histograms arrived, want %d", n, len(sizes))
	}
	if len(got) < 4 {
		t.Fatalf("%d bodies: the oversized histograms were not sent alone", len(got))
	}
}

// A 2.0 histogram's start_timestamp (field 17) passes through into the 1.0
// body; gogo's prompb decodes the 1.0 fields unchanged and keeps field 17
// aside as unrecognized, and the histogram converts as Prometheus'
// receiver converts it.
func TestHistogramStartTimestampPassesThrough(t *testing.T) {
	h := prompb.Histogram{Timestamp: 1000, Schema: 0, Sum: 3, Count: &prompb.Histogram_CountInt{CountInt: 2},
		ZeroCount: &prompb.Histogram_ZeroCountInt{}, PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 0}}
	plain := mustMarshal(h)
	raw := appendStartTimestamp(bytes.Clone(plain), 500)
	series := []batch.Series{{Labels: []batch.Label{{Name: "__name__", Value: "h"}}, Histograms: []batch.Histogram{{Timestamp: 1000, Raw: raw}}}}
	data := AppendWriteRequest(nil, series)
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	got := wr.Timeseries[0].Histograms[0]
	if !bytes.Equal(got.XXX_unrecognized, raw[len(plain):]) {
		t.Fatalf("unrecognized %x, want field 17 %x", got.XXX_unrecognized, raw[len(plain):])
	}
	got.XXX_unrecognized = nil
	if !bytes.Equal(mustMarshal(got), plain) {
		t.Fatal("the 1.0 fields changed")
	}
	ih := got.ToIntHistogram()
	if err := ih.Validate(); err != nil || ih.Count != 2 || ih.Sum != 3 {
		t.Fatalf("converted %v: %v", ih, err)
	}
}

func TestEncodeSplitMetadataStopsOnError(t *testing.T) {
	stop := errors.New("stop")
	var md []batch.Metadata
	for i := range 30 {
		md = append(md, batch.Metadata{Family: fmt.Sprintf("f%d", i), Help: strings.Repeat("h", 100)})
	}
	var b Buffers
	calls := 0
	if err := b.EncodeSplitMetadata(benchSeries(10, 3), md, 500, func([]byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d sends, want stop after 1", err, calls)
	}
}

func TestEncodeSplitMetadataDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	series := benchHistogramSeries(r, 200, 10)
	md := randMetadata(r, 10)
	b := GetBuffers()
	defer PutBuffers(b)
	send := func([]byte) error { return nil }
	for _, maxBytes := range []int{0, 20000} {
		if err := b.EncodeSplitMetadata(series, md, maxBytes, send); err != nil { // warm up
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if err := b.EncodeSplitMetadata(series, md, maxBytes, send); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("max %d: EncodeSplitMetadata allocated %v times per run, want 0", maxBytes, allocs)
		}
	}
}

// benchHistogramSeries is benchSeries with one native histogram sample
// (about 20 buckets) and one exemplar instead of every other float sample.
func benchHistogramSeries(r *rand.Rand, n, labels int) []batch.Series {
	series := benchSeries(n, labels)
	for i := range series {
		if i%2 == 1 {
			continue
		}
		ts := series[i].Samples[0].Timestamp
		series[i].Samples = nil
		h := prompb.Histogram{Timestamp: ts, Schema: 3, Sum: float64(i), Count: &prompb.Histogram_CountInt{CountInt: 100},
			ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}, ZeroThreshold: 1e-128,
			PositiveSpans: []prompb.BucketSpan{{Offset: -2, Length: 12}, {Offset: 3, Length: 8}}}
		for range 20 {
			h.PositiveDeltas = append(h.PositiveDeltas, r.Int64N(10)-5)
		}
		series[i].Histograms = []batch.Histogram{{Timestamp: ts, Raw: mustMarshal(h)}}
		series[i].Exemplars = []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: fmt.Sprintf("%032x", i)}}, Value: 0.25, Timestamp: ts}}
	}
	return series
}

func BenchmarkEncodeHistograms(b *testing.B) {
	series := benchHistogramSeries(rand.New(rand.NewPCG(1, 1)), 500, 10)
	md := []batch.Metadata{{Family: "cluster:usage:workload:capacity_physical_cpu_cores:sum", Type: 3, Help: "Help.", Unit: "cores"}}
	bufs := GetBuffers()
	defer PutBuffers(bufs)
	size := len(AppendMetadata(AppendWriteRequest(nil, series), md))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	send := func([]byte) error { return nil }
	for b.Loop() {
		if err := bufs.EncodeSplitMetadata(series, md, 0, send); err != nil {
			b.Fatal(err)
		}
	}
}
