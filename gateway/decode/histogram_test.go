package decode

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
)

// refHistogramError is the reference verdict on a native histogram: what
// Prometheus' remote write handler does with it (prompb's ToIntHistogram
// or ToFloatHistogram, then Validate), plus the two rules validateHistogram
// adds: no fields of the other kind, and no schema Prometheus would have
// to reduce (9 to 52).
func refHistogramError(h *prompb.Histogram) error {
	float := h.IsFloatHistogram()
	_, zi := h.ZeroCount.(*prompb.Histogram_ZeroCountInt)
	_, zf := h.ZeroCount.(*prompb.Histogram_ZeroCountFloat)
	if float && (zi || len(h.NegativeDeltas) > 0 || len(h.PositiveDeltas) > 0) {
		return errors.New("float histogram with integer fields")
	}
	if !float && (zf || len(h.NegativeCounts) > 0 || len(h.PositiveCounts) > 0) {
		return errors.New("integer histogram with float fields")
	}
	if !histogram.IsValidSchema(h.Schema) {
		return histogram.InvalidSchemaError(h.Schema)
	}
	if float {
		return h.ToFloatHistogram().Validate()
	}
	return h.ToIntHistogram().Validate()
}

// refHistogramErrorV2 is refHistogramError for a 2.0 histogram: the same
// message but for start_timestamp.
func refHistogramErrorV2(h *writev2.Histogram) error {
	data, err := h.Marshal()
	if err != nil {
		panic(err)
	}
	var h1 prompb.Histogram
	if err := h1.Unmarshal(data); err != nil {
		panic(err)
	}
	return refHistogramError(&h1)
}

// genSpans returns n spans (the first offset may be negative unless
// custom) and their total length.
func genSpans(r *rand.Rand, custom bool) ([]prompb.BucketSpan, int) {
	var spans []prompb.BucketSpan
	total := 0
	for i := range r.IntN(3) {
		off := int32(r.IntN(3))
		if i == 0 && !custom {
			off = int32(r.IntN(7)) - 3
		}
		l := uint32(r.IntN(4))
		spans = append(spans, prompb.BucketSpan{Offset: off, Length: l})
		total += int(l)
	}
	return spans, total
}

// genHistogram is a random native histogram, valid for Prometheus unless
// broken (then with one random rule broken, or none: the reference decides).
func genHistogram(r *rand.Rand, broken bool) prompb.Histogram {
	h := prompb.Histogram{Sum: float64(r.IntN(1000)), Timestamp: r.Int64N(2e12) - 1e12, ResetHint: prompb.Histogram_ResetHint(r.IntN(4))}
	if r.IntN(10) == 0 {
		h.Sum = math.NaN()
	}
	custom := r.IntN(4) == 0
	if custom {
		h.Schema = -53
	} else {
		h.Schema = int32(r.IntN(13)) - 4
		h.ZeroThreshold = []float64{0, 1e-128, 0.001}[r.IntN(3)]
	}
	float := r.IntN(2) == 0
	var count uint64
	var fcount float64
	sides := []*[]prompb.BucketSpan{&h.PositiveSpans}
	if !custom {
		sides = append(sides, &h.NegativeSpans)
	}
	for k, spans := range sides {
		var n int
		*spans, n = genSpans(r, custom)
		var last int64
		for range n {
			c := int64(r.IntN(5))
			if float {
				f := float64(c) + r.Float64()
				fcount += f
				if k == 0 {
					h.PositiveCounts = append(h.PositiveCounts, f)
				} else {
					h.NegativeCounts = append(h.NegativeCounts, f)
				}
			} else {
				count += uint64(c)
				if k == 0 {
					h.PositiveDeltas = append(h.PositiveDeltas, c-last)
				} else {
					h.NegativeDeltas = append(h.NegativeDeltas, c-last)
				}
				last = c
			}
		}
	}
	if custom {
		total := 0
		for _, s := range h.PositiveSpans {
			total += int(s.Offset) + int(s.Length)
		}
		b := -1.0
		for range max(total-1, 0) + r.IntN(2) {
			b += 0.5 + r.Float64()
			h.CustomValues = append(h.CustomValues, b)
		}
	}
	switch {
	case float:
		z := 0.0
		if !custom {
			z = float64(r.IntN(3))
		}
		h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: z}
		h.Count = &prompb.Histogram_CountFloat{CountFloat: fcount + z}
	default:
		z := uint64(0)
		if !custom {
			z = uint64(r.IntN(3))
		}
		h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: z}
		c := count + z
		if math.IsNaN(h.Sum) {
			c += uint64(r.IntN(2))
		}
		h.Count = &prompb.Histogram_CountInt{CountInt: c}
	}
	if !broken {
		return h
	}
	switch r.IntN(14) {
	case 0:
		h.Schema = int32(r.IntN(120)) - 60
	case 1: // the other kind's fields
		if float {
			h.PositiveDeltas = append(h.PositiveDeltas, 0)
		} else {
			h.PositiveCounts = append(h.PositiveCounts, 0)
		}
	case 2:
		if float {
			h.ZeroCount = &prompb.Histogram_ZeroCountInt{}
		} else {
			h.ZeroCount = &prompb.Histogram_ZeroCountFloat{}
		}
	case 3:
		h.PositiveSpans = append(h.PositiveSpans, prompb.BucketSpan{Offset: int32(r.IntN(5)) - 2, Length: uint32(r.IntN(2))})
	case 4:
		h.NegativeSpans = append(h.NegativeSpans, prompb.BucketSpan{Offset: int32(r.IntN(5)) - 2, Length: uint32(r.IntN(2))})
	case 5:
		if float {
			h.PositiveCounts = append(h.PositiveCounts, -r.Float64())
			h.PositiveSpans = append(h.PositiveSpans, prompb.BucketSpan{Length: 1})
		} else {
			h.NegativeDeltas = append(h.NegativeDeltas, -int64(r.IntN(3))-1)
			h.NegativeSpans = append(h.NegativeSpans, prompb.BucketSpan{Length: 1})
		}
	case 6:
		if float {
			h.Count = &prompb.Histogram_CountFloat{CountFloat: -1}
		} else {
			h.Count = &prompb.Histogram_CountInt{CountInt: h.GetCountInt() + uint64(r.IntN(3)) - 1}
		}
	case 7:
		h.CustomValues = append(h.CustomValues, []float64{math.NaN(), math.Inf(1), -5, 1e9}[r.IntN(4)])
	case 8:
		h.CustomValues = append([]float64{5}, h.CustomValues...)
	case 9:
		h.ZeroThreshold = []float64{0, 1, math.NaN(), -1}[r.IntN(4)]
	case 10:
		if float {
			h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: []float64{-1, 1, math.NaN()}[r.IntN(3)]}
		} else {
			h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}
		}
	case 11:
		h.Count = nil
	case 12:
		h.Sum = math.NaN()
	case 13:
		if len(h.CustomValues) > 0 {
			h.CustomValues = h.CustomValues[:len(h.CustomValues)-1]
		}
	}
	return h
}

func marshalHistogram(t testing.TB, h *prompb.Histogram) []byte {
	data, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// histogramV2 is h as a 2.0 histogram with start timestamp st.
func histogramV2(h *prompb.Histogram, st int64) writev2.Histogram {
	data, err := h.Marshal()
	if err != nil {
		panic(err)
	}
	var h2 writev2.Histogram
	if err := h2.Unmarshal(data); err != nil {
		panic(err)
	}
	h2.StartTimestamp = st
	return h2
}

// checkHistogramAgrees holds validateHistogram to the reference on raw.
func checkHistogramAgrees(t testing.TB, raw []byte, v2 bool) {
	var refErr error
	if v2 {
		var h writev2.Histogram
		if refErr = h.Unmarshal(raw); refErr == nil {
			refErr = refHistogramErrorV2(&h)
		}
	} else {
		var h prompb.Histogram
		if refErr = h.Unmarshal(raw); refErr == nil {
			refErr = refHistogramError(&h)
		}
	}
	err := validateHistogram(raw, v2)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("v2=%v disagreement on %x: reference %v, ours %v", v2, raw, refErr, err)
	}
	if err != nil && StatusOf(err) != 400 {
		t.Fatalf("%v is not a 400", err)
	}
}

func TestValidateHistogramRules(t *testing.T) {
	intH := func(mod func(h *prompb.Histogram)) prompb.Histogram {
		h := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 6}, ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
			Sum: 10, Schema: 3, ZeroThreshold: 1e-128,
			NegativeSpans: []prompb.BucketSpan{{Offset: -2, Length: 1}}, NegativeDeltas: []int64{1},
			PositiveSpans: []prompb.BucketSpan{{Offset: -1, Length: 2}, {Offset: 3, Length: 1}}, PositiveDeltas: []int64{2, -1, 0}}
		mod(&h)
		return h
	}
	floatH := func(mod func(h *prompb.Histogram)) prompb.Histogram {
		h := prompb.Histogram{Count: &prompb.Histogram_CountFloat{CountFloat: 6.5}, ZeroCount: &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 0.5},
			Sum: 10, Schema: -4,
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveCounts: []float64{2, 4}}
		mod(&h)
		return h
	}
	customH := func(mod func(h *prompb.Histogram)) prompb.Histogram {
		h := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 6}, Sum: 3, Schema: -53,
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveDeltas: []int64{1, 1, 1},
			CustomValues: []float64{0.1, 0.5, 1}}
		mod(&h)
		return h
	}
	none := func(*prompb.Histogram) {}
	for _, c := range []struct {
		name string
		h    prompb.Histogram
		msg  string // "" if valid
	}{
		{"integer", intH(none), ""},
		{"float", floatH(none), ""},
		{"custom buckets", customH(none), ""},
		{"custom buckets, float", customH(func(h *prompb.Histogram) {
			h.Count, h.PositiveDeltas, h.PositiveCounts = &prompb.Histogram_CountFloat{CountFloat: 1}, nil, []float64{0.5, 0, 0.5}
		}), ""},
		{"empty", prompb.Histogram{}, ""},
		{"count NaN-sum at least the buckets", intH(func(h *prompb.Histogram) { h.Sum, h.Count = math.NaN(), &prompb.Histogram_CountInt{CountInt: 7} }), ""},
		{"all NaN float", floatH(func(h *prompb.Histogram) {
			h.Count, h.ZeroCount, h.PositiveCounts = &prompb.Histogram_CountFloat{CountFloat: math.NaN()}, &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: math.NaN()}, []float64{math.NaN(), 1}
		}), ""},
		{"negative zero threshold (as Prometheus)", intH(func(h *prompb.Histogram) { h.ZeroThreshold = -1 }), ""},
		{"schema 8", intH(func(h *prompb.Histogram) { h.Schema = 8 }), ""},

		{"schema 9", intH(func(h *prompb.Histogram) { h.Schema = 9 }), "schema 9 out of range"},
		{"schema -5", intH(func(h *prompb.Histogram) { h.Schema = -5 }), "schema -5 out of range"},
		{"integer with float counts", intH(func(h *prompb.Histogram) { h.PositiveCounts = []float64{1} }), "integer histogram (count_int or no count) with float fields"},
		{"integer with float zero count", intH(func(h *prompb.Histogram) { h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 1} }), "integer histogram"},
		{"no count with float counts", floatH(func(h *prompb.Histogram) { h.Count = nil }), "integer histogram (count_int or no count)"},
		{"float with deltas", floatH(func(h *prompb.Histogram) { h.NegativeDeltas = []int64{0} }), "float histogram (count_float) with integer fields"},
		{"float with integer zero count", floatH(func(h *prompb.Histogram) { h.ZeroCount = &prompb.Histogram_ZeroCountInt{} }), "float histogram"},
		{"later span with negative offset", intH(func(h *prompb.Histogram) { h.PositiveSpans[1].Offset = -1 }), "positive side: span 2 has a negative offset -1"},
		{"spans and buckets mismatch", intH(func(h *prompb.Histogram) { h.PositiveSpans[1].Length = 2 }), "positive side: spans need 4 buckets, have 3"},
		{"negative spans and buckets mismatch", intH(func(h *prompb.Histogram) { h.NegativeDeltas = nil }), "negative side: spans need 1 buckets, have 0"},
		{"negative bucket", intH(func(h *prompb.Histogram) { h.PositiveDeltas[2] = -2 }), "positive side: bucket 3 has a negative count -1"},
		{"negative bucket, negative side", intH(func(h *prompb.Histogram) { h.NegativeDeltas[0] = -1 }), "negative side: bucket 1 has a negative count -1"},
		{"negative float bucket", floatH(func(h *prompb.Histogram) { h.PositiveCounts[1] = -4 }), "positive side: bucket 2 has a negative count -4"},
		{"negative float zero bucket", floatH(func(h *prompb.Histogram) { h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: -1} }), "zero bucket has a negative count -1"},
		{"negative float count", floatH(func(h *prompb.Histogram) { h.Count = &prompb.Histogram_CountFloat{CountFloat: -1} }), "negative count -1"},
		{"count mismatch", intH(func(h *prompb.Histogram) { h.Count = &prompb.Histogram_CountInt{CountInt: 7} }), "6 observations in the buckets, but the count is 7"},
		{"count short, NaN sum", intH(func(h *prompb.Histogram) { h.Sum, h.Count = math.NaN(), &prompb.Histogram_CountInt{CountInt: 5} }), "6 observations in the buckets, more than the count 5"},
		{"exponential with custom values", intH(func(h *prompb.Histogram) { h.CustomValues = []float64{1} }), "custom_values with an exponential schema"},
		{"custom NaN bound", customH(func(h *prompb.Histogram) { h.CustomValues[1] = math.NaN() }), "bounds must not be NaN"},
		{"custom bounds not increasing", customH(func(h *prompb.Histogram) { h.CustomValues[2] = 0.5 }), "strictly increasing, 0.5 after 0.5"},
		{"custom +Inf bound", customH(func(h *prompb.Histogram) { h.CustomValues[2] = math.Inf(1) }), "last bound must not be +Inf"},
		{"custom too few bounds", customH(func(h *prompb.Histogram) { h.CustomValues = h.CustomValues[:2] }), "2 bounds do not cover a total span length of 4"},
		{"custom negative first offset", customH(func(h *prompb.Histogram) { h.PositiveSpans[0].Offset = -1 }), "custom buckets: span 1 has a negative offset -1"},
		{"custom spans mismatch", customH(func(h *prompb.Histogram) { h.PositiveDeltas = h.PositiveDeltas[:2] }), "custom buckets: spans need 3 buckets, have 2"},
		{"custom zero count", customH(func(h *prompb.Histogram) { h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1} }), "zero count must be 0"},
		{"custom zero threshold", customH(func(h *prompb.Histogram) { h.ZeroThreshold = 0.1 }), "zero threshold must be 0"},
		{"custom negative spans", customH(func(h *prompb.Histogram) { h.NegativeSpans = []prompb.BucketSpan{{}} }), "no negative spans"},
		{"custom negative buckets", customH(func(h *prompb.Histogram) { h.NegativeDeltas = []int64{0} }), "no negative buckets"},
		{"custom count mismatch", customH(func(h *prompb.Histogram) { h.Count = &prompb.Histogram_CountInt{CountInt: 4} }), "6 observations in the buckets, but the count is 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := marshalHistogram(t, &c.h)
			if refErr := refHistogramError(&c.h); (refErr == nil) != (c.msg == "") {
				t.Fatalf("reference: %v", refErr)
			}
			for _, v2 := range []bool{false, true} {
				err := validateHistogram(raw, v2)
				if c.msg == "" {
					if err != nil {
						t.Fatalf("v2=%v: %v", v2, err)
					}
					continue
				}
				wantError(t, err, 400, c.msg)
			}
			checkHistogramAgrees(t, raw, false)
		})
	}
}

// The reference keeps the last of a repeated scalar or oneof, and reads
// repeated fields packed, unpacked or split: so does the walk.
func TestValidateHistogramWireForms(t *testing.T) {
	var raw []byte
	raw = append(raw, 2<<3|wtFixed64, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f) // count_float 1, replaced by:
	raw = append(raw, 1<<3|wtVarint, 3)                             // count_int 3
	raw = append(raw, 4<<3|wtVarint, 0x0d)                          // schema -7, replaced by:
	raw = append(raw, 4<<3|wtVarint, 0x04)                          // schema 2
	raw = lenField(raw, 11, []byte{1<<3 | wtVarint, 3, 2<<3 | wtVarint, 1, 1<<3 | wtVarint, 0, 2<<3 | wtVarint, 2})
	raw = lenField(raw, 12, []byte{2})            // packed delta 1
	raw = append(raw, 12<<3|wtVarint, 2)          // unpacked delta 1: counts 1, 2
	raw = append(raw, 15<<3|wtVarint, 0x80, 0x01) // timestamp 128
	d := rwDecoder{buf: raw}
	ts, rule, err := d.histogram(0, len(raw))
	if err != nil || rule != "" || ts != 128 {
		t.Fatalf("got ts %d, rule %q, err %v", ts, rule, err)
	}
	checkHistogramAgrees(t, raw, false)
	checkHistogramAgrees(t, raw, true)
	// Field 17 is 2.0's start_timestamp (a varint), unknown to 1.0.
	bytes17 := lenField(slices.Clone(raw), 17, []byte{1})
	if validateHistogram(bytes17, false) != nil {
		t.Fatal("1.0 must skip field 17")
	}
	wantError(t, validateHistogram(bytes17, true), 400, "wrong wire type 2 for Histogram.start_timestamp")
	checkHistogramAgrees(t, bytes17, false)
	checkHistogramAgrees(t, bytes17, true)
	// Malformed.
	wantError(t, validateHistogram([]byte{0x52, 0x01, 0x00}, false), 400, "truncated packed buckets")
	wantError(t, validateHistogram([]byte{0x5a, 0x02, 0x08}, false), 400, "truncated")
}

func TestValidateHistogramDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	valid := 0
	for range 5000 {
		h := genHistogram(r, r.IntN(2) == 0)
		raw := marshalHistogram(t, &h)
		if refHistogramError(&h) == nil {
			valid++
		}
		checkHistogramAgrees(t, raw, false)
		h2 := histogramV2(&h, r.Int64N(3))
		raw2, err := h2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		checkHistogramAgrees(t, raw2, true)
		for range 3 {
			checkHistogramAgrees(t, mutate(r, raw), false)
			checkHistogramAgrees(t, mutate(r, raw2), true)
		}
	}
	if valid < 2500 || valid > 4900 {
		t.Fatalf("%d of 5000 generated histograms valid: the generator lost its mix", valid)
	}
}

// Absurd declared lengths cost nothing: spans claiming 2^32-1 buckets
// each, and millions of deltas, are counted, not allocated.
func TestValidateHistogramAllocatesNothing(t *testing.T) {
	var h []byte
	for range 1000 {
		h = lenField(h, 11, []byte{0x08, 0x00, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f})
	}
	h = lenField(h, 12, make([]byte, 1<<20))
	h = lenField(h, 16, make([]byte, 1<<18))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	d := rwDecoder{buf: h}
	if _, rule, err := d.histogram(0, len(h)); err != nil || rule == "" {
		t.Fatalf("rule %q, err %v", rule, err)
	}
	runtime.ReadMemStats(&ms)
	if n := ms.TotalAlloc - before; n > 4096 { // the rule's message
		t.Fatalf("%d bytes allocated to validate %d bytes", n, len(h))
	}
}

func FuzzValidateHistogram(f *testing.F) {
	r := rand.New(rand.NewPCG(61, 62))
	for range 20 {
		h := genHistogram(r, r.IntN(2) == 0)
		f.Add(marshalHistogram(f, &h), r.IntN(2) == 0)
	}
	f.Fuzz(func(t *testing.T, raw []byte, v2 bool) {
		checkHistogramAgrees(t, raw, v2)
	})
}

// nativeWriteRequest is what Prometheus sends for native histograms:
// series series of labels labels (realistic values, one varying), each
// with one integer histogram of buckets buckets (schema 3) and an exemplar
// carrying a trace and span ID, and the families' metadata.
func nativeWriteRequest(series, labels, buckets int) *prompb.WriteRequest {
	names := []string{"code", "component", "container", "endpoint", "group", "handler", "instance", "job", "namespace", "node",
		"pod", "prometheus", "resource", "scope", "service", "subresource", "verb", "version", "zone", "zz"}
	wr := &prompb.WriteRequest{}
	for f := range 5 {
		wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_HISTOGRAM,
			MetricFamilyName: fmt.Sprintf("apiserver_request_duration_seconds_%d", f), Help: "Response latency distribution in seconds for each verb, resource and subresource.", Unit: "seconds"})
	}
	for s := range series {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: fmt.Sprintf("apiserver_request_duration_seconds_%d", s%5)}}}
		for l := range labels {
			v := "kube-apiserver-ip-10-0-140-93.ec2.internal"
			if l == 1 {
				v = fmt.Sprintf("%s-%d", v, s)
			}
			ts.Labels = append(ts.Labels, prompb.Label{Name: names[l%len(names)], Value: v})
		}
		h := &histogram.Histogram{Schema: 3, ZeroThreshold: 1e-128, Sum: 1234.5678 + float64(s),
			PositiveSpans: []histogram.Span{{Offset: -20, Length: uint32(buckets)}}}
		for b := range buckets {
			c := uint64(100 + 37*b%90)
			h.Count += c
			h.PositiveBuckets = append(h.PositiveBuckets, int64(c))
		}
		for b := len(h.PositiveBuckets) - 1; b > 0; b-- {
			h.PositiveBuckets[b] -= h.PositiveBuckets[b-1]
		}
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(1700000000000, h)}
		ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("%032x", s)}, {Name: "span_id", Value: fmt.Sprintf("%016x", s)}},
			Value: 0.25, Timestamp: 1700000000000}}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	return wr
}

// TestHonestAmplificationNative measures the batch bytes charged per
// decoded byte for native histograms with exemplars and metadata, in both
// versions, and checks they stay under the multiples alone.
func TestHonestAmplificationNative(t *testing.T) {
	for _, c := range []struct{ labels, buckets int }{{3, 0}, {3, 8}, {10, 20}, {20, 40}} {
		wr := nativeWriteRequest(250, c.labels, c.buckets)
		v1 := mustMarshal(t, wr)
		st, err := UnmarshalWriteRequest(v1, &batch.Batch{}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("1.0 native histograms %2d labels %2d buckets: %7d decoded bytes, %5.2f per decoded byte", c.labels, c.buckets, len(v1), float64(st.BatchBytes)/float64(len(v1)))
		if st.BatchBytes > remoteWritePerByte*len(v1) || st.Histograms != 250 || st.Exemplars != 250 || st.Metadata != 5 {
			t.Errorf("1.0: %+v over the multiple %d for %d bytes", st, remoteWritePerByte, len(v1))
		}
		req := toV2(wr)
		st2 := writev2.NewSymbolTable()
		for _, s := range req.Symbols {
			st2.Symbolize(s)
		}
		for i, ts := range wr.Timeseries {
			h := histogramV2(&ts.Histograms[0], 1699999000000)
			req.Timeseries[i].Histograms = []writev2.Histogram{h}
			e := ts.Exemplars[0]
			req.Timeseries[i].Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st2.Symbolize(e.Labels[0].Name), st2.Symbolize(e.Labels[0].Value),
				st2.Symbolize(e.Labels[1].Name), st2.Symbolize(e.Labels[1].Value)}, Value: e.Value, Timestamp: e.Timestamp}}
			req.Timeseries[i].Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM,
				HelpRef: st2.Symbolize(wr.Metadata[0].Help), UnitRef: st2.Symbolize("seconds")}
		}
		req.Symbols = st2.Symbols()
		v2 := marshalV2(t, req)
		stV2, err := UnmarshalWriteRequestV2(v2, &batch.Batch{}, Limits{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("2.0 native histograms %2d labels %2d buckets: %7d decoded bytes, %5.2f per decoded byte", c.labels, c.buckets, len(v2), float64(stV2.BatchBytes)/float64(len(v2)))
		if stV2.BatchBytes > remoteWriteV2PerByte*len(v2) || stV2.Histograms != 250 || stV2.Exemplars != 250 || stV2.Metadata != 5 {
			t.Errorf("2.0: %+v over the multiple %d for %d bytes", stV2, remoteWriteV2PerByte, len(v2))
		}
		checkWriteRequestAgrees(t, v1)
		checkWriteRequestV2Agrees(t, v2)
	}
}
