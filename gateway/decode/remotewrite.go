package decode

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/telegate/telegate/batch"
)

// Stats counts what a decoder saw, including what it dropped, so the
// gateway can report drops.
//
// For remote write: Series, Samples, Histograms and Exemplars are the
// TimeSeries, float samples, native histogram samples and exemplars pushed
// into the batch; Metadata counts the batch.Metadata entries pushed (one
// per metric family, see UnmarshalWriteRequest and UnmarshalWriteRequestV2).
//
// For telemeter uploads: Series are the series derived from the families
// (one sample each), Samples their float samples and Histograms their
// native histogram samples (one per native histogram, beside its classic
// series when it also has classic buckets); Exemplars counts the exemplars
// in counters, buckets and histograms, of which those Prometheus' scrape
// would ingest are pushed onto their series; Metadata counts the metric
// families, whose help, type and unit are not forwarded.
//
// BatchBytes is the heap charged to Limits.MaxBatchBytes (see Limits).
type Stats struct {
	Series, Samples, Exemplars, Histograms, Metadata int
	BatchBytes                                       int
}

// Protobuf wire types.
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtBytes   = 2
	wtStart   = 3
	wtEnd     = 4
	wtFixed32 = 5
)

// UnmarshalWriteRequest walks a remote write 1.0 prometheus.WriteRequest in
// buf and pushes every TimeSeries into b: labels in wire order, float
// samples, native histograms (each as its Histogram message, see
// batch.Histogram) and exemplars (labels in wire order). WriteRequest.metadata
// becomes b.Metadata: one entry per metric_family_name, the first one
// sent for a family kept and the later ones dropped, entries without a
// family name dropped, a type outside the enum (0 to 7) read as unknown.
// It accepts exactly the inputs the gogo-generated
// prompb.WriteRequest.Unmarshal accepts, minus native histograms
// Prometheus' validation refuses (see validateHistogram): those are a 400
// (Reason invalid_series) for the whole request naming the series and the
// rule, as every other content error of a decoder is.
//
// Strings and histogram messages alias buf: buf must not be modified while
// b is in use; keep it in b.Buf (or make it otherwise outlive b). On error,
// b holds a partial request and should be Reset.
//
// The Limits are enforced while walking: more than MaxSeries TimeSeries is
// a 413 naming max_series_per_request, a TimeSeries or an exemplar with
// more than MaxLabelsPerSeries labels a 400 naming max_labels_per_series,
// and more than MaxBatchBytes of labels, samples, series, histograms,
// exemplars and metadata (32, 16, 48, 32, 40 and 96 bytes each) a 413; see
// RemoteWriteBudget.
func UnmarshalWriteRequest(buf []byte, b *batch.Batch, l Limits) (Stats, error) {
	return UnmarshalWriteRequestFiltered(buf, b, l, nil)
}

// NameFilter lets a decoder skip work for series the caller will drop by
// metric name: a series whose __name__ Wanted refuses is pushed with only
// the labels up to and including __name__, its KeepLabel label (the
// cluster-ID label, whose value the gateway checks on every series) and
// all its samples, native histograms and exemplars: enough to count,
// report and identity-check it. Its other labels are still decoded and
// checked, so the accepted inputs (and the Stats) are the same with or
// without a filter. A nil *NameFilter pushes everything.
//
// Wanted must give the same answer for the same name during a call: the
// remote write 1.0 decoder asks it once per run of consecutive series
// with the same name.
type NameFilter struct {
	Wanted    func(name string) bool
	KeepLabel string
}

// UnmarshalWriteRequestFiltered is UnmarshalWriteRequest with a NameFilter.
func UnmarshalWriteRequestFiltered(buf []byte, b *batch.Batch, l Limits, f *NameFilter) (Stats, error) {
	d := rwDecoder{buf: buf, b: b, filter: f, bud: newBudget(l, len(buf)), maxLabels: l.MaxLabelsPerSeries}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.writeRequest(l.MaxSeries)
	d.releaseFamilies()
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

// familiesPool recycles the sets that keep one metadata entry per family.
var familiesPool = sync.Pool{New: func() any { return map[string]struct{}{} }}

// maxPooledFamilies is the largest family set kept for reuse.
const maxPooledFamilies = 16 << 10

// addMetadata appends m to the batch unless its family already has an
// entry (the first one sent wins), charging metadataBytes.
func (d *rwDecoder) addMetadata(m batch.Metadata) error {
	md := d.b.Metadata
	if n := len(md); n > 0 && md[n-1].Family == m.Family { // consecutive series of one family
		return nil
	}
	if d.families == nil {
		d.families = familiesPool.Get().(map[string]struct{})
	}
	if _, ok := d.families[m.Family]; ok {
		return nil
	}
	if !d.bud.take(metadataBytes) {
		return d.bud.errOver("remote write")
	}
	d.families[m.Family] = struct{}{}
	d.b.Metadata = append(md, m)
	d.st.Metadata++
	return nil
}

// releaseFamilies returns the family set to the pool, emptied so it does
// not keep buf alive.
func (d *rwDecoder) releaseFamilies() {
	if d.families == nil {
		return
	}
	n := len(d.families)
	clear(d.families)
	if n <= maxPooledFamilies {
		familiesPool.Put(d.families)
	}
	d.families = nil
}

// metricType is a metadata type as batch.MetricType: remote write 1.0's
// MetricMetadata.MetricType and 2.0's Metadata.MetricType number the
// types alike (0 unknown/unspecified, 1 counter, 2 gauge, 3 histogram,
// 4 gauge histogram, 5 summary, 6 info, 7 stateset); a value outside the
// enum is unknown.
func metricType(v uint32) batch.MetricType {
	if v > 7 {
		return 0
	}
	return batch.MetricType(v)
}

type rwDecoder struct {
	buf       []byte
	b         *batch.Batch
	st        Stats
	filter    *NameFilter
	bud       budget
	maxLabels int
	// v2 is set by the remote write 2.0 decoder, whose Sample (field 3)
	// and Histogram (field 17) have a start_timestamp.
	v2 bool
	// families holds the metric families b.Metadata has an entry for
	// (from familiesPool, taken at the first entry).
	families map[string]struct{}
	// lastName is the last metric name given to filter.Wanted (aliasing
	// buf) and lastWanted its verdict, when haveLast (see wanted).
	lastName             string
	lastWanted, haveLast bool
}

// varint reads a varint at i (bounded by end) the way gogo does: at most 10
// bytes, bits past 64 are dropped. next < 0 means an error: errTruncated or
// errOverflow.
func varint(buf []byte, i, end int) (v uint64, next int) {
	if i < end && buf[i] < 0x80 {
		return uint64(buf[i]), i + 1
	}
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= end {
			return 0, errTruncated
		}
		c := buf[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, errOverflow
}

// varintFilling reads, without a loop, a varint of 1 to 8 bytes that
// fills buf[i:end] exactly: where it reports ok, varint(buf, i, end)
// returns v and end. It loads the 8 bytes before end, so end < 8 (like a
// longer varint) is not ok; the caller falls back to varint.
func varintFilling(buf []byte, i, end int) (v uint64, ok bool) {
	k := uint(end - i)
	if k-1 > 7 || end < 8 || end > len(buf) {
		return 0, false
	}
	x := binary.LittleEndian.Uint64(buf[end-8:end]) >> (64 - 8*k)
	// Every byte but the last has its continuation bit, the last not.
	const cont = 0x8080808080808080
	if x&cont != cont&(1<<(8*(k-1))-1) {
		return 0, false
	}
	// Pack the 7-bit groups: pairs, quads, then the 8 of them.
	x &^= cont
	x = x&0x007f007f007f007f | x&0x7f007f007f007f00>>1
	x = x&0x00003fff00003fff | x&0x3fff00003fff0000>>2
	x = x&0x000000000fffffff | x&0x0fffffff00000000>>4
	return x, true
}

// Tags (field number << 3 | wire type) of Label.name and Label.value.
const (
	tagLabelName  = 1<<3 | wtBytes
	tagLabelValue = 2<<3 | wtBytes
	// tagSeriesLabel and tagSeriesSample are the tags of
	// TimeSeries.labels and TimeSeries.samples.
	tagSeriesLabel  = 1<<3 | wtBytes
	tagSeriesSample = 2<<3 | wtBytes
)

const (
	errTruncated = -1
	errOverflow  = -2
)

func varintErr(code, off int, what string) error {
	if code == errOverflow {
		return BadRequest("protobuf: varint overflow in %s at offset %d", what, off)
	}
	return BadRequest("protobuf: truncated %s at offset %d", what, off)
}

// tag reads a field tag and applies gogo's checks: no end-group outside a
// group, field number (truncated to int32 like gogo) must be positive.
func (d *rwDecoder) tag(i, end int, msg string) (num int32, wt int, next int, err error) {
	t, next := varint(d.buf, i, end)
	if next < 0 {
		return 0, 0, 0, varintErr(next, i, msg+" tag")
	}
	num, wt = int32(t>>3), int(t&7)
	if wt == wtEnd {
		return 0, 0, 0, BadRequest("protobuf: %s: end group outside a group at offset %d", msg, i)
	}
	if num <= 0 {
		return 0, 0, 0, BadRequest("protobuf: %s: illegal field number %d at offset %d", msg, num, i)
	}
	return num, wt, next, nil
}

// wantWire checks the wire type of a known field. It is small enough to
// inline; wrongWire builds the error.
func wantWire(wt, want int, field string, off int) error {
	if wt != want {
		return wrongWire(wt, field, off)
	}
	return nil
}

// wrongWire is wantWire's error, kept out of line so wantWire inlines.
//
//go:noinline
func wrongWire(wt int, field string, off int) error {
	return BadRequest("protobuf: wrong wire type %d for %s at offset %d", wt, field, off)
}

// lenDelim reads a length prefix at i and returns the payload bounds.
// Lengths that are negative or run past end are errors, never allocations.
func (d *rwDecoder) lenDelim(i, end int, field string) (start, stop int, err error) {
	l, start := varint(d.buf, i, end)
	if start < 0 {
		return 0, 0, varintErr(start, i, field+" length")
	}
	if int(l) < 0 || int(l) > end-start {
		return 0, 0, BadRequest("protobuf: truncated %s at offset %d (length %d, %d bytes left)", field, i, l, end-start)
	}
	return start, start + int(l), nil
}

// fixed64 returns the 8 little-endian bytes at i as a uint64.
func (d *rwDecoder) fixed64(i, end int, field string) (uint64, int, error) {
	if end-i < 8 {
		return 0, 0, BadRequest("protobuf: truncated %s at offset %d", field, i)
	}
	return binary.LittleEndian.Uint64(d.buf[i:]), i + 8, nil
}

// skip skips the unknown field whose tag starts at i, with gogo's rules:
// groups nest by depth only, wire types 6 and 7 are illegal.
func (d *rwDecoder) skip(i, end int) (int, error) {
	start := i
	depth := 0
	for i < end {
		t, next := varint(d.buf, i, end)
		if next < 0 {
			return 0, varintErr(next, i, "unknown field tag")
		}
		i = next
		switch t & 7 {
		case wtVarint:
			if _, i = varint(d.buf, i, end); i < 0 {
				return 0, varintErr(i, next, "unknown field")
			}
		case wtFixed64:
			if end-i < 8 {
				return 0, BadRequest("protobuf: truncated unknown field at offset %d", start)
			}
			i += 8
		case wtBytes:
			s, e, err := d.lenDelim(i, end, "unknown field")
			if err != nil {
				return 0, err
			}
			_ = s
			i = e
		case wtStart:
			depth++
		case wtEnd:
			if depth == 0 {
				return 0, BadRequest("protobuf: unexpected end group at offset %d", next)
			}
			depth--
		case wtFixed32:
			if end-i < 4 {
				return 0, BadRequest("protobuf: truncated unknown field at offset %d", start)
			}
			i += 4
		default:
			return 0, BadRequest("protobuf: illegal wire type %d at offset %d", t&7, start)
		}
		if depth == 0 {
			return i, nil
		}
	}
	return 0, BadRequest("protobuf: unterminated group at offset %d", start)
}

func (d *rwDecoder) writeRequest(maxSeries int) error {
	buf := d.buf
	i, end := 0, len(buf)
	for i < end {
		// One-byte tags (every field of a WriteRequest) need no varint
		// decoding; tag() applies the same checks to the rest.
		var num int32
		var wt, next int
		if c := buf[i]; c < 0x80 && c>>3 != 0 && c&7 != wtEnd {
			num, wt, next = int32(c>>3), int(c&7), i+1
		} else {
			var err error
			if num, wt, next, err = d.tag(i, end, "WriteRequest"); err != nil {
				return err
			}
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtBytes, "WriteRequest.timeseries", i); err != nil {
				return err
			}
			// lenDelim inline; it makes the error.
			l, s := varint(buf, next, end)
			if s < 0 || int(l) < 0 || int(l) > end-s {
				_, _, err := d.lenDelim(next, end, "timeseries")
				return err
			}
			e := s + int(l)
			if maxSeries > 0 && d.st.Series >= maxSeries {
				return TooLarge(CapSeries, maxSeries, fmt.Sprintf("request with more than %d series", maxSeries))
			}
			if !d.bud.take(seriesBytes) {
				return d.bud.errOver("remote write")
			}
			if err := d.timeSeries(s, e); err != nil {
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
			var err error
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *rwDecoder) timeSeries(i, end int) error {
	buf := d.buf[:end] // one bound for the whole series
	// named: the first __name__ was seen (or there is no filter to ask);
	// skim: the filter refused it.
	named, skim := d.filter == nil, false
	var keep string // the filter's KeepLabel
	if !named {
		keep = d.filter.KeepLabel
	}
	labels, maxLabels := 0, d.maxLabels
	for i < end {
		var name, value string
		var e int
		c := buf[i]
		// Fast path for the Label every sender writes: tag 0x0a, a
		// one-byte length, then name and value, each with its one-byte
		// tag and length, filling the message exactly. The general path
		// below reads such a Label to the same result; every other
		// encoding (longer labels, other tags, unknown fields, a value
		// before the name, malformed bytes) takes it.
		if c == tagSeriesLabel && i+1 < end && buf[i+1] < 0x80 {
			s := i + 2
			e = s + int(buf[i+1])
			if e-s >= 4 && e <= end && buf[s] == tagLabelName {
				ne := s + 2 + int(buf[s+1]) // a length byte >= 0x80 makes ne+2 > e
				if ne+2 <= e && buf[ne] == tagLabelValue && int(buf[ne+1]) == e-ne-2 {
					name, value = str(buf, s+2, ne), str(buf, ne+2, e)
					goto push
				}
			}
		}
		// Fast path for a Sample with a one-byte length (all of them):
		// the general path's checks of tag and length, inline.
		if c == tagSeriesSample && i+1 < end && buf[i+1] < 0x80 {
			if s, e := i+2, i+2+int(buf[i+1]); e <= end {
				if !d.bud.take(sampleBytes) {
					return d.bud.errOver("remote write")
				}
				if err := d.sample(s, e); err != nil {
					return err
				}
				d.st.Samples++
				i = e
				continue
			}
		}
		{
			// A one-byte tag (every field of a TimeSeries) needs no varint
			// decoding; tag() applies the same checks to the rest.
			var num int32
			var wt, next int
			if c < 0x80 && c>>3 != 0 && c&7 != wtEnd {
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
				var s int
				var err error
				if s, e, err = d.lenDelim(next, end, "label"); err != nil {
					return err
				}
				if name, value, err = d.label(s, e); err != nil {
					return err
				}
				goto push
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
				if err := d.sample(s, e); err != nil {
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
			continue
		}
	push:
		// Every label on the wire counts, skimmed or not, so a filter
		// does not change what is accepted.
		if labels++; labels > maxLabels {
			return errLabels(fmt.Sprintf("TimeSeries at offset %d", i), maxLabels)
		}
		if !d.bud.take(labelBytes) {
			return d.bud.errOver("remote write")
		}
		switch {
		case !skim:
			d.b.PushLabel(name, value)
			if !named && name == batch.MetricName { // the first __name__ is the name
				named, skim = true, !d.wanted(value)
			}
		case name == keep:
			d.b.PushLabel(name, value)
		}
		i = e
	}
	return nil
}

// wanted is d.filter.Wanted(name), asked once per run of series with the
// same name (the series of a metric are usually sent together).
func (d *rwDecoder) wanted(name string) bool {
	if d.haveLast && name == d.lastName {
		return d.lastWanted
	}
	return d.askFilter(name)
}

// askFilter asks the filter about name and keeps its verdict for wanted.
//
//go:noinline
func (d *rwDecoder) askFilter(name string) bool {
	w := d.filter.Wanted(name)
	d.lastName, d.lastWanted, d.haveLast = name, w, true
	return w
}

// str returns buf[s:e] as a string sharing buf's memory.
func str(buf []byte, s, e int) string {
	if s == e {
		return ""
	}
	return unsafe.String(&buf[s], e-s)
}

func (d *rwDecoder) label(i, end int) (name, value string, err error) {
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

func (d *rwDecoder) sample(i, end int) error {
	buf := d.buf
	// Fast path for what Prometheus sends: value, then a timestamp ending
	// the message. The loop below accepts the same bytes the same way.
	if end-i >= 11 && buf[i] == 1<<3|wtFixed64 && buf[i+9] == 2<<3|wtVarint {
		ts, ok := varintFilling(buf, i+10, end)
		if !ok {
			var e int
			ts, e = varint(buf, i+10, end)
			ok = e == end
		}
		if ok {
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

// pushHistogram charges, validates and pushes the Histogram message in
// d.buf[s:e] (a slice of buf, capped so it cannot be appended to).
func (d *rwDecoder) pushHistogram(s, e int) error {
	if !d.bud.take(histogramBytes) {
		return d.bud.errOver("remote write")
	}
	ts, rule, err := d.histogram(s, e)
	if err != nil {
		return err
	}
	if rule != "" {
		v := "remote write"
		if d.v2 {
			v = "remote write 2.0"
		}
		e := BadRequest("%s: timeseries[%d]: native histogram at offset %d: %s", v, d.st.Series, s, rule)
		e.Reason = "invalid_series" // well-formed, but Prometheus would refuse it
		return e
	}
	d.b.PushHistogram(ts, d.buf[s:e:e])
	d.st.Histograms++
	return nil
}

// scalar validates one known scalar field of wire type want at i.
func (d *rwDecoder) scalar(wt, want, i, next, end int, field string) (int, error) {
	if err := wantWire(wt, want, field, i); err != nil {
		return 0, err
	}
	switch want {
	case wtVarint:
		_, e := varint(d.buf, next, end)
		if e < 0 {
			return 0, varintErr(e, next, field)
		}
		return e, nil
	case wtFixed64:
		_, e, err := d.fixed64(next, end, field)
		return e, err
	default: // wtBytes
		_, e, err := d.lenDelim(next, end, field)
		return e, err
	}
}

// exemplar reads an Exemplar and pushes it: labels in wire order, the
// last value and timestamp.
func (d *rwDecoder) exemplar(i, end int) error {
	if !d.bud.take(exemplarBytes) {
		return d.bud.errOver("remote write")
	}
	start, labels := i, 0
	var ts int64
	var v float64
	for i < end {
		num, wt, next, err := d.tag(i, end, "Exemplar")
		if err != nil {
			return err
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtBytes, "Exemplar.labels", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "exemplar label")
			if err != nil {
				return err
			}
			name, value, err := d.label(s, e)
			if err != nil {
				return err
			}
			if labels++; labels > d.maxLabels {
				return errLabels(fmt.Sprintf("exemplar at offset %d of timeseries[%d]", start, d.st.Series), d.maxLabels)
			}
			if !d.bud.take(labelBytes) {
				return d.bud.errOver("remote write")
			}
			d.b.PushExemplarLabel(name, value)
			i = e
		case 2:
			if err := wantWire(wt, wtFixed64, "Exemplar.value", i); err != nil {
				return err
			}
			var bits uint64
			if bits, i, err = d.fixed64(next, end, "Exemplar.value"); err != nil {
				return err
			}
			v = math.Float64frombits(bits)
		case 3:
			if err := wantWire(wt, wtVarint, "Exemplar.timestamp", i); err != nil {
				return err
			}
			u, e := varint(d.buf, next, end)
			if e < 0 {
				return varintErr(e, next, "Exemplar.timestamp")
			}
			ts, i = int64(u), e
		default:
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	d.b.PushExemplar(ts, v)
	return nil
}

// metadata reads a MetricMetadata (type 1, metric_family_name 2, help 4,
// unit 5; the last of each kept) and adds it (see addMetadata).
func (d *rwDecoder) metadata(i, end int) error {
	var m batch.Metadata
	for i < end {
		num, wt, next, err := d.tag(i, end, "MetricMetadata")
		if err != nil {
			return err
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtVarint, "MetricMetadata.type", i); err != nil {
				return err
			}
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return varintErr(e, next, "MetricMetadata.type")
			}
			m.Type, i = metricType(uint32(v)), e // an int32 enum: the reference keeps the low 32 bits
		case 2, 4, 5:
			if err := wantWire(wt, wtBytes, "MetricMetadata string", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "MetricMetadata string")
			if err != nil {
				return err
			}
			switch num {
			case 2:
				m.Family = str(d.buf, s, e)
			case 4:
				m.Help = str(d.buf, s, e)
			default:
				m.Unit = str(d.buf, s, e)
			}
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	if m.Family == "" {
		return nil
	}
	return d.addMetadata(m)
}

// repeated reads a repeated scalar field, unpacked (wire type elem) or
// packed, calling each with every element (a varint, or the bits of a
// double). Like the reference, the elements of a packed run are read while
// the cursor is before the run's end, each bounded only by the enclosing
// message, so a run whose length splits an element ends past its length.
func (d *rwDecoder) repeated(wt, elem, i, next, end int, each func(uint64)) (int, error) {
	if wt == elem {
		if elem == wtVarint {
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return 0, varintErr(e, next, "Histogram buckets")
			}
			each(v)
			return e, nil
		}
		v, e, err := d.fixed64(next, end, "Histogram buckets")
		if err != nil {
			return 0, err
		}
		each(v)
		return e, nil
	}
	if wt != wtBytes {
		return 0, BadRequest("protobuf: wrong wire type %d for Histogram buckets at offset %d", wt, i)
	}
	s, e, err := d.lenDelim(next, end, "packed buckets")
	if err != nil {
		return 0, err
	}
	for s < e {
		if elem == wtVarint {
			var v uint64
			if v, s = varint(d.buf, s, end); s < 0 {
				return 0, varintErr(s, i, "packed buckets")
			}
			each(v)
		} else {
			if end-s < 8 {
				return 0, BadRequest("protobuf: truncated packed buckets at offset %d", i)
			}
			each(binary.LittleEndian.Uint64(d.buf[s:]))
			s += 8
		}
	}
	return s, nil
}
