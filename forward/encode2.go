package forward

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"

	"github.com/telegate/telegate/batch"
)

// The protobuf messages a Sender can send (Config.ProtobufMessage), named
// as Prometheus' remote_write protobuf_message names them.
const (
	MessageV1 = "prometheus.WriteRequest"
	MessageV2 = "io.prometheus.write.v2.Request"
)

// Protobuf tags of io.prometheus.write.v2.Request.
const (
	tag2Symbols    = 4<<3 | 2 // Request.symbols
	tag2Timeseries = 5<<3 | 2 // Request.timeseries
	tag2LabelsRefs = 1<<3 | 2 // TimeSeries.labels_refs and Exemplar.labels_refs, packed
	tag2Samples    = 2<<3 | 2 // TimeSeries.samples
	tag2Histograms = 3<<3 | 2 // TimeSeries.histograms
	tag2Exemplars  = 4<<3 | 2 // TimeSeries.exemplars
	tag2Metadata   = 5<<3 | 2 // TimeSeries.metadata
	tag2SampleVal  = 1<<3 | 1 // Sample.value
	tag2SampleTS   = 2<<3 | 0 // Sample.timestamp
	tag2ExValue    = 2<<3 | 1 // Exemplar.value
	tag2ExTS       = 3<<3 | 0 // Exemplar.timestamp
	tag2MDType     = 1<<3 | 0 // Metadata.type
	tag2MDHelp     = 3<<3 | 0 // Metadata.help_ref
	tag2MDUnit     = 4<<3 | 0 // Metadata.unit_ref
)

// metadataSuffixes are the suffixes a series' name may add to its metric
// family's name (classic histograms and summaries, OpenMetrics counters,
// gauge histograms).
var metadataSuffixes = [...]string{"_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum"}

// symbols2 is the symbols table of one 2.0 request under construction.
type symbols2 struct {
	refs  map[string]uint32
	list  []string
	bytes int // encoded size of the symbols fields

	// prev is the label set labelRefs resolved last and prevRefs its
	// references (name and value of each label): consecutive series share
	// most label names and many values, which a comparison with the label
	// at the same position finds at less cost than a map lookup.
	prev     []batch.Label
	prevRefs []uint32

	// byAddr remembers references by where a string's bytes are: two
	// strings of the same length at the same address are the same string
	// (a batch's strings are not modified while it is encoded), and the
	// strings of a batch decoded from a 2.0 request share the addresses
	// of its symbols. A slot is one comparison where a map lookup hashes
	// the string. nil until init.
	byAddr *[addrSlots]addrEntry
}

// addrSlots is the size of symbols2.byAddr (a power of two).
const addrSlots = 512

type addrEntry struct {
	p   *byte
	n   int
	ref uint32
}

func (t *symbols2) reset() {
	clear(t.refs)
	clear(t.list)
	t.list = append(t.list[:0], "") // the spec wants symbols[0] == ""
	t.refs[""] = 0
	t.bytes = fieldLen(0)
	t.forgetAddrs()
}

// forgetAddrs empties prev and byAddr (after symbols were forgotten, and
// so as not to keep a batch's memory alive).
func (t *symbols2) forgetAddrs() {
	t.prev = nil
	if t.byAddr != nil {
		clear(t.byAddr[:])
	}
}

func (t *symbols2) ref(s string) uint32 {
	var slot *addrEntry
	if t.byAddr != nil && s != "" {
		p := unsafe.StringData(s)
		slot = &t.byAddr[(uint64(uintptr(unsafe.Pointer(p)))*0x9e3779b97f4a7c15)>>(64-9)&(addrSlots-1)]
		if slot.p == p && slot.n == len(s) {
			return slot.ref
		}
	}
	r, ok := t.refs[s]
	if !ok {
		r = uint32(len(t.list))
		t.refs[s] = r
		t.list = append(t.list, s)
		t.bytes += fieldLen(len(s))
	}
	if slot != nil {
		*slot = addrEntry{p: unsafe.StringData(s), n: len(s), ref: r}
	}
	return r
}

// labelRefs appends the references of a series' label names and values
// to dst (references as ref gives them).
func (t *symbols2) labelRefs(dst []byte, ls []batch.Label) []byte {
	prev := t.prev
	if cap(t.prevRefs) < 2*len(ls) {
		t.prevRefs = make([]uint32, 2*len(ls))
		prev = nil
	}
	refs := t.prevRefs[:2*len(ls)]
	for i := range ls {
		var n, v uint32
		if i < len(prev) && ls[i].Name == prev[i].Name {
			n = refs[2*i]
		} else {
			n = t.ref(ls[i].Name)
		}
		if i < len(prev) && ls[i].Value == prev[i].Value {
			v = refs[2*i+1]
		} else {
			v = t.ref(ls[i].Value)
		}
		refs[2*i], refs[2*i+1] = n, v
		dst = appendRef(dst, n)
		dst = appendRef(dst, v)
	}
	t.prev = ls
	return dst
}

// appendRef appends a symbol reference as a varint.
func appendRef(dst []byte, r uint32) []byte {
	if r < 0x80 {
		return append(dst, byte(r))
	}
	return binary.AppendUvarint(dst, uint64(r))
}

// truncate forgets the symbols added after the first n.
func (t *symbols2) truncate(n int) {
	for _, s := range t.list[n:] {
		delete(t.refs, s)
		t.bytes -= fieldLen(len(s))
	}
	clear(t.list[n:])
	t.list = t.list[:n]
	t.forgetAddrs()
}

// encoder2 is the state of a 2.0 encode: the symbols, the encoded series
// and the families' metadata by name.
type encoder2 struct {
	sym    symbols2
	series []byte
	fam    map[string]int
	md     []batch.Metadata

	// lastName is the series name metadataFor looked up last and lastMD
	// what it found (consecutive series mostly share a name).
	lastName string
	lastMD   *batch.Metadata
	looked   bool
}

func (e *encoder2) init(md []batch.Metadata) {
	if e.sym.refs == nil {
		e.sym.refs = map[string]uint32{}
		e.sym.byAddr = new([addrSlots]addrEntry)
		e.fam = map[string]int{}
	}
	e.sym.reset()
	e.series = e.series[:0]
	clear(e.fam)
	e.md = md
	e.lastName, e.lastMD, e.looked = "", nil, false
	for i := range md {
		e.fam[md[i].Family] = i
	}
}

// done drops the references to the batch's strings.
func (e *encoder2) done() {
	clear(e.sym.refs)
	clear(e.sym.list)
	e.sym.forgetAddrs()
	clear(e.fam)
	e.md = nil
	e.lastName, e.lastMD, e.looked = "", nil, false
}

// metadataFor returns the metadata of the family s belongs to: its name,
// or its name without one of metadataSuffixes.
func (e *encoder2) metadataFor(s *batch.Series) *batch.Metadata {
	if len(e.fam) == 0 {
		return nil
	}
	name := s.Name()
	if e.looked && name == e.lastName {
		return e.lastMD
	}
	m := e.lookupMetadata(name)
	e.lastName, e.lastMD, e.looked = name, m, true
	return m
}

func (e *encoder2) lookupMetadata(name string) *batch.Metadata {
	if i, ok := e.fam[name]; ok {
		return &e.md[i]
	}
	for _, suf := range metadataSuffixes {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if i, ok := e.fam[base]; ok {
				return &e.md[i]
			}
		}
	}
	return nil
}

// refBound bounds the size of one symbol reference: 2.0 requests this
// encoder makes stay far below 2^28 symbols.
const refBound = 4

// labelsBound2 bounds what ls costs a 2.0 request: its strings in the
// symbols table (as if new) and its packed labels_refs field.
func labelsBound2(ls []batch.Label) int {
	n := 1 + 5 // labels_refs tag and length
	for i := range ls {
		n += fieldLen(len(ls[i].Name)) + fieldLen(len(ls[i].Value)) + 2*refBound
	}
	return n
}

// baseBound bounds the size of a 2.0 request holding a part of s without
// its items, less the timeseries field's tag and length: the empty
// symbol, the labels, the metadata.
func (e *encoder2) baseBound(s *batch.Series) int {
	n := fieldLen(0) + labelsBound2(s.Labels) + 2
	if m := e.metadataFor(s); m != nil {
		n += 1 + uvarintLen(uint64(m.Type)) + fieldLen(len(m.Help)) + 1 + refBound + fieldLen(len(m.Unit)) + 1 + refBound
	}
	return n
}

// itemBound2 bounds the size of the k-th item of s (splitLarge's order)
// in a 2.0 request.
func itemBound2(s *batch.Series, k int) int {
	if k < len(s.Samples)+len(s.Histograms) {
		return itemLen(s, k) // the same in both versions
	}
	ex := &s.Exemplars[k-len(s.Samples)-len(s.Histograms)]
	return fieldLen(exemplarLen(ex) - labelsLen(ex.Labels) + labelsBound2(ex.Labels))
}

// appendLabelRefs appends a packed labels_refs field for ls, a series'
// labels or (exemplar) an exemplar's.
func (e *encoder2) appendLabelRefs(dst []byte, ls []batch.Label, exemplar bool) []byte {
	if len(ls) == 0 {
		return dst
	}
	dst = append(dst, tag2LabelsRefs, 0)
	start := len(dst)
	if exemplar { // not a series' labels: leave sym.prev to the next series
		for i := range ls {
			dst = appendRef(dst, e.sym.ref(ls[i].Name))
			dst = appendRef(dst, e.sym.ref(ls[i].Value))
		}
	} else {
		dst = e.sym.labelRefs(dst, ls)
	}
	return endLen(dst, start, 1)
}

// endLen writes the length of the field body that starts at start, after a
// placeholder of reserved bytes, moving the body if its length needs
// another number of bytes.
func endLen(dst []byte, start, reserved int) []byte {
	n := len(dst) - start
	k := uvarintLen(uint64(n))
	if k != reserved {
		if k > reserved {
			dst = slices.Grow(dst, k-reserved)[:len(dst)+k-reserved]
		}
		copy(dst[start-reserved+k:], dst[start:start+n])
		dst = dst[:start-reserved+k+n]
	}
	p := start - reserved
	for ; n >= 0x80; n >>= 7 {
		dst[p] = byte(n) | 0x80
		p++
	}
	dst[p] = byte(n)
	return dst
}

// appendSeries2 appends one Request.timeseries field for s.
func (e *encoder2) appendSeries2(dst []byte, s *batch.Series) []byte {
	dst = append(dst, tag2Timeseries, 0, 0)
	start := len(dst)
	dst = e.appendLabelRefs(dst, s.Labels, false)
	for j := range s.Samples {
		smp := &s.Samples[j]
		dst = append(dst, tag2Samples, byte(sampleLen(smp)))
		if smp.Value != 0 {
			dst = append(dst, tag2SampleVal)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(smp.Value))
		}
		if smp.Timestamp != 0 {
			dst = append(dst, tag2SampleTS)
			dst = binary.AppendUvarint(dst, uint64(smp.Timestamp))
		}
	}
	for j := range s.Histograms {
		raw := s.Histograms[j].Raw
		dst = appendLen(dst, tag2Histograms, len(raw))
		dst = append(dst, raw...)
	}
	for j := range s.Exemplars {
		ex := &s.Exemplars[j]
		dst = append(dst, tag2Exemplars, 0, 0)
		exStart := len(dst)
		dst = e.appendLabelRefs(dst, ex.Labels, true)
		if ex.Value != 0 {
			dst = append(dst, tag2ExValue)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(ex.Value))
		}
		if ex.Timestamp != 0 {
			dst = append(dst, tag2ExTS)
			dst = binary.AppendUvarint(dst, uint64(ex.Timestamp))
		}
		dst = endLen(dst, exStart, 2)
	}
	// Metadata is not optional in gogo's encoding: always there, empty
	// when the family has none.
	dst = append(dst, tag2Metadata, 0)
	mdStart := len(dst)
	if m := e.metadataFor(s); m != nil {
		if m.Type != 0 {
			dst = append(dst, tag2MDType)
			dst = binary.AppendUvarint(dst, uint64(m.Type))
		}
		if m.Help != "" {
			dst = append(dst, tag2MDHelp)
			dst = binary.AppendUvarint(dst, uint64(e.sym.ref(m.Help)))
		}
		if m.Unit != "" {
			dst = append(dst, tag2MDUnit)
			dst = binary.AppendUvarint(dst, uint64(e.sym.ref(m.Unit)))
		}
	}
	dst = endLen(dst, mdStart, 1)
	return endLen(dst, start, 2)
}

// appendRequest appends the request: the symbols, then the series.
func (e *encoder2) appendRequest(dst []byte) []byte {
	for _, s := range e.sym.list {
		dst = appendString(dst, tag2Symbols, s)
	}
	return append(dst, e.series...)
}

// AppendRequestV2 appends the protobuf encoding of an
// io.prometheus.write.v2.Request holding series to dst: a symbols table
// ("" first, then every string in order of first use) and one TimeSeries
// per series with its labels_refs, samples, native histograms (Raw as it
// is: 2.0's Histogram is 1.0's plus start_timestamp), exemplars and the
// metadata of its metric family from md (found by the series' name, or
// that name without a _bucket, _count, _sum, _total, _created, _gcount or
// _gsum suffix; batch.MetricType numbers types as 2.0 does). Metadata of a
// family without a series is not sent: 2.0 carries metadata only on
// series. The output is byte-identical to writev2.Request.Marshal of the
// same request.
func AppendRequestV2(dst []byte, series []batch.Series, md []batch.Metadata) []byte {
	var e encoder2
	e.init(md)
	for i := range series {
		e.series = e.appendSeries2(e.series, &series[i])
	}
	return e.appendRequest(dst)
}

// EncodeSplitV2 is EncodeSplitMetadata for remote write 2.0: consecutive
// io.prometheus.write.v2.Requests (each with its own symbols table, see
// AppendRequestV2) of at most maxBytes uncompressed, split by the same
// rules, snappy-compressed and passed to send in order. Each series
// carries its family's metadata, so there is nothing to put first. The
// bodies alias b and are valid only during send.
func (b *Buffers) EncodeSplitV2(series []batch.Series, md []batch.Metadata, maxBytes int, send func(body []byte) error) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	e := &b.v2
	e.init(md)
	defer e.done()
	flush := func() error {
		if len(e.series) == 0 {
			return nil
		}
		b.proto = e.appendRequest(b.proto[:0])
		body, err := b.compress(b.proto)
		if err != nil {
			return err
		}
		e.sym.reset()
		e.series = e.series[:0]
		return send(body)
	}
	for i := range series {
		at, syms := len(e.series), len(e.sym.list)
		e.series = e.appendSeries2(e.series, &series[i])
		if e.sym.bytes+len(e.series) <= maxBytes {
			continue
		}
		// Over: send the request without this series, then retry it alone
		// (its symbol references change with the table).
		e.series = e.series[:at]
		e.sym.truncate(syms)
		if err := flush(); err != nil {
			return err
		}
		e.series = e.appendSeries2(e.series, &series[i])
		if e.sym.bytes+len(e.series) <= maxBytes {
			continue
		}
		e.series = e.series[:0]
		e.sym.reset()
		for _, part := range splitBy(nil, series[i], maxBytes, e.baseBound(&series[i]), itemBound2) {
			e.series = e.appendSeries2(e.series, &part[0])
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// EncodeSplitMessage encodes with EncodeSplitMetadata or EncodeSplitV2 as
// msg (MessageV1, MessageV2; "" is MessageV1) says.
func (b *Buffers) EncodeSplitMessage(msg string, series []batch.Series, md []batch.Metadata, maxBytes int, send func(body []byte) error) error {
	if msg == MessageV2 {
		return b.EncodeSplitV2(series, md, maxBytes, send)
	}
	return b.EncodeSplitMetadata(series, md, maxBytes, send)
}

// countBufPool holds the buffers countV2 decompresses into.
var countBufPool = sync.Pool{New: func() any { return new([]byte) }}

var errBadProto = errors.New("forward: malformed protobuf")

// countV2 counts the samples, histograms and exemplars of a snappy
// io.prometheus.write.v2.Request body without decoding its messages.
func countV2(body []byte) (writeStats, error) {
	var w writeStats
	n, err := s2.DecodedLen(body)
	if err != nil {
		return w, err
	}
	bp := countBufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBufferBytes {
			countBufPool.Put(bp)
		}
	}()
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	raw, err := s2.Decode((*bp)[:cap(*bp)], body)
	if err != nil {
		return w, err
	}
	err = walkFields(raw, func(num int, v []byte) error {
		if num != 5 || v == nil { // Request.timeseries
			return nil
		}
		return walkFields(v, func(num int, v []byte) error {
			switch {
			case v == nil:
			case num == 2:
				w.samples++
			case num == 3:
				w.histograms++
			case num == 4:
				w.exemplars++
			}
			return nil
		})
	})
	return w, err
}

// walkFields calls f with the number of each field of the message in buf
// and, for a length-delimited one, its contents (nil for the other wire
// types).
func walkFields(buf []byte, f func(num int, v []byte) error) error {
	for len(buf) > 0 {
		tag, k := binary.Uvarint(buf)
		if k <= 0 || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
			return errBadProto
		}
		buf = buf[k:]
		var v []byte
		switch tag & 7 {
		case 0:
			if _, k = binary.Uvarint(buf); k <= 0 {
				return errBadProto
			}
			buf = buf[k:]
		case 1, 5:
			size := 8
			if tag&7 == 5 {
				size = 4
			}
			if len(buf) < size {
				return errBadProto
			}
			buf = buf[size:]
		case 2:
			l, k := binary.Uvarint(buf)
			if k <= 0 || l > uint64(len(buf)-k) {
				return errBadProto
			}
			v = buf[k : k+int(l) : k+int(l)]
			if v == nil {
				v = []byte{}
			}
			buf = buf[k+int(l):]
		default:
			return errBadProto
		}
		if err := f(int(tag>>3), v); err != nil {
			return err
		}
	}
	return nil
}
