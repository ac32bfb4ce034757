package decode

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/telegate/telegate/batch"
)

// Metric types of io.prometheus.client.MetricType.
const (
	typeCounter        = 0
	typeGauge          = 1
	typeSummary        = 2
	typeUntyped        = 3
	typeHistogram      = 4
	typeGaugeHistogram = 5
)

var typeNames = [...]string{"COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM"}

// maxGroupDepth is how deeply unknown groups may nest, as in
// google.golang.org/protobuf's protowire.DefaultRecursionLimit.
const maxGroupDepth = 10000

// UnmarshalMetricFamilies walks buf, a decoded telemeter /upload body (a
// sequence of varint-length-delimited io.prometheus.client.MetricFamily
// messages), and pushes the series the Prometheus text exposition of those
// families would contain:
//
//   - counter, gauge, untyped: name
//   - summary: name{quantile="q"} per quantile, name_sum, name_count
//   - histogram, gauge histogram: name_bucket{le="b"} per bucket (float
//     counts when set and non-zero), a +Inf bucket (= count) when none is
//     present, name_sum, name_count
//   - native histogram (see histenc.go for when a histogram is one): name
//     with one native histogram sample (batch.Histogram, a remote write 1.0
//     prometheus.Histogram, reset hint GAUGE for a gauge histogram), plus
//     the classic series above only when it also has classic buckets, as
//     Prometheus scraping it with always_scrape_classic_histograms
//
// Each series carries __name__ followed by the metric's label pairs (plus
// quantile or le), unsorted, and one sample stamped nowMs if useServerTime
// or the metric has no timestamp_ms, else timestamp_ms. Counters',
// buckets' and native histograms' exemplars go onto their series as
// Prometheus' scrape takes them (see mfexemplar.go).
//
// It accepts exactly what google.golang.org/protobuf accepts for these
// messages (proto2: fields with an unexpected wire type are unknown fields,
// repeated optional messages merge). On top of that a family without a
// name, with an unknown type, with a metric lacking the value its type
// needs ("type COUNTER but no counter value") or with a native histogram
// that Prometheus' histogram Validate would refuse ("invalid native
// histogram: ...") is a 400. A family without metrics contributes nothing.
//
// The Limits are enforced while walking: more than MaxSeries derived series
// is a 413 naming max_series_per_request; a series with more than
// MaxLabelsPerSeries labels (__name__, the metric's label pairs, le or
// quantile) a 400 naming max_labels_per_series; more than MaxBatchBytes of
// labels, samples, series, native histogram encodings and allocated
// strings a 413 (see UploadBudget).
//
// Family names and labels alias buf (see UnmarshalWriteRequest); derived
// names (_sum, _count, _bucket) and le/quantile values are allocated, and
// native histograms are encoded into chunks only the batch references. On
// error, b holds a partial request and should be Reset.
func UnmarshalMetricFamilies(buf []byte, b *batch.Batch, nowMs int64, useServerTime bool, l Limits) (Stats, error) {
	return UnmarshalMetricFamiliesFiltered(buf, b, nowMs, useServerTime, l, nil)
}

// UnmarshalMetricFamiliesFiltered is UnmarshalMetricFamilies with a
// NameFilter: when the filter refuses every name a family's series can
// have (name; or name_sum, name_count and name, and name_bucket for a
// histogram), each of
// its series carries only __name__, the KeepLabel labels and its
// le/quantile. Everything is still decoded and checked, and the Limits
// count what would be pushed without a filter.
func UnmarshalMetricFamiliesFiltered(buf []byte, b *batch.Batch, nowMs int64, useServerTime bool, l Limits, f *NameFilter) (Stats, error) {
	d := mfDecoder{buf: buf, b: b, now: nowMs, serverTime: useServerTime, maxSeries: l.MaxSeries,
		maxLabels: l.MaxLabelsPerSeries, bud: newBudget(l, len(buf)), filter: f}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.families()
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

// UnmarshalPushedFamilies is UnmarshalMetricFamiliesFiltered for a
// protobuf push (POST /metrics/v1/push): a metric's timestamp_ms is kept
// when set, and le and quantile values are written as Prometheus 3's
// scrape and the text parsers write them (OpenMetrics floats: "1.0",
// "0.25", "1e+06", "+Inf"), so a family pushed as text or as protobuf is
// one set of series. /upload keeps the shortest form ("1") its stored
// series have always had.
func UnmarshalPushedFamilies(buf []byte, b *batch.Batch, nowMs int64, l Limits, f *NameFilter) (Stats, error) {
	d := mfDecoder{buf: buf, b: b, now: nowMs, maxSeries: l.MaxSeries, omFloats: true,
		maxLabels: l.MaxLabelsPerSeries, bud: newBudget(l, len(buf)), filter: f}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.families()
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

// EncodeMetricFamilies writes mfs to w as varint-length-delimited protobuf,
// the /upload body format (before snappy framing).
func EncodeMetricFamilies(w io.Writer, mfs []*dto.MetricFamily) error {
	for _, mf := range mfs {
		if _, err := protodelim.MarshalTo(w, mf); err != nil {
			return err
		}
	}
	return nil
}

type mfDecoder struct {
	buf        []byte
	b          *batch.Batch
	st         Stats
	now        int64
	serverTime bool
	// omFloats writes le and quantile values as OpenMetrics floats
	// (UnmarshalPushedFamilies).
	omFloats  bool
	maxSeries int
	maxLabels int
	bud       budget

	// Per family.
	name                        string
	sumName, countName, bktName string
	namesCharged                bool // the derived names are charged to bud
	skim                        bool // the filter refuses all the family's names

	filter *NameFilter

	// Per metric: the first series emitted for it, whose label pairs the
	// metric's other derived series copy instead of walking the metric again
	// (which would make a metric with many buckets quadratic). pairs is the
	// metric's label pair count on the wire (skimmed ones included).
	tmpl, tmplN int
	pairs       int

	strBytes int // allocated by formatFloat, not yet charged

	arena []byte // native histogram encodings (see rawBuf)

	floats [64]floatStr // le/quantile strings, direct-mapped by bits
}

type floatStr struct {
	bits uint64
	s    string
}

// field is one decoded field: for wtBytes and wtStart, buf[s:e] is the
// payload; for wtVarint and wtFixed64/32, v is the value.
type field struct {
	num, wt int
	s, e    int
	v       uint64
}

// pvarint reads a varint the way google.golang.org/protobuf does: at most
// 10 bytes and the 10th must be 0 or 1.
func pvarint(buf []byte, i, end int) (v uint64, next int) {
	if i < end && buf[i] < 0x80 {
		return uint64(buf[i]), i + 1
	}
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= end {
			return 0, errTruncated
		}
		c := buf[i]
		i++
		if shift == 63 && c > 1 {
			return 0, errOverflow
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, errOverflow
}

// pvarintLong is pvarint for varints that are usually long (timestamps):
// with ten bytes in bounds it needs one bounds check.
func pvarintLong(buf []byte, i, end int) (v uint64, next int) {
	if i >= 0 && end <= len(buf) && end-i >= 10 {
		b := buf[i : i+10]
		for k, c := range b {
			if k == 9 && c > 1 {
				return 0, errOverflow
			}
			v |= uint64(c&0x7f) << (7 * k)
			if c < 0x80 {
				return v, i + k + 1
			}
		}
		return 0, errOverflow
	}
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= end {
			return 0, errTruncated
		}
		c := buf[i]
		i++
		if shift == 63 && c > 1 {
			return 0, errOverflow
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, errOverflow
}

// next reads the field at i of a message ending at end. Field numbers must
// be in [1, 2^29-1] and an end-group tag is an error, as at message level
// in google.golang.org/protobuf.
//
// It fills *f rather than returning a field: a returned struct was stored
// word by word and reloaded in 16-byte moves, a store-forwarding stall that
// cost a fifth of MetricFamily decoding.
func (d *mfDecoder) next(f *field, i, end int, msg string) (next int, err error) {
	t, n := pvarint(d.buf, i, end)
	if n < 0 {
		return 0, varintErr(n, i, msg+" tag")
	}
	if num := t >> 3; num < 1 || num > 1<<29-1 {
		return 0, BadRequest("protobuf: %s: illegal field number %d at offset %d", msg, num, i)
	}
	*f = field{num: int(t >> 3), wt: int(t & 7)}
	if f.wt == wtEnd {
		return 0, BadRequest("protobuf: %s: end group outside a group at offset %d", msg, i)
	}
	return d.value(f, n, end, maxGroupDepth)
}

// value consumes the value of f starting at i.
func (d *mfDecoder) value(f *field, i, end, depth int) (int, error) {
	if f.wt != wtStart {
		return d.scalarValue(f, i, end)
	}
	if depth < 0 {
		return 0, BadRequest("protobuf: groups nested too deeply at offset %d", i)
	}
	f.s = i
	e, n, err := d.group(f.num, i, end, depth)
	if err != nil {
		return 0, err
	}
	f.e = e
	return n, nil
}

// group walks the fields of a group of field num whose first field is at
// i, up to its end-group tag, and returns the tag's offset and the offset
// after it. It recurses without pointers, so its fields stay on the stack
// (a *field passed down a recursion escapes: 48 bytes of garbage per field
// of a deeply nested group).
func (d *mfDecoder) group(num, i, end, depth int) (endTag, next int, err error) {
	for {
		t, n := pvarint(d.buf, i, end)
		if n < 0 {
			return 0, 0, varintErr(n, i, "group tag")
		}
		inum := t >> 3
		if inum < 1 || inum > math.MaxInt32 {
			return 0, 0, BadRequest("protobuf: illegal field number %d at offset %d", inum, i)
		}
		switch wt := int(t & 7); wt {
		case wtEnd:
			if int(inum) != num {
				return 0, 0, BadRequest("protobuf: mismatched end group at offset %d", i)
			}
			return i, n, nil
		case wtStart:
			if depth-1 < 0 {
				return 0, 0, BadRequest("protobuf: groups nested too deeply at offset %d", n)
			}
			if _, i, err = d.group(int(inum), n, end, depth-1); err != nil {
				return 0, 0, err
			}
		default:
			inner := field{num: int(inum), wt: wt}
			if i, err = d.scalarValue(&inner, n, end); err != nil {
				return 0, 0, err
			}
		}
	}
}

// scalarValue consumes the value of f, of any wire type but a group start,
// starting at i.
func (d *mfDecoder) scalarValue(f *field, i, end int) (int, error) {
	switch f.wt {
	case wtVarint:
		v, n := pvarint(d.buf, i, end)
		if n < 0 {
			return 0, varintErr(n, i, "varint field")
		}
		f.v = v
		return n, nil
	case wtFixed64:
		if end-i < 8 {
			return 0, BadRequest("protobuf: truncated fixed64 field at offset %d", i)
		}
		f.v = binary.LittleEndian.Uint64(d.buf[i:])
		return i + 8, nil
	case wtFixed32:
		if end-i < 4 {
			return 0, BadRequest("protobuf: truncated fixed32 field at offset %d", i)
		}
		f.v = uint64(binary.LittleEndian.Uint32(d.buf[i:]))
		return i + 4, nil
	case wtBytes:
		l, n := pvarint(d.buf, i, end)
		if n < 0 {
			return 0, varintErr(n, i, "length")
		}
		if l > uint64(end-n) {
			return 0, BadRequest("protobuf: truncated field %d at offset %d (length %d, %d bytes left)", f.num, i, l, end-n)
		}
		f.s, f.e = n, n+int(l)
		return f.e, nil
	case wtEnd:
		return 0, BadRequest("protobuf: unexpected end group at offset %d", i)
	default:
		return 0, BadRequest("protobuf: illegal wire type %d at offset %d", f.wt, i)
	}
}

// plain validates a message without message-typed or packed fields
// (LabelPair, Gauge, Untyped, Quantile, BucketSpan, Timestamp): every field
// must parse.
func (d *mfDecoder) plain(i, end int, msg string) error {
	for i < end {
		var err error
		var f field
		if i, err = d.next(&f, i, end, msg); err != nil {
			return err
		}
	}
	return nil
}

// packed validates the payload of a packed repeated field strictly.
func (d *mfDecoder) packed(f field, wt int) error {
	for i := f.s; i < f.e; {
		if wt == wtFixed64 {
			if f.e-i < 8 {
				return BadRequest("protobuf: packed doubles of field %d at offset %d are not a multiple of 8 bytes", f.num, f.s)
			}
			i += 8
			continue
		}
		_, n := pvarint(d.buf, i, f.e)
		if n < 0 {
			return varintErr(n, i, "packed varint")
		}
		i = n
	}
	return nil
}

func (d *mfDecoder) families() error {
	i, end := 0, len(d.buf)
	for i < end {
		l, n := pvarint(d.buf, i, end)
		if n < 0 {
			return varintErr(n, i, "metric family length")
		}
		if l > uint64(end-n) {
			return BadRequest("protobuf: truncated metric family at offset %d (length %d, %d bytes left)", i, l, end-n)
		}
		if err := d.family(n, n+int(l)); err != nil {
			return err
		}
		i = n + int(l)
	}
	return nil
}

// Tags of the MetricFamily fields family reads inline.
const (
	tagFamilyName   = 1<<3 | wtBytes
	tagFamilyHelp   = 2<<3 | wtBytes
	tagFamilyType   = 3<<3 | wtVarint
	tagFamilyMetric = 4<<3 | wtBytes
)

func (d *mfDecoder) family(s, e int) error {
	d.st.Metadata++
	d.name, d.sumName, d.countName, d.bktName = "", "", "", ""
	d.namesCharged = false
	var typ int32
	buf := d.buf[:e]
	for i := s; i < e; {
		// Fast path for the fields of a family: name, help and metrics
		// with their one-byte tags and lengths of any size, the type
		// with a one-byte value. The general walk reads them to the same
		// result; it takes every other encoding and malformed bytes.
		switch c := buf[i]; c {
		case tagFamilyName, tagFamilyHelp, tagFamilyMetric:
			if l, n := pvarint(buf, i+1, e); n >= 0 && l <= uint64(e-n) {
				if c == tagFamilyName {
					d.name = str(buf, n, n+int(l))
				}
				i = n + int(l)
				continue
			}
		case tagFamilyType:
			if i+1 < e && buf[i+1] < 0x80 {
				typ = int32(buf[i+1])
				i += 2
				continue
			}
		}
		var f field
		n, err := d.next(&f, i, e, "MetricFamily")
		if err != nil {
			return err
		}
		switch {
		case f.num == 1 && f.wt == wtBytes:
			d.name = str(d.buf, f.s, f.e)
		case f.num == 3 && f.wt == wtVarint:
			typ = int32(f.v)
		}
		i = n
	}
	if d.name == "" {
		return BadRequest("metric family at offset %d has no name", s)
	}
	if typ < 0 || int(typ) >= len(typeNames) {
		return BadRequest("metric family %q: unknown metric type %d", d.name, typ)
	}
	d.skim = d.refused(int(typ))
	for i := s; i < e; {
		// The first walk checked every field: what follows a one-byte
		// tag of wire type bytes is a length in bounds.
		if c := buf[i]; c&7 == wtBytes && c < 0x80 {
			l, n := pvarint(buf, i+1, e)
			if c == tagFamilyMetric {
				if err := d.metric(int(typ), n, n+int(l)); err != nil {
					return err
				}
			}
			i = n + int(l)
			continue
		}
		var f field
		n, err := d.next(&f, i, e, "MetricFamily")
		if err != nil {
			return err
		}
		if f.num == 4 && f.wt == wtBytes {
			if err := d.metric(int(typ), f.s, f.e); err != nil {
				return err
			}
		}
		i = n
	}
	return nil
}

// metricVals gathers the merged scalar fields of one Metric.
type metricVals struct {
	has        [8]bool // by Metric field number: 2 gauge ... 7 histogram
	value      [8]float64
	ts         int64
	hasTS      bool
	count      uint64 // summary or histogram sample_count
	countFloat float64
	sum        float64
	infSeen    bool
	buckets    int          // classic buckets
	nh         mfNativeHist // native histogram fields
}

// Tags of the Metric fields metric reads inline.
const (
	tagMetricLabel     = 1<<3 | wtBytes
	tagMetricGauge     = 2<<3 | wtBytes
	tagMetricUntyped   = 5<<3 | wtBytes
	tagMetricTimestamp = 6<<3 | wtVarint
	tagPairName        = 1<<3 | wtBytes
	tagPairValue       = 2<<3 | wtBytes
	tagGaugeValue      = 1<<3 | wtFixed64
)

func (d *mfDecoder) metric(typ, s, e int) error {
	var m metricVals
	d.tmpl = -1
	// pairs is d.pairs while walking, maxLabels d.maxLabels.
	pairs, maxLabels := 0, d.maxLabels
	// The label pairs are pushed (and charged) while walking; the first
	// series of the metric takes them (and its __name__ is set once the
	// type is known).
	if !d.bud.take(labelBytes) {
		return d.bud.errOver("upload")
	}
	d.b.PushLabel(batch.MetricName, d.name)
	buf := d.buf[:e] // one bound for the whole metric
	for i := s; i < e; {
		var ln, lv string
		var ps int // the LabelPair's payload
		// Fast paths for the fields every encoder writes in their
		// shortest form: a LabelPair of name then value, each with its
		// one-byte tag and length, filling a payload of one-byte length;
		// a Gauge or Untyped holding just its value; a timestamp_ms. The
		// general walk below reads them to the same result; it takes
		// every other encoding (longer or non-canonical lengths, other
		// field orders, unknown fields, malformed bytes).
		switch c := buf[i]; {
		case c == tagMetricLabel && i+1 < e && buf[i+1] < 0x80:
			ps = i + 2
			pe := ps + int(buf[i+1])
			if pe-ps >= 4 && pe <= e && buf[ps] == tagPairName {
				ne := ps + 2 + int(buf[ps+1]) // a length byte >= 0x80 makes ne+2 > pe
				if ne+2 <= pe && buf[ne] == tagPairValue && int(buf[ne+1]) == pe-ne-2 {
					ln, lv = str(buf, ps+2, ne), str(buf, ne+2, pe)
					i = pe
					goto pair
				}
			}
		case (c == tagMetricGauge || c == tagMetricUntyped) && i+11 <= e && buf[i+1] == 9 && buf[i+2] == tagGaugeValue:
			num := int(c >> 3)
			m.has[num] = true
			m.value[num] = math.Float64frombits(binary.LittleEndian.Uint64(buf[i+3:]))
			i += 11
			continue
		case c == tagMetricTimestamp:
			if v, n := pvarintLong(buf, i+1, e); n >= 0 {
				m.ts, m.hasTS = int64(v), true
				i = n
				continue
			}
		}
		{
			var f field
			n, err := d.next(&f, i, e, "Metric")
			if err != nil {
				return err
			}
			i = n
			switch {
			case f.num == 6 && f.wt == wtVarint:
				m.ts, m.hasTS = int64(f.v), true
			case f.num == 1 && f.wt == wtBytes:
				if ln, lv, err = d.labelPair(f); err != nil {
					return err
				}
				ps = f.s
				goto pair
			case (f.num == 2 || f.num == 5) && f.wt == wtBytes: // gauge, untyped
				m.has[f.num] = true
				err = d.simpleValue(&m, f)
			case f.num == 3 && f.wt == wtBytes:
				m.has[3] = true
				err = d.counter(&m, f)
			case f.num == 4 && f.wt == wtBytes:
				m.has[4] = true
				err = d.summary(&m, f, typ == typeSummary)
			case f.num == 7 && f.wt == wtBytes:
				m.has[7] = true
				err = d.histogram(&m, f, typ == typeHistogram || typ == typeGaugeHistogram)
			}
			if err != nil {
				return err
			}
			continue
		}
	pair:
		if pairs++; 1+pairs > maxLabels {
			return errLabels(fmt.Sprintf("metric of family %q at offset %d", d.name, ps), maxLabels)
		}
		if !d.bud.take(labelBytes) {
			return d.bud.errOver("upload")
		}
		if !d.skim || ln == d.filter.KeepLabel {
			d.b.PushLabel(ln, lv)
		}
	}
	d.pairs = pairs

	ts := d.now
	if !d.serverTime && m.hasTS {
		ts = m.ts
	}
	need := [...]int{typeCounter: 3, typeGauge: 2, typeSummary: 4, typeUntyped: 5, typeHistogram: 7, typeGaugeHistogram: 7}[typ]
	if !m.has[need] {
		kind := [...]string{2: "gauge", 3: "counter", 4: "summary", 5: "untyped", 7: "histogram"}[need]
		return BadRequest("metric family %q: type %s but no %s value", d.name, typeNames[typ], kind)
	}
	switch typ {
	case typeCounter:
		if err := d.open(d.name, "", "", ts, m.value[need]); err != nil {
			return err
		}
		if err := d.counterExemplar(s, e, ts); err != nil {
			return err
		}
		d.b.EndSeries()
		return nil
	case typeGauge, typeUntyped:
		return d.emit(d.name, "", "", ts, m.value[need])
	case typeSummary:
		if err := d.quantiles(s, e, ts); err != nil {
			return err
		}
		d.derivedNames()
		if err := d.chargeNames(); err != nil {
			return err
		}
		if err := d.emit(d.sumName, "", "", ts, m.sum); err != nil {
			return err
		}
		return d.emit(d.countName, "", "", ts, float64(m.count))
	default: // histograms
		native := m.nh.native()
		if native {
			if err := m.nh.validate(m.count, m.countFloat, m.sum); err != nil {
				return BadRequest("metric family %q: invalid native histogram: %v", d.name, err)
			}
			if err := d.emitNative(&m, s, e, ts, typ == typeGaugeHistogram); err != nil {
				return err
			}
			if m.buckets == 0 {
				// Native only, as Prometheus scrapes it: no classic series.
				return nil
			}
		}
		d.derivedNames()
		if err := d.chargeNames(); err != nil {
			return err
		}
		if err := d.buckets(s, e, ts); err != nil {
			return err
		}
		count := m.countFloat
		if count == 0 {
			count = float64(m.count)
		}
		if !m.infSeen {
			if err := d.emit(d.bktName, "le", "+Inf", ts, count); err != nil {
				return err
			}
		}
		if err := d.emit(d.sumName, "", "", ts, m.sum); err != nil {
			return err
		}
		return d.emit(d.countName, "", "", ts, count)
	}
}

// refused reports whether the filter refuses every name a family of type
// typ named d.name can give its series.
func (d *mfDecoder) refused(typ int) bool {
	if d.filter == nil {
		return false
	}
	switch typ {
	case typeCounter, typeGauge, typeUntyped:
		return !d.filter.Wanted(d.name)
	}
	d.derivedNames()
	if typ != typeSummary && d.filter.Wanted(d.bktName) {
		return false
	}
	// name: a summary's quantiles, a native histogram.
	return !d.filter.Wanted(d.name) && !d.filter.Wanted(d.sumName) && !d.filter.Wanted(d.countName)
}

func (d *mfDecoder) derivedNames() {
	if d.sumName == "" {
		d.sumName, d.countName, d.bktName = d.name+"_sum", d.name+"_count", d.name+"_bucket"
	}
}

// chargeNames charges the derived names once per family, when its first
// series uses them (the filter may derive them earlier; unused, they are
// garbage, not held by the batch).
func (d *mfDecoder) chargeNames() error {
	if !d.namesCharged {
		d.namesCharged = true
		if !d.bud.take(3*len(d.name) + len("_sum_count_bucket")) {
			return d.bud.errOver("upload")
		}
	}
	return nil
}

// simpleValue reads a Gauge or Untyped: {1 value double}.
func (d *mfDecoder) simpleValue(m *metricVals, g field) error {
	for i := g.s; i < g.e; {
		var f field
		n, err := d.next(&f, i, g.e, "Gauge")
		if err != nil {
			return err
		}
		if f.num == 1 && f.wt == wtFixed64 {
			m.value[g.num] = math.Float64frombits(f.v)
		}
		i = n
	}
	return nil
}

// counter reads a Counter: {1 value, 2 exemplar, 3 created_timestamp}.
func (d *mfDecoder) counter(m *metricVals, c field) error {
	for i := c.s; i < c.e; {
		var f field
		n, err := d.next(&f, i, c.e, "Counter")
		if err != nil {
			return err
		}
		i = n
		switch {
		case f.num == 1 && f.wt == wtFixed64:
			m.value[3] = math.Float64frombits(f.v)
		case f.num == 2 && f.wt == wtBytes:
			err = d.exemplar(f)
		case f.num == 3 && f.wt == wtBytes:
			err = d.plain(f.s, f.e, "Timestamp")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// exemplar validates and counts an Exemplar: {1 LabelPair, 2 value, 3 Timestamp}.
func (d *mfDecoder) exemplar(x field) error {
	d.st.Exemplars++
	for i := x.s; i < x.e; {
		var f field
		n, err := d.next(&f, i, x.e, "Exemplar")
		if err != nil {
			return err
		}
		i = n
		if f.wt == wtBytes && (f.num == 1 || f.num == 3) {
			if err := d.plain(f.s, f.e, "Exemplar field"); err != nil {
				return err
			}
		}
	}
	return nil
}

// summary reads a Summary: {1 sample_count, 2 sample_sum, 3 Quantile, 4
// created_timestamp}. Quantiles are emitted in a second walk.
func (d *mfDecoder) summary(m *metricVals, sm field, use bool) error {
	for i := sm.s; i < sm.e; {
		var f field
		n, err := d.next(&f, i, sm.e, "Summary")
		if err != nil {
			return err
		}
		i = n
		switch {
		case f.num == 1 && f.wt == wtVarint && use:
			m.count = f.v
		case f.num == 2 && f.wt == wtFixed64 && use:
			m.sum = math.Float64frombits(f.v)
		case (f.num == 3 || f.num == 4) && f.wt == wtBytes:
			err = d.plain(f.s, f.e, "Quantile")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// histogram reads a Histogram: the classic fields when use, and the native
// ones into m.nh (merged in wire order). Buckets are emitted in a second
// walk, the native histogram encoded in another.
func (d *mfDecoder) histogram(m *metricVals, h field, use bool) error {
	nh := &m.nh
	for i := h.s; i < h.e; {
		var f field
		n, err := d.next(&f, i, h.e, "Histogram")
		if err != nil {
			return err
		}
		i = n
		switch {
		case f.num == 1 && f.wt == wtVarint && use:
			m.count = f.v
		case f.num == 4 && f.wt == wtFixed64 && use:
			m.countFloat = math.Float64frombits(f.v)
		case f.num == 2 && f.wt == wtFixed64 && use:
			m.sum = math.Float64frombits(f.v)
		case f.num == 3 && f.wt == wtBytes:
			var ub float64
			if ub, _, err = d.bucket(f, true); err == nil && math.IsInf(ub, 1) {
				m.infSeen = true
			}
			m.buckets++
		case f.num == 5 && f.wt == wtVarint:
			nh.schema = int32(unzigzag64(f.v & math.MaxUint32))
		case f.num == 6 && f.wt == wtFixed64:
			nh.zeroThreshold = math.Float64frombits(f.v)
		case f.num == 7 && f.wt == wtVarint:
			nh.zeroCount = f.v
		case f.num == 8 && f.wt == wtFixed64:
			nh.zeroCountFloat = math.Float64frombits(f.v)
		case (f.num == 9 || f.num == 12) && f.wt == wtBytes:
			var off int32
			var length uint32
			if off, length, err = d.span(f); err == nil {
				nh.side[(f.num-9)/3].addSpan(off, length)
			}
		case (f.num == 10 || f.num == 13) && f.wt == wtBytes:
			err = d.packedDeltas(f, &nh.side[(f.num-10)/3])
		case (f.num == 10 || f.num == 13) && f.wt == wtVarint:
			nh.side[(f.num-10)/3].addDelta(f.v)
		case (f.num == 11 || f.num == 14) && f.wt == wtBytes:
			err = d.packedCounts(f, &nh.side[(f.num-11)/3])
		case (f.num == 11 || f.num == 14) && f.wt == wtFixed64:
			nh.side[(f.num-11)/3].addCount(math.Float64frombits(f.v))
		case f.num == 15 && f.wt == wtBytes:
			err = d.plain(f.s, f.e, "Histogram field")
		case f.num == 16 && f.wt == wtBytes:
			nh.exemplars++
			err = d.exemplar(f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bucket reads a Bucket: {1 cumulative_count, 4 cumulative_count_float, 2
// upper_bound, 3 exemplar}; it returns the upper bound and the count the
// text format shows.
func (d *mfDecoder) bucket(b field, validate bool) (ub, count float64, err error) {
	var cnt uint64
	var cntFloat float64
	for i := b.s; i < b.e; {
		var f field
		n, err := d.next(&f, i, b.e, "Bucket")
		if err != nil {
			return 0, 0, err
		}
		i = n
		switch {
		case f.num == 1 && f.wt == wtVarint:
			cnt = f.v
		case f.num == 4 && f.wt == wtFixed64:
			cntFloat = math.Float64frombits(f.v)
		case f.num == 2 && f.wt == wtFixed64:
			ub = math.Float64frombits(f.v)
		case f.num == 3 && f.wt == wtBytes && validate:
			if err := d.exemplar(f); err != nil {
				return 0, 0, err
			}
		}
	}
	if cntFloat == 0 {
		cntFloat = float64(cnt)
	}
	return ub, cntFloat, nil
}

// quantiles emits name{quantile="q"} for every Quantile of every summary of
// the (already validated) metric at buf[s:e].
func (d *mfDecoder) quantiles(s, e int, ts int64) error {
	return d.eachSub(s, e, 4, 3, func(f field) error {
		var q, v float64
		for i := f.s; i < f.e; {
			var g field
			n, err := d.next(&g, i, f.e, "Quantile")
			if err != nil {
				return err
			}
			i = n
			switch {
			case g.num == 1 && g.wt == wtFixed64:
				q = math.Float64frombits(g.v)
			case g.num == 2 && g.wt == wtFixed64:
				v = math.Float64frombits(g.v)
			}
		}
		return d.emit(d.name, "quantile", d.formatFloat(q), ts, v)
	})
}

// buckets emits name_bucket{le="b"} for every Bucket of every histogram of
// the (already validated) metric at buf[s:e].
func (d *mfDecoder) buckets(s, e int, ts int64) error {
	return d.eachSub(s, e, 7, 3, func(f field) error {
		ub, count, err := d.bucket(f, false)
		if err != nil {
			return err
		}
		if err := d.open(d.bktName, "le", d.formatFloat(ub), ts, count); err != nil {
			return err
		}
		if err := d.bucketExemplar(f, ts, false); err != nil {
			return err
		}
		d.b.EndSeries()
		return nil
	})
}

// eachSub calls fn for every length-delimited field sub of every
// length-delimited field outer of the message at buf[s:e], in wire order,
// which is the order merged repeated fields have.
func (d *mfDecoder) eachSub(s, e, outer, sub int, fn func(field) error) error {
	for i := s; i < e; {
		var f field
		n, err := d.next(&f, i, e, "Metric")
		if err != nil {
			return err
		}
		i = n
		if f.num != outer || f.wt != wtBytes {
			continue
		}
		for j := f.s; j < f.e; {
			var g field
			n, err := d.next(&g, j, f.e, "value")
			if err != nil {
				return err
			}
			j = n
			if g.num == sub && g.wt == wtBytes {
				if err := fn(g); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// emit pushes one series of the current metric: __name__=name, the
// metric's label pairs, the optional extra label, and one sample.
func (d *mfDecoder) emit(name, extraName, extraValue string, ts int64, v float64) error {
	if err := d.open(name, extraName, extraValue, ts, v); err != nil {
		return err
	}
	d.b.EndSeries()
	return nil
}

// open is emit without EndSeries: exemplars may follow.
func (d *mfDecoder) open(name, extraName, extraValue string, ts int64, v float64) error {
	if err := d.startSeries(name, extraName, extraValue, sampleBytes); err != nil {
		return err
	}
	d.b.PushSample(ts, v)
	d.st.Samples++
	return nil
}

// emitNative pushes the native histogram series of the current metric at
// buf[s:e]: __name__=d.name, the metric's label pairs, and the histogram
// encoded as a remote write 1.0 prometheus.Histogram.
func (d *mfDecoder) emitNative(m *metricVals, s, e int, ts int64, gauge bool) error {
	if err := d.startSeries(d.name, "", "", histogramBytes); err != nil {
		return err
	}
	raw, err := d.encodeNative(m, s, e, ts, gauge)
	if err != nil {
		return err
	}
	d.b.PushHistogram(ts, raw)
	if err := d.nativeExemplars(m, s, e, ts); err != nil {
		return err
	}
	d.b.EndSeries()
	d.st.Histograms++
	return nil
}

// startSeries pushes the labels of one series of the current metric
// (__name__=name, the metric's label pairs, the optional extra label) and
// charges them, the series and sample bytes for its sample.
func (d *mfDecoder) startSeries(name, extraName, extraValue string, sample int) error {
	if d.maxSeries > 0 && d.st.Series >= d.maxSeries {
		return TooLarge(CapSeries, d.maxSeries, fmt.Sprintf("upload with more than %d series", d.maxSeries))
	}
	// Charged as without a filter: the first series' __name__ and pairs
	// were charged while walking the metric.
	n, charge := 0, seriesBytes+sample+d.strBytes
	d.strBytes = 0
	if extraName != "" {
		if n = 1; 2+d.pairs > d.maxLabels {
			return errLabels(fmt.Sprintf("series of family %q", d.name), d.maxLabels)
		}
	}
	if d.tmpl >= 0 {
		n += 1 + d.pairs
	}
	if !d.bud.take(charge + n*labelBytes) {
		return d.bud.errOver("upload")
	}
	if d.tmpl < 0 {
		// First series of the metric: its labels are pending already.
		d.tmpl, d.tmplN = len(d.b.Series), len(d.b.PendingLabels())-1
		d.b.PendingLabels()[0].Value = name
	} else {
		d.b.PushLabel(batch.MetricName, name)
		for _, l := range d.b.Series[d.tmpl].Labels[1 : 1+d.tmplN] {
			d.b.PushLabel(l.Name, l.Value)
		}
	}
	if extraName != "" {
		d.b.PushLabel(extraName, extraValue)
	}
	d.st.Series++
	return nil
}

// formatFloat renders a le or quantile value like the Prometheus text
// format: 'g' with the shortest representation, "+Inf", "-Inf", "NaN", and
// "0" for negative zero; with omFloats as OpenMetrics does (".0" added to
// an integer, "-0.0" kept). Recent values are cached.
func (d *mfDecoder) formatFloat(f float64) string {
	if f == 0 && !d.omFloats {
		return "0"
	}
	bits := math.Float64bits(f)
	slot := &d.floats[(bits^bits>>29^bits>>47)%uint64(len(d.floats))]
	if slot.s != "" && slot.bits == bits {
		return slot.s
	}
	var s string
	switch {
	case math.IsInf(f, 1):
		s = "+Inf"
	case math.IsInf(f, -1):
		s = "-Inf"
	case math.IsNaN(f):
		s = "NaN"
	default:
		s = strconv.FormatFloat(f, 'g', -1, 64)
		if d.omFloats && !strings.ContainsAny(s, "e.") {
			s += ".0"
		}
		d.strBytes += len(s) // charged by the emit that uses it
	}
	*slot = floatStr{bits: bits, s: s}
	return s
}

// labelPair reads a LabelPair: {1 name, 2 value}.
func (d *mfDecoder) labelPair(f field) (name, value string, err error) {
	buf, i, e := d.buf, f.s, f.e
	// Fast path for the canonical encoding with short strings.
	if e-i >= 4 && buf[i] == 0x0a && buf[i+1] < 0x80 {
		ne := i + 2 + int(buf[i+1])
		if ne+2 <= e && buf[ne] == 0x12 && buf[ne+1] < 0x80 && ne+2+int(buf[ne+1]) == e {
			return str(buf, i+2, ne), str(buf, ne+2, e), nil
		}
	}
	for i < e {
		var g field
		n, err := d.next(&g, i, e, "LabelPair")
		if err != nil {
			return "", "", err
		}
		i = n
		if g.wt == wtBytes {
			switch g.num {
			case 1:
				name = str(buf, g.s, g.e)
			case 2:
				value = str(buf, g.s, g.e)
			}
		}
	}
	return name, value, nil
}
