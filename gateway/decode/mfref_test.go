package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/telegate/telegate/batch"
)

// The MetricFamily walk before its fast paths (commit 67afb66), kept as
// the reference the fast paths must match exactly: the same batch, Stats,
// errors (message, status, reason) and budget requests, on every input,
// under every limit and filter, for /upload and for pushes (see
// checkMFSameAsRef). The family, metric, label pair and gauge levels and
// the field reader they use are frozen here; counters, summaries,
// histograms, exemplars and the series they emit are shared.

// refDecodeFamilies is UnmarshalMetricFamiliesFiltered (or, with
// omFloats, UnmarshalPushedFamilies, whose serverTime is false) on the
// frozen walk.
func refDecodeFamilies(buf []byte, b *batch.Batch, nowMs int64, serverTime, omFloats bool, l Limits, f *NameFilter) (Stats, error) {
	d := mfDecoder{buf: buf, b: b, now: nowMs, serverTime: serverTime, omFloats: omFloats, maxSeries: l.MaxSeries,
		maxLabels: l.MaxLabelsPerSeries, bud: newBudget(l, len(buf)), filter: f}
	if d.maxLabels <= 0 {
		d.maxLabels = int(^uint(0) >> 1)
	}
	err := d.refFamilies()
	if err != nil {
		b.DiscardSeries()
	}
	d.st.BatchBytes = d.bud.used()
	return d.st, err
}

// refPvarint reads a varint the way google.golang.org/protobuf does: at most
// 10 bytes and the 10th must be 0 or 1.
func refPvarint(buf []byte, i, end int) (v uint64, next int) {
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

// refNext reads the field at i of a message ending at end. Field numbers must
// be in [1, 2^29-1] and an end-group tag is an error, as at message level
// in google.golang.org/protobuf.
//
// It fills *f rather than returning a field: a returned struct was stored
// word by word and reloaded in 16-byte moves, a store-forwarding stall that
// cost a fifth of MetricFamily decoding.
func (d *mfDecoder) refNext(f *field, i, end int, msg string) (next int, err error) {
	t, n := refPvarint(d.buf, i, end)
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
	return d.refValue(f, n, end, maxGroupDepth)
}

// refValue consumes the value of f starting at i.
func (d *mfDecoder) refValue(f *field, i, end, depth int) (int, error) {
	if f.wt != wtStart {
		return d.refScalarValue(f, i, end)
	}
	if depth < 0 {
		return 0, BadRequest("protobuf: groups nested too deeply at offset %d", i)
	}
	f.s = i
	e, n, err := d.refGroup(f.num, i, end, depth)
	if err != nil {
		return 0, err
	}
	f.e = e
	return n, nil
}

// refGroup walks the fields of a group of field num whose first field is at
// i, up to its end-group tag, and returns the tag's offset and the offset
// after it. It recurses without pointers, so its fields stay on the stack
// (a *field passed down a recursion escapes: 48 bytes of garbage per field
// of a deeply nested group).
func (d *mfDecoder) refGroup(num, i, end, depth int) (endTag, next int, err error) {
	for {
		t, n := refPvarint(d.buf, i, end)
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
			if _, i, err = d.refGroup(int(inum), n, end, depth-1); err != nil {
				return 0, 0, err
			}
		default:
			inner := field{num: int(inum), wt: wt}
			if i, err = d.refScalarValue(&inner, n, end); err != nil {
				return 0, 0, err
			}
		}
	}
}

// refScalarValue consumes the value of f, of any wire type but a group start,
// starting at i.
func (d *mfDecoder) refScalarValue(f *field, i, end int) (int, error) {
	switch f.wt {
	case wtVarint:
		v, n := refPvarint(d.buf, i, end)
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
		l, n := refPvarint(d.buf, i, end)
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

// refPlain validates a message without message-typed or packed fields
// (LabelPair, Gauge, Untyped, Quantile, BucketSpan, Timestamp): every field
// must parse.
func (d *mfDecoder) refPlain(i, end int, msg string) error {
	for i < end {
		var err error
		var f field
		if i, err = d.refNext(&f, i, end, msg); err != nil {
			return err
		}
	}
	return nil
}

func (d *mfDecoder) refFamilies() error {
	i, end := 0, len(d.buf)
	for i < end {
		l, n := refPvarint(d.buf, i, end)
		if n < 0 {
			return varintErr(n, i, "metric family length")
		}
		if l > uint64(end-n) {
			return BadRequest("protobuf: truncated metric family at offset %d (length %d, %d bytes left)", i, l, end-n)
		}
		if err := d.refFamily(n, n+int(l)); err != nil {
			return err
		}
		i = n + int(l)
	}
	return nil
}

func (d *mfDecoder) refFamily(s, e int) error {
	d.st.Metadata++
	d.name, d.sumName, d.countName, d.bktName = "", "", "", ""
	d.namesCharged = false
	var typ int32
	for i := s; i < e; {
		var f field
		n, err := d.refNext(&f, i, e, "MetricFamily")
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
		var f field
		n, err := d.refNext(&f, i, e, "MetricFamily")
		if err != nil {
			return err
		}
		if f.num == 4 && f.wt == wtBytes {
			if err := d.refMetric(int(typ), f.s, f.e); err != nil {
				return err
			}
		}
		i = n
	}
	return nil
}

func (d *mfDecoder) refMetric(typ, s, e int) error {
	var m metricVals
	d.tmpl, d.pairs = -1, 0
	// The label pairs are pushed (and charged) while walking; the first
	// series of the metric takes them (and its __name__ is set once the
	// type is known).
	if !d.bud.take(labelBytes) {
		return d.bud.errOver("upload")
	}
	d.b.PushLabel(batch.MetricName, d.name)
	for i := s; i < e; {
		var f field
		n, err := d.refNext(&f, i, e, "Metric")
		if err != nil {
			return err
		}
		i = n
		switch {
		case f.num == 6 && f.wt == wtVarint:
			m.ts, m.hasTS = int64(f.v), true
		case f.num == 1 && f.wt == wtBytes:
			var ln, lv string
			if ln, lv, err = d.refLabelPair(f); err != nil {
				return err
			}
			if d.pairs++; 1+d.pairs > d.maxLabels {
				return errLabels(fmt.Sprintf("metric of family %q at offset %d", d.name, f.s), d.maxLabels)
			}
			if !d.bud.take(labelBytes) {
				return d.bud.errOver("upload")
			}
			if !d.skim || ln == d.filter.KeepLabel {
				d.b.PushLabel(ln, lv)
			}
		case (f.num == 2 || f.num == 5) && f.wt == wtBytes: // gauge, untyped
			m.has[f.num] = true
			err = d.refSimpleValue(&m, f)
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
	}

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

// refSimpleValue reads a Gauge or Untyped: {1 value double}.
func (d *mfDecoder) refSimpleValue(m *metricVals, g field) error {
	for i := g.s; i < g.e; {
		var f field
		n, err := d.refNext(&f, i, g.e, "Gauge")
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

// refLabelPair reads a LabelPair: {1 name, 2 value}.
func (d *mfDecoder) refLabelPair(f field) (name, value string, err error) {
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
		n, err := d.refNext(&g, i, e, "LabelPair")
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

// mfMode is one way to call the MetricFamily decoder.
type mfMode struct {
	serverTime, push bool
}

var mfModes = []mfMode{{}, {serverTime: true}, {push: true}}

// checkMFSameAsRef decodes data with the MetricFamily decoder in mode and
// with the reference under l and f, and fails t unless both give the same
// batch, Stats, error (message, status, reason) and Reserve requests.
// newReserve, when not nil, gives each decoder a new reserve.
func checkMFSameAsRef(t testing.TB, data []byte, mode mfMode, l Limits, f *NameFilter, newReserve func() func(int) error) {
	t.Helper()
	const now = 1700000000123
	run := func(ref bool) (*batch.Batch, Stats, error, []int) {
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
		var st Stats
		var err error
		switch {
		case ref:
			st, err = refDecodeFamilies(data, b, now, mode.serverTime, mode.push, lim, f)
		case mode.push:
			st, err = UnmarshalPushedFamilies(data, b, now, lim, f)
		default:
			st, err = UnmarshalMetricFamiliesFiltered(data, b, now, mode.serverTime, lim, f)
		}
		return b, st, err, asked
	}
	b, st, err, asked := run(false)
	rb, rst, rerr, rasked := run(true)
	if st != rst || !slices.Equal(asked, rasked) || !sameErr(err, rerr) {
		t.Fatalf("on %x (%+v) with %+v, filter %v: got %+v %v, reserve %v; reference %+v %v, reserve %v",
			data, mode, l, f != nil, st, err, asked, rst, rerr, rasked)
	}
	if got, want := dumpBatch(b), dumpBatch(rb); got != want {
		t.Fatalf("on %x (%+v) with %+v, filter %v: batch\n%s\nreference\n%s", data, mode, l, f != nil, got, want)
	}
}

// checkMFSameAsRefLimits is checkMFSameAsRef in every mode, without and
// with testFilter and nameLenFilter, under no limits and under limits that
// stop data at different points.
func checkMFSameAsRefLimits(t testing.TB, data []byte) {
	t.Helper()
	st, _ := refDecodeFamilies(data, &batch.Batch{}, 0, false, false, Limits{}, nil)
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
	for _, mode := range mfModes {
		for _, l := range limits {
			for _, f := range []*NameFilter{nil, testFilter, nameLenFilter} {
				checkMFSameAsRef(t, data, mode, l, f, nil)
			}
		}
	}
}

// checkMFSameAsRefBudgets is checkMFSameAsRef under every MaxBatchBytes up
// to what data charges, so a budget runs out at every take.
func checkMFSameAsRefBudgets(t testing.TB, data []byte) {
	t.Helper()
	st, _ := refDecodeFamilies(data, &batch.Batch{}, 0, false, false, Limits{}, nil)
	for limit := 1; limit <= st.BatchBytes+1; limit++ {
		for _, f := range []*NameFilter{nil, testFilter} {
			checkMFSameAsRef(t, data, mfMode{}, Limits{MaxBatchBytes: limit}, f, nil)
		}
	}
}

// The decoder matches the reference on random families and mutations of
// them, and on the benchmark's upload.
func TestMetricFamiliesSameAsRef(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	n := 300
	if testing.Short() {
		n = 100
	}
	for range n {
		data := encodeFamilies(t, genFamilies(r))
		checkMFSameAsRefLimits(t, data)
		for range 3 {
			data = mutate(r, data)
			checkMFSameAsRefLimits(t, data)
		}
	}
	checkMFSameAsRefLimits(t, encodeFamilies(t, benchFamilies()))
}

// The decoder runs out of budget, and asks the reserve, exactly where the
// reference does.
func TestMetricFamiliesBudgetSameAsRef(t *testing.T) {
	data := encodeFamilies(t, benchFamilies()[:1])
	checkMFSameAsRefBudgets(t, data)
	big := encodeFamilies(t, benchFamilies())
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
		for _, limit := range []int{0, ReserveStep / 2} {
			for _, f := range []*NameFilter{nil, testFilter} {
				checkMFSameAsRef(t, big, mfMode{}, Limits{MaxBatchBytes: limit}, f, newReserve)
			}
		}
	}
}

// mfFastPathEdges are uploads around the MetricFamily fast paths'
// conditions: each must decode exactly as the reference walk, and as
// google.golang.org/protobuf and the text format would.
func mfFastPathEdges() map[string][]byte {
	pair := func(n, v string) []byte { return lenField(lenField(nil, 1, []byte(n)), 2, []byte(v)) }
	label := func(payload []byte) []byte { return lenField(nil, 1, payload) }
	f64 := func(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }
	gauge := append([]byte{0x12, 0x09, 0x09}, f64(2.5)...)
	untyped := append([]byte{0x2a, 0x09, 0x09}, f64(-1)...)
	ts := appendVarint([]byte{0x30}, 1700000000456)
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	// metric: labels a and job, then the given fields.
	metric := func(fields ...[]byte) []byte {
		return cat(label(pair("a", "1")), label(pair("job", "j")), cat(fields...))
	}
	// raw wraps a MetricFamily payload as an upload record.
	raw := func(payload ...[]byte) []byte {
		p := cat(payload...)
		return append(appendVarint(nil, uint64(len(p))), p...)
	}
	name := lenField(nil, 1, []byte("g"))
	typeGaugeField := []byte{0x18, typeGauge}
	long := strings.Repeat("v", 200)
	filler := make([][]byte, 0, 20)
	for i := range 20 {
		filler = append(filler, label(pair(fmt.Sprintf("l%02d", i), "value")))
	}
	fill := cat(filler...)
	trap := []byte(strings.Repeat("n", 1274))
	trap[8], trap[9] = 0x12, 128-14
	tenByteTS := []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01} // -1
	cases := map[string][]byte{
		"plain":                  family("g", typeGauge, metric(gauge, ts)),
		"untyped":                family("u", typeUntyped, metric(untyped, ts)),
		"timestamp first":        family("g", typeGauge, cat(ts, gauge, label(pair("a", "1")))),
		"no labels":              family("g", typeGauge, gauge),
		"empty pair":             family("g", typeGauge, metric(gauge, label(nil))),
		"empty name and value":   family("g", typeGauge, metric(gauge, label(pair("", "")))),
		"name only":              family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n'}))),
		"value only":             family("g", typeGauge, metric(gauge, label([]byte{0x12, 0x01, 'v'}))),
		"value before name":      family("g", typeGauge, metric(gauge, label([]byte{0x12, 0x01, 'v', 0x0a, 0x01, 'n'}))),
		"name twice":             family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 0x0a, 0x01, 'm'}))),
		"name then name":         family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x0a, 0x01, 'm'}))),
		"pair unknown first":     family("g", typeGauge, metric(gauge, label([]byte{0x18, 0x05, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'}))),
		"pair unknown between":   family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x18, 0x05, 0x12, 0x01, 'v'}))),
		"pair unknown last":      family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 0x1d, 1, 2, 3, 4}))),
		"pair unknown bytes":     family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x1a, 0x01, 'x'}))),
		"pair group":             family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x1b, 0x08, 0x01, 0x1c, 0x12, 0x01, 'v'}))),
		"short value length":     family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v', 'w'}))),
		"long value length":      family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x12, 0x03, 'v'}), fill)),
		"long name length":       family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x09, 'n', 0x12, 0x01, 'v'}), fill)),
		"name wrong wire type":   family("g", typeGauge, metric(gauge, label([]byte{0x0b, 0x01, 'n', 0x12, 0x01, 'v'}))),
		"name fixed32":           family("g", typeGauge, metric(gauge, label([]byte{0x0d, 1, 2, 3, 4, 0x12, 0x01, 'v'}))),
		"value wrong wire type":  family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x10, 0x01}))),
		"value of 127":           family("g", typeGauge, metric(gauge, label(pair("n", strings.Repeat("v", 127))))),
		"pair of 127":            family("g", typeGauge, metric(gauge, label(pair("n", strings.Repeat("v", 122))))),
		"pair of 128":            family("g", typeGauge, metric(gauge, label(pair("n", strings.Repeat("v", 123))))),
		"long value":             family("g", typeGauge, metric(gauge, label(pair("n", long)), label(pair(long, "v")))),
		"non-canonical pair tag": family("g", typeGauge, metric(gauge, []byte{0x8a, 0x00, 0x06, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'}, fill)),
		// a two-byte length 0x86 0x00 (6): read as one byte it would be
		// 0x86, in bounds thanks to the filler
		"non-canonical pair length":         family("g", typeGauge, metric(gauge, []byte{0x0a, 0x86, 0x00, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'}, fill)),
		"non-canonical name tag":            family("g", typeGauge, metric(gauge, label([]byte{0x8a, 0x00, 0x01, 'n', 0x12, 0x01, 'v'}), fill)),
		"non-canonical name length":         family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x81, 0x00, 'n', 0x12, 0x01, 'v'}), fill)),
		"non-canonical value tag":           family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x92, 0x00, 0x01, 'v'}), fill)),
		"non-canonical value length":        family("g", typeGauge, metric(gauge, label([]byte{0x0a, 0x01, 'n', 0x12, 0x81, 0x00, 'v'}), fill)),
		"pair length past metric":           raw(name, typeGaugeField, lenField(nil, 4, cat(gauge, []byte{0x0a, 0x7f, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'})), lenField(nil, 4, cat(gauge, fill))),
		"pair length past body":             family("g", typeGauge, cat(gauge, []byte{0x0a, 0x7f, 0x0a, 0x01, 'n', 0x12, 0x01, 'v'})),
		"one byte pair":                     family("g", typeGauge, metric(gauge, []byte{0x0a, 0x01, 0x0a})),
		"two byte pair":                     family("g", typeGauge, metric(gauge, []byte{0x0a, 0x02, 0x0a, 0x00})),
		"three byte pair":                   family("g", typeGauge, metric(gauge, []byte{0x0a, 0x03, 0x0a, 0x00, 0x12})),
		"pair tag at the end":               family("g", typeGauge, metric(gauge, []byte{0x0a})),
		"pair length at the end":            family("g", typeGauge, metric(gauge, []byte{0x0a, 0x05})),
		"length whose second byte is a tag": family("g", typeGauge, metric(gauge, label(pair(string(trap), "v")), fill)),
		// Gauge and Untyped
		"gauge twice":                family("g", typeGauge, metric(gauge, []byte{0x12, 0x09, 0x09}, f64(7))),
		"empty gauge":                family("g", typeGauge, metric([]byte{0x12, 0x00})),
		"gauge and untyped":          family("g", typeGauge, metric(untyped, gauge)),
		"untyped in a gauge family":  family("g", typeGauge, metric(untyped)),
		"gauge in an untyped family": family("u", typeUntyped, metric(gauge)),
		"gauge in a counter family":  family("c", typeCounter, metric(gauge)),
		"gauge with unknown field":   family("g", typeGauge, metric([]byte{0x12, 0x0b, 0x09}, f64(3), []byte{0x10, 0x01})),
		"gauge unknown first":        family("g", typeGauge, metric([]byte{0x12, 0x0b, 0x10, 0x01, 0x09}, f64(3))),
		"gauge value fixed32":        family("g", typeGauge, metric([]byte{0x12, 0x05, 0x0d, 1, 2, 3, 4})),
		"gauge field 2":              family("g", typeGauge, metric([]byte{0x12, 0x09, 0x11}, f64(3))),
		"gauge value varint":         family("g", typeGauge, metric([]byte{0x12, 0x09, 0x08, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01})),
		"gauge length 8":             family("g", typeGauge, metric([]byte{0x12, 0x08, 0x09}, f64(3)[:7], fill)),
		"gauge length 10":            family("g", typeGauge, metric([]byte{0x12, 0x0a, 0x09}, f64(3), []byte{0x00}, fill)),
		"gauge non-canonical length": family("g", typeGauge, metric([]byte{0x12, 0x89, 0x00, 0x09}, f64(3))),
		"gauge non-canonical tag":    family("g", typeGauge, metric([]byte{0x92, 0x00, 0x09, 0x09}, f64(3))),
		"gauge value non-canonical":  family("g", typeGauge, metric([]byte{0x12, 0x0a, 0x89, 0x00}, f64(3))),
		"gauge past metric":          raw(name, typeGaugeField, lenField(nil, 4, gauge[:8]), lenField(nil, 4, cat(gauge, fill))),
		"gauge at the end":           family("g", typeGauge, metric(gauge[:10])),
		"gauge wrong wire type":      family("g", typeGauge, metric([]byte{0x11}, f64(3), gauge)),
		"gauge group":                family("g", typeGauge, metric([]byte{0x13, 0x09}, f64(3), []byte{0x14})),
		"counter":                    family("c", typeCounter, metric(lenField(nil, 3, cat([]byte{0x09}, f64(4))), ts)),
		// timestamp_ms
		"one byte timestamp":          family("g", typeGauge, metric(gauge, []byte{0x30, 0x05})),
		"ten byte timestamp":          family("g", typeGauge, metric(gauge, tenByteTS)),
		"ten byte timestamp, more":    family("g", typeGauge, metric(tenByteTS, gauge, fill)),
		"timestamp overflow":          family("g", typeGauge, metric(gauge, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
		"timestamp overflow, more":    family("g", typeGauge, metric([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, gauge, fill)),
		"eleven byte timestamp":       family("g", typeGauge, metric(gauge, []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})),
		"non-canonical timestamp":     family("g", typeGauge, metric(gauge, []byte{0x30, 0x85, 0x80, 0x80, 0x00})),
		"timestamp twice":             family("g", typeGauge, metric(gauge, ts, []byte{0x30, 0x07})),
		"timestamp fixed64":           family("g", typeGauge, metric(gauge, []byte{0x31}, f64(1))),
		"timestamp truncated":         family("g", typeGauge, metric(gauge, ts[:4])),
		"timestamp past metric":       raw(name, typeGaugeField, lenField(nil, 4, cat(gauge, ts[:4])), lenField(nil, 4, cat(gauge, ts, fill))),
		"timestamp past metric, long": raw(name, typeGaugeField, lenField(nil, 4, cat(gauge, []byte{0x30, 0xff, 0xff, 0xff})), lenField(nil, 4, cat(gauge, ts, fill))),
		"non-canonical timestamp tag": family("g", typeGauge, metric(gauge, []byte{0xb0, 0x00, 0x05})),
		// MetricFamily
		"name after metrics":          raw(typeGaugeField, lenField(nil, 4, metric(gauge)), name),
		"type after metrics":          raw(name, lenField(nil, 4, metric(gauge)), []byte{0x18, typeCounter}),
		"name twice in family":        raw(name, lenField(nil, 4, metric(gauge)), lenField(nil, 1, []byte("h")), typeGaugeField),
		"empty name":                  raw(lenField(nil, 1, nil), typeGaugeField, lenField(nil, 4, metric(gauge))),
		"no name":                     raw(typeGaugeField, lenField(nil, 4, metric(gauge))),
		"no type":                     raw(name, lenField(nil, 4, metric(lenField(nil, 3, cat([]byte{0x09}, f64(4)))))),
		"help":                        raw(name, lenField(nil, 2, []byte(long)), typeGaugeField, lenField(nil, 4, metric(gauge))),
		"help wrong wire type":        raw(name, []byte{0x10, 0x01}, typeGaugeField, lenField(nil, 4, metric(gauge))),
		"non-canonical type":          raw(name, []byte{0x18, 0x81, 0x00}, lenField(nil, 4, metric(gauge))),
		"type 6":                      raw(name, []byte{0x18, 0x06}, lenField(nil, 4, metric(gauge))),
		"type 127":                    raw(name, []byte{0x18, 0x7f}, lenField(nil, 4, metric(gauge))),
		"type 2^32+1":                 raw(name, []byte{0x18, 0x81, 0x80, 0x80, 0x80, 0x10}, lenField(nil, 4, metric(gauge))),
		"negative type":               raw(name, []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, lenField(nil, 4, metric(gauge))),
		"type wrong wire type":        raw(name, []byte{0x1a, 0x01, 0x01}, lenField(nil, 4, metric(gauge))),
		"type at the end":             raw(name, lenField(nil, 4, metric(gauge)), []byte{0x18}),
		"name length past family":     raw([]byte{0x0a, 0x05, 'g'}),
		"name length past family 2":   cat(raw([]byte{0x0a, 0x05, 'g'}), family("g", typeGauge, metric(gauge))),
		"metric length past family":   cat(raw(name, typeGaugeField, []byte{0x22, 0x20}, metric(gauge)), family("g", typeGauge, metric(gauge))),
		"metric length two bytes":     family("g", typeGauge, metric(gauge, fill, fill)),
		"non-canonical metric length": raw(name, typeGaugeField, []byte{0x22, 0x8d, 0x00}, gauge, []byte{0x30, 0x05}),
		"non-canonical metric tag":    raw(name, typeGaugeField, []byte{0xa2, 0x00, 0x0d}, gauge, []byte{0x30, 0x05}),
		"metric wrong wire type":      raw(name, typeGaugeField, []byte{0x20, 0x05}, lenField(nil, 4, metric(gauge))),
		"metric fixed64":              raw(name, typeGaugeField, []byte{0x21}, f64(1), lenField(nil, 4, metric(gauge))),
		"unknown family fields":       raw([]byte{0x28, 0x01}, name, lenField(nil, 6, []byte("x")), typeGaugeField, []byte{0x3d, 1, 2, 3, 4}, lenField(nil, 4, metric(gauge)), []byte{0x7a, 0x00}),
		"unknown family field 16":     raw(name, typeGaugeField, []byte{0x82, 0x01, 0x01, 'x'}, lenField(nil, 4, metric(gauge))),
		"family group":                raw(name, typeGaugeField, []byte{0x2b, 0x0a, 0x01, 'x', 0x2c}, lenField(nil, 4, metric(gauge))),
		"family end group":            raw(name, typeGaugeField, []byte{0x2c}, lenField(nil, 4, metric(gauge))),
		"field number zero":           raw(name, typeGaugeField, []byte{0x02, 0x00}, lenField(nil, 4, metric(gauge))),
		"empty metric":                family("g", typeGauge, nil),
		"empty family":                {0x00},
		"metric tag at the end":       raw(name, typeGaugeField, []byte{0x22}),
		"metric length at the end":    raw(name, typeGaugeField, []byte{0x22, 0x85}),
		"family length past body":     {0x05, 0x0a, 0x01, 'g'},
		"non-canonical family length": cat([]byte{0x87, 0x00}, raw(name, typeGaugeField)[1:]),
	}
	// Several families and metrics of several names, so the filter's
	// verdicts and the labels' limits come into play.
	var many []byte
	for _, n := range []string{"a", "zzz", "a", "mm", "n"} {
		many = append(many, family(n, typeGauge, metric(gauge, ts), metric(gauge, fill), metric(untyped))...)
	}
	cases["many families"] = many
	return cases
}

func TestMetricFamiliesFastPathEdges(t *testing.T) {
	for name, data := range mfFastPathEdges() {
		t.Run(name, func(t *testing.T) {
			checkMetricFamiliesAgree(t, data)
			checkMFSameAsRefLimits(t, data)
			checkMFSameAsRefBudgets(t, data)
			for k := range data { // truncated at every byte
				checkMetricFamiliesAgree(t, data[:k])
				for _, mode := range mfModes {
					for _, f := range []*NameFilter{nil, testFilter} {
						checkMFSameAsRef(t, data[:k], mode, Limits{}, f, nil)
					}
				}
			}
		})
	}
}

// pvarint and pvarintLong agree with the reference on every varint of up
// to 11 bytes, canonical or not, truncated or followed by more bytes,
// with more or fewer than ten bytes in bounds.
func TestPvarintSameAsRef(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	check := func(buf []byte, i, end int) {
		t.Helper()
		want, wn := refPvarint(buf, i, end)
		if v, n := pvarint(buf, i, end); v != want || n != wn {
			t.Fatalf("pvarint(%x, %d, %d) = %d %d, reference %d %d", buf, i, end, v, n, want, wn)
		}
		if v, n := pvarintLong(buf, i, end); v != want || n != wn {
			t.Fatalf("pvarintLong(%x, %d, %d) = %d %d, reference %d %d", buf, i, end, v, n, want, wn)
		}
	}
	for range 300000 {
		buf := make([]byte, 1+r.IntN(24))
		for j := range buf {
			buf[j] = byte(r.Uint32())
			if r.IntN(6) > 0 {
				buf[j] |= 0x80
			}
			if r.IntN(8) == 0 {
				buf[j] &= 3 // a small last byte
			}
		}
		i := r.IntN(len(buf) + 1)
		end := i + r.IntN(len(buf)-i+1)
		check(buf, i, end)
	}
	for _, v := range []uint64{0, 1, 127, 128, 1700000000000, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		buf := binary.AppendUvarint(nil, v)
		check(buf, 0, len(buf))
		check(append(buf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0, len(buf))
	}
}
