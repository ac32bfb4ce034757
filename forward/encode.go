package forward

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/telegate/telegate/batch"
)

// DefaultMaxRequestBytes is the default cap on the uncompressed size of one
// encoded WriteRequest used by EncodeSplit. Thanos Receive and Prometheus
// accept far larger bodies, but small requests keep retries cheap.
const DefaultMaxRequestBytes = 4 << 20

// ErrTooLarge is returned by Buffers.Encode when the encoded request is too
// large for a snappy block (4 GiB). Request caps upstream make this
// unreachable in practice; it exists so bad input never panics.
var ErrTooLarge = errors.New("forward: write request too large for snappy block encoding")

// Protobuf tags (field number << 3 | wire type) of prometheus.WriteRequest.
const (
	tagTimeseries = 1<<3 | 2 // WriteRequest.timeseries, length-delimited
	tagMetadata   = 3<<3 | 2 // WriteRequest.metadata, length-delimited
	tagLabels     = 1<<3 | 2 // TimeSeries.labels, length-delimited
	tagSamples    = 2<<3 | 2 // TimeSeries.samples, length-delimited
	tagExemplars  = 3<<3 | 2 // TimeSeries.exemplars, length-delimited
	tagHistograms = 4<<3 | 2 // TimeSeries.histograms, length-delimited
	tagName       = 1<<3 | 2 // Label.name, length-delimited
	tagValue      = 2<<3 | 2 // Label.value, length-delimited
	tagSampleVal  = 1<<3 | 1 // Sample.value, fixed64
	tagSampleTS   = 2<<3 | 0 // Sample.timestamp, varint
	tagExLabels   = 1<<3 | 2 // Exemplar.labels, length-delimited
	tagExValue    = 2<<3 | 1 // Exemplar.value, fixed64
	tagExTS       = 3<<3 | 0 // Exemplar.timestamp, varint
	tagMDType     = 1<<3 | 0 // MetricMetadata.type, varint (enum)
	tagMDFamily   = 2<<3 | 2 // MetricMetadata.metric_family_name
	tagMDHelp     = 4<<3 | 2 // MetricMetadata.help
	tagMDUnit     = 5<<3 | 2 // MetricMetadata.unit
)

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// fieldLen is the encoded size of a length-delimited field with a one-byte
// tag and an n-byte payload.
func fieldLen(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// The size functions and the encoder follow proto3 semantics exactly as
// gogo/protobuf generates them for prompb: empty strings, a zero value
// (including -0, which therefore decodes as +0) and a zero timestamp are
// omitted. That keeps the output byte-identical to prompb's Marshal.

func labelLen(l *batch.Label) int {
	n := 0
	if len(l.Name) > 0 {
		n += fieldLen(len(l.Name))
	}
	if len(l.Value) > 0 {
		n += fieldLen(len(l.Value))
	}
	return n
}

func sampleLen(s *batch.Sample) int {
	n := 0
	if s.Value != 0 {
		n += 1 + 8
	}
	if s.Timestamp != 0 {
		n += 1 + uvarintLen(uint64(s.Timestamp))
	}
	return n
}

func labelsLen(ls []batch.Label) int {
	n := 0
	for i := range ls {
		n += fieldLen(labelLen(&ls[i]))
	}
	return n
}

// exemplarLen is the size of one Exemplar message body.
func exemplarLen(e *batch.Exemplar) int {
	n := labelsLen(e.Labels)
	if e.Value != 0 {
		n += 1 + 8
	}
	if e.Timestamp != 0 {
		n += 1 + uvarintLen(uint64(e.Timestamp))
	}
	return n
}

// metadataLen is the size of one MetricMetadata message body.
func metadataLen(m *batch.Metadata) int {
	n := 0
	if m.Type != 0 {
		n += 1 + uvarintLen(uint64(m.Type))
	}
	for _, v := range [...]string{m.Family, m.Help, m.Unit} {
		if len(v) > 0 {
			n += fieldLen(len(v))
		}
	}
	return n
}

// itemLen is the encoded size, tag and length included, of the k-th point
// or exemplar of s, counting its samples, then its histograms, then its
// exemplars (the order large series are split in).
func itemLen(s *batch.Series, k int) int {
	if k < len(s.Samples) {
		return fieldLen(sampleLen(&s.Samples[k]))
	}
	k -= len(s.Samples)
	if k < len(s.Histograms) {
		return fieldLen(len(s.Histograms[k].Raw))
	}
	return fieldLen(exemplarLen(&s.Exemplars[k-len(s.Histograms)]))
}

// AppendWriteRequest appends the protobuf encoding of a
// prometheus.WriteRequest holding series to dst and returns the extended
// slice. Labels, samples, exemplars and histograms are written in the order
// given (the remote write spec wants labels sorted by name; that is the
// pipeline's job). The output is byte-identical to
// prompb.WriteRequest.Marshal of the same request when every histogram's
// Raw is itself in gogo's canonical form (what prompb.Histogram.Marshal
// writes).
//
// A histogram's Raw is written as it is. One that came by remote write
// 2.0 may carry start_timestamp (field 17), which prometheus.Histogram
// does not have: remote write 1.0 receivers skip it as an unknown field
// (gogo-generated prompb keeps it aside in XXX_unrecognized and never
// reads it; Thanos' and Mimir's types drop it), so it is passed through
// rather than stripped, which would cost a walk over every histogram. The
// same holds for any other unknown field the decoder let through.
//
// AppendMetadata adds the request's metadata.
//
// With a dst of sufficient capacity (a pooled buffer after the first
// request) it does not allocate.
func AppendWriteRequest(dst []byte, series []batch.Series) []byte {
	for i := range series {
		dst = appendSeries(dst, &series[i])
	}
	return dst
}

// AppendMetadata appends md as WriteRequest.metadata fields to dst (after
// AppendWriteRequest's series, it completes a request byte-identical to
// prompb's Marshal). Type is written as the number it holds, which is
// remote write 1.0's MetricMetadata.MetricType numbering.
func AppendMetadata(dst []byte, md []batch.Metadata) []byte {
	for i := range md {
		m := &md[i]
		dst = appendLen(dst, tagMetadata, metadataLen(m))
		if m.Type != 0 {
			dst = append(dst, tagMDType)
			dst = binary.AppendUvarint(dst, uint64(m.Type))
		}
		if len(m.Family) > 0 {
			dst = appendString(dst, tagMDFamily, m.Family)
		}
		if len(m.Help) > 0 {
			dst = appendString(dst, tagMDHelp, m.Help)
		}
		if len(m.Unit) > 0 {
			dst = appendString(dst, tagMDUnit, m.Unit)
		}
	}
	return dst
}

// appendLen appends a field's tag and length.
func appendLen(dst []byte, tag byte, n int) []byte {
	if n < 0x80 {
		return append(dst, tag, byte(n))
	}
	dst = append(dst, tag)
	return binary.AppendUvarint(dst, uint64(n))
}

// appendLabels appends ls as repeated Label fields with tag.
func appendLabels(dst []byte, tag byte, ls []batch.Label) []byte {
	for j := range ls {
		l := &ls[j]
		if nl, vl := len(l.Name), len(l.Value); nl > 0 && vl > 0 && nl+vl < 0x80-4 {
			// The usual label: both fields, every length one byte. Six
			// header bytes and two copies into room made once.
			n := len(dst)
			dst = slices.Grow(dst, nl+vl+6)[:n+nl+vl+6]
			d := dst[n:]
			d[0], d[1], d[2], d[3] = tag, byte(nl+vl+4), tagName, byte(nl)
			copy(d[4:], l.Name)
			d = d[4+nl:]
			d[0], d[1] = tagValue, byte(vl)
			copy(d[2:], l.Value)
			continue
		}
		dst = appendLen(dst, tag, labelLen(l))
		if len(l.Name) > 0 {
			dst = appendString(dst, tagName, l.Name)
		}
		if len(l.Value) > 0 {
			dst = appendString(dst, tagValue, l.Value)
		}
	}
	return dst
}

// appendSeries appends one WriteRequest.timeseries field. It writes the
// body once, after a two-byte length placeholder (a body of 128 B to
// 16 KiB, the usual case, needs exactly two), and moves the body only when
// its length needs another number of bytes: one pass over the labels
// instead of a sizing pass and a writing pass.
func appendSeries(dst []byte, s *batch.Series) []byte {
	dst = append(dst, tagTimeseries, 0, 0)
	start := len(dst)
	dst = appendLabels(dst, tagLabels, s.Labels)
	for j := range s.Samples {
		smp := &s.Samples[j]
		dst = append(dst, tagSamples, byte(sampleLen(smp)))
		if smp.Value != 0 {
			dst = append(dst, tagSampleVal)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(smp.Value))
		}
		if smp.Timestamp != 0 {
			dst = append(dst, tagSampleTS)
			dst = binary.AppendUvarint(dst, uint64(smp.Timestamp))
		}
	}
	for j := range s.Exemplars {
		e := &s.Exemplars[j]
		dst = appendLen(dst, tagExemplars, exemplarLen(e))
		dst = appendLabels(dst, tagExLabels, e.Labels)
		if e.Value != 0 {
			dst = append(dst, tagExValue)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Value))
		}
		if e.Timestamp != 0 {
			dst = append(dst, tagExTS)
			dst = binary.AppendUvarint(dst, uint64(e.Timestamp))
		}
	}
	for j := range s.Histograms {
		raw := s.Histograms[j].Raw
		dst = appendLen(dst, tagHistograms, len(raw))
		dst = append(dst, raw...)
	}
	n := len(dst) - start
	if k := uvarintLen(uint64(n)); k != 2 {
		// Make room for (or give back) the length's bytes: shift the body.
		if k > 2 {
			dst = slices.Grow(dst, k-2)[:len(dst)+k-2]
		}
		copy(dst[start-2+k:], dst[start:start+n])
		dst = dst[:start-2+k+n]
		binary.PutUvarint(dst[start-2:], uint64(n))
		return dst
	}
	dst[start-2], dst[start-1] = byte(n)|0x80, byte(n>>7)
	return dst
}

// appendString appends a length-delimited string field.
func appendString(dst []byte, tag byte, v string) []byte {
	return append(appendLen(dst, tag, len(v)), v...)
}

// Buffers holds the scratch buffers one encode needs: the protobuf
// encoding, its snappy compression and the encoded metadata. A Buffers is
// not safe for concurrent use; take one from GetBuffers per request and
// return it with PutBuffers once the body has been sent (Sender.Send never
// retains the body).
type Buffers struct {
	proto  []byte
	snappy []byte
	meta   []byte
	v2     encoder2
}

// Encode encodes series as a prometheus.WriteRequest and compresses it with
// snappy's block format, as remote write 1.0 requires. The compressor is
// klauspost/compress/s2 in its snappy-compatible mode: standard snappy
// output, faster than golang/snappy and about a fifth smaller on
// telemetry. The returned body aliases b and is valid until the next
// Encode or PutBuffers. After the
// buffers have grown to the working size, Encode does not allocate.
func (b *Buffers) Encode(series []batch.Series) ([]byte, error) {
	b.proto = AppendWriteRequest(b.proto[:0], series)
	return b.compress(b.proto)
}

// EncodeSplit is EncodeSplitMetadata without metadata.
func (b *Buffers) EncodeSplit(series []batch.Series, maxBytes int, send func(body []byte) error) error {
	return b.EncodeSplitMetadata(series, nil, maxBytes, send)
}

// EncodeSplitMetadata encodes series and the metadata md as consecutive
// prometheus.WriteRequests of at most maxBytes uncompressed (maxBytes <= 0
// means DefaultMaxRequestBytes), keeping the order of series, of each
// series' samples, histograms and exemplars, and of md, and calls send with
// each compressed body in order, stopping at the first error. The split
// happens while encoding (a WriteRequest is its fields one after the other,
// so a request is a range of the encoding): no sizing pass. Every body is
// byte-identical to prompb's Marshal of the request it decodes to (series
// first, then metadata), given canonical histogram encodings (see
// AppendWriteRequest).
//
// The metadata travels in the first body, ahead of the series' samples,
// taking its share of maxBytes. Metadata too large for one body is cut into
// metadata-only bodies of at most maxBytes, sent first, the last piece
// riding with the first series; a single MetricMetadata larger than
// maxBytes is sent alone.
//
// A series too large on its own is split into several single-series
// requests sharing its labels (remote write allows a series to arrive in
// several requests): its samples, then its native histograms, then its
// exemplars, as many consecutive ones per request as fit. A request can
// exceed maxBytes only when one series' labels plus a single sample,
// histogram or exemplar already do; it is then sent alone and the
// downstream decides. Empty input sends nothing. The bodies alias b and
// are valid only during send.
func (b *Buffers) EncodeSplitMetadata(series []batch.Series, md []batch.Metadata, maxBytes int, send func(body []byte) error) error {
	return b.encodeSplit(series, md, maxBytes, true, send)
}

// EncodeSplitProto is EncodeSplitMetadata without the compression: send
// gets each uncompressed prometheus.WriteRequest (for a ProtoSender, which
// compresses what it sends, e.g. several of them coalesced into one). The
// requests alias b and are valid only during send.
func (b *Buffers) EncodeSplitProto(series []batch.Series, md []batch.Metadata, maxBytes int, send func(proto []byte) error) error {
	return b.encodeSplit(series, md, maxBytes, false, send)
}

// encodeSplit is EncodeSplitMetadata, compressing each request or not.
func (b *Buffers) encodeSplit(series []batch.Series, md []batch.Metadata, maxBytes int, compress bool, send func(body []byte) error) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	b.proto = b.proto[:0]
	// Every metadata piece but the last goes alone, first.
	for len(md) > 0 {
		n := metadataFit(md, maxBytes)
		if n == len(md) {
			break
		}
		b.proto = AppendMetadata(b.proto[:0], md[:n])
		body, err := b.maybeCompress(b.proto, compress)
		if err != nil {
			return err
		}
		if err := send(body); err != nil {
			return err
		}
		md = md[n:]
	}
	b.proto = b.proto[:0]
	// The last piece waits in b.meta for the first body of series.
	b.meta = AppendMetadata(b.meta[:0], md)
	reserve := len(b.meta)

	// flush sends b.proto[:end] (plus the waiting metadata) and keeps what
	// follows end for the next request.
	flush := func(end int) error {
		if reserve > 0 {
			tail := len(b.proto) - end
			b.proto = slices.Grow(b.proto, reserve)[:len(b.proto)+reserve]
			copy(b.proto[end+reserve:], b.proto[end:end+tail])
			copy(b.proto[end:], b.meta)
			end += reserve
			reserve = 0
		}
		if end == 0 {
			return nil
		}
		body, err := b.maybeCompress(b.proto[:end], compress)
		if err != nil {
			return err
		}
		if err := send(body); err != nil {
			return err
		}
		b.proto = b.proto[:copy(b.proto, b.proto[end:])]
		return nil
	}
	for i := range series {
		at := len(b.proto)
		b.proto = appendSeries(b.proto, &series[i])
		if len(b.proto)+reserve <= maxBytes {
			continue
		}
		if err := flush(at); err != nil { // the request so far, without this series
			return err
		}
		if len(b.proto) <= maxBytes {
			continue
		}
		// This series alone is over the cap: split it.
		b.proto = b.proto[:0]
		for _, part := range splitLarge(nil, series[i], maxBytes) {
			b.proto = AppendWriteRequest(b.proto[:0], part)
			if err := flush(len(b.proto)); err != nil {
				return err
			}
		}
	}
	return flush(len(b.proto))
}

// metadataFit returns how many of md, at least one, fit in maxBytes.
func metadataFit(md []batch.Metadata, maxBytes int) int {
	size := 0
	for i := range md {
		size += fieldLen(metadataLen(&md[i]))
		if size > maxBytes && i > 0 {
			return i
		}
	}
	return len(md)
}

// maybeCompress is compress when compress is true, else src itself.
func (b *Buffers) maybeCompress(src []byte, compress bool) ([]byte, error) {
	if !compress {
		return src, nil
	}
	return b.compress(src)
}

// Compress snappy-encodes an uncompressed request (EncodeSplitProto's)
// as Encode does. The result aliases b like Encode's.
func (b *Buffers) Compress(proto []byte) ([]byte, error) { return b.compress(proto) }

// compress snappy-encodes src into b.snappy.
func (b *Buffers) compress(src []byte) ([]byte, error) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 {
		return nil, ErrTooLarge
	}
	if cap(b.snappy) < n {
		b.snappy = make([]byte, n)
	}
	return s2.EncodeSnappy(b.snappy[:cap(b.snappy)], src), nil
}

// Uncompressed returns the protobuf encoding produced by the last Encode.
// It aliases b like Encode's result.
func (b *Buffers) Uncompressed() []byte { return b.proto }

// maxPooledBufferBytes keeps one huge request from pinning its buffers in
// the pool forever.
const maxPooledBufferBytes = 16 << 20

// maxPooledSymbols keeps one huge 2.0 symbols table (and its map) out of the
// pool.
const maxPooledSymbols = 1 << 20

// poolable reports whether b is worth keeping in the pool.
func poolable(b *Buffers) bool {
	return b != nil && cap(b.proto) <= maxPooledBufferBytes && cap(b.snappy) <= maxPooledBufferBytes && cap(b.meta) <= maxPooledBufferBytes && cap(b.v2.series) <= maxPooledBufferBytes && cap(b.v2.sym.list) <= maxPooledSymbols
}

var bufPool = sync.Pool{New: func() any { return new(Buffers) }}

// GetBuffers returns a Buffers from a process-wide pool.
func GetBuffers() *Buffers { return bufPool.Get().(*Buffers) }

// PutBuffers returns b to the pool. Neither b nor any body it returned may be
// used afterwards.
func PutBuffers(b *Buffers) {
	if !poolable(b) {
		return
	}
	b.proto, b.snappy, b.meta, b.v2.series = b.proto[:0], b.snappy[:0], b.meta[:0], b.v2.series[:0]
	bufPool.Put(b)
}

// splitLarge appends groups of one series each, carrying s's labels and as
// many consecutive points and exemplars as fit in maxBytes (at least one),
// taken in the order samples, histograms, exemplars: exemplars land in the
// last groups, after the points of their series, for a receiver that needs
// a series to exist before it takes its exemplars.
func splitLarge(out [][]batch.Series, s batch.Series, maxBytes int) [][]batch.Series {
	return splitBy(out, s, maxBytes, labelsLen(s.Labels), itemLen)
}

// splitBy is splitLarge with the sizes given: base for a part's series
// without its items (labels), size(&s, k) for its k-th item.
func splitBy(out [][]batch.Series, s batch.Series, maxBytes, base int, size func(*batch.Series, int) int) [][]batch.Series {
	s.Labels = s.Labels[:len(s.Labels):len(s.Labels)]
	items := len(s.Samples) + len(s.Histograms) + len(s.Exemplars)
	if items == 0 {
		return append(out, []batch.Series{s})
	}
	start, body := 0, base
	for k := range items {
		n := size(&s, k)
		if k > start && fieldLen(body+n) > maxBytes {
			out = append(out, []batch.Series{seriesPart(&s, start, k)})
			start, body = k, base
		}
		body += n
	}
	return append(out, []batch.Series{seriesPart(&s, start, items)})
}

// seriesPart returns s with the items [from, to) of splitLarge's order,
// its slices capacity-clipped (nil where it has none of a kind).
func seriesPart(s *batch.Series, from, to int) batch.Series {
	p := batch.Series{Labels: s.Labels}
	p.Samples = subrange(s.Samples, from, to)
	from, to = from-len(s.Samples), to-len(s.Samples)
	p.Histograms = subrange(s.Histograms, from, to)
	from, to = from-len(s.Histograms), to-len(s.Histograms)
	p.Exemplars = subrange(s.Exemplars, from, to)
	return p
}

// subrange returns xs[from:to] with both ends clamped to xs, capacity
// clipped, or nil when empty.
func subrange[T any](xs []T, from, to int) []T {
	from, to = max(from, 0), min(to, len(xs))
	if from >= to {
		return nil
	}
	return xs[from:to:to]
}
