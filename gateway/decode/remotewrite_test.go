package decode

import (
	"errors"
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
	wr := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}},
				Samples:   []prompb.Sample{{Value: 1, Timestamp: 10}, {Value: 2, Timestamp: -20}},
				Exemplars: []prompb.Exemplar{{Value: 1}},
			},
			{
				Labels:     []prompb.Label{{Name: "__name__", Value: "h"}},
				Histograms: []prompb.Histogram{{Count: &prompb.Histogram_CountInt{CountInt: 3}}, {Sum: 1}},
			},
		},
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up"}},
	}
	data := mustMarshal(t, wr)
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequest(data, b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Series: 2, Samples: 2, Exemplars: 1, Histograms: 2, Metadata: 1,
		BatchBytes: 2*seriesBytes + 3*labelBytes + 2*sampleBytes}); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if len(b.Series) != 2 || b.Series[0].Name() != "up" || len(b.Series[1].Samples) != 0 {
		t.Fatalf("series %+v", b.Series)
	}
	if got := b.Series[0].Samples; got[0] != (batch.Sample{Timestamp: 10, Value: 1}) || got[1] != (batch.Sample{Timestamp: -20, Value: 2}) {
		t.Fatalf("samples %v", got)
	}
	// Strings alias the buffer: no copies.
	v := b.Series[0].Labels[1].Value
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	if base := uintptr(unsafe.Pointer(&data[0])); p < base || p >= base+uintptr(len(data)) {
		t.Fatal("label value does not alias the buffer")
	}
	checkWriteRequestAgrees(t, data)
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
	h := []byte{0x52, 0x03, 0, 0, 0, 0, 0, 0, 0, 0} // field 10 packed, length 3, 8 bytes of double
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
			Samples: []prompb.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
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
	// The refused series keeps what precedes and names it, and its _id;
	// only the first __name__ decides.
	if want := []string{"A=1,__name__=zzz,_id=c", "__name__=abc,__name__=zzz,b=2"}; !slices.Equal(got, want) || st.Samples != 3 || len(b.Series[0].Samples) != 2 {
		t.Fatalf("got %q (stats %+v), want %q", got, st, want)
	}
}
