package decode

import (
	"fmt"
	"math"
	"sync"

	"github.com/telegate/telegate/batch"
)

// symbolBytes is what one entry of a remote write 2.0 symbols table
// charges to Limits.MaxBatchBytes (a string header).
const symbolBytes = 16

// maxPooledSymbols is the largest symbols table kept for reuse (1 MiB of
// string headers); larger ones are left to the garbage collector.
const maxPooledSymbols = 64 << 10

var symbolsPool = sync.Pool{New: func() any { return new([]string) }}

// UnmarshalWriteRequestV2 walks a remote write 2.0 io.prometheus.write.v2.
// Request in buf and pushes every TimeSeries into b, like
// UnmarshalWriteRequestFiltered does for 1.0: labels resolved through the
// symbols table (strings aliasing buf, in wire order, which 2.0 requires
// sorted by name), float samples, native histograms (each as its 2.0
// Histogram message, start_timestamp included, see batch.Histogram) and
// exemplars (labels resolved through the table, in wire order). A series'
// metadata with a type, help or unit becomes a b.Metadata entry whose
// Family is the series' __name__ as sent (no suffix stripped; a series
// without __name__ adds none), one entry per family: the first series'
// metadata kept, the later ones' dropped. f may be nil (see NameFilter).
//
// It accepts the inputs the gogo-generated writev2.Request.Unmarshal
// accepts, minus those that break the 2.0 spec's rules, which are a 400
// naming the series: a non-empty symbols[0], an odd number of labels_refs
// (of a series or an exemplar), a reference outside the symbols table
// (labels, exemplar labels, a metadata help_ref or unit_ref other than 0,
// which means none), a label name
// that is the empty string, and label names that are not sorted or
// repeat; and minus native histograms Prometheus' validation refuses (see
// validateHistogram), also a 400 naming the series.
//
// The Limits are enforced while walking, as for 1.0, charging the same
// bytes per series, label, sample, histogram, exemplar and metadata entry
// plus symbolBytes per symbol. The symbols table is read first (the
// protobuf encoding lets it follow the series that use it), into a pooled
// []string.
func UnmarshalWriteRequestV2(buf []byte, b *batch.Batch, l Limits, f *NameFilter) (Stats, error) {
	d := v2Decoder{rwDecoder: rwDecoder{buf: buf, b: b, filter: f, bud: newBudget(l, len(buf)), maxLabels: l.MaxLabelsPerSeries, v2: true}}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	sp := symbolsPool.Get().(*[]string)
	d.symbols = (*sp)[:0]
	err := d.request(l.MaxSeries)
	d.releaseFamilies()
	clear(d.symbols) // the pool must not keep buf alive
	if cap(d.symbols) <= maxPooledSymbols {
		*sp = d.symbols[:0]
		symbolsPool.Put(sp)
	}
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

type v2Decoder struct {
	rwDecoder
	symbols []string

	// The series being decoded.
	series      int    // its index, for error messages
	labels      int    // labels seen on the wire
	name        string // the name of a label whose value ref is pending
	pending     bool
	prev        string // the last label name, to check they are sorted
	hasPrev     bool
	named, skim bool   // __name__ seen; the filter refused it
	metric      string // the value of __name__, "" if none
	typ         uint32
	help, unit  uint32
}

func (d *v2Decoder) request(maxSeries int) error {
	i, err := d.readSymbols()
	if err != nil {
		return err
	}
	// The structure of the top level was checked by readSymbols; i is
	// its first series.
	end := len(d.buf)
	for i < end {
		num, _, next, err := d.tag(i, end, "Request")
		if err != nil {
			return err
		}
		switch num {
		case 4:
			_, e, err := d.lenDelim(next, end, "symbol")
			if err != nil {
				return err
			}
			i = e
		case 5:
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
			if err := d.timeSeries(s, e); err != nil {
				return err
			}
			d.b.EndSeries()
			d.st.Series++
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSymbols checks the wire structure of the top level while counting
// Request.symbols (field 4), charges and allocates the table at once, then
// collects the symbols (a second walk), so a table of millions of empty
// symbols is refused, or allocated, in one step rather than grown.
func (d *v2Decoder) readSymbols() (firstSeries int, err error) {
	n, from, to, firstSeries, err := d.walkSymbols(0, len(d.buf), false)
	if err != nil || n == 0 {
		return firstSeries, err
	}
	if n > d.bud.left/symbolBytes || !d.bud.take(n*symbolBytes) {
		return 0, d.bud.errOver("remote write")
	}
	if cap(d.symbols) < n {
		d.symbols = make([]string, 0, n)
	}
	// Collect from the first symbol to the end of the last one only
	// (senders put the table first).
	if _, _, _, _, err := d.walkSymbols(from, to, true); err != nil {
		return 0, err
	}
	if d.symbols[0] != "" {
		return 0, BadRequest("remote write 2.0: symbols[0] is %s, must be the empty string", quote(d.symbols[0]))
	}
	return firstSeries, nil
}

// walkSymbols walks the top level in buf[i:end], counting the symbols or
// (collect) appending them to d.symbols. It returns their count, where the
// first starts and the last ends, and where the first series starts (end
// without series).
func (d *v2Decoder) walkSymbols(i, end int, collect bool) (n, from, to, firstSeries int, err error) {
	from, firstSeries = -1, end
	for i < end {
		num, wt, next, err := d.tag(i, end, "Request")
		if err != nil {
			return 0, 0, 0, 0, err
		}
		switch num {
		case 4:
			if err := wantWire(wt, wtBytes, "Request.symbols", i); err != nil {
				return 0, 0, 0, 0, err
			}
			s, e, err := d.lenDelim(next, end, "symbol")
			if err != nil {
				return 0, 0, 0, 0, err
			}
			if collect {
				d.symbols = append(d.symbols, str(d.buf, s, e))
			}
			if from < 0 {
				from = i
			}
			n++
			i, to = e, e
		case 5:
			if err := wantWire(wt, wtBytes, "Request.timeseries", i); err != nil {
				return 0, 0, 0, 0, err
			}
			_, e, err := d.lenDelim(next, end, "timeseries")
			if err != nil {
				return 0, 0, 0, 0, err
			}
			firstSeries = min(firstSeries, i)
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return 0, 0, 0, 0, err
			}
		}
	}
	return n, from, to, firstSeries, nil
}

// quote quotes s for an error message, shortened to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// errSeries is a 400 about the current series.
func (d *v2Decoder) errSeries(format string, args ...any) error {
	return BadRequest("remote write 2.0: timeseries[%d]: %s", d.series, fmt.Sprintf(format, args...))
}

func (d *v2Decoder) timeSeries(i, end int) error {
	d.series = d.st.Series
	d.labels, d.pending, d.hasPrev, d.named, d.skim, d.metric = 0, false, false, false, false, ""
	d.typ, d.help, d.unit = 0, 0, 0
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
		var err error
		switch num {
		case 1: // labels_refs, packed or not
			switch wt {
			case wtBytes:
				i, err = d.labelRefs(i, next, end)
			case wtVarint:
				v, e := varint(d.buf, next, end)
				if e < 0 {
					return varintErr(e, next, "labels_refs")
				}
				err = d.labelRef(uint32(v), next)
				i = e
			default:
				return BadRequest("protobuf: wrong wire type %d for TimeSeries.labels_refs at offset %d", wt, i)
			}
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
		case 4:
			if err := wantWire(wt, wtBytes, "TimeSeries.exemplars", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "exemplar")
			if err != nil {
				return err
			}
			if err := d.exemplarV2(s, e); err != nil {
				return err
			}
			d.st.Exemplars++
			i = e
		case 5:
			if err := wantWire(wt, wtBytes, "TimeSeries.metadata", i); err != nil {
				return err
			}
			s, e, err := d.lenDelim(next, end, "metadata")
			if err != nil {
				return err
			}
			if err := d.metadataV2(s, e); err != nil {
				return err
			}
			i = e
		default:
			i, err = d.skip(i, end)
		}
		if err != nil {
			return err
		}
	}
	if d.pending {
		return d.errSeries("odd number of labels_refs (%d), want name and value pairs", 2*d.labels+1)
	}
	// Metadata is always on the wire (gogo encodes the empty message);
	// a reference of 0 is the empty string, "no help" or "no unit".
	if d.typ != 0 || d.help != 0 || d.unit != 0 {
		if d.help != 0 && int(d.help) >= len(d.symbols) {
			return d.errSeries("metadata help_ref %d outside the symbols table (%d symbols)", d.help, len(d.symbols))
		}
		if d.unit != 0 && int(d.unit) >= len(d.symbols) {
			return d.errSeries("metadata unit_ref %d outside the symbols table (%d symbols)", d.unit, len(d.symbols))
		}
		if d.metric != "" {
			return d.addMetadata(batch.Metadata{Family: d.metric, Type: metricType(d.typ), Help: d.symbol(d.help), Unit: d.symbol(d.unit)})
		}
	}
	return nil
}

// symbol returns the symbol ref (checked to be in the table, or 0 which
// is "" even without a table).
func (d *v2Decoder) symbol(ref uint32) string {
	if ref == 0 {
		return ""
	}
	return d.symbols[ref]
}

// labelRefs reads a packed run of labels_refs whose tag is at tagAt and
// length at next. Like the reference, elements are read while the cursor is
// before the run's end, each bounded only by the series.
func (d *v2Decoder) labelRefs(tagAt, next, end int) (int, error) {
	s, e, err := d.lenDelim(next, end, "labels_refs")
	if err != nil {
		return 0, err
	}
	buf, syms := d.buf, d.symbols
	for s < e {
		// Fast path: a whole label of one-byte references, a name in
		// range, not empty and after the previous one; anything else
		// (and every error) takes labelRef.
		if !d.pending && e-s >= 2 {
			if n, v := buf[s], buf[s+1]; n < 0x80 && v < 0x80 && int(n) < len(syms) && int(v) < len(syms) {
				if name := syms[n]; name != "" && (!d.hasPrev || after(name, d.prev)) {
					if d.labels < d.maxLabels && name != batch.MetricName {
						// pushLabel's work for a label that is not
						// __name__ nor over the limit, without the call.
						d.prev, d.hasPrev = name, true
						d.labels++
						if !d.bud.take(labelBytes) {
							return 0, d.bud.errOver("remote write")
						}
						if !d.skim || name == d.filter.KeepLabel {
							d.b.PushLabel(name, syms[v])
						}
						s += 2
						continue
					}
					if err := d.pushLabel(name, syms[v]); err != nil {
						return 0, err
					}
					s += 2
					continue
				}
			}
		}
		var v uint64
		at := s
		if c := buf[s]; c < 0x80 {
			v, s = uint64(c), s+1
		} else if v, s = varint(buf, s, end); s < 0 {
			return 0, varintErr(s, at, "labels_refs")
		}
		if err := d.labelRef(uint32(v), at); err != nil {
			return 0, err
		}
	}
	return s, nil
}

// labelRef takes the next reference of labels_refs (at offset off): a
// name, or the value that completes a label, which is then checked,
// charged and pushed like a 1.0 label.
func (d *v2Decoder) labelRef(ref uint32, off int) error {
	if int(ref) >= len(d.symbols) {
		return d.errSeries("labels_refs[%d] = %d at offset %d is outside the symbols table (%d symbols)",
			2*d.labels+btoi(d.pending), ref, off, len(d.symbols))
	}
	if !d.pending {
		name := d.symbols[ref]
		if name == "" {
			return d.errSeries("label name (labels_refs[%d] = %d at offset %d) is the empty string", 2*d.labels, ref, off)
		}
		if d.hasPrev && name <= d.prev {
			if name == d.prev {
				return d.errSeries("duplicate label name %s", quote(name))
			}
			return d.errSeries("label names not sorted: %s after %s", quote(name), quote(d.prev))
		}
		d.name, d.pending = name, true
		return nil
	}
	d.pending = false
	return d.pushLabel(d.name, d.symbols[ref])
}

// pushLabel counts, charges and pushes a complete label (or skims it,
// see NameFilter).
func (d *v2Decoder) pushLabel(name, value string) error {
	d.prev, d.hasPrev = name, true
	// Every label on the wire counts, skimmed or not, so a filter does
	// not change what is accepted.
	if d.labels++; d.labels > d.maxLabels {
		return errLabels(fmt.Sprintf("remote write 2.0 timeseries[%d]", d.series), d.maxLabels)
	}
	if !d.bud.take(labelBytes) {
		return d.bud.errOver("remote write")
	}
	if name == batch.MetricName { // 2.0 label names are unique
		d.metric = value
	}
	switch {
	case !d.skim:
		d.b.PushLabel(name, value)
		if d.filter != nil && !d.named && name == batch.MetricName {
			d.named, d.skim = true, !d.filter.Wanted(value)
		}
	case name == d.filter.KeepLabel:
		d.b.PushLabel(name, value)
	}
	return nil
}

// after reports whether name sorts after prev, looking at their first
// bytes first: the names of a series mostly differ there, and the
// comparison then needs no call.
func after(name, prev string) bool {
	if name != "" && prev != "" && name[0] != prev[0] {
		return name[0] > prev[0]
	}
	return name > prev
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// exemplarV2 reads a 2.0 Exemplar and pushes it: labels_refs (pairs into
// the symbols table, packed or not, in wire order), the last value and
// timestamp.
func (d *v2Decoder) exemplarV2(i, end int) error {
	if !d.bud.take(exemplarBytes) {
		return d.bud.errOver("remote write")
	}
	start, refs := i, 0
	var name string
	var ts int64
	var v float64
	ref := func(v uint64, off int) error {
		r := uint32(v)
		if int(r) >= len(d.symbols) {
			return d.errSeries("exemplar labels_refs[%d] = %d at offset %d is outside the symbols table (%d symbols)", refs, r, off, len(d.symbols))
		}
		if refs++; refs%2 == 1 {
			name = d.symbols[r]
			return nil
		}
		if refs/2 > d.maxLabels {
			return errLabels(fmt.Sprintf("exemplar at offset %d of remote write 2.0 timeseries[%d]", start, d.series), d.maxLabels)
		}
		if !d.bud.take(labelBytes) {
			return d.bud.errOver("remote write")
		}
		d.b.PushExemplarLabel(name, d.symbols[r])
		return nil
	}
	for i < end {
		num, wt, next, err := d.tag(i, end, "Exemplar")
		if err != nil {
			return err
		}
		switch num {
		case 1:
			switch wt {
			case wtVarint:
				v, e := varint(d.buf, next, end)
				if e < 0 {
					return varintErr(e, next, "exemplar labels_refs")
				}
				if err := ref(v, next); err != nil {
					return err
				}
				i = e
			case wtBytes:
				s, e, err := d.lenDelim(next, end, "exemplar labels_refs")
				if err != nil {
					return err
				}
				for s < e { // bounded by the message, like the reference
					v, n := varint(d.buf, s, end)
					if n < 0 {
						return varintErr(n, s, "exemplar labels_refs")
					}
					if err := ref(v, s); err != nil {
						return err
					}
					s = n
				}
				i = s
			default:
				return BadRequest("protobuf: wrong wire type %d for Exemplar.labels_refs at offset %d", wt, i)
			}
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
	if refs%2 != 0 {
		return d.errSeries("exemplar with an odd number of labels_refs (%d)", refs)
	}
	d.b.PushExemplar(ts, v)
	return nil
}

// metadataV2 validates a 2.0 Metadata: type (1), help_ref (3), unit_ref
// (4). Several messages merge, the last value of each field wins; the
// references are checked at the end of the series.
func (d *v2Decoder) metadataV2(i, end int) error {
	for i < end {
		num, wt, next, err := d.tag(i, end, "Metadata")
		if err != nil {
			return err
		}
		switch num {
		case 1:
			if err := wantWire(wt, wtVarint, "Metadata.type", i); err != nil {
				return err
			}
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return varintErr(e, next, "Metadata.type")
			}
			d.typ, i = uint32(v), e // an int32 enum: the reference keeps the low 32 bits
		case 3, 4:
			if err := wantWire(wt, wtVarint, "Metadata ref", i); err != nil {
				return err
			}
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return varintErr(e, next, "Metadata ref")
			}
			if num == 3 {
				d.help = uint32(v)
			} else {
				d.unit = uint32(v)
			}
			i = e
		default:
			i, err = d.skip(i, end)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
