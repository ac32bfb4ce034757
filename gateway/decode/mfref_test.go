package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
