package decode

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/telegate/telegate/batch"
)

// ---- remote write ----

func genWriteRequest(r *rand.Rand) *prompb.WriteRequest {
	wr := &prompb.WriteRequest{}
	for range r.IntN(6) {
		ts := prompb.TimeSeries{}
		for range r.IntN(5) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: randStr(r), Value: randStr(r)})
		}
		for range r.IntN(4) {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: randFloat(r), Timestamp: r.Int64() - r.Int64()})
		}
		for range r.IntN(2) {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{
				Labels: []prompb.Label{{Name: "trace_id", Value: randStr(r)}}, Value: randFloat(r), Timestamp: r.Int64N(1e12),
			})
		}
		for range r.IntN(3) {
			// One broken histogram in 16 keeps most requests valid.
			ts.Histograms = append(ts.Histograms, genHistogram(r, r.IntN(16) == 0))
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	for range r.IntN(4) {
		wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_MetricType(r.IntN(10)),
			MetricFamilyName: []string{"", "a", "b", randStr(r)}[r.IntN(4)], Help: randStr(r), Unit: "seconds"})
	}
	return wr
}

// wantMetadata is the metadata a decoder makes of the reference's: one
// entry per family (the first), none without a family, a type outside the
// enum unknown.
func wantMetadata(md []prompb.MetricMetadata) []batch.Metadata {
	var out []batch.Metadata
	seen := map[string]bool{}
	for _, m := range md {
		if m.MetricFamilyName == "" || seen[m.MetricFamilyName] {
			continue
		}
		seen[m.MetricFamilyName] = true
		typ := batch.MetricType(m.Type)
		if m.Type < 0 || m.Type > 7 {
			typ = 0
		}
		out = append(out, batch.Metadata{Family: m.MetricFamilyName, Type: typ, Help: m.Help, Unit: m.Unit})
	}
	return out
}

// sameHistograms compares pushed histograms with the reference's: the
// timestamps, and Raw decoded by the reference re-encodes as the
// reference's own (unknown fields kept).
func sameHistograms(t testing.TB, got []batch.Histogram, want []prompb.Histogram) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d histograms, want %d", len(got), len(want))
	}
	for i := range want {
		var h prompb.Histogram
		if err := h.Unmarshal(got[i].Raw); err != nil {
			t.Fatalf("histogram %d: Raw does not decode: %v", i, err)
		}
		a, _ := h.Marshal()
		b, _ := want[i].Marshal()
		if got[i].Timestamp != want[i].Timestamp || !bytes.Equal(a, b) {
			t.Fatalf("histogram %d: got ts %d %x, want ts %d %x", i, got[i].Timestamp, a, want[i].Timestamp, b)
		}
	}
}

// sameExemplar compares a pushed exemplar with labels, value and ts.
func sameExemplar(t testing.TB, got batch.Exemplar, labels []batch.Label, v float64, ts int64) {
	t.Helper()
	if !slices.Equal(got.Labels, labels) || math.Float64bits(got.Value) != math.Float64bits(v) || got.Timestamp != ts {
		t.Fatalf("exemplar: got %+v, want %v %v %d", got, labels, v, ts)
	}
}

// sameSeriesContent checks two batches' series carry the same samples,
// histograms and exemplars (labels aside).
func sameSeriesContent(t testing.TB, got, want *batch.Batch) {
	t.Helper()
	sameSample := func(a, b batch.Sample) bool {
		return a.Timestamp == b.Timestamp && math.Float64bits(a.Value) == math.Float64bits(b.Value)
	}
	sameHist := func(a, b batch.Histogram) bool { return a.Timestamp == b.Timestamp && bytes.Equal(a.Raw, b.Raw) }
	sameEx := func(a, b batch.Exemplar) bool {
		return slices.Equal(a.Labels, b.Labels) && a.Timestamp == b.Timestamp && math.Float64bits(a.Value) == math.Float64bits(b.Value)
	}
	for i, s := range want.Series {
		g := got.Series[i]
		if !slices.EqualFunc(g.Samples, s.Samples, sameSample) || !slices.EqualFunc(g.Histograms, s.Histograms, sameHist) ||
			!slices.EqualFunc(g.Exemplars, s.Exemplars, sameEx) {
			t.Fatalf("series %d: got %+v, want %+v", i, g, s)
		}
	}
	if !slices.Equal(got.Metadata, want.Metadata) {
		t.Fatalf("metadata: got %+v, want %+v", got.Metadata, want.Metadata)
	}
}

func randStr(r *rand.Rand) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz_ABC019é\x00\xff"
	var sb strings.Builder
	for range r.IntN(12) {
		sb.WriteByte(alpha[r.IntN(len(alpha))])
	}
	return sb.String()
}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*r.IntN(2))
	case 2:
		return 0
	case 3:
		return float64(r.IntN(100))
	}
	return r.NormFloat64() * 1e3
}

// mutate returns a damaged copy of data: flipped bytes, truncation,
// insertion or an appended unknown field.
func mutate(r *rand.Rand, data []byte) []byte {
	out := slices.Clone(data)
	switch r.IntN(5) {
	case 0:
		if len(out) > 0 {
			out[r.IntN(len(out))] ^= byte(1 << r.IntN(8))
		}
	case 1:
		if len(out) > 0 {
			out = out[:r.IntN(len(out))]
		}
	case 2:
		i := r.IntN(len(out) + 1)
		out = slices.Insert(out, i, byte(r.IntN(256)))
	case 3:
		if len(out) > 0 {
			out[r.IntN(len(out))] = byte(r.IntN(256))
		}
	case 4:
		// A valid unknown field (group, varint, fixed32) at the top.
		out = append(out, 0x3b, 0x08, 0x01, 0x3c, 0x40, 0x96, 0x01, 0x4d, 1, 2, 3, 4)
	}
	return out
}

// checkWriteRequestAgrees decodes data with both decoders and fails t unless
// they agree.
// testFilter refuses metric names from "m" on and keeps the "_id" label.
var testFilter = &NameFilter{Wanted: func(n string) bool { return n < "m" }, KeepLabel: "_id"}

// checkFilteredAgrees decodes data with and without testFilter: the same
// inputs are accepted, with the same samples, and a refused series keeps
// its labels up to its first __name__ plus its _id labels.
func checkFilteredAgrees(t testing.TB, data []byte) {
	full, filtered := &batch.Batch{}, &batch.Batch{}
	stFull, errFull := UnmarshalWriteRequest(data, full, Limits{})
	stFiltered, err := UnmarshalWriteRequestFiltered(data, filtered, Limits{}, testFilter)
	if (errFull == nil) != (err == nil) || stFull != stFiltered {
		t.Fatalf("filter changes the outcome on %x: %v %+v vs %v %+v", data, errFull, stFull, err, stFiltered)
	}
	if err != nil {
		return
	}
	for i, s := range full.Series {
		var want []batch.Label
		named, skim := false, false
		for _, l := range s.Labels {
			if !skim || l.Name == "_id" {
				want = append(want, l)
			}
			if !named && l.Name == batch.MetricName {
				named, skim = true, !testFilter.Wanted(l.Value)
			}
		}
		if got := filtered.Series[i]; !slices.Equal(got.Labels, want) {
			t.Fatalf("series %d filtered: got %v, want labels %v", i, got, want)
		}
	}
	sameSeriesContent(t, filtered, full)
}

func checkWriteRequestAgrees(t testing.TB, data []byte) {
	checkFilteredAgrees(t, data)
	checkSameAsRefLimits(t, data)
	var ref prompb.WriteRequest
	refErr := ref.Unmarshal(data)
	for _, ts := range ref.Timeseries {
		for _, h := range ts.Histograms {
			if refErr == nil {
				refErr = refHistogramError(&h)
			}
		}
	}
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequest(data, b, Limits{})
	if (refErr == nil) != (err == nil) {
		t.Fatalf("disagreement on %x: reference err=%v, ours err=%v", data, refErr, err)
	}
	if err != nil {
		var de *Error
		if !errors.As(err, &de) || de.Status != 400 {
			t.Fatalf("error %v is not a 400 *Error", err)
		}
		return
	}
	if len(b.Series) != len(ref.Timeseries) || st.Series != len(ref.Timeseries) {
		t.Fatalf("series: got %d (stats %d), want %d", len(b.Series), st.Series, len(ref.Timeseries))
	}
	var samples, exemplars, histograms, labels, exLabels int
	for i, ts := range ref.Timeseries {
		got := b.Series[i]
		if len(got.Labels) != len(ts.Labels) || len(got.Samples) != len(ts.Samples) {
			t.Fatalf("series %d: got %v, want %v", i, got, ts)
		}
		for j, l := range ts.Labels {
			if got.Labels[j].Name != l.Name || got.Labels[j].Value != l.Value {
				t.Fatalf("series %d label %d: got %q=%q, want %q=%q", i, j, got.Labels[j].Name, got.Labels[j].Value, l.Name, l.Value)
			}
		}
		for j, s := range ts.Samples {
			if got.Samples[j].Timestamp != s.Timestamp || math.Float64bits(got.Samples[j].Value) != math.Float64bits(s.Value) {
				t.Fatalf("series %d sample %d: got %v, want %v", i, j, got.Samples[j], s)
			}
		}
		sameHistograms(t, got.Histograms, ts.Histograms)
		if len(got.Exemplars) != len(ts.Exemplars) {
			t.Fatalf("series %d: %d exemplars, want %d", i, len(got.Exemplars), len(ts.Exemplars))
		}
		for j, e := range ts.Exemplars {
			var ls []batch.Label
			for _, l := range e.Labels {
				ls = append(ls, batch.Label{Name: l.Name, Value: l.Value})
			}
			sameExemplar(t, got.Exemplars[j], ls, e.Value, e.Timestamp)
			exLabels += len(e.Labels)
		}
		samples += len(ts.Samples)
		labels += len(ts.Labels)
		exemplars += len(ts.Exemplars)
		histograms += len(ts.Histograms)
	}
	md := wantMetadata(ref.Metadata)
	if !slices.Equal(b.Metadata, md) {
		t.Fatalf("metadata: got %+v, want %+v", b.Metadata, md)
	}
	want := Stats{Series: len(ref.Timeseries), Samples: samples, Exemplars: exemplars, Histograms: histograms, Metadata: len(md),
		BatchBytes: len(ref.Timeseries)*seriesBytes + labels*labelBytes + samples*sampleBytes +
			histograms*histogramBytes + exemplars*exemplarBytes + exLabels*labelBytes + len(md)*metadataBytes}
	if st != want {
		t.Fatalf("stats: got %+v, want %+v", st, want)
	}
}

// benchWriteRequest is 1000 series: 20 metric names x 50 series, 10 labels
// each (including instance and pod), one sample.
func benchWriteRequest() []byte {
	wr := &prompb.WriteRequest{}
	for n := range 20 {
		for s := range 50 {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  benchLabels(n, s, func(n, v string) prompb.Label { return prompb.Label{Name: n, Value: v} }),
				Samples: []prompb.Sample{{Value: float64(s), Timestamp: 1700000000000 + int64(s)}},
			})
		}
	}
	data, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	return data
}

func benchLabels[L any](n, s int, mk func(n, v string) L) []L {
	return []L{
		mk("__name__", fmt.Sprintf("cluster_component_metric_%d_total", n)),
		mk("instance", fmt.Sprintf("10.0.%d.%d:9100", s/10, s)),
		mk("pod", fmt.Sprintf("component-%d-7d9f8c6b5-%05d", n, s)),
		mk("job", "component"),
		mk("namespace", "openshift-monitoring"),
		mk("container", "kube-rbac-proxy"),
		mk("endpoint", "https"),
		mk("service", "component-metrics"),
		mk("prometheus", "openshift-monitoring/k8s"),
		mk("mode", strconv.Itoa(s%4)),
	}
}

// ---- metric families ----

func ptr[T any](v T) *T { return &v }

func genFamilies(r *rand.Rand) []*dto.MetricFamily {
	var mfs []*dto.MetricFamily
	for range r.IntN(4) {
		typ := dto.MetricType(r.IntN(6))
		mf := &dto.MetricFamily{Type: typ.Enum(), Help: ptr(randStr(r))}
		if r.IntN(20) != 0 {
			mf.Name = ptr("m_" + randStr(r))
		}
		if r.IntN(10) == 0 {
			mf.Unit = ptr("seconds")
		}
		for range r.IntN(4) {
			m := &dto.Metric{}
			for range r.IntN(3) {
				m.Label = append(m.Label, &dto.LabelPair{Name: ptr(randStr(r)), Value: ptr(randStr(r))})
			}
			if r.IntN(2) == 0 {
				m.TimestampMs = ptr(r.Int64N(2e12) - 1e12)
			}
			vt := typ
			if r.IntN(15) == 0 {
				vt = dto.MetricType(r.IntN(6)) // maybe mismatched
			}
			setValue(r, m, vt)
			mf.Metric = append(mf.Metric, m)
		}
		mfs = append(mfs, mf)
	}
	return mfs
}

func setValue(r *rand.Rand, m *dto.Metric, typ dto.MetricType) {
	ex := func() *dto.Exemplar {
		x := &dto.Exemplar{Label: []*dto.LabelPair{{Name: ptr("trace_id"), Value: ptr(randStr(r))}}, Value: ptr(randFloat(r))}
		if r.IntN(3) != 0 {
			x.Timestamp = timestamppb.New(timestamppb.Now().AsTime())
		}
		return x
	}
	switch typ {
	case dto.MetricType_COUNTER:
		m.Counter = &dto.Counter{Value: ptr(randFloat(r))}
		if r.IntN(3) == 0 {
			m.Counter.Exemplar = ex()
			m.Counter.CreatedTimestamp = timestamppb.Now()
		}
	case dto.MetricType_GAUGE:
		m.Gauge = &dto.Gauge{}
		if r.IntN(5) != 0 {
			m.Gauge.Value = ptr(randFloat(r))
		}
	case dto.MetricType_UNTYPED:
		m.Untyped = &dto.Untyped{Value: ptr(randFloat(r))}
	case dto.MetricType_SUMMARY:
		s := &dto.Summary{SampleCount: ptr(r.Uint64N(1000)), SampleSum: ptr(randFloat(r))}
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			if r.IntN(3) != 0 {
				s.Quantile = append(s.Quantile, &dto.Quantile{Quantile: ptr(q), Value: ptr(randFloat(r))})
			}
		}
		m.Summary = s
	default:
		h := &dto.Histogram{SampleCount: ptr(r.Uint64N(1000)), SampleSum: ptr(randFloat(r))}
		if r.IntN(3) == 0 {
			h.SampleCountFloat = ptr(randFloat(r))
		}
		for _, ub := range []float64{-1, 0.005, 0.1, 1, 2.5e6, math.Inf(1)} {
			if r.IntN(3) == 0 {
				continue
			}
			bk := &dto.Bucket{UpperBound: ptr(ub), CumulativeCount: ptr(r.Uint64N(1000))}
			if r.IntN(4) == 0 {
				bk.CumulativeCountFloat = ptr(randFloat(r))
			}
			if r.IntN(4) == 0 {
				bk.Exemplar = ex()
			}
			h.Bucket = append(h.Bucket, bk)
		}
		if r.IntN(3) == 0 {
			genNative(r, h)
			for range r.IntN(3) {
				h.Exemplars = append(h.Exemplars, ex())
			}
			h.CreatedTimestamp = timestamppb.Now()
		}
		m.Histogram = h
	}
}

func encodeFamilies(t testing.TB, mfs []*dto.MetricFamily) []byte {
	var buf bytes.Buffer
	if err := EncodeMetricFamilies(&buf, mfs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type refSeries struct {
	labels []batch.Label
	ts     int64
	v      float64
	// A native histogram sample instead of v; hFloat: a float histogram.
	h      *histogram.FloatHistogram
	hFloat bool
	ex     []batch.Exemplar
}

// refExemplars converts exemplars as Prometheus' scrape does: nil ones
// are absent, those without a timestamp are stamped ts, or dropped when
// needTS.
func refExemplars(ts int64, needTS bool, exs ...*dto.Exemplar) []batch.Exemplar {
	var out []batch.Exemplar
	for _, x := range exs {
		if x == nil || needTS && x.Timestamp == nil {
			continue
		}
		e := batch.Exemplar{Value: x.GetValue(), Timestamp: ts}
		if x.Timestamp != nil {
			e.Timestamp = x.Timestamp.GetSeconds()*1000 + int64(x.Timestamp.GetNanos()/1_000_000)
		}
		for _, l := range x.Label {
			e.Labels = append(e.Labels, batch.Label{Name: l.GetName(), Value: l.GetValue()})
		}
		out = append(out, e)
	}
	return out
}

func sameExemplars(a, b []batch.Exemplar) bool {
	return slices.EqualFunc(a, b, func(x, y batch.Exemplar) bool {
		return x.Timestamp == y.Timestamp && math.Float64bits(x.Value) == math.Float64bits(y.Value) && slices.Equal(x.Labels, y.Labels)
	})
}

// refMetricFamilies is the reference path: google.golang.org/protobuf
// decodes the delimited stream into dto.MetricFamily, and a plain converter
// does what the Prometheus text exposition does.
func refMetricFamilies(data []byte, now int64, serverTime bool) ([]refSeries, error) {
	opts := protodelim.UnmarshalOptions{MaxSize: int64(len(data)) + 1}
	r := bufio.NewReader(bytes.NewReader(data))
	var mfs []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := opts.UnmarshalFrom(r, mf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		mfs = append(mfs, mf)
	}
	var out []refSeries
	for _, mf := range mfs {
		name := mf.GetName()
		if name == "" {
			return nil, errors.New("no name")
		}
		if mf.GetType() < 0 || mf.GetType() > dto.MetricType_GAUGE_HISTOGRAM {
			return nil, errors.New("unknown type")
		}
		for _, m := range mf.Metric {
			ts := now
			if !serverTime && m.TimestampMs != nil {
				ts = m.GetTimestampMs()
			}
			add := func(n, ln, lv string, v float64) {
				ls := []batch.Label{{Name: "__name__", Value: n}}
				for _, lp := range m.Label {
					ls = append(ls, batch.Label{Name: lp.GetName(), Value: lp.GetValue()})
				}
				if ln != "" {
					ls = append(ls, batch.Label{Name: ln, Value: lv})
				}
				out = append(out, refSeries{labels: ls, ts: ts, v: v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				if m.Counter == nil {
					return nil, errors.New("no counter")
				}
				add(name, "", "", m.Counter.GetValue())
				out[len(out)-1].ex = refExemplars(ts, false, m.Counter.Exemplar)
			case dto.MetricType_GAUGE:
				if m.Gauge == nil {
					return nil, errors.New("no gauge")
				}
				add(name, "", "", m.Gauge.GetValue())
			case dto.MetricType_UNTYPED:
				if m.Untyped == nil {
					return nil, errors.New("no untyped")
				}
				add(name, "", "", m.Untyped.GetValue())
			case dto.MetricType_SUMMARY:
				if m.Summary == nil {
					return nil, errors.New("no summary")
				}
				for _, q := range m.Summary.Quantile {
					add(name, "quantile", refFloat(q.GetQuantile()), q.GetValue())
				}
				add(name+"_sum", "", "", m.Summary.GetSampleSum())
				add(name+"_count", "", "", float64(m.Summary.GetSampleCount()))
			default:
				h := m.Histogram
				if h == nil {
					return nil, errors.New("no histogram")
				}
				nh, fl, err := refNative(h, mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM)
				if err != nil {
					return nil, err
				}
				if nh != nil {
					add(name, "", "", 0)
					out[len(out)-1].h, out[len(out)-1].hFloat = nh, fl
					exs := h.Exemplars
					if len(exs) == 0 {
						for _, b := range h.Bucket {
							exs = append(exs, b.Exemplar)
						}
					}
					out[len(out)-1].ex = refExemplars(ts, true, exs...)
					if len(h.Bucket) == 0 {
						continue
					}
				}
				inf := false
				for _, b := range h.Bucket {
					v := b.GetCumulativeCountFloat()
					if v == 0 {
						v = float64(b.GetCumulativeCount())
					}
					add(name+"_bucket", "le", refFloat(b.GetUpperBound()), v)
					out[len(out)-1].ex = refExemplars(ts, false, b.Exemplar)
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
				}
				count := h.GetSampleCountFloat()
				if count == 0 {
					count = float64(h.GetSampleCount())
				}
				if !inf {
					add(name+"_bucket", "le", "+Inf", count)
				}
				add(name+"_sum", "", "", h.GetSampleSum())
				add(name+"_count", "", "", count)
			}
		}
	}
	return out, nil
}

// refFloat formats like expfmt's writeFloat.
func refFloat(f float64) string {
	switch {
	case f == 0:
		return "0"
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func sortedLabels(ls []batch.Label) []batch.Label {
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b batch.Label) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return ls
}

// checkFamiliesFiltered decodes data again with testFilter: the same
// outcome, series and samples; a series whose name the filter wants keeps
// every label; the others keep a subsequence of their labels that holds
// __name__ and every _id label.
func checkFamiliesFiltered(t testing.TB, data []byte, now int64, serverTime bool, full *batch.Batch, stFull Stats) {
	b := &batch.Batch{}
	st, err := UnmarshalMetricFamiliesFiltered(data, b, now, serverTime, Limits{}, testFilter)
	if err != nil || st != stFull || len(b.Series) != len(full.Series) {
		t.Fatalf("filter changes the outcome on %x: %v %+v, want %+v", data, err, st, stFull)
	}
	for i, want := range full.Series {
		got := b.Series[i]
		sameSample := func(a, b batch.Sample) bool {
			return a.Timestamp == b.Timestamp && math.Float64bits(a.Value) == math.Float64bits(b.Value)
		}
		sameHist := func(a, b batch.Histogram) bool { return a.Timestamp == b.Timestamp && bytes.Equal(a.Raw, b.Raw) }
		if got.Name() != want.Name() || !slices.EqualFunc(got.Samples, want.Samples, sameSample) ||
			!slices.EqualFunc(got.Histograms, want.Histograms, sameHist) || !sameExemplars(got.Exemplars, want.Exemplars) {
			t.Fatalf("series %d filtered: %v, want %v", i, got, want)
		}
		if testFilter.Wanted(want.Name()) {
			if !slices.Equal(got.Labels, want.Labels) {
				t.Fatalf("series %d (wanted) filtered labels %v, want %v", i, got.Labels, want.Labels)
			}
			continue
		}
		j := 0
		for _, l := range want.Labels {
			if j < len(got.Labels) && got.Labels[j] == l {
				j++
			} else if l.Name == "_id" || l.Name == batch.MetricName {
				t.Fatalf("series %d filtered labels %v lost %v of %v", i, got.Labels, l, want.Labels)
			}
		}
		if j != len(got.Labels) {
			t.Fatalf("series %d filtered labels %v are not a subsequence of %v", i, got.Labels, want.Labels)
		}
	}
}

func checkMetricFamiliesAgree(t testing.TB, data []byte) {
	const now = 1700000000123
	for _, serverTime := range []bool{false, true} {
		ref, refErr := refMetricFamilies(data, now, serverTime)
		b := &batch.Batch{}
		st, err := UnmarshalMetricFamilies(data, b, now, serverTime, Limits{})
		if (refErr == nil) != (err == nil) {
			t.Fatalf("disagreement on %x: reference err=%v, ours err=%v", data, refErr, err)
		}
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Status != 400 {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			continue
		}
		hists := 0
		for _, s := range ref {
			if s.h != nil {
				hists++
			}
		}
		if len(b.Series) != len(ref) || st.Series != len(ref) || st.Samples != len(ref)-hists || st.Histograms != hists {
			t.Fatalf("series: got %d (stats %+v), want %d (%d histograms)", len(b.Series), st, len(ref), hists)
		}
		checkFamiliesFiltered(t, data, now, serverTime, b, st)
		for i, want := range ref {
			got := b.Series[i]
			if !slices.Equal(sortedLabels(got.Labels), sortedLabels(want.labels)) {
				t.Fatalf("series %d labels: got %v, want %v", i, got.Labels, want.labels)
			}
			if !sameExemplars(got.Exemplars, want.ex) {
				t.Fatalf("series %d %v: got exemplars %v, want %v", i, want.labels, got.Exemplars, want.ex)
			}
			if want.h != nil {
				if len(got.Samples) != 0 || len(got.Histograms) != 1 || got.Histograms[0].Timestamp != want.ts {
					t.Fatalf("series %d %v: got %v, want one histogram at %d", i, want.labels, got, want.ts)
				}
				checkRawHistogram(t, got.Histograms[0].Raw, want)
				continue
			}
			if len(got.Samples) != 1 || got.Samples[0].Timestamp != want.ts || math.Float64bits(got.Samples[0].Value) != math.Float64bits(want.v) {
				t.Fatalf("series %d %v: got samples %v, want ts=%d v=%v", i, want.labels, got.Samples, want.ts, want.v)
			}
		}
	}
}

func benchFamilies() []*dto.MetricFamily {
	var mfs []*dto.MetricFamily
	for n := range 20 {
		mf := &dto.MetricFamily{Name: ptr(fmt.Sprintf("cluster_component_metric_%d", n)), Help: ptr("help"), Type: dto.MetricType_GAUGE.Enum()}
		for s := range 50 {
			ls := benchLabels(n, s, func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: ptr(n), Value: ptr(v)} })[1:]
			mf.Metric = append(mf.Metric, &dto.Metric{Label: ls, Gauge: &dto.Gauge{Value: ptr(float64(s))}, TimestampMs: ptr(int64(1700000000000 + s))})
		}
		mfs = append(mfs, mf)
	}
	return mfs
}
