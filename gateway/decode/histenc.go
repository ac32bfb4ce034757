package decode

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Native histograms of telemeter uploads.
//
// A Histogram of an io.prometheus.client.Metric is native when Prometheus'
// protobuf scrape parser takes it as one: it has a positive or negative
// span (a no-op span, offset 0 and length 0, marks a native histogram
// without observations), a zero_threshold > 0 or a zero_count > 0.
// Otherwise its schema, spans and buckets are ignored and it is a classic
// histogram only.
//
// A native histogram is a float histogram when sample_count_float > 0 or
// zero_count_float > 0 (Prometheus' rule; then the *_count fields are its
// buckets and the *_delta ones are ignored), and also when it has float
// counts but no deltas at all (which Prometheus refuses as inconsistent; a
// federated float histogram whose observations are all zero looks so).
// Otherwise it is an integer histogram: sample_count, zero_count and the
// *_delta buckets.
//
// The decoder re-encodes it as a remote write 1.0 prometheus.Histogram
// (what a Prometheus scraping it would send): count, sum, schema,
// zero_threshold, zero count, spans (without zero-length spans, adjacent
// spans joined, as Compact does), deltas or counts, reset_hint GAUGE for a
// gauge histogram, and the sample's timestamp. The rules of Prometheus'
// histogram Validate apply to the histogram as sent (its spans before they
// are joined; the schema -4 to 8, or -53 without custom bounds, which the
// exposition format cannot carry; reserved schemas are refused as by the
// remote write validator); the encoding then passes Validate too. An
// invalid native histogram makes the upload a 400.

// mfNativeHist gathers, over the merged Histogram fields of one metric (in
// wire order), what decides whether it is native and valid.
type mfNativeHist struct {
	schema         int32
	zeroThreshold  float64
	zeroCount      uint64
	zeroCountFloat float64
	exemplars      int           // in the exemplars list
	side           [2]mfHistSide // negative, positive
}

// mfHistSide is one side (negative or positive) of a native histogram.
type mfHistSide struct {
	spans   mfSpanJoin
	nSpans  int   // spans
	outSpan int   // spans once joined
	spanLen int64 // buckets the spans need
	total   int64 // sum of offset+length of the spans
	negOff  bool  // a span after the first has a negative offset
	anyNeg  bool  // a span has a negative offset
	bigOff  bool  // an offset of a joined span does not fit an int32

	deltas, deltaBytes int
	last               int64  // bucket count the deltas reached
	deltaSum           uint64 // sum of the bucket counts (wrapping, as Validate)
	deltaNeg           bool   // a bucket count went negative
	counts             int
	countNeg           bool // a float count is negative
}

// mfSpanJoin drops empty spans (their offset moves to the next span) and
// joins a span with offset 0 to the previous one.
type mfSpanJoin struct {
	carry   int64
	pending bool
	off     int64
	length  uint64
}

// add takes the next input span; flushed reports a finished output span.
func (j *mfSpanJoin) add(off int32, length uint32) (flushed bool, fOff int64, fLen uint64) {
	if length == 0 {
		j.carry += int64(off)
		return false, 0, 0
	}
	o := j.carry + int64(off)
	j.carry = 0
	if j.pending && o == 0 && j.length+uint64(length) <= math.MaxUint32 {
		j.length += uint64(length)
		return false, 0, 0
	}
	flushed, fOff, fLen = j.pending, j.off, j.length
	j.pending, j.off, j.length = true, o, uint64(length)
	return flushed, fOff, fLen
}

// addSpan records a span of the side. The rules of Validate apply to the
// spans as they are; joining them (see mfSpanJoin) keeps them valid, but for
// an offset that no longer fits an int32.
func (s *mfHistSide) addSpan(off int32, length uint32) {
	if off < 0 {
		s.anyNeg = true
		if s.nSpans > 0 {
			s.negOff = true
		}
	}
	s.nSpans++
	s.spanLen += int64(length)
	s.total += int64(off) + int64(length)
	if ok, o, _ := s.spans.add(off, length); ok {
		s.checkJoined(o)
	}
}

func (s *mfHistSide) checkJoined(off int64) {
	s.outSpan++
	if off < math.MinInt32 || off > math.MaxInt32 {
		s.bigOff = true
	}
}

// finish checks the last joined span.
func (s *mfHistSide) finish() {
	if s.spans.pending {
		s.checkJoined(s.spans.off)
		s.spans.pending = false
	}
}

func (s *mfHistSide) addDelta(v uint64) {
	s.deltas++
	s.deltaBytes += encVarintSize(v)
	s.last += unzigzag64(v)
	if s.last < 0 {
		s.deltaNeg = true
	}
	s.deltaSum += uint64(s.last)
}

func (s *mfHistSide) addCount(c float64) {
	s.counts++
	if c < 0 {
		s.countNeg = true
	}
}

// native reports whether the histogram is a native one (see above).
func (n *mfNativeHist) native() bool {
	return n.side[0].nSpans > 0 || n.side[1].nSpans > 0 || n.zeroThreshold > 0 || n.zeroCount > 0
}

// float reports whether the native histogram is a float histogram.
func (n *mfNativeHist) float(countFloat float64) bool {
	return countFloat > 0 || n.zeroCountFloat > 0 ||
		n.side[0].deltas+n.side[1].deltas == 0 && n.side[0].counts+n.side[1].counts > 0
}

// Schemas Prometheus' Validate accepts.
const (
	mfMinSchema    = -4
	mfMaxSchema    = 8
	mfCustomSchema = -53
)

// validate applies Prometheus' histogram Validate to the histogram the
// encoder writes. count, countFloat and sum are the metric's.
func (n *mfNativeHist) validate(count uint64, countFloat, sum float64) error {
	n.side[0].finish()
	n.side[1].finish()
	fl := n.float(countFloat)
	buckets := func(s *mfHistSide) int {
		if fl {
			return s.counts
		}
		return s.deltas
	}
	negBuckets := func(s *mfHistSide) bool {
		if fl {
			return s.countNeg
		}
		return s.deltaNeg
	}
	zero := float64(n.zeroCount)
	if fl {
		zero = n.zeroCountFloat
	}
	names := [2]string{"negative", "positive"}
	for i := range n.side {
		s := &n.side[i]
		if s.bigOff {
			return fmt.Errorf("%s side: a span offset is out of range", names[i])
		}
		if s.spanLen != int64(buckets(s)) {
			return fmt.Errorf("%s side: spans need %d buckets, have %d", names[i], s.spanLen, buckets(s))
		}
	}
	switch {
	case n.schema == mfCustomSchema:
		// The exposition format has no custom bounds: only the +Inf
		// bucket (index 0) can be used.
		p := &n.side[1]
		switch {
		case p.anyNeg:
			return fmt.Errorf("custom buckets: negative span offset")
		case p.total > 1:
			return fmt.Errorf("custom buckets: no custom bounds to cover a span length of %d", p.total)
		case zero != 0:
			return fmt.Errorf("custom buckets: non-zero zero count")
		case n.zeroThreshold != 0:
			return fmt.Errorf("custom buckets: non-zero zero threshold")
		case n.side[0].nSpans > 0 || buckets(&n.side[0]) > 0:
			return fmt.Errorf("custom buckets: negative buckets")
		}
	case n.schema >= mfMinSchema && n.schema <= mfMaxSchema:
		for i := range n.side {
			if n.side[i].negOff {
				return fmt.Errorf("%s side: a span after the first has a negative offset", names[i])
			}
		}
		if negBuckets(&n.side[0]) {
			return fmt.Errorf("negative side: negative bucket count")
		}
		if fl && n.zeroCountFloat < 0 {
			return fmt.Errorf("negative zero bucket count %v", n.zeroCountFloat)
		}
	default:
		return fmt.Errorf("invalid schema %d (valid: %d to %d, or %d)", n.schema, mfMinSchema, mfMaxSchema, mfCustomSchema)
	}
	if negBuckets(&n.side[1]) {
		return fmt.Errorf("positive side: negative bucket count")
	}
	if fl {
		if countFloat < 0 {
			return fmt.Errorf("negative count %v", countFloat)
		}
		return nil
	}
	inBuckets := n.side[0].deltaSum + n.side[1].deltaSum + n.zeroCount
	if math.IsNaN(sum) {
		if inBuckets > count {
			return fmt.Errorf("%d observations in buckets, but the count is %d", inBuckets, count)
		}
	} else if inBuckets != count {
		return fmt.Errorf("%d observations in buckets, but the count is %d", inBuckets, count)
	}
	return nil
}

// Arena chunks the encodings are written into: they are referenced only by
// the batch's histograms, so they live as long as it does, and are charged
// to the budget when allocated.
const (
	mfMinArenaChunk = 4 << 10
	mfMaxArenaChunk = 256 << 10
)

// rawBuf returns a zero-length slice with at least n bytes of capacity at
// the end of the arena, allocating (and charging) a new chunk if needed.
func (d *mfDecoder) rawBuf(n int) ([]byte, error) {
	if cap(d.arena)-len(d.arena) < n {
		size := max(n, min(mfMaxArenaChunk, 2*cap(d.arena)), mfMinArenaChunk)
		if !d.bud.take(size) {
			return nil, d.bud.errOver("upload")
		}
		d.arena = make([]byte, 0, size)
	}
	return d.arena[len(d.arena):len(d.arena)], nil
}

// encodeNative writes the native histogram of the metric at buf[s:e],
// described by m (validated), as a remote write 1.0 prometheus.Histogram
// into the arena and returns it, its capacity clipped.
func (d *mfDecoder) encodeNative(m *metricVals, s, e int, ts int64, gauge bool) ([]byte, error) {
	bound := m.nh.maxSize()
	dst, err := d.rawBuf(bound)
	if err != nil {
		return nil, err
	}
	raw := d.appendNative(dst, m, s, e, ts, gauge)
	if len(raw) > bound {
		// Not written in the arena (cannot happen); charge the copy
		// append made.
		if !d.bud.take(cap(raw)) {
			return nil, d.bud.errOver("upload")
		}
		return raw[:len(raw):len(raw)], nil
	}
	d.arena = d.arena[:len(d.arena)+len(raw)]
	return raw[:len(raw):len(raw)], nil
}

// maxSize bounds the size of the encoding of the (validated) histogram:
// 59 bytes of scalar fields, at most 14 per (joined) span, 11 per packed
// field header, and the deltas or counts.
func (n *mfNativeHist) maxSize() int {
	size := 59
	for i := range n.side {
		s := &n.side[i]
		size += 14*s.outSpan + 11 + max(s.deltaBytes, 8*s.counts)
	}
	return size
}

// appendNative appends the encoding (at most maxSize bytes).
func (d *mfDecoder) appendNative(dst []byte, m *metricVals, s, e int, ts int64, gauge bool) []byte {
	n := &m.nh
	fl := n.float(m.countFloat)
	if fl {
		dst = encFixed64(dst, 2, math.Float64bits(m.countFloat))
	} else {
		dst = encVarintField(dst, 1, m.count)
	}
	if m.sum != 0 || math.Signbit(m.sum) {
		dst = encFixed64(dst, 3, math.Float64bits(m.sum))
	}
	if n.schema != 0 {
		dst = encVarintField(dst, 4, uint64(uint32(n.schema<<1)^uint32(n.schema>>31)))
	}
	if math.Float64bits(n.zeroThreshold) != 0 {
		dst = encFixed64(dst, 5, math.Float64bits(n.zeroThreshold))
	}
	if fl {
		dst = encFixed64(dst, 7, math.Float64bits(n.zeroCountFloat))
	} else {
		dst = encVarintField(dst, 6, n.zeroCount)
	}
	// Negative side: spans 8, deltas 9, counts 10; positive: 11, 12, 13.
	for i, in := range [2]struct{ span, delta, count int }{{9, 10, 11}, {12, 13, 14}} {
		out := 8 + 3*i
		dst = d.appendSpans(dst, s, e, in.span, out)
		if fl {
			if c := n.side[i].counts; c > 0 {
				dst = encTag(dst, out+2, wtBytes)
				dst = binary.AppendUvarint(dst, uint64(8*c))
				dst = d.appendCounts(dst, s, e, in.count)
			}
		} else if c := n.side[i].deltaBytes; n.side[i].deltas > 0 {
			dst = encTag(dst, out+1, wtBytes)
			dst = binary.AppendUvarint(dst, uint64(c))
			dst = d.appendDeltas(dst, s, e, in.delta)
		}
	}
	if gauge {
		dst = encVarintField(dst, 14, 3) // ResetHint GAUGE
	}
	if ts != 0 {
		dst = encVarintField(dst, 15, uint64(ts))
	}
	return dst
}

// mfHistFields walks the fields of every Histogram of the (validated) metric
// at buf[s:e], in wire order, the order merged repeated fields have.
type mfHistFields struct {
	d      *mfDecoder
	i, e   int // in the metric
	hi, he int // in the current Histogram
	inHist bool
}

func (it *mfHistFields) next(f *field) bool {
	for {
		if it.inHist && it.hi < it.he {
			n, err := it.d.next(f, it.hi, it.he, "Histogram")
			if err != nil {
				return false
			}
			it.hi = n
			return true
		}
		it.inHist = false
		if it.i >= it.e {
			return false
		}
		var g field
		n, err := it.d.next(&g, it.i, it.e, "Metric")
		if err != nil {
			return false
		}
		it.i = n
		if g.num == 7 && g.wt == wtBytes {
			it.hi, it.he, it.inHist = g.s, g.e, true
		}
	}
}

// appendSpans writes the spans of field in (of every Histogram) as
// BucketSpans of field out, empty ones dropped and adjacent ones joined.
func (d *mfDecoder) appendSpans(dst []byte, s, e, in, out int) []byte {
	var j mfSpanJoin
	it := mfHistFields{d: d, i: s, e: e}
	var f field
	for it.next(&f) {
		if f.num != in || f.wt != wtBytes {
			continue
		}
		off, length, _ := d.span(f)
		if ok, o, l := j.add(off, length); ok {
			dst = encSpan(dst, out, o, l)
		}
	}
	if j.pending {
		dst = encSpan(dst, out, j.off, j.length)
	}
	return dst
}

func encSpan(dst []byte, num int, off int64, length uint64) []byte {
	var body [12]byte
	b := body[:0]
	if off != 0 {
		o := int32(off)
		b = encVarintField(b, 1, uint64(uint32(o<<1)^uint32(o>>31)))
	}
	if length != 0 {
		b = encVarintField(b, 2, length)
	}
	dst = encTag(dst, num, wtBytes)
	dst = append(dst, byte(len(b)))
	return append(dst, b...)
}

// appendDeltas copies the sint64 deltas of field in, packed or not.
func (d *mfDecoder) appendDeltas(dst []byte, s, e, in int) []byte {
	it := mfHistFields{d: d, i: s, e: e}
	var f field
	for it.next(&f) {
		if f.num != in {
			continue
		}
		switch f.wt {
		case wtVarint:
			dst = binary.AppendUvarint(dst, f.v)
		case wtBytes:
			for i := f.s; i < f.e; {
				v, n := pvarint(d.buf, i, f.e)
				if n < 0 {
					break
				}
				dst = binary.AppendUvarint(dst, v)
				i = n
			}
		}
	}
	return dst
}

// appendCounts copies the double counts of field in, packed or not.
func (d *mfDecoder) appendCounts(dst []byte, s, e, in int) []byte {
	it := mfHistFields{d: d, i: s, e: e}
	var f field
	for it.next(&f) {
		if f.num != in {
			continue
		}
		switch f.wt {
		case wtFixed64:
			dst = binary.LittleEndian.AppendUint64(dst, f.v)
		case wtBytes:
			dst = append(dst, d.buf[f.s:f.e-(f.e-f.s)%8]...)
		}
	}
	return dst
}

// span reads a BucketSpan: {1 offset sint32, 2 length uint32}.
func (d *mfDecoder) span(sp field) (off int32, length uint32, err error) {
	for i := sp.s; i < sp.e; {
		var f field
		n, err := d.next(&f, i, sp.e, "BucketSpan")
		if err != nil {
			return 0, 0, err
		}
		i = n
		if f.wt != wtVarint {
			continue
		}
		switch f.num {
		case 1:
			off = int32(unzigzag64(f.v & math.MaxUint32))
		case 2:
			length = uint32(f.v)
		}
	}
	return off, length, nil
}

// packedDeltas validates a packed sint64 payload and records its elements.
func (d *mfDecoder) packedDeltas(f field, s *mfHistSide) error {
	for i := f.s; i < f.e; {
		v, n := pvarint(d.buf, i, f.e)
		if n < 0 {
			return varintErr(n, i, "packed varint")
		}
		s.addDelta(v)
		i = n
	}
	return nil
}

// packedCounts validates a packed double payload and records its elements.
func (d *mfDecoder) packedCounts(f field, s *mfHistSide) error {
	if (f.e-f.s)%8 != 0 {
		return BadRequest("protobuf: packed doubles of field %d at offset %d are not a multiple of 8 bytes", f.num, f.s)
	}
	for i := f.s; i < f.e; i += 8 {
		s.addCount(math.Float64frombits(binary.LittleEndian.Uint64(d.buf[i:])))
	}
	return nil
}

func unzigzag64(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

func encVarintSize(v uint64) int { return 1 + (bits.Len64(v|1)-1)/7 }

func encTag(dst []byte, num, wt int) []byte {
	return binary.AppendUvarint(dst, uint64(num)<<3|uint64(wt))
}

func encVarintField(dst []byte, num int, v uint64) []byte {
	return binary.AppendUvarint(encTag(dst, num, wtVarint), v)
}

func encFixed64(dst []byte, num int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(encTag(dst, num, wtFixed64), v)
}
