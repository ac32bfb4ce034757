package decode

import (
	"fmt"
	"math"
)

// Native histograms arrive as remote write 1.0 prometheus.Histogram or 2.0
// io.prometheus.write.v2.Histogram messages (the same fields, 2.0 adds
// start_timestamp, 17). The decoders pass them on as they arrived (see
// batch.Histogram), once their wire format has passed the reference
// decoder's rules and their content the rules Prometheus applies before
// appending one (model/histogram's Histogram.Validate and
// FloatHistogram.Validate on what prompb's ToIntHistogram and
// ToFloatHistogram make of the message):
//
//   - a histogram is a float histogram when its count oneof holds
//     count_float, an integer one otherwise (count_int, or no count);
//     the reference keeps the last value of a repeated oneof or scalar.
//     Unlike Prometheus, which silently ignores the other kind's fields,
//     a histogram carrying fields of both kinds (an integer one with
//     zero_count_float, negative_counts or positive_counts; a float one
//     with zero_count_int, negative_deltas or positive_deltas) is
//     refused: no honest sender mixes them, and a downstream might read
//     them differently.
//   - the schema is -4 to 8 (exponential buckets) or -53 (custom
//     buckets). Prometheus' receiver also takes 9 to 52 and reduces their
//     resolution to 8; the gateway forwards histograms unchanged, so it
//     refuses them rather than pass a schema the downstream may not know.
//   - exponential: on each side, every span after the first has an
//     offset >= 0 and the span lengths add up to the number of buckets
//     (deltas or counts); no custom_values; the zero bucket's float count
//     is not negative.
//   - custom buckets: custom_values are not NaN, strictly increasing and
//     the last is not +Inf; every positive span has an offset >= 0, their
//     lengths add up to the number of positive buckets, and the bounds
//     cover the spans (bounds + 1 >= the sum of offsets and lengths); the
//     zero count and zero threshold are 0; no negative spans or buckets.
//   - no bucket count is negative (integer buckets are the running sum
//     of the deltas, in int64 as Prometheus adds them); a float count is
//     not negative.
//   - integer histograms: count equals the observations in the buckets
//     (zero bucket included), or is at least that when sum is NaN.
//
// NaN counts pass (Prometheus' comparisons are false for NaN), and so does
// any zero_threshold of an exponential histogram, as in Prometheus.
//
// The walk keeps counters and running sums, never the buckets, so it
// allocates nothing whatever lengths the message declares.

// validateHistogram checks a native histogram message, raw, as the remote
// write decoders do (v2: a 2.0 Histogram, whose field 17 is
// start_timestamp; 1.0 skips it as an unknown field): the wire format as
// the gogo-generated reference decodes it, then the rules above. It
// returns a 400 *Error naming the broken rule, or nil.
func validateHistogram(raw []byte, v2 bool) error {
	d := rwDecoder{buf: raw, v2: v2}
	_, rule, err := d.histogram(0, len(raw))
	if err != nil {
		return err
	}
	if rule != "" {
		return BadRequest("native histogram: %s", rule)
	}
	return nil
}

// Kinds of a histogram's count and zero_count oneofs.
const (
	kindNone = iota
	kindInt
	kindFloat
)

// histSide is what the walk keeps of one side (negative, positive) of a
// histogram.
type histSide struct {
	spans     int // span messages
	spanLen   int // sum of their lengths
	totalLen  int // sum of their lengths and offsets (custom buckets)
	negOff    int // index of the first span with a negative offset, -1 if none
	negOffVal int32
	laterOff  int // index of the first span after the first with a negative offset, -1 if none
	laterVal  int32
	deltas    int    // integer buckets
	last      int64  // the running bucket count
	sum       uint64 // the integer buckets' total, as Prometheus adds it
	negDelta  int    // 1-based index of the first negative integer bucket, 0 if none
	negDeltaV int64
	counts    int // float buckets
	negCount  int // 1-based index of the first negative float bucket, 0 if none
	negCountV float64
}

// histState is what the walk keeps of a histogram: the last value of each
// scalar (as the reference decoder keeps it), counters and the first
// broken order-dependent rule of each repeated field.
type histState struct {
	schema             int32
	sum, zeroThreshold float64
	countKind          int
	countInt           uint64
	countFloat         float64
	zeroKind           int
	zeroInt            uint64
	zeroFloat          float64
	timestamp          int64
	side               [2]histSide // negative, positive
	custom             int         // custom_values
	customPrev         float64     // the last custom value
	customErr          string      // the first rule the custom values break
}

// histogram walks the Histogram message in d.buf[i:end] with the
// reference decoder's wire rules (a wire error is err), then checks its
// content: rule names the first broken rule, "" if none. ts is its
// timestamp.
func (d *rwDecoder) histogram(i, end int) (ts int64, rule string, err error) {
	h := histState{}
	h.side[0].negOff, h.side[0].laterOff = -1, -1
	h.side[1].negOff, h.side[1].laterOff = -1, -1
	for i < end {
		num, wt, next, err := d.tag(i, end, "Histogram")
		if err != nil {
			return 0, "", err
		}
		switch num {
		case 1, 4, 6, 14, 15: // count_int, schema, zero_count_int, reset_hint, timestamp
			if err := wantWire(wt, wtVarint, "Histogram field", i); err != nil {
				return 0, "", err
			}
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return 0, "", varintErr(e, next, "Histogram field")
			}
			switch num {
			case 1:
				h.countKind, h.countInt = kindInt, v
			case 4:
				h.schema = zigzag32(v)
			case 6:
				h.zeroKind, h.zeroInt = kindInt, v
			case 15:
				h.timestamp = int64(v)
			}
			i = e
		case 2, 3, 5, 7: // count_float, sum, zero_threshold, zero_count_float
			if err := wantWire(wt, wtFixed64, "Histogram field", i); err != nil {
				return 0, "", err
			}
			bits, e, err := d.fixed64(next, end, "Histogram field")
			if err != nil {
				return 0, "", err
			}
			f := math.Float64frombits(bits)
			switch num {
			case 2:
				h.countKind, h.countFloat = kindFloat, f
			case 3:
				h.sum = f
			case 5:
				h.zeroThreshold = f
			case 7:
				h.zeroKind, h.zeroFloat = kindFloat, f
			}
			i = e
		case 8, 11: // negative_spans, positive_spans
			if err := wantWire(wt, wtBytes, "Histogram spans", i); err != nil {
				return 0, "", err
			}
			s, e, err := d.lenDelim(next, end, "bucket span")
			if err != nil {
				return 0, "", err
			}
			off, length, err := d.bucketSpan(s, e)
			if err != nil {
				return 0, "", err
			}
			sd := &h.side[btoi(num == 11)]
			if off < 0 {
				if sd.negOff < 0 {
					sd.negOff, sd.negOffVal = sd.spans, off
				}
				if sd.spans > 0 && sd.laterOff < 0 {
					sd.laterOff, sd.laterVal = sd.spans, off
				}
			}
			sd.spans++
			sd.spanLen += int(length)
			sd.totalLen += int(length) + int(off)
			i = e
		case 9, 12: // negative_deltas, positive_deltas: sint64, packed or not
			sd := &h.side[btoi(num == 12)]
			i, err = d.repeated(wt, wtVarint, i, next, end, func(v uint64) {
				c := sd.last + int64(v>>1^-(v&1))
				if c < 0 && sd.negDelta == 0 {
					sd.negDelta, sd.negDeltaV = sd.deltas+1, c
				}
				sd.last = c
				sd.sum += uint64(c)
				sd.deltas++
			})
		case 10, 13: // negative_counts, positive_counts: double
			sd := &h.side[btoi(num == 13)]
			i, err = d.repeated(wt, wtFixed64, i, next, end, func(v uint64) {
				if c := math.Float64frombits(v); c < 0 && sd.negCount == 0 {
					sd.negCount, sd.negCountV = sd.counts+1, c
				}
				sd.counts++
			})
		case 16: // custom_values: double
			i, err = d.repeated(wt, wtFixed64, i, next, end, func(v uint64) {
				c := math.Float64frombits(v)
				switch {
				case h.customErr != "":
				case math.IsNaN(c):
					h.customErr = "custom buckets: bounds must not be NaN"
				case h.custom > 0 && c <= h.customPrev:
					h.customErr = fmt.Sprintf("custom buckets: bounds must be strictly increasing, %g after %g", c, h.customPrev)
				}
				h.customPrev = c
				h.custom++
			})
		case 17: // start_timestamp, 2.0 only
			if d.v2 {
				i, err = d.scalar(wt, wtVarint, i, next, end, "Histogram.start_timestamp")
			} else {
				i, err = d.skip(i, end)
			}
		default:
			i, err = d.skip(i, end)
		}
		if err != nil {
			return 0, "", err
		}
	}
	return h.timestamp, h.check(), nil
}

// zigzag32 decodes a sint32 as gogo does: the low 32 bits of the varint.
func zigzag32(v uint64) int32 {
	u := uint32(v)
	return int32(u>>1) ^ -int32(u&1)
}

// bucketSpan reads a BucketSpan: offset (sint32), length (uint32), the
// last of each kept.
func (d *rwDecoder) bucketSpan(i, end int) (off int32, length uint32, err error) {
	for i < end {
		num, wt, next, err := d.tag(i, end, "BucketSpan")
		if err != nil {
			return 0, 0, err
		}
		switch num {
		case 1, 2:
			if err := wantWire(wt, wtVarint, "BucketSpan field", i); err != nil {
				return 0, 0, err
			}
			v, e := varint(d.buf, next, end)
			if e < 0 {
				return 0, 0, varintErr(e, next, "BucketSpan field")
			}
			if num == 1 {
				off = zigzag32(v)
			} else {
				length = uint32(v)
			}
			i = e
		default:
			if i, err = d.skip(i, end); err != nil {
				return 0, 0, err
			}
		}
	}
	return off, length, nil
}

// Schemas Prometheus accepts as they are (model/histogram).
const (
	schemaMin    = -4
	schemaMax    = 8
	schemaCustom = -53
)

var sideName = [2]string{"negative side", "positive side"}

// check applies Prometheus' rules to a walked histogram: the first broken
// rule, or "".
func (h *histState) check() string {
	float := h.countKind == kindFloat
	neg, pos := &h.side[0], &h.side[1]
	if float {
		if h.zeroKind == kindInt || neg.deltas > 0 || pos.deltas > 0 {
			return "float histogram (count_float) with integer fields (zero_count_int, negative_deltas or positive_deltas)"
		}
	} else if h.zeroKind == kindFloat || neg.counts > 0 || pos.counts > 0 {
		return "integer histogram (count_int or no count) with float fields (zero_count_float, negative_counts or positive_counts)"
	}
	buckets := func(s *histSide) int {
		if float {
			return s.counts
		}
		return s.deltas
	}
	switch {
	case h.schema == schemaCustom:
		if h.customErr != "" {
			return h.customErr
		}
		if h.custom > 0 && math.IsInf(h.customPrev, 1) {
			return "custom buckets: the last bound must not be +Inf (it is implied)"
		}
		if pos.negOff >= 0 {
			return fmt.Sprintf("custom buckets: span %d has a negative offset %d", pos.negOff+1, pos.negOffVal)
		}
		if pos.spanLen != buckets(pos) {
			return fmt.Sprintf("custom buckets: spans need %d buckets, have %d", pos.spanLen, buckets(pos))
		}
		if h.custom+1 < pos.totalLen {
			return fmt.Sprintf("custom buckets: %d bounds do not cover a total span length of %d", h.custom, pos.totalLen)
		}
		if (float && h.zeroFloat != 0) || (!float && h.zeroInt != 0) {
			return "custom buckets: the zero count must be 0"
		}
		if h.zeroThreshold != 0 {
			return "custom buckets: the zero threshold must be 0"
		}
		if neg.spans > 0 {
			return "custom buckets: no negative spans allowed"
		}
		if buckets(neg) > 0 {
			return "custom buckets: no negative buckets allowed"
		}
	case h.schema >= schemaMin && h.schema <= schemaMax:
		for k := 1; k >= 0; k-- { // Prometheus checks the positive side first
			s := &h.side[k]
			if s.laterOff >= 0 {
				return fmt.Sprintf("%s: span %d has a negative offset %d", sideName[k], s.laterOff+1, s.laterVal)
			}
			if s.spanLen != buckets(s) {
				return fmt.Sprintf("%s: spans need %d buckets, have %d", sideName[k], s.spanLen, buckets(s))
			}
		}
		if r := h.negativeBucket(0, float); r != "" {
			return r
		}
		if float && h.zeroFloat < 0 {
			return fmt.Sprintf("the zero bucket has a negative count %g", h.zeroFloat)
		}
		if h.custom > 0 {
			return "custom_values with an exponential schema"
		}
	default:
		return fmt.Sprintf("schema %d out of range (-4 to 8, or -53 for custom buckets)", h.schema)
	}
	if float && h.countFloat < 0 {
		return fmt.Sprintf("negative count %g", h.countFloat)
	}
	if r := h.negativeBucket(1, float); r != "" {
		return r
	}
	if float {
		return ""
	}
	inBuckets := neg.sum + pos.sum + h.zeroInt
	if math.IsNaN(h.sum) {
		if inBuckets > h.countInt {
			return fmt.Sprintf("%d observations in the buckets, more than the count %d", inBuckets, h.countInt)
		}
	} else if inBuckets != h.countInt {
		return fmt.Sprintf("%d observations in the buckets, but the count is %d (must be equal unless sum is NaN)", inBuckets, h.countInt)
	}
	return ""
}

// negativeBucket names the first negative bucket of side k, or "".
func (h *histState) negativeBucket(k int, float bool) string {
	s := &h.side[k]
	if float && s.negCount > 0 {
		return fmt.Sprintf("%s: bucket %d has a negative count %g", sideName[k], s.negCount, s.negCountV)
	}
	if !float && s.negDelta > 0 {
		return fmt.Sprintf("%s: bucket %d has a negative count %d", sideName[k], s.negDelta, s.negDeltaV)
	}
	return ""
}
