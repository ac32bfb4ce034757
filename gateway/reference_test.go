package gateway

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/e2e/harness"
)

// The whole remote-write path (zero-copy decoder, in-place relabel
// pipeline, hand-written encoder, s2 snappy) checked against a deliberately
// simple reference built on the gogo prompb structs: both must answer the
// same status and forward the same bytes for every input.

// The fixed parameters of the differential test. The limits are small so
// that the random requests hit them often.
var refNow = time.Date(2025, time.June, 1, 12, 0, 0, 0, time.UTC)

const (
	refCluster   = "c1"
	refMaxSeries = 12
)

func refOptions() relabel.Options {
	return relabel.Options{
		ClusterIDLabel: "_id",
		DropLabels:     []string{"instance", "pod"},
		MaxLabels:      8,
		MaxNameLength:  24,
		MaxValueLength: 40,
		MaxSampleAge:   time.Hour,
		MaxFutureSkew:  10 * time.Minute,
	}
}

// refResult is what the reference decides for one request: the status,
// the series forwarded (for 204) and the samples dropped by reason (the
// X-Telegate-Dropped-Samples header).
type refResult struct {
	status   int
	out      []prompb.TimeSeries
	metadata []prompb.MetricMetadata
	dropped  map[string]int
}

// referenceReceive is the reference semantics of POST /api/v1/receive for
// the decompressed body raw of cluster clusterID: the status to answer and
// the series to forward, in order.
func referenceReceive(raw []byte, clusterID string, now time.Time, al *allowlist.Allowlist, opts relabel.Options, maxSeries int) (status int, out []prompb.TimeSeries) {
	r := referenceReceiveFull(raw, clusterID, now, al, opts, maxSeries)
	return r.status, r.out
}

var (
	refMetricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	refLabelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func referenceReceiveFull(raw []byte, clusterID string, now time.Time, al *allowlist.Allowlist, opts relabel.Options, maxSeries int) refResult {
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		// The gateway decodes as a stream and checks the series cap when
		// it meets the next series: a request that is both over the cap
		// and malformed past that point is 413.
		if refCapReachedFirst(raw, maxSeries) {
			return refResult{status: http.StatusRequestEntityTooLarge}
		}
		return refResult{status: http.StatusBadRequest}
	}
	// Native histograms are checked as Prometheus checks them before
	// appending (and mixed integer/float fields refused): one invalid
	// histogram refuses the request. The decoder meets it before the
	// series cap if it is in one of the first maxSeries series.
	for i, ts := range wr.Timeseries {
		if maxSeries > 0 && i >= maxSeries {
			break
		}
		for _, h := range ts.Histograms {
			if !refHistogramValid(h) {
				return refResult{status: http.StatusBadRequest}
			}
		}
	}
	if maxSeries > 0 && len(wr.Timeseries) > maxSeries {
		return refResult{status: http.StatusRequestEntityTooLarge}
	}
	idLabel := opts.ClusterIDLabel
	if idLabel == "" {
		idLabel = "_id"
	}
	dropped := map[string]int{}

	// Native histograms count as samples; exemplars go with their
	// series; metadata is forwarded for the families of forwarded series.
	points := func(ts prompb.TimeSeries) int { return len(ts.Samples) + len(ts.Histograms) }

	// Identity, on every series: every cluster ID label, if any, is this
	// cluster's or empty.
	for _, ts := range wr.Timeseries {
		for _, l := range ts.Labels {
			if l.Name == idLabel && l.Value != clusterID && l.Value != "" {
				return refResult{status: http.StatusBadRequest}
			}
		}
	}

	// A series without a name is invalid whatever the allowlist says;
	// invalid series are dropped, the valid ones still written, and the
	// request answered 400.
	invalid := false
	// Allowlist.
	var kept []prompb.TimeSeries
	for _, ts := range wr.Timeseries {
		name := ""
		for _, l := range ts.Labels {
			if l.Name == "__name__" {
				name = l.Value
				break
			}
		}
		if name == "" {
			invalid = true
			dropped["invalid"] += points(ts)
			continue
		}
		bl := make([]batch.Label, len(ts.Labels))
		for i, l := range ts.Labels {
			bl[i] = batch.Label{Name: l.Name, Value: l.Value}
		}
		if al.MatchName(name) {
			if _, ok := al.Match(bl); ok {
				kept = append(kept, ts)
				continue
			}
		}
		dropped["allowlist"] += points(ts)
	}

	// Strip, stamp, sort, validate: an invalid kept series is dropped
	// and makes the answer 400. What stripping removed says which source
	// series it was.
	drop := map[string]bool{}
	for _, n := range opts.DropLabels {
		drop[n] = true
	}
	valid := kept[:0]
	var sources []string
	for _, ts := range kept {
		var ls, removed []prompb.Label
		for _, l := range ts.Labels {
			if l.Value != "" && !drop[l.Name] {
				// Only the known fields: unknown ones are not forwarded.
				ls = append(ls, prompb.Label{Name: l.Name, Value: l.Value})
			} else if l.Value != "" {
				removed = append(removed, l)
			}
		}
		stamped := false
		for j := range ls {
			if ls[j].Name == idLabel {
				ls[j].Value = clusterID
				stamped = true
				break
			}
		}
		if !stamped {
			ls = append(ls, prompb.Label{Name: idLabel, Value: clusterID})
		}
		sort.SliceStable(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		if !refValid(ls, opts) {
			invalid = true
			dropped["invalid"] += points(ts)
			continue
		}
		ts.Labels = ls
		valid = append(valid, ts)
		sources = append(sources, refLabelsKey(removed))
	}
	kept = valid

	// Timestamp bounds (inclusive), then collisions: the first series of
	// a label set that still has samples wins.
	minTs, maxTs := int64(math.MinInt64), int64(math.MaxInt64)
	if opts.MaxSampleAge > 0 {
		minTs = now.UnixMilli() - opts.MaxSampleAge.Milliseconds()
	}
	if opts.MaxFutureSkew > 0 {
		maxTs = now.UnixMilli() + opts.MaxFutureSkew.Milliseconds()
	}
	// The same label set again from the same source (remote write 1.0
	// sends a TimeSeries per sample) joins the first: in timestamp order
	// (sorted stably unless already strictly increasing from where it
	// joins), the first value of a repeated timestamp kept. From another
	// source it collides and is dropped.
	seen := map[string]int{}
	var outSrc []string
	var out []prompb.TimeSeries
	for k, ts := range kept {
		var samples []prompb.Sample
		for _, s := range ts.Samples {
			switch {
			case s.Timestamp < minTs:
				dropped["too_old"]++
			case s.Timestamp > maxTs:
				dropped["too_new"]++
			default:
				samples = append(samples, prompb.Sample{Value: s.Value, Timestamp: s.Timestamp})
			}
		}
		var hists []prompb.Histogram
		for _, h := range ts.Histograms {
			switch {
			case h.Timestamp < minTs:
				dropped["too_old"]++
			case h.Timestamp > maxTs:
				dropped["too_new"]++
			default:
				hists = append(hists, h)
			}
		}
		var exemplars []prompb.Exemplar
		for _, e := range ts.Exemplars {
			if e.Timestamp < minTs || e.Timestamp > maxTs {
				continue // quietly: not a sample
			}
			// Only the known fields, as for labels.
			x := prompb.Exemplar{Value: e.Value, Timestamp: e.Timestamp}
			for _, l := range e.Labels {
				x.Labels = append(x.Labels, prompb.Label{Name: l.Name, Value: l.Value})
			}
			exemplars = append(exemplars, x)
		}
		if len(samples)+len(hists)+len(exemplars) == 0 {
			continue
		}
		key := refLabelsKey(ts.Labels)
		if j, ok := seen[key]; ok {
			if outSrc[j] != sources[k] {
				dropped["collision"] += len(samples) + len(hists)
				continue
			}
			var n, m int
			out[j].Samples, n = refMerge(out[j].Samples, samples, func(x prompb.Sample) int64 { return x.Timestamp })
			out[j].Histograms, m = refMerge(out[j].Histograms, hists, func(x prompb.Histogram) int64 { return x.Timestamp })
			dropped["collision"] += n + m
			out[j].Exemplars = append(out[j].Exemplars, exemplars...)
			continue
		}
		seen[key] = len(out)
		outSrc = append(outSrc, sources[k])
		out = append(out, prompb.TimeSeries{Labels: ts.Labels, Samples: samples, Histograms: hists, Exemplars: exemplars})
	}
	// Metadata: the first entry of each family with a name, kept when
	// the allowlist takes the family by name (its name, or with a
	// suffix).
	var md []prompb.MetricMetadata
	seenFamily := map[string]bool{}
	for _, m := range wr.Metadata {
		if m.MetricFamilyName == "" || seenFamily[m.MetricFamilyName] {
			continue
		}
		seenFamily[m.MetricFamilyName] = true
		for _, suffix := range []string{"", "_bucket", "_count", "_sum", "_total", "_created", "_info"} {
			if al.MatchName(m.MetricFamilyName + suffix) {
				md = append(md, prompb.MetricMetadata{Type: m.Type, MetricFamilyName: m.MetricFamilyName, Help: m.Help, Unit: m.Unit})
				break
			}
		}
	}
	for k, n := range dropped {
		if n == 0 {
			delete(dropped, k)
		}
	}
	status := http.StatusNoContent
	if invalid {
		status = http.StatusBadRequest
	}
	return refResult{status: status, out: out, metadata: md, dropped: dropped}
}

// refMerge appends more to a series' points from the same source: in
// timestamp order (sorted stably unless already strictly increasing from
// where they join), the first of a repeated timestamp kept. It returns
// how many it dropped.
func refMerge[T any](have, more []T, ts func(T) int64) ([]T, int) {
	all := append(slices.Clone(have), more...)
	ordered := true
	for i := max(len(have), 1); i < len(all); i++ {
		ordered = ordered && ts(all[i-1]) < ts(all[i])
	}
	if ordered {
		return all, 0
	}
	sort.SliceStable(all, func(a, b int) bool { return ts(all[a]) < ts(all[b]) })
	deduped := all[:1]
	for _, x := range all[1:] {
		if ts(x) == ts(deduped[len(deduped)-1]) {
			continue
		}
		deduped = append(deduped, x)
	}
	return deduped, len(all) - len(deduped)
}

// refHistogramValid is Prometheus' check of a native histogram (its
// Validate after prompb's conversion), the schemas it forwards unchanged
// (-4 to 8, -53 for custom buckets) and no mixing of integer and float
// fields.
func refHistogramValid(h prompb.Histogram) bool {
	if h.Schema != histogram.CustomBucketsSchema && (h.Schema < -4 || h.Schema > 8) {
		return false
	}
	if h.IsFloatHistogram() {
		if _, ok := h.ZeroCount.(*prompb.Histogram_ZeroCountInt); ok || len(h.NegativeDeltas)+len(h.PositiveDeltas) > 0 {
			return false
		}
		return h.ToFloatHistogram().Validate() == nil
	}
	if _, ok := h.ZeroCount.(*prompb.Histogram_ZeroCountFloat); ok || len(h.NegativeCounts)+len(h.PositiveCounts) > 0 {
		return false
	}
	return h.ToIntHistogram().Validate() == nil
}

// refValid validates a stripped, stamped and sorted label set.
func refValid(ls []prompb.Label, opts relabel.Options) bool {
	if opts.MaxLabels > 0 && len(ls) > opts.MaxLabels {
		return false
	}
	hasName := false
	for i, l := range ls {
		if i > 0 && ls[i-1].Name == l.Name {
			return false
		}
		if opts.MaxNameLength > 0 && len(l.Name) > opts.MaxNameLength {
			return false
		}
		if opts.MaxValueLength > 0 && len(l.Value) > opts.MaxValueLength {
			return false
		}
		if l.Name == "__name__" {
			hasName = true
			if !refMetricNameRE.MatchString(l.Value) {
				return false
			}
			continue
		}
		if !refLabelNameRE.MatchString(l.Name) || strings.HasPrefix(l.Name, "__") || !utf8.ValidString(l.Value) {
			return false
		}
	}
	return hasName
}

func refLabelsKey(ls []prompb.Label) string {
	var sb strings.Builder
	for _, l := range ls {
		sb.WriteString(strconv.Quote(l.Name))
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(l.Value))
		sb.WriteByte(',')
	}
	return sb.String()
}

// refCapReachedFirst reports whether a streaming decoder meets the
// (maxSeries+1)th TimeSeries before anything invalid: some prefix of raw
// is a valid WriteRequest of exactly maxSeries series (their histograms
// valid) and is followed by
// the tag and an in-bounds length of another timeseries field.
func refCapReachedFirst(raw []byte, maxSeries int) bool {
	if maxSeries <= 0 {
		return false
	}
	for k := range raw {
		tag, n := refVarint(raw[k:])
		if n <= 0 || int32(tag>>3) != 1 || tag&7 != 2 {
			continue
		}
		l, m := refVarint(raw[k+n:])
		if m <= 0 || int(l) < 0 || int(l) > len(raw)-k-n-m {
			continue
		}
		var wr prompb.WriteRequest
		if wr.Unmarshal(raw[:k]) == nil && len(wr.Timeseries) == maxSeries {
			// ...and no invalid histogram before it.
			for _, ts := range wr.Timeseries {
				for _, h := range ts.Histograms {
					if !refHistogramValid(h) {
						return false
					}
				}
			}
			return true
		}
	}
	return false
}

// refVarint reads a varint as gogo does (at most 10 bytes, bits past 64
// dropped); n <= 0 on error.
func refVarint(b []byte) (v uint64, n int) {
	for shift := uint(0); shift < 64; shift += 7 {
		if n >= len(b) {
			return 0, -1
		}
		c := b[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, n
		}
	}
	return 0, -1
}

// refForwarder keeps every forwarded body, decompressed with golang/snappy
// (so the s2 output must be standard snappy).
type refForwarder struct {
	bodies   [][]byte
	clusters []string
}

func (f *refForwarder) Send(_ context.Context, clusterID string, body []byte) error {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return fmt.Errorf("forwarded body is not standard snappy: %w", err)
	}
	f.bodies = append(f.bodies, raw)
	f.clusters = append(f.clusters, clusterID)
	return nil
}

// refGateway is the real handler, without budgets and with a fixed clock.
type refGateway struct {
	mu  sync.Mutex
	h   http.Handler
	fwd *refForwarder
	al  *allowlist.Allowlist
	tok string
}

func newRefGateway(tb testing.TB) *refGateway {
	tb.Helper()
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: dev\n  clusters: ['*']\n"))
	if err != nil {
		tb.Fatal(err)
	}
	al, err := allowlist.Parse([]byte(testAllowlist), "allowlist.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	rg := &refGateway{fwd: &refForwarder{}, al: al, tok: harness.CompositeToken("dev", refCluster)}
	rg.h = New(Options{
		Authenticator: authn.Chain(tokens),
		Allowlist:     al,
		Pipeline:      relabel.New(refOptions()),
		Forwarder:     rg.fwd,
		// Byte caps far above any input: only the series cap is compared.
		Limits:          Limits{MaxRequestBytes: 64 << 20, MaxDecodedBytes: 64 << 20, MaxSeriesPerRequest: refMaxSeries},
		MaxRetryTime:    5 * time.Second,
		MaxForwardBytes: 1 << 30, // one forwarded request per request
		Now:             func() time.Time { return refNow },
	}).Handler()
	return rg
}

// realResult is what the handler did.
type realResult struct {
	status   int
	body     string // the error body
	forward  []byte // the forwarded bodies, uncompressed, concatenated
	parts    int
	clusters []string
	dropped  map[string]int
}

func (rg *refGateway) run(raw []byte) realResult {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	rg.fwd.bodies, rg.fwd.clusters = nil, nil
	req := httptest.NewRequest(http.MethodPost, "/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Authorization", "Bearer "+rg.tok)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	rec := httptest.NewRecorder()
	rg.h.ServeHTTP(rec, req)
	res := realResult{status: rec.Code, body: rec.Body.String(), parts: len(rg.fwd.bodies), clusters: rg.fwd.clusters}
	for _, b := range rg.fwd.bodies {
		res.forward = append(res.forward, b...)
	}
	res.dropped = map[string]int{}
	if h := rec.Header().Get("X-Telegate-Dropped-Samples"); h != "" {
		for _, part := range strings.Split(h, ", ") {
			k, v, _ := strings.Cut(part, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				n = -1
			}
			res.dropped[k] = n
		}
	}
	return res
}

// check runs raw through both and fails t on any difference.
func (rg *refGateway) check(t *testing.T, raw []byte) refResult {
	t.Helper()
	want := referenceReceiveFull(raw, refCluster, refNow, rg.al, refOptions(), refMaxSeries)
	got := rg.run(raw)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\ninput (%d bytes): %x\ninput decoded: %s\nreference: %d %s dropped %v\nhandler:   %d %s forwarded %s dropped %v",
			fmt.Sprintf(format, args...), len(raw), raw, refDescribeRequest(raw),
			want.status, refDescribeSeries(want.out), want.dropped,
			got.status, strings.TrimSpace(got.body), refDescribeBody(got.forward), got.dropped)
	}
	if got.status != want.status {
		fail("status differs")
	}
	if len(want.out)+len(want.metadata) == 0 && want.status != http.StatusNoContent {
		if got.parts != 0 {
			fail("refused request forwarded something")
		}
		return want
	}
	// What the gogo path forwards: prompb Marshal of the reference output
	// (which, like the encoder, omits zero fields: -0 is sent as +0).
	wantBody, err := (&prompb.WriteRequest{Timeseries: want.out, Metadata: want.metadata}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var wantFwd, gotFwd prompb.WriteRequest
	if err := wantFwd.Unmarshal(wantBody); err != nil {
		t.Fatal(err)
	}
	if err := gotFwd.Unmarshal(got.forward); err != nil {
		fail("forwarded body does not decode: %v", err)
	}
	if len(want.out)+len(want.metadata) == 0 && got.parts != 0 {
		fail("forwarded a request with nothing to forward")
	}
	if got.parts > 1 {
		fail("forwarded in %d parts", got.parts)
	}
	if msg := refSeriesDiff(wantFwd.Timeseries, gotFwd.Timeseries); msg != "" {
		fail("forwarded series differ: %s", msg)
	}
	if fmt.Sprint(wantFwd.Metadata) != fmt.Sprint(gotFwd.Metadata) {
		fail("forwarded metadata %v, want %v", gotFwd.Metadata, wantFwd.Metadata)
	}
	// Histograms are forwarded as they arrived, which Marshal may
	// encode differently (unpacked or repeated fields): their content is
	// compared above.
	hasHist := false
	for _, ts := range want.out {
		hasHist = hasHist || len(ts.Histograms) > 0
	}
	if !hasHist && !bytes.Equal(got.forward, wantBody) {
		fail("forwarded bytes differ from prompb Marshal:\nwant %x\ngot  %x", wantBody, got.forward)
	}
	for _, c := range got.clusters {
		if c != refCluster {
			fail("forwarded for cluster %q", c)
		}
	}
	if fmt.Sprint(got.dropped) != fmt.Sprint(want.dropped) {
		fail("dropped samples differ")
	}
	return want
}

// refSeriesDiff compares series exactly: labels, and samples bitwise.
func refSeriesDiff(want, got []prompb.TimeSeries) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d series, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if refLabelsKey(w.Labels) != refLabelsKey(g.Labels) {
			return fmt.Sprintf("series %d: labels %s, want %s", i, refLabelsKey(g.Labels), refLabelsKey(w.Labels))
		}
		if len(w.Samples) != len(g.Samples) {
			return fmt.Sprintf("series %d: %d samples, want %d", i, len(g.Samples), len(w.Samples))
		}
		for j := range w.Samples {
			if w.Samples[j].Timestamp != g.Samples[j].Timestamp || math.Float64bits(w.Samples[j].Value) != math.Float64bits(g.Samples[j].Value) {
				return fmt.Sprintf("series %d sample %d: %v, want %v", i, j, g.Samples[j], w.Samples[j])
			}
		}
		if len(w.Histograms) != len(g.Histograms) {
			return fmt.Sprintf("series %d: %d histograms, want %d", i, len(g.Histograms), len(w.Histograms))
		}
		for j := range w.Histograms {
			wb, _ := w.Histograms[j].Marshal()
			gb, _ := g.Histograms[j].Marshal()
			if !bytes.Equal(wb, gb) {
				return fmt.Sprintf("series %d histogram %d: %v, want %v", i, j, g.Histograms[j], w.Histograms[j])
			}
		}
		if len(w.Exemplars) != len(g.Exemplars) {
			return fmt.Sprintf("series %d: %d exemplars, want %d", i, len(g.Exemplars), len(w.Exemplars))
		}
		for j := range w.Exemplars {
			we, ge := w.Exemplars[j], g.Exemplars[j]
			if refLabelsKey(we.Labels) != refLabelsKey(ge.Labels) || we.Timestamp != ge.Timestamp || math.Float64bits(we.Value) != math.Float64bits(ge.Value) {
				return fmt.Sprintf("series %d exemplar %d: %v, want %v", i, j, ge, we)
			}
		}
	}
	return ""
}

func refDescribeSeries(ss []prompb.TimeSeries) string {
	var parts []string
	for _, s := range ss {
		var smp []string
		for _, x := range s.Samples {
			smp = append(smp, fmt.Sprintf("%v@%d(%#x)", x.Value, x.Timestamp, math.Float64bits(x.Value)))
		}
		parts = append(parts, "{"+refLabelsKey(s.Labels)+"} "+strings.Join(smp, " "))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func refDescribeBody(b []byte) string {
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(b); err != nil {
		return fmt.Sprintf("undecodable %x", b)
	}
	return refDescribeSeries(wr.Timeseries)
}

func refDescribeRequest(raw []byte) string {
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return "(invalid: " + err.Error() + ")"
	}
	var parts []string
	for _, s := range wr.Timeseries {
		var smp []string
		for _, x := range s.Samples {
			smp = append(smp, fmt.Sprintf("%v@%d", x.Value, x.Timestamp-refNow.UnixMilli()))
		}
		parts = append(parts, fmt.Sprintf("{%s} now%+v ex=%d h=%d", refLabelsKey(s.Labels), smp, len(s.Exemplars), len(s.Histograms)))
	}
	return fmt.Sprintf("%d series [%s] metadata=%d", len(wr.Timeseries), strings.Join(parts, "; "), len(wr.Metadata))
}

// refTS builds a series of samples with the label pairs kv, in order.
func refTS(samples []prompb.Sample, kv ...string) prompb.TimeSeries {
	s := prompb.TimeSeries{Samples: samples}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Labels = append(s.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return s
}

func refAt(v float64, offset time.Duration) []prompb.Sample {
	return []prompb.Sample{{Value: v, Timestamp: refNow.Add(offset).UnixMilli()}}
}

func refMarshal(tb testing.TB, series ...prompb.TimeSeries) []byte {
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// refSeeds are realistic requests and the edge cases around each rule.
func refSeeds(tb testing.TB) [][]byte {
	now := refAt(1, 0)
	cv := func(kv ...string) prompb.TimeSeries {
		return refTS(now, append([]string{"__name__", "cluster_version"}, kv...)...)
	}
	hist := cv("type", "h")
	hist.Histograms = []prompb.Histogram{{Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 1, Timestamp: refNow.UnixMilli()}}
	histOnly := refTS(nil, "__name__", "rpc_duration_seconds")
	histOnly.Histograms = hist.Histograms
	exemplar := refTS(refAt(2, 0), "__name__", "rpc_duration_seconds_count", "job", "api")
	exemplar.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: refNow.UnixMilli()}}
	multi := refTS([]prompb.Sample{
		{Value: 1, Timestamp: refNow.Add(-2 * time.Hour).UnixMilli()},
		{Value: 2, Timestamp: refNow.Add(-time.Hour).UnixMilli()},     // oldest kept
		{Value: 3, Timestamp: refNow.Add(-time.Hour).UnixMilli() - 1}, // too old
		{Value: 4, Timestamp: refNow.UnixMilli()},
		{Value: 5, Timestamp: refNow.Add(10 * time.Minute).UnixMilli()},   // newest kept
		{Value: 6, Timestamp: refNow.Add(10*time.Minute).UnixMilli() + 1}, // too new
	}, "__name__", "cluster_version", "type", "current")
	many := make([]prompb.TimeSeries, refMaxSeries+1)
	for i := range many {
		many[i] = cv("type", strconv.Itoa(i))
	}
	manyRaw := refMarshal(tb, many...)
	withMeta, err := (&prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{cv("type", "current")},
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "cluster_version", Help: "h"}},
	}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	seeds := [][]byte{
		nil, // an empty request
		// A Prometheus-like request: sorted labels, allowlisted and not.
		refMarshal(tb,
			refTS(refAt(1, -15*time.Second), "__name__", "cluster_version", "instance", "10.0.0.1:9090", "job", "cvo", "type", "current", "version", "4.15.2"),
			refTS(refAt(0.25, -15*time.Second), "__name__", "http_latency_bucket", "instance", "a", "le", "0.5", "pod", "p-1"),
			refTS(refAt(7, -15*time.Second), "__name__", "http_latency_total", "instance", "a"),
			refTS(refAt(1, -15*time.Second), "__name__", "up", "job", "x"),
			refTS(refAt(3, -15*time.Second), "__name__", "rpc_duration_seconds_sum", "_id", refCluster, "job", "api"),
		),
		// Collision after stripping instance and pod: the first wins.
		refMarshal(tb, cv("instance", "a", "type", "x"), refTS(refAt(2, 0), "__name__", "cluster_version", "pod", "b", "type", "x"), cv("type", "x", "_id", refCluster)),
		// The first of a label set has only too-old samples: the second survives.
		refMarshal(tb, refTS(refAt(1, -3*time.Hour), "__name__", "cluster_version", "instance", "a"), refTS(refAt(2, 0), "__name__", "cluster_version", "instance", "b")),
		// Unsorted labels.
		refMarshal(tb, refTS(now, "version", "1", "__name__", "cluster_version", "_id", refCluster, "instance", "x", "type", "t")),
		// Duplicate labels: refused when allowlisted, dropped otherwise.
		refMarshal(tb, cv("type", "a", "type", "b")),
		refMarshal(tb, refTS(now, "__name__", "up", "job", "a", "job", "a")),
		refMarshal(tb, refTS(now, "__name__", "cluster_version", "__name__", "cluster_version")),
		refMarshal(tb, refTS(now, "__name__", "cluster_version", "__name__", "")),
		refMarshal(tb, refTS(now, "__name__", "", "__name__", "cluster_version")),
		refMarshal(tb, cv("_id", refCluster, "_id", refCluster)),
		refMarshal(tb, cv("instance", "a", "instance", "b")),
		// Cluster IDs: own, empty, foreign (allowlisted or not), in any occurrence.
		refMarshal(tb, cv("_id", "")),
		refMarshal(tb, cv("_id", "c2")),
		refMarshal(tb, refTS(now, "__name__", "up", "_id", "c2")),
		refMarshal(tb, cv("_id", "", "_id", "c2")),
		refMarshal(tb, cv("_id", refCluster, "_id", "c2")),
		refMarshal(tb, refTS(now, "__name__", "up", "_id", refCluster, "_id", "c2")),
		// Timestamp bounds, inclusive.
		refMarshal(tb, multi),
		refMarshal(tb, refTS(refAt(1, -2*time.Hour), "__name__", "cluster_version"), refTS(refAt(1, time.Hour), "__name__", "rpc_duration_seconds")),
		refMarshal(tb, refTS([]prompb.Sample{{Value: 1, Timestamp: 0}}, "__name__", "cluster_version")),
		refMarshal(tb, refTS([]prompb.Sample{{Value: 1, Timestamp: math.MaxInt64}, {Value: 1, Timestamp: math.MinInt64}}, "__name__", "cluster_version")),
		// Values: -0 (sent as +0 by gogo and the encoder), NaN, stale NaN, Inf.
		refMarshal(tb, refTS([]prompb.Sample{
			{Value: math.Copysign(0, -1), Timestamp: refNow.UnixMilli()},
			{Value: math.NaN(), Timestamp: refNow.UnixMilli() + 1},
			{Value: math.Float64frombits(0x7ff0000000000002), Timestamp: refNow.UnixMilli() + 2},
			{Value: math.Inf(-1), Timestamp: refNow.UnixMilli() + 3},
			{Value: 0, Timestamp: refNow.UnixMilli() + 4},
		}, "__name__", "cluster_version")),
		// Invalid UTF-8: refused when allowlisted, dropped otherwise.
		refMarshal(tb, cv("type", "\xff\xfe")),
		refMarshal(tb, refTS(now, "__name__", "up", "type", "\xff")),
		refMarshal(tb, refTS(now, "__name__", "cluster_version\xff")),
		// Empty values and names.
		refMarshal(tb, cv("type", "", "version", "")),
		refMarshal(tb, cv("", "v")),
		refMarshal(tb, cv("", "")),
		refMarshal(tb, refTS(now, "job", "no_name")),
		// Invalid names.
		refMarshal(tb, cv("__meta_x", "v")),
		refMarshal(tb, cv("a-b", "v")),
		refMarshal(tb, cv("9a", "v")),
		refMarshal(tb, refTS(now, "__name__", "rpc_duration_:ok", "a9", "v")),
		refMarshal(tb, refTS(now, "__name__", "rpc_duration_ bad")),
		// Sizes: labels, name length, value length.
		refMarshal(tb, cv("a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6")),
		refMarshal(tb, cv("a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7")),
		refMarshal(tb, cv("instance", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7")),
		refMarshal(tb, cv(strings.Repeat("n", 24), "v"), cv(strings.Repeat("v", 40), "v")),
		refMarshal(tb, cv(strings.Repeat("n", 25), "v")),
		refMarshal(tb, cv("type", strings.Repeat("v", 41))),
		refMarshal(tb, refTS(now, "__name__", "up", "type", strings.Repeat("v", 41))),
		// Histograms, exemplars, metadata.
		refMarshal(tb, hist, histOnly, exemplar),
		refMarshal(tb, refTS(nil, "__name__", "cluster_version")),
		withMeta,
		// The series cap, and its precedence over a later malformation.
		manyRaw,
		manyRaw[:len(manyRaw)-1],
		append(append([]byte{}, manyRaw...), 0x0a, 0xff),
		refMarshal(tb, many[:refMaxSeries]...),
		append(refMarshal(tb, many[:refMaxSeries]...), 0x0a, 0x00, 0xff),
		// Unknown fields in every message (found by the fuzzer: gogo keeps
		// them in XXX_unrecognized, the gateway does not forward them).
		[]byte("\nI\n\x1b\n\b__name__\x12\x0fcluster_version2\r0000000000000\n\t\n\x04type\x12\x01x\x12\x10100000000\x10\x80\xdc\xf3\xda\xf2222000000000000000000000000000000000000000000000000002\x100000000000000000"),
		[]byte("\n/\n\x1e\n\b__name__\x12\x0fcluster_version\x1a\x01z\x12\n\x10\x80\xdc\xf3\xda\xf22\x1a\x01uJ\x01w(\x01"),
		// Malformed bodies (FuzzReceive's seeds).
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		bytes.Repeat([]byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x01}, 50),
		[]byte("garbage"),
	}
	return seeds
}

// refRandomRequest builds a request from a small alphabet so that
// collisions, duplicates, allowlisted names, cluster IDs, invalid labels
// and out-of-bounds timestamps all occur often; a few are corrupted.
func refRandomRequest(r *rand.Rand) []byte {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	// Mostly valid choices, with a rare invalid one: one invalid kept
	// series refuses the whole request.
	rare := func(common, bad []string) string {
		if r.IntN(25) == 0 {
			return pick(bad...)
		}
		return pick(common...)
	}
	names := []string{"cluster_version", "cluster_version", "rpc_duration_seconds", "rpc_duration_:x", "http_latency_bucket", "http_latency_sum", "http_latency_total", "up"}
	badNames := []string{"bad-name", "", "9lives", "up\xff"}
	labelNames := []string{"job", "type", "instance", "instance", "pod", "_id", "_id", "le"}
	badLabelNames := []string{"__meta_y", "a-b", "", strings.Repeat("n", 25)}
	values := []string{"a", "a", "b", "", "c1"}
	badValues := []string{"\xff", strings.Repeat("v", 41)}
	idValues := []string{refCluster, refCluster, refCluster, "", ""}
	offsets := []time.Duration{0, 0, 0, -time.Minute, -time.Hour, -time.Hour - time.Millisecond, -3 * time.Hour, 10 * time.Minute, 10*time.Minute + time.Millisecond, time.Hour}
	floats := []float64{1, 1, 0, math.Copysign(0, -1), math.NaN(), math.Inf(1), 42.5, -7}

	n := r.IntN(8)
	if r.IntN(10) == 0 {
		n = refMaxSeries - 1 + r.IntN(4)
	}
	wr := &prompb.WriteRequest{}
	for range n {
		var s prompb.TimeSeries
		if r.IntN(10) != 0 {
			s.Labels = append(s.Labels, prompb.Label{Name: "__name__", Value: rare(names, badNames)})
		}
		extra := r.IntN(4)
		if r.IntN(20) == 0 {
			extra = 7 + r.IntN(3)
		}
		for range extra {
			l := prompb.Label{Name: rare(labelNames, badLabelNames)}
			switch {
			case l.Name != "_id":
				l.Value = rare(values, badValues)
			case r.IntN(25) == 0:
				l.Value = "c2" // another cluster's
			default:
				l.Value = pick(idValues...)
			}
			if r.IntN(20) == 0 {
				l.Name = string(rune('a' + r.IntN(26))) // many distinct labels
			}
			if slices.ContainsFunc(s.Labels, func(o prompb.Label) bool { return o.Name == l.Name }) && r.IntN(8) != 0 {
				continue // duplicates, but not too many
			}
			s.Labels = append(s.Labels, l)
		}
		if r.IntN(15) == 0 && len(s.Labels) > 0 {
			s.Labels = append(s.Labels, s.Labels[r.IntN(len(s.Labels))])
		}
		if r.IntN(10) < 7 {
			sort.SliceStable(s.Labels, func(a, b int) bool { return s.Labels[a].Name < s.Labels[b].Name })
		}
		for range r.IntN(4) {
			ts := refNow.Add(offsets[r.IntN(len(offsets))]).UnixMilli()
			if r.IntN(20) == 0 {
				ts = r.Int64() - r.Int64()
			}
			s.Samples = append(s.Samples, prompb.Sample{Value: floats[r.IntN(len(floats))], Timestamp: ts})
		}
		if r.IntN(10) == 0 {
			s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: pick(values...)}}, Value: 1, Timestamp: refNow.Add(offsets[r.IntN(len(offsets))]).UnixMilli()}}
		}
		for range r.IntN(3) / 2 * (1 + r.IntN(2)) {
			ts := refNow.Add(offsets[r.IntN(len(offsets))]).UnixMilli()
			h := prompb.Histogram{Count: &prompb.Histogram_CountInt{CountInt: 2}, Sum: 3, Schema: 1,
				PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{2}, Timestamp: ts}
			switch r.IntN(12) {
			case 0: // mixes float count with integer buckets
				h.Count = &prompb.Histogram_CountFloat{CountFloat: 2}
			case 1: // spans and buckets disagree
				h.PositiveDeltas = []int64{1, 1}
			case 2: // a float histogram
				h.Count, h.PositiveDeltas, h.PositiveCounts = &prompb.Histogram_CountFloat{CountFloat: 2.5}, nil, []float64{2.5}
			}
			s.Histograms = append(s.Histograms, h)
		}
		wr.Timeseries = append(wr.Timeseries, s)
	}
	if r.IntN(10) == 0 {
		wr.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: pick(names...), Help: "h"}}
	}
	raw, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	switch r.IntN(25) {
	case 0:
		if len(raw) > 0 {
			raw = raw[:r.IntN(len(raw))]
		}
	case 1:
		raw = append(raw, byte(r.IntN(256)), byte(r.IntN(256)))
	case 2:
		if len(raw) > 0 {
			raw[r.IntN(len(raw))] ^= byte(1 + r.IntN(255))
		}
	}
	return raw
}

func FuzzReceiveMatchesReference(f *testing.F) {
	for _, s := range refSeeds(f) {
		f.Add(s)
	}
	r := rand.New(rand.NewPCG(7, 11))
	for range 20 {
		f.Add(refRandomRequest(r))
	}
	rg := newRefGateway(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		rg.check(t, raw)
	})
}

func TestReceiveMatchesReference(t *testing.T) {
	rg := newRefGateway(t)
	// The reference itself, on answers worked out by hand.
	many := make([]prompb.TimeSeries, refMaxSeries+1)
	for i := range many {
		many[i] = refTS(refAt(1, 0), "__name__", "up")
	}
	for _, tc := range []struct {
		raw    []byte
		status int
		out    string
	}{
		{refMarshal(t,
			refTS(refAt(1, 0), "__name__", "cluster_version", "instance", "10.0.0.1:9090", "pod", "p", "type", "current"),
			refTS(refAt(2, 0), "__name__", "not_allowed", "job", "x"),
			refTS(refAt(3, 0), "_id", "c1", "__name__", "rpc_duration_seconds", "instance", "a"),
			refTS(refAt(4, 0), "__name__", "cluster_version", "instance", "10.0.0.2:9090", "type", "current"),
			refTS(refAt(5, -2*time.Hour), "__name__", "rpc_duration_seconds", "x", "old"),
		), 204, fmt.Sprintf(`[{"__name__"="cluster_version","_id"="c1","type"="current",} 1@%[1]d(0x3ff0000000000000); {"__name__"="rpc_duration_seconds","_id"="c1",} 3@%[1]d(0x4008000000000000)]`, refNow.UnixMilli())},
		{refMarshal(t, refTS(refAt(1, 0), "__name__", "up", "_id", "c2")), 400, "[]"},
		{refMarshal(t, refTS(refAt(1, 0), "__name__", "cluster_version", "a-b", "x")), 400, "[]"},
		{refMarshal(t, many...), 413, "[]"},
		{[]byte("garbage"), 400, "[]"},
	} {
		status, out := referenceReceive(tc.raw, refCluster, refNow, rg.al, refOptions(), refMaxSeries)
		if status != tc.status || refDescribeSeries(out) != tc.out {
			t.Fatalf("reference: %d %s, want %d %s", status, refDescribeSeries(out), tc.status, tc.out)
		}
	}

	statuses := map[int]int{}
	drops := map[string]int{}
	forwarded := 0
	run := func(raw []byte) {
		res := rg.check(t, raw)
		statuses[res.status]++
		for k, n := range res.dropped {
			drops[k] += n
		}
		if len(res.out) > 0 {
			forwarded++
		}
	}
	for _, s := range refSeeds(t) {
		run(s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		run(refRandomRequest(r))
	}
	t.Logf("statuses %v, requests forwarding series %d, dropped samples %v", statuses, forwarded, drops)
	// The generator must keep exercising every rule.
	if statuses[204] < 500 || statuses[400] < 200 || statuses[413] < 20 || forwarded < 300 {
		t.Errorf("generator too narrow: statuses %v, forwarding %d", statuses, forwarded)
	}
	for _, reason := range []string{"allowlist", "collision", "too_old", "too_new", "invalid"} {
		if drops[reason] < 20 {
			t.Errorf("generator rarely drops for %s: %v", reason, drops)
		}
	}
}
