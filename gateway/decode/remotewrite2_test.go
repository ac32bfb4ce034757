package decode

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
)

// v2Req builds a request from symbols and series given as label refs and
// samples.
func v2Req(symbols []string, series ...writev2.TimeSeries) *writev2.Request {
	return &writev2.Request{Symbols: symbols, Timeseries: series}
}

var v2Symbols = []string{"", "__name__", "up", "job", "api", "instance", "a:1", "seconds", "help text"}

func TestUnmarshalWriteRequestV2(t *testing.T) {
	full := v2Req(v2Symbols,
		writev2.TimeSeries{
			LabelsRefs: []uint32{1, 2, 5, 6, 3, 4},
			Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000}, {Value: 0.5, Timestamp: 2000, StartTimestamp: 500}},
			Exemplars:  []writev2.Exemplar{{LabelsRefs: []uint32{3, 4}, Value: 1, Timestamp: 1000}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: 8, UnitRef: 7},
		},
		writev2.TimeSeries{
			LabelsRefs: []uint32{1, 2},
			Histograms: []writev2.Histogram{{Count: &writev2.Histogram_CountInt{CountInt: 3}, Schema: 3,
				PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 1}, Timestamp: 1000, StartTimestamp: 10}},
		})
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequestV2(marshalV2(t, full), b, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []batch.Series{
		{Labels: []batch.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: "a:1"}, {Name: "job", Value: "api"}},
			Samples: []batch.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 0.5}}},
		{Labels: []batch.Label{{Name: "__name__", Value: "up"}}},
	}
	if len(b.Series) != len(want) {
		t.Fatalf("got %d series", len(b.Series))
	}
	for i := range want {
		if !slices.Equal(b.Series[i].Labels, want[i].Labels) || !slices.Equal(b.Series[i].Samples, want[i].Samples) {
			t.Errorf("series %d: got %v, want %v", i, b.Series[i], want[i])
		}
	}
	wantSt := Stats{Series: 2, Samples: 2, Exemplars: 1, Histograms: 1, Metadata: 1,
		BatchBytes: len(v2Symbols)*symbolBytes + 2*seriesBytes + 4*labelBytes + 2*sampleBytes + histogramBytes + exemplarBytes + labelBytes + metadataBytes}
	if st != wantSt {
		t.Errorf("stats %+v, want %+v", st, wantSt)
	}
	sameExemplar(t, b.Series[0].Exemplars[0], []batch.Label{{Name: "job", Value: "api"}}, 1, 1000)
	if h := b.Series[1].Histograms; len(h) != 1 || h[0].Timestamp != 1000 {
		t.Errorf("histograms %+v", h)
	} else if want, _ := full.Timeseries[1].Histograms[0].Marshal(); !slices.Equal(h[0].Raw, want) {
		t.Errorf("histogram %x, want it as sent (start_timestamp included) %x", h[0].Raw, want)
	}
	// The second series' metadata (empty) adds nothing; the first's is
	// its family's, named by __name__ as sent.
	if want := []batch.Metadata{{Family: "up", Type: 2, Help: "help text", Unit: "seconds"}}; !slices.Equal(b.Metadata, want) {
		t.Errorf("metadata %+v, want %+v", b.Metadata, want)
	}
	checkWriteRequestV2Agrees(t, marshalV2(t, full))

	// Symbols may follow the series that use them.
	data := marshalV2(t, v2Req(nil, full.Timeseries...))
	for _, s := range v2Symbols {
		data = lenField(data, 4, []byte(s))
	}
	b2 := &batch.Batch{}
	if _, err := UnmarshalWriteRequestV2(data, b2, Limits{}, nil); err != nil || !slices.Equal(b2.Series[0].Labels, want[0].Labels) {
		t.Fatalf("symbols after the series: %v %v", err, b2.Series)
	}

	// An empty request is accepted.
	if st, err := UnmarshalWriteRequestV2(nil, &batch.Batch{}, Limits{}, nil); err != nil || st.Series != 0 {
		t.Fatalf("empty request: %v %+v", err, st)
	}
}

func TestUnmarshalWriteRequestV2Errors(t *testing.T) {
	ts := func(refs ...uint32) writev2.TimeSeries {
		return writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}}
	}
	for _, c := range []struct {
		name string
		req  *writev2.Request
		msg  string
	}{
		{"symbols[0] not empty", v2Req([]string{"x", "__name__"}, ts(1, 0)), `symbols[0] is "x", must be the empty string`},
		{"odd labels_refs", v2Req(v2Symbols, ts(1, 2, 3)), "timeseries[0]: odd number of labels_refs (3)"},
		{"name ref out of range", v2Req(v2Symbols, ts(1, 2), ts(1, 2, 99, 4)), "timeseries[1]: labels_refs[2] = 99 at offset"},
		{"value ref out of range", v2Req(v2Symbols, ts(1, 9)), "labels_refs[1] = 9 at offset"},
		{"ref without symbols", v2Req(nil, ts(0, 0)), "outside the symbols table (0 symbols)"},
		{"empty name", v2Req(v2Symbols, ts(0, 2)), "label name (labels_refs[0] = 0 at offset"},
		{"unsorted", v2Req(v2Symbols, ts(3, 4, 1, 2)), `label names not sorted: "__name__" after "job"`},
		{"duplicate", v2Req(v2Symbols, ts(1, 2, 1, 4)), `duplicate label name "__name__"`},
		{"exemplar ref out of range", v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3, 40}}}}), "exemplar labels_refs[1] = 40"},
		{"exemplar odd refs", v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3}}}}), "exemplar with an odd number of labels_refs (1)"},
		{"help_ref out of range", v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Metadata: writev2.Metadata{HelpRef: 9}}), "metadata help_ref 9 outside the symbols table (9 symbols)"},
		{"unit_ref out of range", v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Metadata: writev2.Metadata{UnitRef: 1 << 31}}), "metadata unit_ref 2147483648"},
		{"invalid histogram", v2Req(v2Symbols, ts(1, 2), writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Histograms: []writev2.Histogram{{Schema: 9}}}), "timeseries[1]: native histogram at offset"},
		{"float histogram with deltas", v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
			Histograms: []writev2.Histogram{{Count: &writev2.Histogram_CountFloat{}, PositiveDeltas: []int64{0}}}}), "float histogram (count_float) with integer fields"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := marshalV2(t, c.req)
			var ref writev2.Request
			if err := ref.Unmarshal(data); err != nil {
				t.Fatalf("the reference refuses the input: %v", err)
			}
			if v2SpecError(&ref) == nil {
				t.Fatal("v2SpecError accepts it")
			}
			_, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{}, nil)
			wantError(t, err, 400, c.msg)
		})
	}
	// Malformed protobuf.
	good := marshalV2(t, v2Req(v2Symbols, ts(1, 2)))
	for _, c := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"truncated", good[:len(good)-3], "protobuf: truncated"},
		{"symbols as varint", append(slices.Clone(good), 4<<3|wtVarint, 1), "wrong wire type 0 for Request.symbols"},
		{"series as fixed64", append(slices.Clone(good), 5<<3|wtFixed64, 1, 2, 3, 4, 5, 6, 7, 8), "wrong wire type 1 for Request.timeseries"},
		{"labels_refs as fixed32", lenField(slices.Clone(good), 5, []byte{1<<3 | wtFixed32, 1, 2, 3, 4}), "wrong wire type 5 for TimeSeries.labels_refs"},
		{"sample start_timestamp as bytes", lenField(slices.Clone(good), 5, lenField(nil, 2, []byte{3<<3 | wtBytes, 0})), "wrong wire type 2 for Sample.start_timestamp"},
		{"histogram start_timestamp as fixed64", lenField(slices.Clone(good), 5, lenField(nil, 3, []byte{0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8})), "wrong wire type 1 for Histogram.start_timestamp"},
		{"metadata ref as bytes", lenField(slices.Clone(good), 5, lenField(nil, 5, []byte{3<<3 | wtBytes, 0})), "wrong wire type 2 for Metadata ref"},
		{"end group", append(slices.Clone(good), 0x0c), "end group outside a group"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ref writev2.Request
			if ref.Unmarshal(c.data) == nil {
				t.Fatal("the reference accepts the input")
			}
			_, err := UnmarshalWriteRequestV2(c.data, &batch.Batch{}, Limits{}, nil)
			wantError(t, err, 400, c.msg)
		})
	}
}

func TestUnmarshalWriteRequestV2Limits(t *testing.T) {
	req := v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2, 5, 6, 3, 4}, Samples: []writev2.Sample{{Value: 1}}},
		writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1}}})
	data := marshalV2(t, req)
	_, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxSeries: 1}, nil)
	wantError(t, err, 413, "max_series_per_request (1)")
	for _, f := range []*NameFilter{nil, {Wanted: func(string) bool { return false }, KeepLabel: "_id"}} {
		_, err = UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 2}, f)
		wantError(t, err, 400, "over max_labels_per_series")
		if _, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 3}, f); err != nil {
			t.Fatal(err)
		}
	}
	st, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One byte short of the charge is refused, the exact charge accepted.
	_, err = UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxBatchBytes: st.BatchBytes - 1}, nil)
	wantError(t, err, 413, "remote write expands to more than")
	if _, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxBatchBytes: st.BatchBytes}, nil); err != nil {
		t.Fatal(err)
	}
	// The symbols alone are charged: a table over the budget is refused
	// before any series.
	_, err = UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxBatchBytes: len(v2Symbols)*symbolBytes - 1}, nil)
	wantError(t, err, 413, "remote write expands")
	// Reserve is asked for what is charged, and its refusal returned.
	var asked int
	_, err = UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{Reserve: func(n int) error { asked += n; return nil }}, nil)
	if err != nil || asked < st.BatchBytes {
		t.Fatalf("reserve asked for %d of %d: %v", asked, st.BatchBytes, err)
	}
	refuse := &Error{Status: 503, Msg: "no memory"}
	if _, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{Reserve: func(int) error { return refuse }}, nil); err != refuse {
		t.Fatalf("reserve's refusal: got %v", err)
	}
}

// Metadata: one entry per family, the first series' kept; a series
// without __name__ adds none; 2.0 types map to batch.MetricType.
func TestUnmarshalWriteRequestV2Metadata(t *testing.T) {
	syms := []string{"", "__name__", "a", "b", "job", "help a", "help b", "bytes"}
	md := func(typ writev2.Metadata_MetricType, help, unit uint32) writev2.Metadata {
		return writev2.Metadata{Type: typ, HelpRef: help, UnitRef: unit}
	}
	req := v2Req(syms,
		writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Metadata: md(writev2.Metadata_METRIC_TYPE_COUNTER, 5, 0)},
		writev2.TimeSeries{LabelsRefs: []uint32{1, 2, 4, 3}, Metadata: md(writev2.Metadata_METRIC_TYPE_GAUGE, 6, 0)},
		writev2.TimeSeries{LabelsRefs: []uint32{4, 2}, Metadata: md(writev2.Metadata_METRIC_TYPE_SUMMARY, 5, 0)},
		writev2.TimeSeries{LabelsRefs: []uint32{1, 3}, Metadata: md(writev2.Metadata_METRIC_TYPE_STATESET, 6, 7)},
		writev2.TimeSeries{LabelsRefs: []uint32{1, 2}, Metadata: md(writev2.Metadata_METRIC_TYPE_INFO, 0, 0)},
	)
	data := marshalV2(t, req)
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []batch.Metadata{{Family: "a", Type: 1, Help: "help a"}, {Family: "b", Type: 7, Help: "help b", Unit: "bytes"}}
	if !slices.Equal(b.Metadata, want) || st.Metadata != 2 {
		t.Fatalf("metadata %+v (%d), want %+v", b.Metadata, st.Metadata, want)
	}
	checkWriteRequestV2Agrees(t, data)
	// Every 2.0 type is the 1.0 type of the same name.
	for v, name := range writev2.Metadata_MetricType_name {
		want, ok := prompb.MetricMetadata_MetricType_value[strings.TrimPrefix(name, "METRIC_TYPE_")]
		if name == "METRIC_TYPE_UNSPECIFIED" {
			want, ok = 0, true // 1.0's UNKNOWN
		}
		if got := metricType(uint32(v)); !ok || int32(got) != want {
			t.Errorf("%s: %d, want %d", name, got, want)
		}
	}
	if metricType(8) != 0 || metricType(1<<31) != 0 {
		t.Error("a type outside the enum is not unknown")
	}
}

// Exemplar labels count against MaxLabelsPerSeries, one exemplar at a time.
func TestUnmarshalWriteRequestV2ExemplarLabels(t *testing.T) {
	req := v2Req(v2Symbols, writev2.TimeSeries{LabelsRefs: []uint32{1, 2},
		Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3, 4, 5, 6}}, {LabelsRefs: []uint32{3, 4}}}})
	data := marshalV2(t, req)
	if _, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 2}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxLabelsPerSeries: 1}, nil)
	wantError(t, err, 400, "remote write 2.0 timeseries[0] has more than 1 labels, over max_labels_per_series")
	st, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{MaxBatchBytes: st.BatchBytes - 1}, nil)
	wantError(t, err, 413, "remote write expands")
}

func TestUnmarshalWriteRequestV2Filtered(t *testing.T) {
	syms := []string{"", "__name__", "zz_metric", "_id", "c1", "job", "api", "a_metric"}
	req := v2Req(syms,
		writev2.TimeSeries{LabelsRefs: []uint32{1, 2, 3, 4, 5, 6}, Samples: []writev2.Sample{{Value: 1}, {Value: 2}},
			Histograms: []writev2.Histogram{{Timestamp: 5}}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{5, 6}}}},
		writev2.TimeSeries{LabelsRefs: []uint32{1, 7, 3, 4, 5, 6}, Samples: []writev2.Sample{{Value: 3}}})
	data := marshalV2(t, req)
	b := &batch.Batch{}
	if _, err := UnmarshalWriteRequestV2(data, b, Limits{}, testFilter); err != nil {
		t.Fatal(err)
	}
	if got := b.Series[0].Labels; !slices.Equal(got, []batch.Label{{Name: "__name__", Value: "zz_metric"}, {Name: "_id", Value: "c1"}}) ||
		len(b.Series[0].Samples) != 2 || len(b.Series[0].Histograms) != 1 || len(b.Series[0].Exemplars) != 1 {
		t.Errorf("skimmed series: %v", b.Series[0])
	}
	if got := b.Series[1].Labels; len(got) != 3 {
		t.Errorf("wanted series: %v", b.Series[1])
	}
	checkWriteRequestV2Agrees(t, data)
}

func TestUnmarshalWriteRequestV2Differential(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for range 3000 {
		data := marshalV2(t, genWriteRequestV2(r))
		checkWriteRequestV2Agrees(t, data)
		for range 3 {
			checkWriteRequestV2Agrees(t, mutate(r, data))
		}
	}
}

// Packed runs of labels_refs behave like the reference's: split into
// several runs, or unpacked, they give the same labels; an element that
// straddles the end of its run is read past it.
func TestUnmarshalWriteRequestV2WireForms(t *testing.T) {
	series := func(refs []byte) []byte {
		ts := refs
		ts = lenField(ts, 2, []byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
		var req []byte
		for _, s := range v2Symbols {
			req = lenField(req, 4, []byte(s))
		}
		return lenField(req, 5, ts)
	}
	for name, refs := range map[string][]byte{
		"packed":          lenField(nil, 1, []byte{1, 2, 3, 4}),
		"two runs":        lenField(lenField(nil, 1, []byte{1, 2, 3}), 1, []byte{4}),
		"unpacked":        {1 << 3, 1, 1 << 3, 2, 1 << 3, 3, 1 << 3, 4},
		"mixed":           append(lenField(nil, 1, []byte{1}), 1<<3, 2, 1<<3, 3, 1<<3, 4),
		"overlong varint": lenField(nil, 1, []byte{0x81, 0x80, 0x80, 0x80, 0x10, 2, 3, 4}), // 1 + 2^32: truncated to 1 like gogo
	} {
		data := series(refs)
		checkWriteRequestV2Agrees(t, data)
		b := &batch.Batch{}
		if _, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []batch.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}}; !slices.Equal(b.Series[0].Labels, want) {
			t.Errorf("%s: %v", name, b.Series[0].Labels)
		}
	}
	// A packed run whose length splits an element.
	checkWriteRequestV2Agrees(t, series(lenField(nil, 1, []byte{1, 0x82})[:0]))
	split := append([]byte{1<<3 | wtBytes, 2, 1, 0x82}, 0x00, 3, 4)
	checkWriteRequestV2Agrees(t, series(split))
}

func TestUnmarshalWriteRequestV2ZeroAllocs(t *testing.T) {
	data := benchWriteRequestV2(t)
	b := &batch.Batch{}
	if _, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		b.Reset()
		if _, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per decode in steady state", allocs)
	}
}

func benchWriteRequestV2(t testing.TB) []byte {
	var req prompb.WriteRequest
	if err := req.Unmarshal(benchWriteRequest()); err != nil {
		t.Fatal(err)
	}
	return marshalV2(t, toV2(&req))
}

func FuzzWriteRequestV2MatchesReference(f *testing.F) {
	r := rand.New(rand.NewPCG(31, 32))
	for range 20 {
		f.Add(marshalV2(f, genWriteRequestV2(r)))
	}
	f.Add(marshalV2(f, v2Req([]string{"x"})))
	f.Add([]byte{1<<3 | wtBytes, 2, 1, 0x82, 0, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkWriteRequestV2Agrees(t, data)
	})
}

func BenchmarkUnmarshalWriteRequestV2(bm *testing.B) {
	data := benchWriteRequestV2(bm)
	b := &batch.Batch{}
	bm.SetBytes(int64(len(data)))
	bm.ReportAllocs()
	for bm.Loop() {
		b.Reset()
		if _, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil); err != nil {
			bm.Fatal(err)
		}
	}
}
