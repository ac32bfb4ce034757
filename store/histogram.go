package store

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"google.golang.org/protobuf/encoding/protowire"
)

// errRawHistogram marks a batch.Histogram whose Raw does not decode; the
// sample is refused as invalid (400), never stored.
var errRawHistogram = errors.New("native histogram does not decode")

// rawHistogram holds the fields of one remote write prometheus.Histogram
// message (io.prometheus.write.v2.Histogram is the same with a
// start_timestamp, field 17, which is ignored).
type rawHistogram struct {
	countInt, zeroCountInt     uint64
	countFloat, zeroCountFloat float64
	floatCount                 bool // count is count_float (field 2)
	floatZero                  bool // zero count is zero_count_float (7)
	sum, zeroThreshold         float64
	schema                     int32
	resetHint                  int32
	negSpans, posSpans         []histogram.Span
	negDeltas, posDeltas       []int64
	negCounts, posCounts       []float64
	customValues               []float64
}

// decodeHistogram turns the protobuf encoding of a remote write
// Histogram into the TSDB's integer histogram, or its float histogram when
// the count is a float (count_float), as Prometheus' remote write receiver
// does. Fields of the other kind are ignored, as there. The result owns
// its memory (the TSDB keeps it). Exponential schemas above 8 that
// Prometheus reserves for the future (up to 52) are reduced to 8, as its
// receiver does; other rules (spans against buckets, counts) are the
// TSDB's Validate's, which AppendHistogram applies.
func decodeHistogram(raw []byte) (*histogram.Histogram, *histogram.FloatHistogram, error) {
	var r rawHistogram
	if err := r.unmarshal(raw); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errRawHistogram, err)
	}
	var (
		h  *histogram.Histogram
		fh *histogram.FloatHistogram
	)
	if r.floatCount {
		fh = &histogram.FloatHistogram{
			CounterResetHint: histogram.CounterResetHint(r.resetHint),
			Schema:           r.schema,
			ZeroThreshold:    r.zeroThreshold,
			Count:            r.countFloat,
			Sum:              r.sum,
			PositiveSpans:    r.posSpans,
			PositiveBuckets:  r.posCounts,
			NegativeSpans:    r.negSpans,
			NegativeBuckets:  r.negCounts,
			CustomValues:     r.customValues,
		}
		if r.floatZero {
			fh.ZeroCount = r.zeroCountFloat
		}
	} else {
		h = &histogram.Histogram{
			CounterResetHint: histogram.CounterResetHint(r.resetHint),
			Schema:           r.schema,
			ZeroThreshold:    r.zeroThreshold,
			Count:            r.countInt,
			Sum:              r.sum,
			PositiveSpans:    r.posSpans,
			PositiveBuckets:  r.posDeltas,
			NegativeSpans:    r.negSpans,
			NegativeBuckets:  r.negDeltas,
			CustomValues:     r.customValues,
		}
		if !r.floatZero {
			h.ZeroCount = r.zeroCountInt
		}
	}
	if r.schema > histogram.ExponentialSchemaMax && histogram.IsExponentialSchemaReserved(r.schema) {
		var err error
		if h != nil {
			err = h.ReduceResolution(histogram.ExponentialSchemaMax)
		} else {
			err = fh.ReduceResolution(histogram.ExponentialSchemaMax)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return h, fh, nil
}

// unmarshal reads a Histogram message. Repeated fields accept packed and
// unpacked encodings, the last of a oneof or scalar wins, unknown fields
// are skipped, as protobuf decoders do; a known field with the wrong wire
// type or a truncated value is an error. It allocates no more than the
// message holds elements.
func (r *rawHistogram) unmarshal(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType: // count_int
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.countInt, r.floatCount, b = v, false, b[n:]
		case num == 2 && typ == protowire.Fixed64Type: // count_float
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.countFloat, r.floatCount, b = math.Float64frombits(v), true, b[n:]
		case num == 3 && typ == protowire.Fixed64Type: // sum
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.sum, b = math.Float64frombits(v), b[n:]
		case num == 4 && typ == protowire.VarintType: // schema, sint32
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.schema, b = int32(protowire.DecodeZigZag(v&math.MaxUint32)), b[n:]
		case num == 5 && typ == protowire.Fixed64Type: // zero_threshold
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.zeroThreshold, b = math.Float64frombits(v), b[n:]
		case num == 6 && typ == protowire.VarintType: // zero_count_int
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.zeroCountInt, r.floatZero, b = v, false, b[n:]
		case num == 7 && typ == protowire.Fixed64Type: // zero_count_float
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.zeroCountFloat, r.floatZero, b = math.Float64frombits(v), true, b[n:]
		case (num == 8 || num == 11) && typ == protowire.BytesType: // negative_spans, positive_spans
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			sp, err := unmarshalSpan(v)
			if err != nil {
				return err
			}
			if num == 8 {
				r.negSpans = append(r.negSpans, sp)
			} else {
				r.posSpans = append(r.posSpans, sp)
			}
			b = b[n:]
		case num == 9 || num == 12: // negative_deltas, positive_deltas: sint64
			dst := &r.negDeltas
			if num == 12 {
				dst = &r.posDeltas
			}
			n, err := consumeVarints(b, typ, dst)
			if err != nil {
				return err
			}
			b = b[n:]
		case num == 10 || num == 13 || num == 16: // negative_counts, positive_counts, custom_values: double
			dst := &r.negCounts
			switch num {
			case 13:
				dst = &r.posCounts
			case 16:
				dst = &r.customValues
			}
			n, err := consumeDoubles(b, typ, dst)
			if err != nil {
				return err
			}
			b = b[n:]
		case num == 14 && typ == protowire.VarintType: // reset_hint
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.resetHint, b = int32(v), b[n:]
		case num == 15 && typ == protowire.VarintType: // timestamp: the batch carries it
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		default: // start_timestamp (17), unknown fields
			if num >= 1 && num <= 16 {
				return fmt.Errorf("wrong wire type %d for field %d", typ, num)
			}
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if r.resetHint < 0 || r.resetHint > int32(histogram.GaugeType) {
		return fmt.Errorf("unknown reset hint %d", r.resetHint)
	}
	return nil
}

func unmarshalSpan(b []byte) (histogram.Span, error) {
	var sp histogram.Span
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return sp, protowire.ParseError(n)
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ != protowire.VarintType {
			return sp, fmt.Errorf("wrong wire type %d for bucket span field %d", typ, num)
		}
		if num != 1 && num != 2 {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return sp, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return sp, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 {
			sp.Offset = int32(protowire.DecodeZigZag(v & math.MaxUint32)) // sint32
		} else {
			sp.Length = uint32(v)
		}
	}
	return sp, nil
}

// consumeVarints appends one zigzag varint (unpacked) or a packed run of
// them to dst and returns the bytes consumed.
func consumeVarints(b []byte, typ protowire.Type, dst *[]int64) (int, error) {
	switch typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		*dst = append(*dst, protowire.DecodeZigZag(v))
		return n, nil
	case protowire.BytesType:
		run, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		*dst = slices.Grow(*dst, countVarints(run))
		for len(run) > 0 {
			v, m := protowire.ConsumeVarint(run)
			if m < 0 {
				return 0, protowire.ParseError(m)
			}
			*dst = append(*dst, protowire.DecodeZigZag(v))
			run = run[m:]
		}
		return n, nil
	}
	return 0, fmt.Errorf("wrong wire type %d for bucket deltas", typ)
}

// countVarints counts the varints of a packed run (bytes without the
// continuation bit).
func countVarints(b []byte) int {
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n
}

// consumeDoubles is consumeVarints for doubles.
func consumeDoubles(b []byte, typ protowire.Type, dst *[]float64) (int, error) {
	switch typ {
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		*dst = append(*dst, math.Float64frombits(v))
		return n, nil
	case protowire.BytesType:
		run, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		if len(run)%8 != 0 {
			return 0, fmt.Errorf("packed doubles of %d bytes", len(run))
		}
		*dst = slices.Grow(*dst, len(run)/8)
		for ; len(run) > 0; run = run[8:] {
			v, _ := protowire.ConsumeFixed64(run)
			*dst = append(*dst, math.Float64frombits(v))
		}
		return n, nil
	}
	return 0, fmt.Errorf("wrong wire type %d for bucket counts", typ)
}
