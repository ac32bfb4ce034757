package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// The remote write 1.0 walk before its fast paths (commit cc85374), kept
// as the reference the fast paths must match exactly: the same batch,
// Stats, errors (message, status, reason) and budget requests, on every
// input and under every limit (see checkSameAsRef). The series, label and
// sample levels are frozen here; exemplars, histograms and metadata are
// shared.

func refUnmarshalWriteRequestFiltered(buf []byte, b *batch.Batch, l Limits, f *NameFilter) (Stats, error) {
	d := rwDecoder{buf: buf, b: b, filter: f, bud: newBudget(l, len(buf)), maxLabels: l.MaxLabelsPerSeries}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.refWriteRequest(l.MaxSeries)
	d.releaseFamilies()
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

func (d *rwDecoder) refWriteRequest(maxSeries int) error {
	i, end := 0, len(d.buf)
	for i < end {
		num, wt, next, err := d.tag(i, end, "WriteRequest")
		if err != nil {
			return err
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtBytes, "WriteRequest.timeseries", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "timeseries")
			if err != nil {
				return err
			}
			if maxSeries > 0 && d.st.Series >= maxSeries {
				return TooLarge(CapSeries, maxSeries, fmt.Sprintf("request with more than %d series", maxSeries))
			}
			if !d.bud.take(seriesBytes) {
				return d.bud.errOver("remote write")
			}
			if err := d.refTimeSeries(s, e); err != nil {
				return err
			}
			d.b.EndSeries()
			d.st.Series++
			i = e
		case 3:
			if err := wantWire(wt, wtBytes, "WriteRequest.metadata", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "metadata")
			if err != nil {
				return err
			}
			if err := d.metadata(s, e); err != nil {
				return err
			}
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *rwDecoder) refTimeSeries(i, end int) error {
	named, skim := false, false // __name__ seen; the filter refused it
	labels := 0
	for i < end {
		// A one-byte tag (every field of a TimeSeries) needs no varint
		// decoding; tag() applies the same checks to the rest.
		var num int32
		var wt, next int
		if c := d.buf[i]; c < 0x80 && c>>3 != 0 && c&7 != wtEnd {
			num, wt, next = int32(c>>3), int(c&7), i+1
		} else {
			var err error
			if num, wt, next, err = d.tag(i, end, "TimeSeries"); err != nil {
				return err
			}
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtBytes, "TimeSeries.labels", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "label")
			if err != nil {
				return err
			}
			name, value, err := d.refLabel(s, e)
			if err != nil {
				return err
			}
			// Every label on the wire counts, skimmed or not, so a filter
			// does not change what is accepted.
			if labels++; labels > d.maxLabels {
				return errLabels(fmt.Sprintf("TimeSeries at offset %d", i), d.maxLabels)
			}
			if !d.bud.take(labelBytes) {
				return d.bud.errOver("remote write")
			}
			switch {
			case !skim:
				d.b.PushLabel(name, value)
				if d.filter != nil && !named && name == batch.MetricName { // the first __name__ is the name
					named, skim = true, !d.filter.Wanted(value)
				}
			case name == d.filter.KeepLabel:
				d.b.PushLabel(name, value)
			}
			i = e
		case 2:
			if err := wantWire(wt, wtBytes, "TimeSeries.samples", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "sample")
			if err != nil {
				return err
			}
			if !d.bud.take(sampleBytes) {
				return d.bud.errOver("remote write")
			}
			if err := d.refSample(s, e); err != nil {
				return err
			}
			d.st.Samples++
			i = e
		case 3:
			if err := wantWire(wt, wtBytes, "TimeSeries.exemplars", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "exemplar")
			if err != nil {
				return err
			}
			if err := d.exemplar(s, e); err != nil {
				return err
			}
			d.st.Exemplars++
			i = e
		case 4:
			if err := wantWire(wt, wtBytes, "TimeSeries.histograms", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "histogram")
			if err != nil {
				return err
			}
			if err := d.pushHistogram(s, e); err != nil {
				return err
			}
			i = e
		default:
			var err error
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *rwDecoder) refLabel(i, end int) (name, value string, err error) {
	// Fast path for the encoding every sender produces: name (field 1)
	// then value (field 2), nothing else. Anything else, including every
	// malformed input, takes the general loop below, which accepts the
	// same bytes with the same result.
	if i < end && d.buf[i] == tagLabelName {
		nl, ns := varint(d.buf, i+1, end)
		if ns > 0 && nl <= uint64(end-ns) {
			ne := ns + int(nl)
			if ne < end && d.buf[ne] == tagLabelValue {
				vl, vs := varint(d.buf, ne+1, end)
				if vs > 0 && vl == uint64(end-vs) {
					return str(d.buf, ns, ne), str(d.buf, vs, end), nil
				}
			}
		}
	}
	for i < end {
		num, wt, next, err := d.tag(i, end, "Label")
		if err != nil {
			return "", "", err
		}
		switch num {
		case 1, 2:
			if err := wantWire(wt, wtBytes, "Label field", i); err != nil {
				return "", "", err
			}
			s, e, err := d.lenDelim(next, end, "label")
			if err != nil {
				return "", "", err
			}
			if num == 1 {
				name = str(d.buf, s, e)
			} else {
				value = str(d.buf, s, e)
			}
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return "", "", err
			}
		}
	}
	return name, value, nil
}

func (d *rwDecoder) refSample(i, end int) error {
	buf := d.buf
	// Fast path for what Prometheus sends: value, then a timestamp ending
	// the message. The loop below accepts the same bytes the same way.
	if end-i >= 11 && buf[i] == 1<<3|wtFixed64 && buf[i+9] == 2<<3|wtVarint {
		if ts, e := varint(buf, i+10, end); e == end {
			d.b.PushSample(int64(ts), math.Float64frombits(binary.LittleEndian.Uint64(buf[i+1:])))
			return nil
		}
	}
	var ts int64
	var v float64
	for i < end {
		num, wt, next, err := d.tag(i, end, "Sample")
		if err != nil {
			return err
		}
		switch {
		case num == 1:
			if err := wantWire(wt, wtFixed64, "Sample.value", i); err != nil {
				return err
			}
			bits, e, err := d.fixed64(next, end, "sample value")
			if err != nil {
				return err
			}
			v = math.Float64frombits(bits)
			i = e
		case num == 2:
			if err := wantWire(wt, wtVarint, "Sample.timestamp", i); err != nil {
				return err
			}
			u, e := varint(buf, next, end)
			if e < 0 {
				return varintErr(e, next, "sample timestamp")
			}
			ts = int64(u)
			i = e
		case num == 3 && d.v2: // start_timestamp (2.0): validated, dropped
			if i, err = d.scalar(wt, wtVarint, i, next, end, "Sample.start_timestamp"); err != nil {
				return err
			}
		default:
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	d.b.PushSample(ts, v)
	return nil
}

// checkSameAsRef decodes data with UnmarshalWriteRequestFiltered and with
// the reference under l and f, and fails t unless both give the same
// batch, Stats, error (message, status, reason) and Reserve requests.
func checkSameAsRef(t testing.TB, data []byte, l Limits, f *NameFilter) {
	t.Helper()
	checkSameAsRefReserve(t, data, l, f, nil)
}

// checkSameAsRefReserve is checkSameAsRef with a new reserve from
// newReserve (when not nil) for each decoder.
func checkSameAsRefReserve(t testing.TB, data []byte, l Limits, f *NameFilter, newReserve func() func(int) error) {
	t.Helper()
	run := func(dec func([]byte, *batch.Batch, Limits, *NameFilter) (Stats, error)) (*batch.Batch, Stats, error, []int) {
		var asked []int
		lim := l
		reserve := l.Reserve
		if newReserve != nil {
			reserve = newReserve()
		}
		if reserve != nil {
			lim.Reserve = func(n int) error {
				asked = append(asked, n)
				return reserve(n)
			}
		}
		b := &batch.Batch{}
		st, err := dec(data, b, lim, f)
		return b, st, err, asked
	}
	b, st, err, asked := run(UnmarshalWriteRequestFiltered)
	rb, rst, rerr, rasked := run(refUnmarshalWriteRequestFiltered)
	if st != rst || !slices.Equal(asked, rasked) || !sameErr(err, rerr) {
		t.Fatalf("on %x with %+v, filter %v: got %+v %v, reserve %v; reference %+v %v, reserve %v",
			data, l, f != nil, st, err, asked, rst, rerr, rasked)
	}
	if got, want := dumpBatch(b), dumpBatch(rb); got != want {
		t.Fatalf("on %x with %+v, filter %v: batch\n%s\nreference\n%s", data, l, f != nil, got, want)
	}
}

// checkSameAsRefLimits is checkSameAsRef without and with testFilter and
// nameLenFilter, under no limits and under limits that stop data at
// different points.
func checkSameAsRefLimits(t testing.TB, data []byte) {
	t.Helper()
	var full batch.Batch
	st, _ := refUnmarshalWriteRequestFiltered(data, &full, Limits{}, nil)
	refuse := errors.New("reserve refused")
	limits := []Limits{{},
		{MaxLabelsPerSeries: 1}, {MaxLabelsPerSeries: 2}, {MaxLabelsPerSeries: 3},
		{MaxSeries: 1}, {MaxSeries: 2},
		{MaxBatchBytes: 1},
		{MaxBatchBytes: st.BatchBytes}, {MaxBatchBytes: st.BatchBytes - 1},
		{MaxBatchBytes: st.BatchBytes - labelBytes}, {MaxBatchBytes: st.BatchBytes / 2},
		{MaxBatchBytes: st.BatchBytes/3 + 5},
		{MaxBatchBytes: st.BatchBytes + 1, Reserve: func(int) error { return nil }},
		{MaxBatchBytes: st.BatchBytes / 2, Reserve: func(int) error { return refuse }},
		{Reserve: func(n int) error { return nil }},
	}
	for _, l := range limits {
		for _, f := range []*NameFilter{nil, testFilter, nameLenFilter} {
			checkSameAsRef(t, data, l, f)
		}
	}
}

// nameLenFilter refuses names of odd length and keeps the "job" label.
var nameLenFilter = &NameFilter{Wanted: func(n string) bool { return len(n)%2 == 0 }, KeepLabel: "job"}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	var ea, eb *Error
	if errors.As(a, &ea) != errors.As(b, &eb) {
		return false
	}
	if ea != nil {
		return *ea == *eb
	}
	return a == b // the Reserve hook's own error, returned as is
}

// dumpBatch prints everything a decoder put in b, floats by their bits.
func dumpBatch(b *batch.Batch) string {
	var sb strings.Builder
	for i, s := range b.Series {
		fmt.Fprintf(&sb, "series %d: %q\n", i, s.Labels)
		for _, x := range s.Samples {
			fmt.Fprintf(&sb, "  sample %d %x\n", x.Timestamp, math.Float64bits(x.Value))
		}
		for _, h := range s.Histograms {
			fmt.Fprintf(&sb, "  histogram %d %x\n", h.Timestamp, h.Raw)
		}
		for _, e := range s.Exemplars {
			fmt.Fprintf(&sb, "  exemplar %q %d %x\n", e.Labels, e.Timestamp, math.Float64bits(e.Value))
		}
	}
	for _, m := range b.Metadata {
		fmt.Fprintf(&sb, "metadata %q\n", m)
	}
	fmt.Fprintf(&sb, "pending %q", b.PendingLabels())
	return sb.String()
}

// fastPathEdges are remote write 1.0 requests around the fast paths'
// conditions: each must decode exactly as the reference and gogo do.
func fastPathEdges() map[string][]byte {
	pair := func(n, v string) []byte { return lenField(lenField(nil, 1, []byte(n)), 2, []byte(v)) }
	series := func(labels ...[]byte) []byte {
		var ts []byte
		for _, l := range labels {
			ts = lenField(ts, 1, l)
		}
		ts = append(ts, 0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05) // sample 1 at 5
		return lenField(nil, 1, ts)
	}
	// raw writes a series label whose Label bytes are given as is, under
	// the tag and length bytes given.
	raw := func(prefix []byte, label []byte, rest ...[]byte) []byte {
		ts := append(slices.Clone(prefix), label...)
		for _, l := range rest {
			ts = lenField(ts, 1, l)
		}
		return lenField(nil, 1, ts)
	}
	long := strings.Repeat("v", 200)
	// many labels after the first, so a misread length can stay in bounds
	filler := make([][]byte, 0, 20)
	for i := range 20 {
		filler = append(filler, pair(fmt.Sprintf("l%02d", i), "value"))
	}
	cases := map[string][]byte{
		"plain":                   series(pair("__name__", "up"), pair("job", "a")),
		"empty label":             series([]byte{}, pair("job", "a")),
		"empty name and value":    series(pair("", ""), pair("__name__", "")),
		"name only":               series([]byte{0x0a, 0x01, 'a'}, pair("b", "c")),
		"value only":              series([]byte{0x12, 0x01, 'a'}, pair("b", "c")),
		"value before name":       series([]byte{0x12, 0x01, 'v', 0x0a, 0x01, 'n'}, pair("b", "c")),
		"name twice":              series([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 0x0a, 0x01, 'm'}),
		"name then name":          series([]byte{0x0a, 0x01, 'n', 0x0a, 0x01, 'm'}),
		"unknown bytes field":     series([]byte{0x0a, 0x01, 'n', 0x1a, 0x01, 'x'}),
		"unknown field first":     series([]byte{0x18, 0x05, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'}),
		"unknown field between":   series([]byte{0x0a, 0x01, 'n', 0x18, 0x05, 0x12, 0x01, 'v'}),
		"unknown field last":      series([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 0x1d, 1, 2, 3, 4}),
		"short value length":      series([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 'w'}),
		"long value length":       series([]byte{0x0a, 0x01, 'n', 0x12, 0x03, 'v'}),
		"long name length":        series([]byte{0x0a, 0x09, 'n', 0x12, 0x01, 'v'}, pair("b", "c")),
		"name wrong wire type":    series([]byte{0x0b, 0x01, 'n', 0x12, 0x01, 'v'}),
		"value wrong wire type":   series([]byte{0x0a, 0x01, 'n', 0x10, 0x01}),
		"value of 127":            series(pair("n", strings.Repeat("v", 127))),
		"label of 127":            series(pair("n", strings.Repeat("v", 122))),
		"label of 128":            series(pair("n", strings.Repeat("v", 123))),
		"long value":              series(pair("__name__", long), pair("n", long)),
		"long name":               series(pair(long, "v")),
		"name of 127":             series(pair(strings.Repeat("n", 127), "")),
		"non-canonical label tag": raw([]byte{0x8a, 0x00, 0x06}, []byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v'}, filler...),
		// a two-byte length 0x84 0x00 (4): read as one byte it would be
		// 0x84, in bounds thanks to the filler
		"non-canonical label length": raw([]byte{0x0a, 0x86, 0x00}, []byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v'}, filler...),
		"non-canonical name tag":     raw([]byte{0x0a, 0x07}, []byte{0x8a, 0x00, 0x01, 'n', 0x12, 0x01, 'v'}, filler...),
		"non-canonical name length":  raw([]byte{0x0a, 0x07}, []byte{0x0a, 0x81, 0x00, 'n', 0x12, 0x01, 'v'}, filler...),
		"non-canonical value tag":    raw([]byte{0x0a, 0x07}, []byte{0x0a, 0x01, 'n', 0x92, 0x00, 0x01, 'v'}, filler...),
		"non-canonical value length": raw([]byte{0x0a, 0x07}, []byte{0x0a, 0x01, 'n', 0x12, 0x81, 0x00, 'v'}, filler...),
		"label length past series":   raw([]byte{0x0a, 0x7f}, []byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v'}),
		"label length past body":     {0x0a, 0x08, 0x0a, 0x7f, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'},
		"one byte label":             raw([]byte{0x0a, 0x01}, []byte{0x0a}),
		"two byte label":             raw([]byte{0x0a, 0x02}, []byte{0x0a, 0x00}),
		"three byte label":           raw([]byte{0x0a, 0x03}, []byte{0x0a, 0x00, 0x12}),
		"label tag at the end":       {0x0a, 0x01, 0x0a},
		"label length at the end":    {0x0a, 0x02, 0x0a, 0x05},
		"__name__ twice":             series(pair("__name__", "zzz"), pair("__name__", "abc"), pair("_id", "c"), pair("job", "j")),
		"__name__ late":              series(pair("A", "1"), pair("_id", "c"), pair("__name__", "zzz"), pair("_id", "d"), pair("b", "2")),
	}
	// A Label of 1280 bytes (length 0x80 0x0a): read as a one-byte
	// length 0x80 it would hold a well-formed Label of 128 bytes, name
	// 0x0a bytes long, then value (bytes 8 and 9 of the real name).
	trap := []byte(strings.Repeat("n", 1274))
	trap[8], trap[9] = 0x12, 128-14
	cases["length whose second byte is a tag"] = series(pair(string(trap), "v"), pair("job", "j"))
	// Series of several names, runs and repeats: the filter's verdict
	// cache must follow every change of name.
	var names []byte
	for _, n := range []string{"", "", "zzz", "zzz", "a", "a", "zzz", "zz", "zzz", "", "b", "mm", "nn"} {
		names = append(names, series(pair("__name__", n), pair("_id", "c"), pair("job", "j"))...)
	}
	cases["names"] = names
	// Every label at once with a budget that ends mid-series.
	cases["many series"] = bytes.Repeat(series(append([][]byte{pair("__name__", "up")}, filler...)...), 5)
	return cases
}

func TestWriteRequestFastPathEdges(t *testing.T) {
	for name, data := range fastPathEdges() {
		t.Run(name, func(t *testing.T) {
			checkWriteRequestAgrees(t, data)
			checkSameAsRefBudgets(t, data)
			for k := range data { // truncated at every byte
				checkWriteRequestAgrees(t, data[:k])
			}
		})
	}
}

// The filter is asked once per run of series of one name, and the
// verdict follows every change of name.
func TestNameFilterAskedOncePerRun(t *testing.T) {
	var asked []string
	f := &NameFilter{Wanted: func(n string) bool { asked = append(asked, n); return n < "m" }, KeepLabel: "_id"}
	data := fastPathEdges()["names"]
	b := &batch.Batch{}
	if _, err := UnmarshalWriteRequestFiltered(data, b, Limits{}, f); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "zzz", "a", "zzz", "zz", "zzz", "", "b", "mm", "nn"}; !slices.Equal(asked, want) {
		t.Fatalf("asked %q, want %q", asked, want)
	}
	var got []int
	for _, s := range b.Series {
		got = append(got, len(s.Labels))
	}
	// wanted: all three labels; refused: __name__ and _id.
	if want := []int{3, 3, 2, 2, 3, 3, 2, 2, 2, 3, 3, 2, 2}; !slices.Equal(got, want) {
		t.Fatalf("labels per series %v, want %v", got, want)
	}
	checkSameAsRefLimits(t, data)
}

// varintFilling agrees with varint on every varint of up to 10 bytes,
// canonical or not, truncated or followed by more bytes.
func TestVarintFilling(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	check := func(buf []byte, i, end int) {
		t.Helper()
		v, ok := varintFilling(buf, i, end)
		want, e := varint(buf, i, end)
		if wantOK := e == end && end-i <= 8 && end >= 8; ok != wantOK || ok && v != want {
			t.Fatalf("varintFilling(%x, %d, %d) = %d %v, varint %d %d", buf, i, end, v, ok, want, e)
		}
	}
	for range 200000 {
		buf := make([]byte, 8+r.IntN(12))
		for j := range buf {
			buf[j] = byte(r.Uint32())
			if r.IntN(3) > 0 {
				buf[j] |= 0x80
			}
		}
		i := r.IntN(len(buf) + 1)
		end := i + r.IntN(len(buf)-i+1)
		check(buf, i, end)
		// a varint that does fill buf[i:end], canonical or padded
		n := max(end-i, 1)
		if i+n <= len(buf) {
			for j := i; j < i+n-1; j++ {
				buf[j] |= 0x80
			}
			buf[i+n-1] &^= 0x80
			check(buf, i, i+n)
		}
	}
	for _, v := range []uint64{0, 1, 127, 128, 1700000000000, 1<<56 - 1, 1 << 56, math.MaxUint64} {
		buf := binary.AppendUvarint(make([]byte, 8), v)
		check(buf, 8, len(buf))
	}
}

// checkSameAsRefBudgets is checkSameAsRef under every MaxBatchBytes up to
// what data charges, so a budget runs out at every take.
func checkSameAsRefBudgets(t testing.TB, data []byte) {
	t.Helper()
	st, _ := refUnmarshalWriteRequestFiltered(data, &batch.Batch{}, Limits{}, nil)
	for limit := 1; limit <= st.BatchBytes+1; limit++ {
		for _, f := range []*NameFilter{nil, testFilter} {
			checkSameAsRef(t, data, Limits{MaxBatchBytes: limit}, f)
		}
	}
}

// The decoder runs out of budget, and asks the reserve, exactly where the
// reference does, on series of every kind of field.
func TestWriteRequestBudgetSameAsRef(t *testing.T) {
	pair := func(n, v string) []byte { return lenField(lenField(nil, 1, []byte(n)), 2, []byte(v)) }
	emptyExemplar := []byte{0x1a, 0x00}
	exemplarLabel := lenField(nil, 3, lenField(nil, 1, nil))
	emptySample := []byte{0x12, 0x00}
	emptyHistogram := []byte{0x22, 0x00}
	var ts []byte
	ts = lenField(ts, 1, pair("__name__", "up"))
	ts = append(ts, bytes.Repeat(emptyPair, 5)...)
	ts = append(ts, bytes.Repeat(emptyExemplar, 6)...)
	ts = append(ts, bytes.Repeat(exemplarLabel, 3)...)
	ts = append(ts, bytes.Repeat(emptySample, 3)...)
	ts = append(ts, bytes.Repeat(emptyPair, 3)...)
	ts = append(ts, bytes.Repeat(emptyHistogram, 2)...)
	ts = lenField(ts, 1, pair("job", "j"))
	for name, data := range map[string][]byte{
		"dense series":   bytes.Repeat(lenField(nil, 1, ts), 3),
		"exemplars only": lenField(nil, 1, bytes.Repeat(emptyExemplar, 20)),
		// the most a series can charge per byte, labels first
		"label then exemplars": lenField(nil, 1, append(slices.Clone(emptyPair), bytes.Repeat(emptyExemplar, 40)...)),
		"labels only":          lenField(nil, 1, bytes.Repeat(emptyPair, 20)),
		"edges":                fastPathEdges()["names"],
		"malformed at end":     append(lenField(nil, 1, ts), 0x0a, 0x03, 0x0a, 0x05, 0x00),
	} {
		t.Run(name, func(t *testing.T) {
			checkWriteRequestAgrees(t, data)
			checkSameAsRefBudgets(t, data)
		})
	}
	// A request charging several ReserveSteps, with a reserve that grants
	// the first k requests: the refusal comes at the same take.
	wr := &prompb.WriteRequest{}
	for s := range 3000 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  benchLabels(s/50, s, func(n, v string) prompb.Label { return prompb.Label{Name: n, Value: v} }),
			Samples: []prompb.Sample{{Value: 1, Timestamp: int64(s)}},
		})
	}
	data := mustMarshal(t, wr)
	refused := errors.New("refused")
	for k := range 6 {
		newReserve := func() func(int) error {
			granted := 0
			return func(int) error {
				if granted++; granted > k {
					return refused
				}
				return nil
			}
		}
		for _, limit := range []int{0, 5 * ReserveStep / 2} {
			for _, f := range []*NameFilter{nil, testFilter} {
				checkSameAsRefReserve(t, data, Limits{MaxBatchBytes: limit}, f, newReserve)
			}
		}
	}
}
