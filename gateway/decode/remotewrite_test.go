package decode

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

func mustMarshal(t testing.TB, wr *prompb.WriteRequest) []byte {
	data, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func wantError(t *testing.T, err error, status int, substr string) {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want *Error %d", err, status)
	}
	if de.Status != status || !strings.Contains(de.Msg, substr) {
		t.Fatalf("got %d %q, want %d containing %q", de.Status, de.Msg, status, substr)
	}
}

func TestUnmarshalWriteRequest(t *testing.T) {
	h1 := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 3}, ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}, Sum: 4, Schema: 2,
		PositiveSpans: []prompb.BucketSpan{{Offset: -1, Length: 2}}, PositiveDeltas: []int64{1, 0}, Timestamp: 30}
	h2 := prompb.Histogram{Count: &prompb.Histogram_CountFloat{CountFloat: 2.5}, Sum: 1, Schema: -53, CustomValues: []float64{1},
		PositiveSpans: []prompb.BucketSpan{{Length: 2}}, PositiveCounts: []float64{0.5, 2}, Timestamp: -40}
	wr := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}},
				Samples:   []prompb.Sample{{Value: 1, Timestamp: 10}, {Value: 2, Timestamp: -20}},
				Exemplars: []prompb.Exemplar{{Value: 1}, {Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}, {Name: "span_id", Value: "d"}}, Value: 0.5, Timestamp: 11}},
			},
			{
				Labels:     []prompb.Label{{Name: "__name__", Value: "h"}},
				Histograms: []prompb.Histogram{h1, h2},
			},
		},
		Metadata: []prompb.MetricMetadata{
			{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Up.", Unit: "bool"},
			{MetricFamilyName: "h", Type: prompb.MetricMetadata_HISTOGRAM},
			{MetricFamilyName: "up", Type: prompb.MetricMetadata_COUNTER}, // a repeated family: the first wins
			{Help: "no family"},
			{MetricFamilyName: "x", Type: 42}, // outside the enum: unknown
		},
	}
	data := mustMarshal(t, wr)
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequest(data, b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Series: 2, Samples: 2, Exemplars: 2, Histograms: 2, Metadata: 3,
		BatchBytes: 2*seriesBytes + 3*labelBytes + 2*sampleBytes + 2*histogramBytes + 2*exemplarBytes + 2*labelBytes + 3*metadataBytes}); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if len(b.Series) != 2 || b.Series[0].Name() != "up" || len(b.Series[1].Samples) != 0 {
		t.Fatalf("series %+v", b.Series)
	}
	if got := b.Series[0].Samples; got[0] != (batch.Sample{Timestamp: 10, Value: 1}) || got[1] != (batch.Sample{Timestamp: -20, Value: 2}) {
		t.Fatalf("samples %v", got)
	}
	sameExemplar(t, b.Series[0].Exemplars[0], nil, 1, 0)
	sameExemplar(t, b.Series[0].Exemplars[1], []batch.Label{{Name: "trace_id", Value: "abc"}, {Name: "span_id", Value: "d"}}, 0.5, 11)
	sameHistograms(t, b.Series[1].Histograms, []prompb.Histogram{h1, h2})
	if want := []batch.Metadata{{Family: "up", Type: 2, Help: "Up.", Unit: "bool"}, {Family: "h", Type: 3}, {Family: "x"}}; !slices.Equal(b.Metadata, want) {
		t.Fatalf("metadata %+v, want %+v", b.Metadata, want)
	}
	// Strings and histograms alias the buffer: no copies.
	base, end := uintptr(unsafe.Pointer(&data[0])), uintptr(unsafe.Pointer(&data[0]))+uintptr(len(data))
	for what, p := range map[string]unsafe.Pointer{
		"label value":     unsafe.Pointer(unsafe.StringData(b.Series[0].Labels[1].Value)),
		"exemplar label":  unsafe.Pointer(unsafe.StringData(b.Series[0].Exemplars[1].Labels[0].Value)),
		"histogram":       unsafe.Pointer(&b.Series[1].Histograms[0].Raw[0]),
		"metadata help":   unsafe.Pointer(unsafe.StringData(b.Metadata[0].Help)),
		"metadata family": unsafe.Pointer(unsafe.StringData(b.Metadata[1].Family)),
	} {
		if p := uintptr(p); p < base || p >= end {
			t.Errorf("%s does not alias the buffer", what)
		}
	}
	if h := b.Series[1].Histograms[0].Raw; cap(h) != len(h) {
		t.Error("a histogram's Raw can be appended to, over its neighbour")
	}
	checkWriteRequestAgrees(t, data)

	// An invalid histogram is a 400 for the request, naming the series and
	// the rule.
	wr.Timeseries[1].Histograms[0].PositiveDeltas[1] = -2
	_, err = UnmarshalWriteRequest(mustMarshal(t, wr), &batch.Batch{}, Limits{})
	wantError(t, err, 400, "remote write: timeseries[1]: native histogram at offset")
	wantError(t, err, 400, "positive side: bucket 2 has a negative count -1")
	if de := err.(*Error); de.Reason != "invalid_series" {
		t.Errorf("reason %q, want invalid_series", de.Reason)
	}
	checkWriteRequestAgrees(t, mustMarshal(t, wr))
}

// Histograms, exemplars and metadata are charged to MaxBatchBytes, and
// exemplar labels count against MaxLabelsPerSeries.
func TestUnmarshalWriteRequestChargesEverything(t *testing.T) {
	h := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 1}, PositiveSpans: []prompb.BucketSpan{{Length: 1}}, PositiveDeltas: []int64{1}}
	ex := prompb.Exemplar{Labels: []prompb.Label{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}, {Name: "c", Value: "3"}}}
	for _, wr := range []*prompb.WriteRequest{
		{Timeseries: []prompb.TimeSeries{{Histograms: []prompb.Histogram{h, h, h}}}},
		{Timeseries: []prompb.TimeSeries{{Exemplars: []prompb.Exemplar{ex, ex}}}},
		{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "a"}, {MetricFamilyName: "b"}, {MetricFamilyName: "a"}}},
	} {
		data := mustMarshal(t, wr)
		st, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxBatchBytes: st.BatchBytes}); err != nil {
			t.Fatalf("at the exact charge %d: %v", st.BatchBytes, err)
		}
		_, err = UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxBatchBytes: st.BatchBytes - 1})
		wantError(t, err, 413, "remote write expands to more than")
	}
	data := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "x", Value: "y"}}, Exemplars: []prompb.Exemplar{ex}}}})
	if _, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 3}); err != nil {
		t.Fatal(err)
	}
	_, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 2})
	wantError(t, err, 400, "exemplar at offset 12 of timeseries[0] has more than 2 labels, over max_labels_per_series")
}

func TestUnmarshalWriteRequestMaxSeries(t *testing.T) {
	wr := &prompb.WriteRequest{}
	for range 3 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{{Name: "a", Value: "b"}}})
	}
	data := mustMarshal(t, wr)
	if _, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxSeries: 3}); err != nil {
		t.Fatalf("3 series at cap 3: %v", err)
	}
	_, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{MaxSeries: 2})
	wantError(t, err, 413, "max_series_per_request (2)")
}

func TestUnmarshalWriteRequestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte
		wantS string
	}{
		{"truncated label", []byte{0x0a, 0x05, 0x0a, 0x09, 0x0a, 0x01, 'a'}, "truncated label at offset 3"},
		{"absurd length", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, "truncated timeseries"},
		{"negative length", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "truncated timeseries"},
		{"varint over 10 bytes", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "varint overflow"},
		{"truncated tag", []byte{0x80}, "truncated WriteRequest tag"},
		{"wrong wire type", []byte{0x08, 0x01}, "wrong wire type 0 for WriteRequest.timeseries"},
		{"field zero", []byte{0x02, 0x00}, "illegal field number 0"},
		{"end group", []byte{0x14}, "end group outside a group"},
		{"unterminated group", []byte{0x13, 0x08, 0x01}, "unterminated group"},
		{"illegal wire type", []byte{0x16}, "illegal wire type 6"},
		{"truncated sample value", []byte{0x0a, 0x04, 0x12, 0x02, 0x09, 0x00}, "truncated sample value"},
		{"truncated fixed32", []byte{0x15, 0x00}, "truncated unknown field"},
		{"bad packed histogram", []byte{0x0a, 0x05, 0x22, 0x03, 0x52, 0x01, 0x00}, "truncated packed buckets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalWriteRequest(tc.data, &batch.Batch{}, Limits{})
			wantError(t, err, 400, tc.wantS)
			checkWriteRequestAgrees(t, tc.data)
		})
	}
}

func TestUnmarshalWriteRequestUnknownFields(t *testing.T) {
	// Top level: field 2 varint, field 5 fixed32, field 6 group containing a
	// nested group and a fixed64, field 7 bytes; then one series whose Label
	// and Sample messages carry unknown fields too.
	data := []byte{
		0x10, 0x96, 0x01,
		0x2d, 1, 2, 3, 4,
		0x33, 0x0b, 0x0c, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x34,
		0x3a, 0x02, 'h', 'i',
		0x0a, 0x13,
		0x0a, 0x08, 0x0a, 0x01, 'a', 0x18, 0x05, 0x12, 0x01, 'b',
		0x12, 0x07, 0x10, 0x07, 0x25, 0, 0, 0, 0,
	}
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequest(data, b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Series != 1 || len(b.Series) != 1 || b.Series[0].Labels[0] != (batch.Label{Name: "a", Value: "b"}) || b.Series[0].Samples[0] != (batch.Sample{Timestamp: 7}) {
		t.Fatalf("got %+v %+v", st, b.Series)
	}
	checkWriteRequestAgrees(t, data)
}

// A packed run whose length splits an element is accepted by the reference
// (it reads on up to the message end); we must agree.
func TestUnmarshalWriteRequestPackedQuirk(t *testing.T) {
	// A float histogram (count_float 0) with one negative span of one
	// bucket, whose count is field 10 packed, length 3, 8 bytes of double.
	h := []byte{0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x02, 0x10, 0x01, 0x52, 0x03, 0, 0, 0, 0, 0, 0, 0, 0}
	ts := append([]byte{0x22, byte(len(h))}, h...)
	data := append([]byte{0x0a, byte(len(ts))}, ts...)
	if _, err := UnmarshalWriteRequest(data, &batch.Batch{}, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkWriteRequestAgrees(t, data)
}

func TestUnmarshalWriteRequestDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		data := mustMarshal(t, genWriteRequest(r))
		checkWriteRequestAgrees(t, data)
		for range 5 {
			data = mutate(r, data)
			checkWriteRequestAgrees(t, data)
		}
	}
}

func TestUnmarshalWriteRequestZeroAllocs(t *testing.T) {
	data := benchWriteRequest()
	b := &batch.Batch{}
	if _, err := UnmarshalWriteRequest(data, b, Limits{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		b.Reset()
		if _, err := UnmarshalWriteRequest(data, b, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per decode with a reused batch, want 0", allocs)
	}
}

func FuzzUnmarshalWriteRequest(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(mustMarshal(f, genWriteRequest(r)))
	}
	f.Add([]byte{0x0a, 0x05, 0x22, 0x03, 0x52, 0x01, 0x00})
	for _, data := range fastPathEdges() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkWriteRequestAgrees(t, data)
	})
}

func BenchmarkUnmarshalWriteRequest(bm *testing.B) {
	data := benchWriteRequest()
	b := &batch.Batch{}
	bm.ReportAllocs()
	bm.SetBytes(int64(len(data)))
	for bm.Loop() {
		b.Reset()
		if _, err := UnmarshalWriteRequest(data, b, Limits{}); err != nil {
			bm.Fatal(err)
		}
	}
	bm.ReportMetric(float64(1000*bm.N)/bm.Elapsed().Seconds(), "samples/s")
}

// BenchmarkUnmarshalWriteRequestFiltered is BenchmarkUnmarshalWriteRequest
// with a NameFilter like the gateway's (a map of wanted names, half of the
// request's; the series of a name are consecutive).
func BenchmarkUnmarshalWriteRequestFiltered(bm *testing.B) {
	data := benchWriteRequest()
	wanted := map[string]bool{}
	for n := 0; n < 20; n += 2 {
		wanted[fmt.Sprintf("cluster_component_metric_%d_total", n)] = true
	}
	f := &NameFilter{Wanted: func(n string) bool { return wanted[n] }, KeepLabel: "job"}
	b := &batch.Batch{}
	bm.ReportAllocs()
	bm.SetBytes(int64(len(data)))
	for bm.Loop() {
		b.Reset()
		if _, err := UnmarshalWriteRequestFiltered(data, b, Limits{}, f); err != nil {
			bm.Fatal(err)
		}
	}
	bm.ReportMetric(float64(1000*bm.N)/bm.Elapsed().Seconds(), "samples/s")
}

func BenchmarkGogoUnmarshal(bm *testing.B) {
	data := benchWriteRequest()
	bm.ReportAllocs()
	bm.SetBytes(int64(len(data)))
	for bm.Loop() {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(data); err != nil {
			bm.Fatal(err)
		}
	}
	bm.ReportMetric(float64(1000*bm.N)/bm.Elapsed().Seconds(), "samples/s")
}

func TestUnmarshalWriteRequestFiltered(t *testing.T) {
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "A", Value: "1"}, {Name: "__name__", Value: "zzz"}, {Name: "_id", Value: "c"}, {Name: "b", Value: "2"}},
			Samples:    []prompb.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}},
			Histograms: []prompb.Histogram{{Timestamp: 3}}, Exemplars: []prompb.Exemplar{{Value: 1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "abc"}, {Name: "__name__", Value: "zzz"}, {Name: "b", Value: "2"}},
			Samples: []prompb.Sample{{Value: 3, Timestamp: 3}}},
	}}
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequestFiltered(mustMarshal(t, wr), b, Limits{}, testFilter)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, s := range b.Series {
		var ls []string
		for _, l := range s.Labels {
			ls = append(ls, l.Name+"="+l.Value)
		}
		got = append(got, strings.Join(ls, ","))
	}
	// The refused series keeps what precedes and names it, and its _id,
	// and its samples; only the first __name__ decides.
	if want := []string{"A=1,__name__=zzz,_id=c", "__name__=abc,__name__=zzz,b=2"}; !slices.Equal(got, want) || st.Samples != 3 || len(b.Series[0].Samples) != 2 ||
		len(b.Series[0].Histograms) != 1 || len(b.Series[0].Exemplars) != 1 {
		t.Fatalf("got %q (stats %+v), want %q", got, st, want)
	}
}
