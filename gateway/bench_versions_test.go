package gateway

// BenchmarkRemoteWriteVersions compares remote write 2.0 with 1.0 on the
// same 1000 realistic series (realisticPayload), in one run: each
// sub-benchmark measures its 2.0 path with b.Loop and, every versusBlock
// iterations, runs as many iterations of the matching 1.0 path with the
// timer stopped, each side on its own CPU clock (getrusage), so a noisy
// neighbour or a frequency change weighs on both sides of the ratio alike.
//
//	decode         snappy decode + UnmarshalWriteRequestV2 vs
//	               snappy decode + UnmarshalWriteRequest (no name filter)
//	receive        POST /api/v1/receive, 2.0 in and 1.0 out vs 1.0 in and
//	               1.0 out: authentication, decode (with the allowlist's
//	               name filter), allowlist, relabel, encode, snappy and a
//	               discarding forwarder
//	receive-v2out  the same with forward.protobuf_message 2.0
//	               (Options.ForwardMessage = forward.MessageV2) for the 2.0
//	               request, vs the same 1.0-in/1.0-out baseline
//
// Each reports samples/cpu-s (2.0: float and histogram samples of the
// request per second of process CPU time), v1-samples/cpu-s (1.0) and
// x-v1, their ratio; `make bench` prints the x-v1 lines, with the median
// of each over -count runs, at the end.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/test/e2e/harness"
	"github.com/telegate/telegate/test/load"
)

// realistic is one payload in both versions.
type realistic struct {
	v1, v2    []byte // snappy-compressed bodies
	allowlist []byte
	series    int
	points    int // float and histogram samples
	exemplars int
}

// Shape of realisticPayload.
const (
	realisticSamples = 3 // samples per series, 15 s apart
	// realisticHistograms are the indexes in load.DefaultSpec's names of
	// the families made native histograms (one allowlisted, one not).
	realisticHist0, realisticHist1 = 10, 11
)

// realisticPayload is the 1000 series of load.DefaultSpec (20 families of
// 50 series, 10 labels each with cluster-like values, random instance and
// pod) made closer to what a cluster's Prometheus sends: 3 samples each,
// two of the families native histograms (exponential, schema 3, 14
// buckets in two spans, 3 histogram samples per series), every other
// series of the _total families with an exemplar (trace_id and span_id)
// on its last sample, and each family's type and help. The 1.0 request
// carries the metadata in WriteRequest.metadata and the exemplars on
// their series (Prometheus sends them in series of their own, which would
// cost 1.0 more); the 2.0 request is what Prometheus' 2.0 encoding makes
// of the same series: one symbols table in order of first use, labels
// sorted, metadata (type, help) on every series. Every other family is
// allowlisted. Timestamps are around the time it is first built.
var realisticPayload = sync.OnceValue(func() (p realistic) {
	spec := load.DefaultSpec
	now := time.Now().UnixMilli()
	base := spec.WriteRequest(now)
	names := spec.MetricNames()
	names[realisticHist0] = "apiserver_request_duration_seconds"
	names[realisticHist1] = "etcd_disk_wal_fsync_duration_seconds"
	r := rand.New(rand.NewPCG(7, 11))
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}

	var v1 prompb.WriteRequest
	st := writev2.NewSymbolTable()
	var v2 writev2.Request
	var al strings.Builder
	al.WriteString("matches:\n")
	for f, name := range names {
		if f%2 == 0 {
			fmt.Fprintf(&al, "# owners: (@telegate/bench)\n# Benchmark family %s.\n- '{__name__=%q}'\n", name, name)
		}
		typ, help := prompb.MetricMetadata_GAUGE, "Current value of "+strings.ReplaceAll(name, "_", " ")+"."
		hist := f == realisticHist0 || f == realisticHist1
		counter := strings.HasSuffix(name, "_total")
		switch {
		case hist:
			typ, help = prompb.MetricMetadata_HISTOGRAM, "Distribution of "+strings.ReplaceAll(name, "_", " ")+"."
		case counter:
			typ, help = prompb.MetricMetadata_COUNTER, "Total number of "+strings.ReplaceAll(strings.TrimSuffix(name, "_total"), "_", " ")+"."
		}
		v1.Metadata = append(v1.Metadata, prompb.MetricMetadata{Type: typ, MetricFamilyName: name, Help: help})
		for k := range spec.SeriesPerName {
			src := base.Timeseries[f*spec.SeriesPerName+k]
			ls := append([]prompb.Label{{Name: "__name__", Value: name}}, src.Labels[1:]...)
			ts1 := prompb.TimeSeries{Labels: ls}
			ts2 := writev2.TimeSeries{Metadata: writev2.Metadata{Type: writev2.Metadata_MetricType(typ), HelpRef: 0}}
			for _, l := range ls {
				ts2.LabelsRefs = append(ts2.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			ts2.Metadata.HelpRef = st.Symbolize(help)
			for j := range realisticSamples {
				t := now - int64(realisticSamples-1-j)*15000
				if hist {
					h := realisticHistogram(r)
					ts1.Histograms = append(ts1.Histograms, prompb.FromIntHistogram(t, h))
					ts2.Histograms = append(ts2.Histograms, writev2.FromIntHistogram(0, t, h))
				} else {
					v := src.Samples[0].Value + float64(j)
					ts1.Samples = append(ts1.Samples, prompb.Sample{Value: v, Timestamp: t})
					ts2.Samples = append(ts2.Samples, writev2.Sample{Value: v, Timestamp: t})
				}
				p.points++
			}
			if counter && k%2 == 0 {
				trace, span := hex(32), hex(16)
				v := src.Samples[0].Value
				ts1.Exemplars = append(ts1.Exemplars, prompb.Exemplar{
					Labels: []prompb.Label{{Name: "span_id", Value: span}, {Name: "trace_id", Value: trace}}, Value: v, Timestamp: now})
				ts2.Exemplars = append(ts2.Exemplars, writev2.Exemplar{
					LabelsRefs: []uint32{st.Symbolize("span_id"), st.Symbolize(span), st.Symbolize("trace_id"), st.Symbolize(trace)}, Value: v, Timestamp: now})
				p.exemplars++
			}
			v1.Timeseries = append(v1.Timeseries, ts1)
			v2.Timeseries = append(v2.Timeseries, ts2)
			p.series++
		}
	}
	v2.Symbols = st.Symbols()
	raw1, err := v1.Marshal()
	if err != nil {
		panic(err)
	}
	raw2, err := v2.Marshal()
	if err != nil {
		panic(err)
	}
	p.v1, p.v2 = snappy.Encode(nil, raw1), snappy.Encode(nil, raw2)
	p.allowlist = []byte(al.String())
	return p
})

// realisticHistogram is an integer native histogram like a request
// duration's: schema 3, a zero bucket, 14 positive buckets in two spans.
func realisticHistogram(r *rand.Rand) *histogram.Histogram {
	h := &histogram.Histogram{
		Schema:          3,
		ZeroThreshold:   1e-128,
		ZeroCount:       uint64(r.IntN(3)),
		PositiveSpans:   []histogram.Span{{Offset: -4, Length: 6}, {Offset: 3, Length: 8}},
		PositiveBuckets: make([]int64, 14),
	}
	h.Count = h.ZeroCount
	prev := int64(0)
	for i := range h.PositiveBuckets {
		c := int64(1 + r.IntN(400))
		h.PositiveBuckets[i] = c - prev // deltas
		prev = c
		h.Count += uint64(c)
		h.Sum += float64(c) * 0.01 * float64(i+1)
	}
	if err := h.Validate(); err != nil {
		panic(err)
	}
	return h
}

// versusBlock is how many iterations of each side run in a row.
const versusBlock = 16

// versus measures run with b.Loop and, interleaved in blocks, base, and
// reports samples/cpu-s (run), v1-samples/cpu-s (base) and x-v1 for
// points samples per iteration of each.
func versus(b *testing.B, points int, run, base func()) {
	for range 10 { // warm the pools
		run()
		base()
	}
	var baseCPU time.Duration
	baseN := 0
	block := func() {
		b.StopTimer()
		start := cpuTime()
		for range versusBlock {
			base()
		}
		baseCPU += cpuTime() - start
		baseN += versusBlock
		b.StartTimer()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	n := 0
	start := cpuTime()
	for b.Loop() {
		run()
		if n++; n%versusBlock == 0 {
			cpu += cpuTime() - start
			block()
			start = cpuTime()
		}
	}
	cpu += cpuTime() - start
	if baseN == 0 { // too short to have interleaved: one block now
		block()
	}
	cpu, baseCPU = max(cpu, time.Microsecond), max(baseCPU, time.Microsecond)
	rate := float64(n*points) / cpu.Seconds()
	baseRate := float64(baseN*points) / baseCPU.Seconds()
	b.ReportMetric(rate, "samples/cpu-s")
	b.ReportMetric(baseRate, "v1-samples/cpu-s")
	b.ReportMetric(rate/baseRate, "x-v1")
}

// decodeOnce decodes body (2.0 if v2) into a pooled batch and checks it
// holds every series, sample and exemplar of p.
func decodeOnce(b *testing.B, p realistic, body []byte, v2 bool) {
	bt := batch.Get()
	defer batch.Put(bt)
	var err error
	if bt.Buf, err = decode.DecodeBlock(bt.Buf[:0], body, 32<<20); err != nil {
		b.Fatal(err)
	}
	var st decode.Stats
	if v2 {
		st, err = decode.UnmarshalWriteRequestV2(bt.Buf, bt, decode.Limits{MaxSeries: 10000, MaxBatchBytes: decode.RemoteWriteV2Budget(len(bt.Buf))}, nil)
	} else {
		st, err = decode.UnmarshalWriteRequest(bt.Buf, bt, decode.Limits{MaxSeries: 10000, MaxBatchBytes: decode.RemoteWriteBudget(len(bt.Buf))})
	}
	if err != nil {
		b.Fatal(err)
	}
	if st.Series != p.series || st.Samples+st.Histograms != p.points || st.Exemplars != p.exemplars {
		b.Fatalf("decoded %+v, want %d series, %d samples, %d exemplars", st, p.series, p.points, p.exemplars)
	}
}

func BenchmarkRemoteWriteVersions(b *testing.B) {
	p := realisticPayload()
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(p.v2)))
		versus(b, p.points, func() { decodeOnce(b, p, p.v2, true) }, func() { decodeOnce(b, p, p.v1, false) })
	})
	token := harness.CompositeToken("bench-token", "bench-cluster")
	v1in := func(bg *benchGateway) func() {
		rq := newRequest("/api/v1/receive", token, "application/x-protobuf", "snappy", p.v1)
		w := &discardWriter{h: http.Header{}}
		return func() { receiveOnce(b, bg, w, rq) }
	}
	v2in := func(bg *benchGateway) func() {
		rq := newRequest("/api/v1/receive", token, decode.RemoteWriteV2ContentType, "snappy", p.v2)
		w := &discardWriter{h: http.Header{}}
		return func() { receiveOnce(b, bg, w, rq) }
	}
	for _, tc := range []struct{ name, msg string }{{"receive", forward.MessageV1}, {"receive-v2out", forward.MessageV2}} {
		b.Run(tc.name, func(b *testing.B) {
			base := newBenchGatewayWith(b, staticAuth(b), time.Now, p.allowlist)
			bg := newBenchGatewayWith(b, staticAuth(b), time.Now, p.allowlist, func(o *Options) { o.ForwardMessage = tc.msg })
			checkSameAnswer(b, p, base, bg)
			b.SetBytes(int64(len(p.v2)))
			versus(b, p.points, v2in(bg), v1in(base))
		})
	}
}

// receiveOnce serves rq and checks the answer is a 204.
func receiveOnce(b *testing.B, bg *benchGateway, w *discardWriter, rq *request) {
	w.reset()
	bg.h.ServeHTTP(w, rq.rewind())
	if w.code != http.StatusNoContent {
		b.Fatalf("status %d", w.code)
	}
}

// checkSameAnswer checks the 1.0 request to base and the 2.0 request to
// bg are both accepted with the same drops, and forward the same number
// of requests.
func checkSameAnswer(b *testing.B, p realistic, base, bg *benchGateway) {
	token := harness.CompositeToken("bench-token", "bench-cluster")
	w1, w2 := &discardWriter{h: http.Header{}}, &discardWriter{h: http.Header{}}
	base.h.ServeHTTP(w1, newRequest("/api/v1/receive", token, "application/x-protobuf", "snappy", p.v1).rewind())
	bg.h.ServeHTTP(w2, newRequest("/api/v1/receive", token, decode.RemoteWriteV2ContentType, "snappy", p.v2).rewind())
	d1, d2 := w1.h.Get("X-Telegate-Dropped-Samples"), w2.h.Get("X-Telegate-Dropped-Samples")
	if w1.code != http.StatusNoContent || w2.code != http.StatusNoContent || d1 != d2 || d1 == "" {
		b.Fatalf("1.0: %d dropped %q; 2.0: %d dropped %q", w1.code, d1, w2.code, d2)
	}
	if got := w2.h.Get(writtenSamplesHeader); got == "" || got == "0" {
		b.Fatalf("2.0 wrote %q samples", got)
	}
	if base.fwd.requests.Load() != 1 || bg.fwd.requests.Load() != 1 {
		b.Fatalf("forwarded %d and %d requests, want 1 each", base.fwd.requests.Load(), bg.fwd.requests.Load())
	}
}
