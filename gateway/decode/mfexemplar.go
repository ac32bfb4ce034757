package decode

import "math"

// Exemplars of telemeter uploads, pushed as Prometheus' protobuf scrape
// ingests them: a counter's exemplar on its series and a classic bucket's
// on its name_bucket series (stamped with the sample's timestamp when they
// have none); on a native histogram's series, its exemplars list or, when
// it has none, its buckets' exemplars, only those with a timestamp.
// Repeated Exemplar messages of one counter or bucket merge (labels
// concatenate, the last value and timestamp fields win), as in the
// reference decoder. Exemplar labels alias the body.

// mfExemplar is one exemplar being merged from its parts.
type mfExemplar struct {
	parts int
	v     float64
	sec   int64
	nanos int32
	hasTS bool
}

// exemplarPart pushes the labels of the (validated) Exemplar at x and
// merges its value and timestamp into a.
func (d *mfDecoder) exemplarPart(x field, a *mfExemplar) error {
	a.parts++
	for i := x.s; i < x.e; {
		var f field
		n, err := d.next(&f, i, x.e, "Exemplar")
		if err != nil {
			return err
		}
		i = n
		switch {
		case f.num == 1 && f.wt == wtBytes:
			ln, lv, err := d.labelPair(f)
			if err != nil {
				return err
			}
			if !d.bud.take(labelBytes) {
				return d.bud.errOver("upload")
			}
			d.b.PushExemplarLabel(ln, lv)
		case f.num == 2 && f.wt == wtFixed64:
			a.v = math.Float64frombits(f.v)
		case f.num == 3 && f.wt == wtBytes:
			a.hasTS = true
			for j := f.s; j < f.e; { // Timestamp: {1 seconds, 2 nanos}
				var g field
				n, err := d.next(&g, j, f.e, "Timestamp")
				if err != nil {
					return err
				}
				j = n
				switch {
				case g.num == 1 && g.wt == wtVarint:
					a.sec = int64(g.v)
				case g.num == 2 && g.wt == wtVarint:
					a.nanos = int32(g.v)
				}
			}
		}
	}
	return nil
}

// endExemplar pushes the merged exemplar a onto the series under
// construction, stamped ts if it has no timestamp.
func (d *mfDecoder) endExemplar(a *mfExemplar, ts int64) error {
	if !d.bud.take(exemplarBytes) {
		return d.bud.errOver("upload")
	}
	if a.hasTS {
		ts = a.sec*1000 + int64(a.nanos/1_000_000)
	}
	d.b.PushExemplar(ts, a.v)
	return nil
}

// hasTimestamp reports whether the Exemplar at x has a timestamp.
func (d *mfDecoder) hasTimestamp(x field) bool {
	for i := x.s; i < x.e; {
		var f field
		n, err := d.next(&f, i, x.e, "Exemplar")
		if err != nil {
			return false
		}
		i = n
		if f.num == 3 && f.wt == wtBytes {
			return true
		}
	}
	return false
}

// counterExemplar pushes the exemplar of the counter metric at buf[s:e],
// if it has one.
func (d *mfDecoder) counterExemplar(s, e int, ts int64) error {
	var a mfExemplar
	err := d.eachSub(s, e, 3, 2, func(x field) error { return d.exemplarPart(x, &a) })
	if err != nil || a.parts == 0 {
		return err
	}
	return d.endExemplar(&a, ts)
}

// bucketExemplar pushes the exemplar of the Bucket at b, if it has one
// (and a timestamp, when needTS).
func (d *mfDecoder) bucketExemplar(b field, ts int64, needTS bool) error {
	var a mfExemplar
	if needTS {
		has := false
		for i := b.s; i < b.e && !has; {
			var f field
			n, err := d.next(&f, i, b.e, "Bucket")
			if err != nil {
				return err
			}
			i = n
			has = f.num == 3 && f.wt == wtBytes && d.hasTimestamp(f)
		}
		if !has {
			return nil
		}
	}
	for i := b.s; i < b.e; {
		var f field
		n, err := d.next(&f, i, b.e, "Bucket")
		if err != nil {
			return err
		}
		i = n
		if f.num == 3 && f.wt == wtBytes {
			if err := d.exemplarPart(f, &a); err != nil {
				return err
			}
		}
	}
	if a.parts == 0 {
		return nil
	}
	return d.endExemplar(&a, ts)
}

// nativeExemplars pushes the exemplars of the native histogram of the
// metric at buf[s:e]: those of its exemplars list with a timestamp, or,
// if the list is empty, those of its buckets with a timestamp.
func (d *mfDecoder) nativeExemplars(m *metricVals, s, e int, ts int64) error {
	it := mfHistFields{d: d, i: s, e: e}
	var f field
	for it.next(&f) {
		if f.wt != wtBytes {
			continue
		}
		switch {
		case f.num == 16 && m.nh.exemplars > 0 && d.hasTimestamp(f):
			var a mfExemplar
			if err := d.exemplarPart(f, &a); err != nil {
				return err
			}
			if err := d.endExemplar(&a, ts); err != nil {
				return err
			}
		case f.num == 3 && m.nh.exemplars == 0:
			if err := d.bucketExemplar(f, ts, true); err != nil {
				return err
			}
		}
	}
	return nil
}
