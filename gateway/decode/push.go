package decode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/telegate/telegate/batch"
)

// PushFormat is the exposition format of a push body (POST
// /metrics/v1/push and the Pushgateway path form), negotiated by its
// Content-Type.
type PushFormat int

const (
	// PushText is the Prometheus text format 0.0.4
	// (text/plain; version=0.0.4).
	PushText PushFormat = 1 + iota
	// PushOpenMetrics is OpenMetrics 1.0 text
	// (application/openmetrics-text; version=1.0.0 or 0.0.1).
	PushOpenMetrics
	// PushProtobuf is length-delimited io.prometheus.client.MetricFamily
	// messages, the body of /upload (UploadContentType).
	PushProtobuf
)

// Media types of the push formats.
const (
	TextContentType        = "text/plain; version=0.0.4; charset=utf-8"
	OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"
)

// String names the format as its media type.
func (f PushFormat) String() string {
	switch f {
	case PushText:
		return "text/plain"
	case PushOpenMetrics:
		return "application/openmetrics-text"
	case PushProtobuf:
		return "application/vnd.google.protobuf"
	}
	return "unknown"
}

// CheckPushContentType negotiates the format of a push body:
//
//   - text/plain with no version or version=0.0.4 is the Prometheus text
//     format (a missing Content-Type too, as the Pushgateway reads it);
//   - application/openmetrics-text with no version, 0.0.1 or 1.0.0 is
//     OpenMetrics 1.0 (2.0 is not supported);
//   - application/vnd.google.protobuf with proto (if given)
//     io.prometheus.client.MetricFamily and encoding (if given) delimited
//     is the protobuf format, what client_golang's push helper sends by
//     default.
//
// A charset parameter other than utf-8 and anything else is a 415 *Error
// listing the accepted types (an escaping parameter is ignored: the
// parsers take UTF-8 names in either form).
func CheckPushContentType(contentType string) (PushFormat, error) {
	if contentType == "" {
		return PushText, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err == nil {
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return 0, Unsupported("unsupported charset %q in Content-Type %q, want utf-8", cs, contentType)
		}
		switch v := params["version"]; mt {
		case "text/plain":
			if v == "" || v == "0.0.4" {
				return PushText, nil
			}
		case "application/openmetrics-text":
			if v == "" || v == "0.0.1" || v == "1.0.0" {
				return PushOpenMetrics, nil
			}
		case "application/vnd.google.protobuf":
			if p := params["proto"]; p != "" && p != "io.prometheus.client.MetricFamily" {
				break
			}
			if e := params["encoding"]; e != "" && e != "delimited" {
				break
			}
			return PushProtobuf, nil
		}
	}
	return 0, Unsupported("unsupported Content-Type %q; accepted: %q, %q, %q", contentType, TextContentType, OpenMetricsContentType, UploadContentType)
}

// PushEncoding is the Content-Encoding of a push body.
type PushEncoding int

const (
	// PushIdentity is an uncompressed body ("" or identity).
	PushIdentity PushEncoding = iota
	// PushGzip is gzip.
	PushGzip
	// PushSnappy is snappy: the framing format (as on /upload), or the
	// block format (as in remote write), told apart by the framing
	// format's stream identifier.
	PushSnappy
)

// CheckPushEncoding returns the encoding a Content-Encoding header names,
// or a 415 *Error.
func CheckPushEncoding(contentEncoding string) (PushEncoding, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		return PushIdentity, nil
	case "gzip", "x-gzip":
		return PushGzip, nil
	case "snappy":
		return PushSnappy, nil
	}
	return 0, Unsupported("unsupported Content-Encoding %q for push, want identity, gzip or snappy", contentEncoding)
}

// snappyStreamID is the stream identifier chunk every body in the snappy
// framing format starts with.
const snappyStreamID = "\xff\x06\x00\x00sNaPpY"

// DecodePushBody decompresses src, a whole compressed push body, into
// dst's capacity: gzip, or snappy in the framing format (when src starts
// with its stream identifier) or the block format. The decoded size is
// capped at maxDecoded while decompressing (a 413 naming
// max_decoded_bytes; a snappy block's announced size is checked before
// anything is allocated) and reserve is called before dst grows, as in
// DecodeFramed. Corrupt input is a 400.
func DecodePushBody(dst, src []byte, enc PushEncoding, maxDecoded int, reserve Reserve) ([]byte, error) {
	switch enc {
	case PushGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return dst[:0], BadRequest("gzip: %v", err)
		}
		dst, err = readCapped(dst, zr, maxDecoded, reserve)
		if re, ok := err.(reserveError); ok {
			return dst[:0], re.err
		}
		if err != nil {
			if de := (*Error)(nil); errors.As(err, &de) {
				return dst[:0], de
			}
			return dst[:0], BadRequest("gzip: %v", err)
		}
		return dst, nil
	case PushSnappy:
		if bytes.HasPrefix(src, []byte(snappyStreamID)) {
			return DecodeFramed(dst, bytes.NewReader(src), maxDecoded, reserve)
		}
		n, err := DecodedLen(src)
		if err != nil {
			return dst[:0], err
		}
		if maxDecoded > 0 && n > maxDecoded {
			return dst[:0], TooLarge(CapDecodedBytes, maxDecoded, fmt.Sprintf("decoded body of %d bytes", n))
		}
		if reserve != nil && cap(dst) < n+1 {
			if err := reserve(n + 1); err != nil {
				return dst[:0], err
			}
		}
		if cap(dst) < n+1 {
			// One byte more for the text parsers' final newline.
			dst = make([]byte, 0, n+1)
		}
		return DecodeBlock(dst, src, maxDecoded)
	}
	return ReadAllCapped(dst, bytes.NewReader(src), maxDecoded, reserve)
}

// TextBudget is the MaxBatchBytes of a text or OpenMetrics push whose
// decoded body is decoded bytes long: 32 bytes per decoded byte plus
// 1 MiB, as for /upload. Text repeats a metric's labels on every line, so
// honest bodies amplify less than uploads (measured by
// TestHonestAmplificationText: 3.6 for an installer-style histogram of 60
// buckets, 2.8 for a Prometheus server's own /metrics); a bare
// "a 1" line (4 bytes for about 150) is the worst honest shape and is
// admitted in the constant's thousands.
func TextBudget(decoded int) int { return uploadPerByte*decoded + budgetConstant }

// maxErrorText bounds the parser's message quoted in a 400: it may quote
// a whole (huge) line.
const maxErrorText = 256

// UnmarshalText parses buf, a Prometheus text 0.0.4 (PushText) or
// OpenMetrics 1.0 (PushOpenMetrics) body, with Prometheus' own streaming
// parsers (model/textparse, as a scrape does) and pushes every sample
// into b: its labels as the parser gives them (sorted; le and quantile
// values normalized as a scrape normalizes them), one sample stamped with
// the line's timestamp, or nowMs when it has none, and for OpenMetrics its
// exemplar (stamped like the sample when it has no timestamp). Classic
// histograms and summaries are their _bucket, _sum, _count and quantile
// series, every one as sent; OpenMetrics _created series are ordinary
// series (a scrape without created-timestamp ingestion keeps them too), so
// the allowlist decides. TYPE, HELP and UNIT become b.Metadata, one entry
// per family.
//
// A body the parser refuses is a 400 naming the line ("line 3: expected
// label name, ..."); OpenMetrics requires the final "# EOF". Beyond the
// parser, a name that is not valid UTF-8, a _bucket series of a histogram
// family without an le label that is a number (NaN included), and a
// summary's quantile that is not a number are 400s.
//
// The Limits are enforced before the work of each series: more than
// MaxSeries samples is a 413 naming max_series_per_request, a series or
// exemplar with more than MaxLabelsPerSeries labels a 400, more than
// MaxBatchBytes (see TextBudget) of labels, label strings, samples,
// series, exemplars and metadata a 413. A NameFilter skims as in the
// other decoders.
//
// The parser appends a newline to buf: give buf one byte of spare
// capacity or it copies the body. Metadata strings alias buf; label
// strings are the parser's own. On error, b holds a partial request and
// should be Reset.
func UnmarshalText(buf []byte, b *batch.Batch, format PushFormat, nowMs int64, l Limits, f *NameFilter) (Stats, error) {
	if cap(buf) == len(buf) {
		buf = append(buf[:len(buf):len(buf)], '\n')[:len(buf)]
	}
	d := textDecoder{buf: buf, b: b, format: format, now: nowMs, filter: f,
		maxSeries: l.MaxSeries, maxLabels: l.MaxLabelsPerSeries, bud: newBudget(l, len(buf))}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.run()
	if err != nil {
		b.DiscardSeries()
	}
	if d.families != nil {
		clear(d.families)
		if len(d.families) <= maxPooledFamilies {
			familiesPool.Put(d.families)
		}
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

type textDecoder struct {
	buf       []byte
	b         *batch.Batch
	format    PushFormat
	now       int64
	filter    *NameFilter
	st        Stats
	bud       budget
	maxSeries int
	maxLabels int

	// end is the offset in buf just past the last entry the parser
	// returned: a parse error is on a later line.
	end int

	// The current family: its TYPE (as the parser typed it) and the
	// metadata entry being built from its TYPE, HELP and UNIT lines.
	family   string
	mtype    model.MetricType
	md       batch.Metadata
	pending  bool
	families map[string]struct{}
}

func (d *textDecoder) run() error {
	var p textparse.Parser
	if d.format == PushOpenMetrics {
		p = textparse.NewOpenMetricsParser(d.buf, labels.NewSymbolTable())
	} else {
		p = textparse.NewPromParser(d.buf, labels.NewSymbolTable(), false)
	}
	var (
		lset labels.Labels
		ex   exemplar.Exemplar
	)
	for {
		entry, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return d.parseError(err.Error())
		}
		switch entry {
		case textparse.EntryType:
			name, typ := p.Type()
			d.mark(name)
			if err := d.meta(name); err != nil {
				return err
			}
			d.mtype = typ
			d.md.Type = batchType(typ)
		case textparse.EntryHelp:
			name, help := p.Help()
			d.mark(name)
			if err := d.meta(name); err != nil {
				return err
			}
			d.md.Help = alias(help)
		case textparse.EntryUnit:
			name, unit := p.Unit()
			d.mark(name)
			if err := d.meta(name); err != nil {
				return err
			}
			d.md.Unit = alias(unit)
		case textparse.EntryComment:
			d.mark(p.Comment())
		case textparse.EntrySeries:
			series, ts, v := p.Series()
			d.mark(series)
			if err := d.series(p, &lset, &ex, ts, v); err != nil {
				return err
			}
		default:
			return d.parseError(fmt.Sprintf("unexpected entry %d", entry))
		}
	}
	return d.flushMeta()
}

// series pushes the series the parser is at.
func (d *textDecoder) series(p textparse.Parser, lset *labels.Labels, ex *exemplar.Exemplar, ts *int64, v float64) error {
	if d.maxSeries > 0 && d.st.Series >= d.maxSeries {
		return TooLarge(CapSeries, d.maxSeries, fmt.Sprintf("push with more than %d series", d.maxSeries))
	}
	if !d.bud.take(seriesBytes + sampleBytes) {
		return d.bud.errOver("push")
	}
	p.Labels(lset)
	n := lset.Len()
	if n > d.maxLabels {
		return d.lineError(errLabels("series "+lset.Get(batch.MetricName), d.maxLabels))
	}
	if !d.bud.take(n*labelBytes + labelStringBytes(*lset)) {
		return d.bud.errOver("push")
	}
	name := lset.Get(batch.MetricName)
	if err := d.check(name, *lset); err != nil {
		return err
	}
	skim := d.filter != nil && !d.filter.Wanted(name)
	lset.Range(func(l labels.Label) {
		if !skim || l.Name == batch.MetricName || l.Name == d.filter.KeepLabel {
			d.b.PushLabel(l.Name, l.Value)
		}
	})
	t := d.now
	if ts != nil {
		t = *ts
	}
	d.b.PushSample(t, v)
	for p.Exemplar(ex) {
		n := ex.Labels.Len()
		if n > d.maxLabels {
			return d.lineError(errLabels("an exemplar of series "+name, d.maxLabels))
		}
		if !d.bud.take(exemplarBytes + n*labelBytes + labelStringBytes(ex.Labels)) {
			return d.bud.errOver("push")
		}
		ex.Labels.Range(func(l labels.Label) { d.b.PushExemplarLabel(l.Name, l.Value) })
		et := t
		if ex.HasTs {
			et = ex.Ts
		}
		d.b.PushExemplar(et, ex.Value)
		d.st.Exemplars++
		*ex = exemplar.Exemplar{}
	}
	d.b.EndSeries()
	d.st.Series++
	d.st.Samples++
	return nil
}

// check applies the rules beyond the parser's: names are UTF-8, a
// histogram's buckets have a numeric le, a summary's quantiles are
// numbers.
func (d *textDecoder) check(name string, lset labels.Labels) error {
	var err error
	lset.Range(func(l labels.Label) {
		if err == nil && !utf8.ValidString(l.Name) {
			err = d.lineError(BadRequest("label name %q is not valid UTF-8", l.Name))
		}
	})
	if err != nil {
		return err
	}
	if !utf8.ValidString(name) {
		return d.lineError(BadRequest("metric name %q is not valid UTF-8", name))
	}
	if d.family == "" || !strings.HasPrefix(name, d.family) {
		return nil
	}
	switch suffix := name[len(d.family):]; {
	case suffix == "_bucket" && (d.mtype == model.MetricTypeHistogram || d.mtype == model.MetricTypeGaugeHistogram):
		if !lset.Has(model.BucketLabel) {
			return d.lineError(BadRequest("histogram bucket %s has no le label", name))
		}
		if le := lset.Get(model.BucketLabel); !isNumber(le) {
			return d.lineError(BadRequest("histogram bucket %s has le=%q, not a number", name, le))
		}
	case suffix == "" && d.mtype == model.MetricTypeSummary:
		if q, ok := getLabel(lset, model.QuantileLabel); ok && !isNumber(q) {
			return d.lineError(BadRequest("summary %s has quantile=%q, not a number", name, q))
		}
	}
	return nil
}

func getLabel(lset labels.Labels, name string) (string, bool) {
	if !lset.Has(name) {
		return "", false
	}
	return lset.Get(name), true
}

// isNumber reports whether s is a float other than NaN (+Inf allowed).
func isNumber(s string) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsNaN(f)
}

// labelStringBytes is the heap of a label set's strings (a stringlabels
// set is one string: each name and value with a length prefix).
func labelStringBytes(lset labels.Labels) int {
	n := 0
	lset.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) + 2 })
	return n
}

// meta makes name the current family, starting its metadata entry.
func (d *textDecoder) meta(nameBytes []byte) error {
	if d.pending && string(nameBytes) == d.md.Family {
		return nil
	}
	if err := d.flushMeta(); err != nil {
		return err
	}
	name := alias(nameBytes)
	if !utf8.ValidString(name) {
		return d.lineError(BadRequest("metric name %q is not valid UTF-8", name))
	}
	if name != d.family {
		d.family, d.mtype = name, model.MetricTypeUnknown
	}
	d.md, d.pending = batch.Metadata{Family: name}, true
	return nil
}

// flushMeta adds the current family's metadata to the batch unless the
// family has an entry already (the first wins).
func (d *textDecoder) flushMeta() error {
	if !d.pending {
		return nil
	}
	d.pending = false
	if d.families == nil {
		d.families = familiesPool.Get().(map[string]struct{})
	}
	if _, ok := d.families[d.md.Family]; ok {
		return nil
	}
	if !d.bud.take(metadataBytes) {
		return d.bud.errOver("push")
	}
	d.families[d.md.Family] = struct{}{}
	d.b.Metadata = append(d.b.Metadata, d.md)
	d.st.Metadata++
	return nil
}

func batchType(t model.MetricType) batch.MetricType {
	switch t {
	case model.MetricTypeCounter:
		return 1
	case model.MetricTypeGauge:
		return 2
	case model.MetricTypeHistogram:
		return 3
	case model.MetricTypeGaugeHistogram:
		return 4
	case model.MetricTypeSummary:
		return 5
	case model.MetricTypeInfo:
		return 6
	case model.MetricTypeStateset:
		return 7
	}
	return 0
}

// alias returns b as a string without copying: b is either in the body,
// which outlives the batch, or a copy the parser made for this call.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// mark records that the parser returned an entry holding s, a slice of
// buf: parse errors are on a later line. The parsers slice the body they
// were given (buf has the spare byte they append), so the offset is the
// difference of capacities.
func (d *textDecoder) mark(s []byte) {
	if cap(s) == 0 {
		return
	}
	off := cap(d.buf) - cap(s) + len(s)
	if off >= d.end && off <= len(d.buf) {
		d.end = off
	}
}

// errLine returns the 1-based line of the entry after the last one the
// parser returned: the line the parser failed on. The text format skips
// blank lines; OpenMetrics refuses them, so the next line is the one.
func (d *textDecoder) errLine() int {
	i := d.end
	line := 1 + bytes.Count(d.buf[:i], []byte{'\n'})
	if d.end > 0 {
		nl := bytes.IndexByte(d.buf[i:], '\n')
		if nl < 0 {
			return line
		}
		i += nl + 1
		line++
	}
	if d.format == PushOpenMetrics {
		return line
	}
	for i < len(d.buf) {
		nl := bytes.IndexByte(d.buf[i:], '\n')
		if nl < 0 || strings.TrimLeft(string(d.buf[i:i+nl]), " \t") != "" {
			break
		}
		i += nl + 1
		line++
	}
	return line
}

// parseError is the 400 for the parser's refusal, its message cut short.
func (d *textDecoder) parseError(msg string) error {
	if len(msg) > maxErrorText {
		msg = strings.ToValidUTF8(msg[:maxErrorText], "") + "..."
	}
	return BadRequest("%s line %d: %s", d.format, d.errLine(), msg)
}

// lineError prefixes err with the line of the entry being pushed (the
// last one the parser returned).
func (d *textDecoder) lineError(e error) error {
	err := e.(*Error)
	line := 1 + bytes.Count(d.buf[:d.end], []byte{'\n'})
	if d.end > 0 && d.buf[d.end-1] == '\n' {
		line--
	}
	err.Msg = fmt.Sprintf("%s line %d: %s", d.format, line, err.Msg)
	return err
}
