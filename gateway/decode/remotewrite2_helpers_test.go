package decode

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
)

// ---- remote write 2.0 ----

// toV2 turns a 1.0 request into the 2.0 request Prometheus would send for
// it: labels sorted by name (the last of a repeated name kept), symbolized.
func toV2(wr *prompb.WriteRequest) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, ts := range wr.Timeseries {
		ls := slices.Clone(ts.Labels)
		slices.SortStableFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		var refs []uint32
		for i, l := range ls {
			if l.Name == "" || (i+1 < len(ls) && ls[i+1].Name == l.Name) {
				continue
			}
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		out := writev2.TimeSeries{LabelsRefs: refs}
		for _, s := range ts.Samples {
			out.Samples = append(out.Samples, writev2.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		req.Timeseries = append(req.Timeseries, out)
	}
	req.Symbols = st.Symbols()
	return req
}

func marshalV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// genWriteRequestV2 is a random 2.0 request, valid for the spec's rules
// most of the time: sorted unique label names, references in range.
func genWriteRequestV2(r *rand.Rand) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for range r.IntN(6) {
		names := map[string]bool{}
		if r.IntN(3) > 0 {
			names[batch.MetricName] = true
		}
		for range r.IntN(5) {
			if n := randStr(r); n != "" {
				names[n] = true
			}
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		slices.Sort(sorted)
		ts := writev2.TimeSeries{}
		for _, n := range sorted {
			v := randStr(r)
			if n == batch.MetricName {
				v = []string{"a_metric", "zz_metric", ""}[r.IntN(3)]
			}
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(n), st.Symbolize(v))
		}
		for range r.IntN(4) {
			ts.Samples = append(ts.Samples, writev2.Sample{Value: randFloat(r), Timestamp: r.Int64() - r.Int64(), StartTimestamp: r.Int64N(3)})
		}
		for range r.IntN(2) {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
				LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize(randStr(r))}, Value: randFloat(r), Timestamp: r.Int64N(1e12),
			})
		}
		for range r.IntN(3) {
			h := genHistogram(r, r.IntN(16) == 0)
			ts.Histograms = append(ts.Histograms, histogramV2(&h, r.Int64N(1e12)))
		}
		if r.IntN(2) == 0 {
			ts.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(r.IntN(10)), HelpRef: st.Symbolize(randStr(r))}
			if r.IntN(2) == 0 {
				ts.Metadata.UnitRef = st.Symbolize("seconds")
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	if len(req.Timeseries) == 0 && r.IntN(2) == 0 {
		req.Symbols = nil
	}
	return req
}

// v2SpecError applies the 2.0 rules UnmarshalWriteRequestV2 adds to the
// reference decoder, on the reference's result: nil if req is valid.
func v2SpecError(req *writev2.Request) error {
	n := len(req.Symbols)
	if n > 0 && req.Symbols[0] != "" {
		return fmt.Errorf("symbols[0] is %q", req.Symbols[0])
	}
	for i, ts := range req.Timeseries {
		if len(ts.LabelsRefs)%2 != 0 {
			return fmt.Errorf("series %d: odd labels_refs", i)
		}
		for j, ref := range ts.LabelsRefs {
			if int(ref) >= n {
				return fmt.Errorf("series %d: ref %d out of range", i, ref)
			}
			if j%2 == 0 {
				name := req.Symbols[ref]
				if name == "" {
					return fmt.Errorf("series %d: empty name", i)
				}
				if j > 0 && name <= req.Symbols[ts.LabelsRefs[j-2]] {
					return fmt.Errorf("series %d: unsorted or duplicate", i)
				}
			}
		}
		for _, h := range ts.Histograms {
			if err := refHistogramErrorV2(&h); err != nil {
				return fmt.Errorf("series %d: %w", i, err)
			}
		}
		for _, e := range ts.Exemplars {
			if len(e.LabelsRefs)%2 != 0 {
				return fmt.Errorf("series %d: odd exemplar labels_refs", i)
			}
			for _, ref := range e.LabelsRefs {
				if int(ref) >= n {
					return fmt.Errorf("series %d: exemplar ref %d out of range", i, ref)
				}
			}
		}
		// A metadata reference of 0 means none.
		if m := ts.Metadata; (m.HelpRef != 0 && int(m.HelpRef) >= n) || (m.UnitRef != 0 && int(m.UnitRef) >= n) {
			return fmt.Errorf("series %d: metadata ref out of range", i)
		}
	}
	return nil
}

// checkWriteRequestV2Agrees decodes data with UnmarshalWriteRequestV2 and
// the reference (writev2.Request.Unmarshal plus v2SpecError) and fails t
// unless they agree: the same inputs accepted, the same labels, samples
// and counts; and a NameFilter changes neither.
func checkWriteRequestV2Agrees(t testing.TB, data []byte) {
	var ref writev2.Request
	refErr := ref.Unmarshal(data)
	if refErr == nil {
		refErr = v2SpecError(&ref)
	}
	b := &batch.Batch{}
	st, err := UnmarshalWriteRequestV2(data, b, Limits{}, nil)
	if (refErr == nil) != (err == nil) {
		t.Fatalf("disagreement on %x: reference err=%v, ours err=%v", data, refErr, err)
	}
	checkV2Filtered(t, data, b, st, err)
	if err != nil {
		if StatusOf(err) != 400 {
			t.Fatalf("error %v is not a 400", err)
		}
		return
	}
	if len(b.Series) != len(ref.Timeseries) {
		t.Fatalf("series: got %d, want %d", len(b.Series), len(ref.Timeseries))
	}
	want := Stats{Series: len(ref.Timeseries), BatchBytes: len(ref.Symbols) * symbolBytes}
	for i, ts := range ref.Timeseries {
		got := b.Series[i]
		if len(got.Labels)*2 != len(ts.LabelsRefs) || len(got.Samples) != len(ts.Samples) {
			t.Fatalf("series %d: got %v, want %v", i, got, ts)
		}
		for j := range got.Labels {
			n, v := ref.Symbols[ts.LabelsRefs[2*j]], ref.Symbols[ts.LabelsRefs[2*j+1]]
			if got.Labels[j].Name != n || got.Labels[j].Value != v {
				t.Fatalf("series %d label %d: got %q=%q, want %q=%q", i, j, got.Labels[j].Name, got.Labels[j].Value, n, v)
			}
		}
		for j, s := range ts.Samples {
			if got.Samples[j].Timestamp != s.Timestamp || math.Float64bits(got.Samples[j].Value) != math.Float64bits(s.Value) {
				t.Fatalf("series %d sample %d: got %v, want %v", i, j, got.Samples[j], s)
			}
		}
		if len(got.Histograms) != len(ts.Histograms) {
			t.Fatalf("series %d: %d histograms, want %d", i, len(got.Histograms), len(ts.Histograms))
		}
		for j, h := range ts.Histograms {
			var h2 writev2.Histogram
			if err := h2.Unmarshal(got.Histograms[j].Raw); err != nil {
				t.Fatalf("series %d histogram %d: Raw does not decode: %v", i, j, err)
			}
			a, _ := h2.Marshal()
			b, _ := h.Marshal()
			if got.Histograms[j].Timestamp != h.Timestamp || !bytes.Equal(a, b) {
				t.Fatalf("series %d histogram %d: got ts %d %x, want ts %d %x", i, j, got.Histograms[j].Timestamp, a, h.Timestamp, b)
			}
		}
		if len(got.Exemplars) != len(ts.Exemplars) {
			t.Fatalf("series %d: %d exemplars, want %d", i, len(got.Exemplars), len(ts.Exemplars))
		}
		for j, e := range ts.Exemplars {
			var ls []batch.Label
			for k := 0; k < len(e.LabelsRefs); k += 2 {
				ls = append(ls, batch.Label{Name: ref.Symbols[e.LabelsRefs[k]], Value: ref.Symbols[e.LabelsRefs[k+1]]})
			}
			sameExemplar(t, got.Exemplars[j], ls, e.Value, e.Timestamp)
			want.BatchBytes += exemplarBytes + len(ls)*labelBytes
		}
		want.Samples += len(ts.Samples)
		want.Exemplars += len(ts.Exemplars)
		want.Histograms += len(ts.Histograms)
		want.BatchBytes += seriesBytes + len(got.Labels)*labelBytes + len(ts.Samples)*sampleBytes + len(ts.Histograms)*histogramBytes
	}
	md := wantMetadataV2(&ref)
	if !slices.Equal(b.Metadata, md) {
		t.Fatalf("metadata: got %+v, want %+v", b.Metadata, md)
	}
	want.Metadata = len(md)
	want.BatchBytes += len(md) * metadataBytes
	if st != want {
		t.Fatalf("stats: got %+v, want %+v", st, want)
	}
}

// wantMetadataV2 is the metadata UnmarshalWriteRequestV2 makes of the
// reference's: one entry per __name__ (the first series' metadata), from
// series with a type, help or unit; the types numbered alike.
func wantMetadataV2(req *writev2.Request) []batch.Metadata {
	var out []batch.Metadata
	seen := map[string]bool{}
	for _, ts := range req.Timeseries {
		m := ts.Metadata
		if m.Type == 0 && m.HelpRef == 0 && m.UnitRef == 0 {
			continue
		}
		name := ""
		for k := 0; k < len(ts.LabelsRefs); k += 2 {
			if req.Symbols[ts.LabelsRefs[k]] == batch.MetricName {
				name = req.Symbols[ts.LabelsRefs[k+1]]
			}
		}
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		typ := batch.MetricType(m.Type)
		if m.Type < 0 || m.Type > 7 {
			typ = 0
		}
		sym := func(ref uint32) string {
			if ref == 0 {
				return ""
			}
			return req.Symbols[ref]
		}
		out = append(out, batch.Metadata{Family: name, Type: typ, Help: sym(m.HelpRef), Unit: sym(m.UnitRef)})
	}
	return out
}

// checkV2Filtered decodes data with testFilter: the outcome and counts are
// those without (full, stFull, errFull), and a refused series keeps its
// labels up to __name__ plus its _id label.
func checkV2Filtered(t testing.TB, data []byte, full *batch.Batch, stFull Stats, errFull error) {
	filtered := &batch.Batch{}
	st, err := UnmarshalWriteRequestV2(data, filtered, Limits{}, testFilter)
	if (errFull == nil) != (err == nil) || st != stFull {
		t.Fatalf("filter changes the outcome on %x: %v %+v vs %v %+v", data, errFull, stFull, err, st)
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

// classicV2 is a 2.0 request of classic histogram buckets: series
// histograms with labels labels (realistic values, one varying) and
// buckets le values each, as Prometheus sends them.
func classicV2(series, labels, buckets int) *writev2.Request {
	names := []string{"code", "component", "container", "endpoint", "group", "handler", "instance", "job", "namespace", "node",
		"pod", "prometheus", "resource", "scope", "service", "subresource", "verb", "version", "zone", "zz"}
	var wr prompb.WriteRequest
	for s := range series {
		for b := range buckets {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "apiserver_request_duration_seconds_bucket"}, {Name: "le", Value: fmt.Sprint(0.005 * float64(b+1))}}}
			for l := range labels {
				v := "kube-apiserver-ip-10-0-140-93.ec2.internal"
				if l == 1 {
					v = fmt.Sprintf("%s-%d", v, s)
				}
				ts.Labels = append(ts.Labels, prompb.Label{Name: names[l%len(names)], Value: v})
			}
			ts.Samples = []prompb.Sample{{Value: float64(1000 * b), Timestamp: 1700000000000}}
			wr.Timeseries = append(wr.Timeseries, ts)
		}
	}
	return toV2(&wr)
}

// TestHonestAmplificationV2 measures the batch bytes the 2.0 decoder
// charges per decoded byte on honest payloads (the figures documented at
// RemoteWriteV2Budget) and checks they stay under the multiple alone.
func TestHonestAmplificationV2(t *testing.T) {
	check := func(name string, data []byte) {
		t.Helper()
		st, err := UnmarshalWriteRequestV2(data, &batch.Batch{}, Limits{}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ratio := float64(st.BatchBytes) / float64(len(data))
		t.Logf("%-44s %8d decoded bytes %6d series %9d batch bytes: %5.2f per decoded byte", name, len(data), st.Series, st.BatchBytes, ratio)
		if st.BatchBytes > remoteWriteV2PerByte*len(data) {
			t.Errorf("%s: honest payload charges %.2f bytes per decoded byte, over the multiple %d", name, ratio, remoteWriteV2PerByte)
		}
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(benchWriteRequest()); err != nil {
		t.Fatal(err)
	}
	check("1000 series of 10 labels (bench payload)", marshalV2(t, toV2(&wr)))
	for _, h := range []struct{ labels, buckets int }{{3, 12}, {10, 12}, {10, 40}, {20, 40}} {
		check(fmt.Sprintf("classic histograms %d labels %d buckets", h.labels, h.buckets), marshalV2(t, classicV2(250, h.labels, h.buckets)))
	}
}
