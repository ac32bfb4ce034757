package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/telegate/telegate/batch"
)

// Adversarial shapes: bodies that make a naive decoder allocate many
// times their size. Each is decoded with default-like limits and a budget
// for its own decoded size, and the heap it takes is measured.

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// lenField appends field num (wire type 2) holding payload.
func lenField(b []byte, num int, payload []byte) []byte {
	b = appendVarint(b, uint64(num)<<3|wtBytes)
	b = appendVarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// repeatTo repeats unit until the result reaches n bytes.
func repeatTo(unit []byte, n int) []byte {
	return bytes.Repeat(unit, max(n/len(unit), 1))
}

// family wraps one MetricFamily message as an upload record.
func family(name string, typ int, metrics ...[]byte) []byte {
	var mf []byte
	mf = lenField(mf, 1, []byte(name))
	mf = append(mf, 3<<3|wtVarint, byte(typ))
	for _, m := range metrics {
		mf = lenField(mf, 4, m)
	}
	return append(appendVarint(nil, uint64(len(mf))), mf...)
}

// advSize is the adversarial decoded body; the upload shapes run without
// the series or label caps use advSmall, their budget alone lets them
// allocate about a gigabyte at advSize.
const (
	advSize  = 8 << 20
	advSmall = 1 << 20
)

var emptyPair = []byte{0x0a, 0x00} // an empty label (pair): field 1, length 0

type advCase struct {
	name   string
	upload bool
	v2     bool // remote write 2.0
	data   []byte
	limits Limits // MaxBatchBytes is set from the budget of len(data)
	status int    // 0: accepted
	msg    string
	// maxAlloc, when set, is a tighter bound on what the decode allocates
	// (shapes that should allocate next to nothing).
	maxAlloc int64
}

func advCases() []advCase {
	def := Limits{MaxSeries: 10000, MaxLabelsPerSeries: 64 + 4}
	var cs []advCase
	add := func(c advCase) { cs = append(cs, c) }

	// Remote write.
	add(advCase{name: "rw: one series of empty labels", data: lenField(nil, 1, repeatTo(emptyPair, advSize-8)),
		limits: def, status: 400, msg: "max_labels_per_series"})
	add(advCase{name: "rw: one series of empty labels, no label cap", data: lenField(nil, 1, repeatTo(emptyPair, advSize-8)),
		limits: Limits{MaxSeries: 10000}, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: many series of 68 empty labels", data: repeatTo(lenField(nil, 1, bytes.Repeat(emptyPair, 68)), advSize),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "rw: many series of 68 empty labels, no series cap", data: repeatTo(lenField(nil, 1, bytes.Repeat(emptyPair, 68)), advSize),
		limits: Limits{MaxLabelsPerSeries: 68}, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: one series of empty samples", data: lenField(nil, 1, repeatTo([]byte{0x12, 0x00}, advSize-8)),
		limits: def, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: empty series", data: repeatTo([]byte{0x0a, 0x00}, advSize),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "rw: empty series, no series cap", data: repeatTo([]byte{0x0a, 0x00}, advSize),
		limits: Limits{}, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: unknown field padding", data: lenField(nil, 9, make([]byte, advSize-8)),
		limits: def})
	nested := append(bytes.Repeat([]byte{5<<3 | wtStart}, advSize/2), bytes.Repeat([]byte{5<<3 | wtEnd}, advSize/2)...)
	add(advCase{name: "rw: deeply nested groups", data: nested, limits: def, maxAlloc: 1 << 20})
	// An empty exemplar (2 bytes) charges 40, an empty histogram (valid:
	// an integer histogram of no observations) 32.
	add(advCase{name: "rw: empty exemplars and histograms", data: lenField(nil, 1, repeatTo([]byte{0x1a, 0x00, 0x22, 0x00}, advSize-8)),
		limits: def, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: empty exemplars and histograms within the constant", data: lenField(nil, 1, repeatTo([]byte{0x1a, 0x00, 0x22, 0x00}, 60000)),
		limits: def})
	var families []byte
	for i := range advSize / 10 {
		families = lenField(families, 3, lenField(nil, 2, appendVarint([]byte{'f'}, uint64(i))))
	}
	add(advCase{name: "rw: many metadata families", data: families, limits: def, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw: one metadata family repeated", data: repeatTo(lenField(nil, 3, lenField(nil, 2, []byte{'f'})), advSize), limits: def, maxAlloc: 1 << 20})

	// Remote write 2.0.
	cs = append(cs, advCasesV2(def)...)

	// Uploads.
	histo := func(pairs, buckets int) []byte {
		var h []byte
		for range buckets {
			h = append(h, 0x1a, 0x00) // an empty bucket
		}
		return lenField(bytes.Repeat(emptyPair, pairs), 7, h)
	}
	add(advCase{name: "upload: one metric of empty label pairs", upload: true, data: family("h", typeHistogram, histo(advSize/2-16, 1)),
		limits: def, status: 400, msg: "max_labels_per_series"})
	add(advCase{name: "upload: one metric of empty label pairs, no label cap", upload: true, data: family("h", typeHistogram, histo(advSmall/2-16, 1)),
		limits: Limits{MaxSeries: 10000}, status: 413, msg: "upload expands to more than"})
	add(advCase{name: "upload: 66 empty pairs, empty buckets", upload: true, data: family("h", typeHistogram, histo(66, advSize/2-100)),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "upload: 66 empty pairs, empty buckets, no series cap", upload: true, data: family("h", typeHistogram, histo(66, advSmall/2-100)),
		limits: Limits{MaxLabelsPerSeries: 68}, status: 413, msg: "upload expands to more than"})
	// The review's body: padding, then 6,500 empty pairs and 9,990 empty buckets.
	padded := append(lenField(nil, 15, make([]byte, advSize-40000)), histo(6500, 9990)...)
	paddedSmall := append(lenField(nil, 15, make([]byte, advSmall-40000)), histo(6500, 9990)...)
	add(advCase{name: "upload: padded metric of 6500 pairs and 9990 buckets", upload: true, data: family("h", typeHistogram, padded),
		limits: def, status: 400, msg: "max_labels_per_series"})
	add(advCase{name: "upload: padded metric, no label or series cap", upload: true, data: family("h", typeHistogram, paddedSmall),
		limits: Limits{}, status: 413, msg: "upload expands to more than"})
	add(advCase{name: "upload: many tiny gauge families", upload: true, data: repeatTo(family("g", typeGauge, []byte{0x12, 0x00}), advSize),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "upload: many tiny gauge families, no series cap", upload: true, data: repeatTo(family("g", typeGauge, []byte{0x12, 0x00}), advSmall),
		limits: Limits{}})
	quantilesOf := func(size int) []byte {
		var quantiles []byte
		for i := range size / 13 {
			q := []byte{0x09, 0, 0, 0, 0, 0, 0, 0, 0}
			binary.LittleEndian.PutUint64(q[1:], math.Float64bits(1+float64(i)*1e-9))
			quantiles = lenField(quantiles, 3, q)
		}
		return quantiles
	}
	add(advCase{name: "upload: summary of distinct quantiles", upload: true, data: family("s", typeSummary, lenField(nil, 4, quantilesOf(advSize))),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "upload: summary of distinct quantiles, no series cap", upload: true, data: family("s", typeSummary, lenField(nil, 4, quantilesOf(advSmall))),
		limits: Limits{}})
	add(advCase{name: "upload: long family name", upload: true, data: family(strings.Repeat("n", advSize-100), typeHistogram, histo(0, 1)),
		limits: def})
	// Native histograms: a no-op span each (4 bytes a metric), or one of
	// many zero-length spans, or one of many buckets.
	noop := lenField(nil, 7, []byte{0x62, 0x00})
	add(advCase{name: "upload: many empty native histograms", upload: true, data: family("h", typeHistogram, slices.Repeat([][]byte{noop}, advSize/6)...),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "upload: many empty native histograms, no series cap", upload: true, data: family("h", typeHistogram, slices.Repeat([][]byte{noop}, advSmall/6)...),
		limits: Limits{}})
	add(advCase{name: "upload: native histogram of empty spans", upload: true, data: family("h", typeHistogram, lenField(nil, 7, repeatTo([]byte{0x62, 0x00}, advSize-16))),
		limits: def})
	manyBuckets := lenField(nil, 12, append([]byte{0x10}, appendVarint(nil, uint64(advSize-32))...))
	manyBuckets = lenField(manyBuckets, 13, make([]byte, advSize-32)) // zero deltas
	add(advCase{name: "upload: native histogram of many buckets", upload: true, data: family("h", typeHistogram, lenField(nil, 7, manyBuckets)),
		limits: def})
	groups := append(bytes.Repeat([]byte{15<<3 | wtStart}, 9000), bytes.Repeat([]byte{15<<3 | wtEnd}, 9000)...)
	add(advCase{name: "upload: deeply nested groups", upload: true, data: repeatTo(family("g", typeGauge, append(groups, 0x12, 0x00)), advSize),
		limits: def, maxAlloc: 1 << 20})
	return cs
}

// decodeMeasured decodes c into a fresh batch and returns what the decode
// allocated in all and what it left reachable.
func decodeMeasured(c advCase, l Limits) (st Stats, err error, allocated, retained int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	total0, heap0 := ms.TotalAlloc, ms.HeapAlloc
	b := &batch.Batch{}
	if c.upload {
		st, err = UnmarshalMetricFamilies(c.data, b, 1700000000000, false, l)
	} else if c.v2 {
		st, err = UnmarshalWriteRequestV2(c.data, b, l, nil)
	} else {
		st, err = UnmarshalWriteRequest(c.data, b, l)
	}
	runtime.ReadMemStats(&ms)
	allocated = int64(ms.TotalAlloc - total0)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	retained = int64(ms.HeapAlloc) - int64(heap0)
	runtime.KeepAlive(b)
	return st, err, allocated, retained
}

// The bounds the tests hold the decoders to, for a budget B: the batch
// holds at most 1.25 B (its arenas grow by append's 1.25x, see
// batch.Batch) and a decode allocates at most 7 B in all (an arena's
// generations add up to 5x its final size; those before the last are
// garbage as soon as they are replaced). slack covers small fixed
// allocations and the noise of the measurement.
const (
	retainedFactor = 1.25
	allocFactor    = 7
	slack          = 256 << 10
)

func TestAdversarialShapesBounded(t *testing.T) {
	for _, c := range advCases() {
		t.Run(c.name, func(t *testing.T) {
			l := c.limits
			if c.upload {
				l.MaxBatchBytes = UploadBudget(len(c.data))
			} else if c.v2 {
				l.MaxBatchBytes = RemoteWriteV2Budget(len(c.data))
			} else {
				l.MaxBatchBytes = RemoteWriteBudget(len(c.data))
			}
			st, err, allocated, retained := decodeMeasured(c, l)
			t.Logf("%d decoded bytes, budget %d: %d series, charged %d, allocated %d (%.2f per decoded byte), retained %d; err %v",
				len(c.data), l.MaxBatchBytes, st.Series, st.BatchBytes, allocated, float64(allocated)/float64(len(c.data)), retained, err)
			if c.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				var de *Error
				if !errors.As(err, &de) || de.Status != c.status || !strings.Contains(de.Msg, c.msg) {
					t.Fatalf("got %v, want %d containing %q", err, c.status, c.msg)
				}
			}
			if retained > int64(retainedFactor*float64(l.MaxBatchBytes))+slack {
				t.Errorf("the batch keeps %d bytes, over %.2f x the budget %d", retained, retainedFactor, l.MaxBatchBytes)
			}
			if allocated > int64(allocFactor*l.MaxBatchBytes)+slack {
				t.Errorf("decoding allocated %d bytes, over %d x the budget %d", allocated, allocFactor, l.MaxBatchBytes)
			}
			if c.maxAlloc > 0 && allocated > c.maxAlloc {
				t.Errorf("decoding allocated %d bytes, want at most %d", allocated, c.maxAlloc)
			}
		})
	}
}

// heldBytes is the heap b's series hold as the decoders charge it: 48 per
// series, 32 per label, 16 per sample, 32 per histogram, 40 per exemplar
// (its labels as labels), 96 per metadata entry, plus every distinct
// string that does not alias buf.
func heldBytes(b *batch.Batch, buf []byte) int {
	n := 0
	seen := map[unsafe.Pointer]bool{}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	hi := lo + uintptr(len(buf))
	str := func(s string) {
		p := unsafe.Pointer(unsafe.StringData(s))
		if len(s) == 0 || (uintptr(p) >= lo && uintptr(p) < hi) || seen[p] {
			return
		}
		seen[p] = true
		switch s { // the constants formatFloat returns are not allocated
		case "0", "+Inf", "-Inf", "NaN":
			return
		}
		n += len(s)
	}
	for _, s := range b.Series {
		n += seriesBytes + len(s.Labels)*labelBytes + len(s.Samples)*sampleBytes + len(s.Histograms)*histogramBytes
		for _, l := range s.Labels {
			str(l.Name)
			str(l.Value)
		}
		for _, e := range s.Exemplars {
			n += exemplarBytes + len(e.Labels)*labelBytes
		}
		// Histogram encodings held outside buf (uploads re-encode them).
		for _, h := range s.Histograms {
			if p := uintptr(unsafe.Pointer(unsafe.SliceData(h.Raw))); p < lo || p >= hi {
				n += len(h.Raw)
			}
		}
	}
	return n + len(b.Metadata)*metadataBytes
}

// checkBounded decodes data under small limits and checks: the outcome is a
// 400 or 413 *Error or success; the series the batch holds (also after a
// refusal) stay within the budget and the label cap; its arenas within
// twice the budget; a filter changes neither the outcome nor the charge;
// and an accepted body decodes to the same series without limits.
// Kinds of body checkBounded decodes.
const (
	kindRW = iota
	kindUpload
	kindRW2
)

func checkBounded(t *testing.T, data []byte, kind int) {
	per := remoteWritePerByte
	switch kind {
	case kindUpload:
		per = uploadPerByte
	case kindRW2:
		per = remoteWriteV2PerByte
	}
	l := Limits{MaxSeries: 50, MaxLabelsPerSeries: 8, MaxBatchBytes: per*len(data) + 512}
	decode := func(l Limits, f *NameFilter) (*batch.Batch, Stats, error) {
		b := &batch.Batch{}
		var st Stats
		var err error
		switch kind {
		case kindUpload:
			st, err = UnmarshalMetricFamiliesFiltered(data, b, 1700000000000, false, l, f)
		case kindRW2:
			st, err = UnmarshalWriteRequestV2(data, b, l, f)
		default:
			st, err = UnmarshalWriteRequestFiltered(data, b, l, f)
		}
		return b, st, err
	}
	b, st, err := decode(l, nil)
	if err != nil {
		var de *Error
		if !errors.As(err, &de) || (de.Status != 400 && de.Status != 413) {
			t.Fatalf("error %v is not a 400 or 413 *Error", err)
		}
	}
	if held := heldBytes(b, data); held > l.MaxBatchBytes {
		t.Fatalf("batch holds %d bytes, over the budget %d (%d decoded bytes; err %v)", held, l.MaxBatchBytes, len(data), err)
	}
	if b.Bytes() > 2*l.MaxBatchBytes+1024 {
		t.Fatalf("batch arenas take %d bytes, budget %d", b.Bytes(), l.MaxBatchBytes)
	}
	for _, s := range b.Series {
		if len(s.Labels) > l.MaxLabelsPerSeries {
			t.Fatalf("series with %d labels, cap %d", len(s.Labels), l.MaxLabelsPerSeries)
		}
	}
	if len(b.Series) > l.MaxSeries {
		t.Fatalf("%d series, cap %d", len(b.Series), l.MaxSeries)
	}
	_, stF, errF := decode(l, testFilter)
	if (err == nil) != (errF == nil) || StatusOf(err) != StatusOf(errF) || st != stF {
		t.Fatalf("filter changes the outcome under limits: %v %+v vs %v %+v", err, st, errF, stF)
	}
	if err != nil {
		return
	}
	full, stFull, errFull := decode(Limits{}, nil)
	if errFull != nil || stFull != st || len(full.Series) != len(b.Series) {
		t.Fatalf("limits change an accepted body: %v %+v vs %+v", errFull, stFull, st)
	}
	for i := range full.Series {
		fs, ls := full.Series[i], b.Series[i]
		sameHist := func(a, b batch.Histogram) bool { return a.Timestamp == b.Timestamp && bytes.Equal(a.Raw, b.Raw) }
		if !slices.Equal(fs.Labels, ls.Labels) || !slices.EqualFunc(fs.Histograms, ls.Histograms, sameHist) {
			t.Fatalf("series %d: %v without limits, %v with", i, fs, ls)
		}
	}
	sameSeriesContent(t, b, full)
}

func FuzzWriteRequestBounded(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		f.Add(mustMarshal(f, genWriteRequest(r)))
	}
	f.Add(lenField(nil, 1, bytes.Repeat(emptyPair, 100)))
	f.Add(bytes.Repeat([]byte{0x0a, 0x00}, 100))
	f.Add(lenField(nil, 1, bytes.Repeat([]byte{0x12, 0x00}, 100)))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkBounded(t, data, kindRW)
	})
}

func FuzzMetricFamiliesBounded(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 20 {
		f.Add(encodeFamilies(f, genFamilies(r)))
	}
	f.Add(family("h", typeHistogram, lenField(bytes.Repeat(emptyPair, 6), 7, bytes.Repeat([]byte{0x1a, 0x00}, 60))))
	f.Add(family("s", typeSummary, lenField(nil, 4, bytes.Repeat([]byte{0x1a, 0x09, 0x09, 1, 2, 3, 4, 5, 6, 7, 8}, 20))))
	for _, data := range mfFastPathEdges() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkBounded(t, data, kindUpload)
		// As the reference under checkBounded's limits (the full set of
		// limits is FuzzUnmarshalMetricFamilies').
		l := Limits{MaxSeries: 50, MaxLabelsPerSeries: 8, MaxBatchBytes: uploadPerByte*len(data) + 512}
		for _, mode := range mfModes {
			for _, f := range []*NameFilter{nil, testFilter} {
				checkMFSameAsRef(t, data, mode, l, f, nil)
			}
		}
	})
}

// Labels a NameFilter skims still count against MaxLabelsPerSeries, so the
// filter does not change what is accepted.
func TestMaxLabelsCountsSkimmedLabels(t *testing.T) {
	pair := func(n, v string) []byte { return lenField(lenField(nil, 1, []byte(n)), 2, []byte(v)) }
	var ts, metric []byte
	ts = lenField(ts, 1, pair("__name__", "zzz")) // refused by testFilter
	for i := range 6 {
		ts = lenField(ts, 1, pair("l"+string(rune('a'+i)), "v"))
		metric = lenField(metric, 1, pair("l"+string(rune('a'+i)), "v"))
	}
	rw := lenField(nil, 1, ts)
	up := family("zzz", typeGauge, lenField(metric, 2, nil))
	for _, f := range []*NameFilter{nil, testFilter} {
		_, err := UnmarshalWriteRequestFiltered(rw, &batch.Batch{}, Limits{MaxLabelsPerSeries: 6}, f)
		wantError(t, err, 400, "max_labels_per_series")
		if _, err := UnmarshalWriteRequestFiltered(rw, &batch.Batch{}, Limits{MaxLabelsPerSeries: 7}, f); err != nil {
			t.Fatal(err)
		}
		_, err = UnmarshalMetricFamiliesFiltered(up, &batch.Batch{}, 0, true, Limits{MaxLabelsPerSeries: 6}, f)
		wantError(t, err, 400, "max_labels_per_series")
		if _, err := UnmarshalMetricFamiliesFiltered(up, &batch.Batch{}, 0, true, Limits{MaxLabelsPerSeries: 7}, f); err != nil {
			t.Fatal(err)
		}
	}
}
