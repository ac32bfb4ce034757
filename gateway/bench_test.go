package gateway

// Benchmarks of the whole ingest path on the payload of the performance
// issue (test/load.DefaultSpec: 1000 series = 20 names x 50 series, 10
// labels each including instance and pod, one sample each; half the names
// allowlisted), through Handler().ServeHTTP with authentication, allowlist,
// stripping, stamping, the upload interval and forwarding to a null
// downstream.
//
// Each benchmark reports, besides ns/op:
//
//	samples/cpu-s  samples received per second of process CPU time
//	               (getrusage user+sys around the loop: GC workers count)
//	allocs/series  heap allocations per received series
//	x-naive        samples/cpu-s divided by the naive floor's (golang/snappy
//	               + gogo prompb.WriteRequest Unmarshal, Marshal,
//	               snappy.Encode on the same payload), measured interleaved
//	               with the benchmark: blocks of the handler alternate with
//	               blocks of the floor, each timed on its own, so a noisy
//	               neighbour or a CPU frequency change weighs on both sides
//	               of the ratio alike
//
// `make bench` prints the x-naive lines at the end. BenchmarkReceiveV2
// (remote write 2.0) also reports x-v1, its samples/cpu-s over the 1.0
// request's measured in the same run.

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/e2e/harness"
	"github.com/telegate/telegate/test/load"
)

// nullForwarder is a downstream that discards what it is sent.
type nullForwarder struct{ requests, bytes atomic.Int64 }

func (f *nullForwarder) Send(_ context.Context, _ string, body []byte) error {
	f.requests.Add(1)
	f.bytes.Add(int64(len(body)))
	return nil
}

// discardWriter is a reusable http.ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func (w *discardWriter) reset() { clear(w.h); w.code = 0 }

// rereader is a request body that can be rewound.
type rereader struct{ bytes.Reader }

func (*rereader) Close() error { return nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter measures process CPU time and heap allocations around a loop.
type meter struct {
	cpu     time.Duration
	mallocs uint64
}

func startMeter() meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return meter{cpu: cpuTime(), mallocs: ms.Mallocs}
}

// stop returns samples per CPU-second and allocations per series for n
// iterations of samples samples and series series each.
func (m meter) stop(n, samples, series int) (perCPUSec, allocsPerSeries float64) {
	cpu := cpuTime() - m.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if cpu <= 0 {
		cpu = time.Microsecond
	}
	return float64(n*samples) / cpu.Seconds(), float64(ms.Mallocs-m.mallocs) / float64(n*series)
}

func (m meter) report(b *testing.B, samples, series int) float64 {
	rate, allocs := m.stop(b.N, samples, series)
	b.ReportMetric(rate, "samples/cpu-s")
	b.ReportMetric(allocs, "allocs/series")
	return rate
}

// benchPayload is the issue's payload, built once.
type payload struct {
	spec      load.Spec
	rw, up    []byte // remote write and /upload bodies
	allowlist []byte
}

var benchPayload = sync.OnceValue(func() (p payload) {
	p.spec = load.DefaultSpec
	now := time.Now().UnixMilli()
	var err error
	if p.rw, err = load.EncodeRemoteWrite(p.spec.WriteRequest(now)); err != nil {
		panic(err)
	}
	if p.up, err = load.EncodeUpload(p.spec.Families(now)); err != nil {
		panic(err)
	}
	p.allowlist = p.spec.AllowlistYAML()
	return p
})

// naiveRoundTrip is what a gateway built on generated code does at the
// least: decode the body into gogo structs and marshal them back.
func naiveRoundTrip(body []byte) error {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return err
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return err
	}
	out, err := wr.Marshal()
	if err != nil {
		return err
	}
	_ = snappy.Encode(nil, out)
	return nil
}

// floorMeter runs the naive round trip in blocks between blocks of a
// benchmark and keeps its own CPU time, for an x-naive ratio measured under
// the same machine conditions as the benchmark.
type floorMeter struct {
	body    []byte
	series  int
	n       int
	cpu     time.Duration
	mallocs uint64 // heap allocations made by the floor's blocks
}

// mallocs is the process's cumulative count of heap allocations (exact, as
// testing's allocs/op reads it).
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

func newFloorMeter() *floorMeter {
	p := benchPayload()
	f := &floorMeter{body: p.rw, series: p.spec.Series()}
	for range 5 { // warm up
		_ = naiveRoundTrip(f.body)
	}
	return f
}

// block runs n round trips with the benchmark timer stopped.
func (f *floorMeter) block(b *testing.B, n int) {
	b.StopTimer()
	m0, start := mallocs(), cpuTime()
	for range n {
		if err := naiveRoundTrip(f.body); err != nil {
			b.Fatal(err)
		}
	}
	// Collect the floor's garbage on the floor's clock, so the GC cycles
	// it started do not run on the benchmark's.
	runtime.GC()
	f.n += n
	f.cpu += cpuTime() - start
	f.mallocs += mallocs() - m0
	b.StartTimer()
}

// rate is the floor's samples per CPU-second so far.
func (f *floorMeter) rate() float64 {
	if f.cpu <= 0 {
		return 0
	}
	return float64(f.n*f.series) / f.cpu.Seconds()
}

// Interleaving: every floorEvery iterations of the benchmark, floorBlock
// round trips of the floor (about as much CPU as the benchmark's block at
// a 5x ratio).
const floorEvery, floorBlock = 32, 6

// BenchmarkNaiveFloor is the denominator of the x-naive ratios, on one core.
func BenchmarkNaiveFloor(b *testing.B) {
	body := benchPayload().rw
	series := benchPayload().spec.Series()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	m := startMeter()
	for b.Loop() {
		if err := naiveRoundTrip(body); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, series, series)
}

type benchGateway struct {
	gw  *Gateway
	h   http.Handler
	fwd *nullForwarder
	jwt string
}

// newBenchGateway builds a gateway with the production defaults of the
// config package and the issue's allowlist.
func newBenchGateway(tb testing.TB, auth authn.Authenticator, now func() time.Time) *benchGateway {
	tb.Helper()
	return newBenchGatewayWith(tb, auth, now, benchPayload().allowlist)
}

// newBenchGatewayWith is newBenchGateway with the allowlist file alYAML
// and the options changed by opts.
func newBenchGatewayWith(tb testing.TB, auth authn.Authenticator, now func() time.Time, alYAML []byte, opts ...func(*Options)) *benchGateway {
	tb.Helper()
	al, err := allowlist.Parse(alYAML, "allowlist.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := authn.NewEphemeralSigner(time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	fwd := &nullForwarder{}
	o := Options{
		Authenticator: auth,
		Issuer:        signer,
		Allowlist:     al,
		Pipeline: relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod", "prometheus_replica"},
			MaxLabels: 64, MaxNameLength: 256, MaxValueLength: 4096, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute}),
		Forwarder: fwd,
		Limits: Limits{MaxRequestBytes: 4 << 20, MaxDecodedBytes: 32 << 20, MaxSeriesPerRequest: 10000,
			UploadInterval: 4*time.Minute + 30*time.Second},
		MaxRetryTime: 30 * time.Second,
		Now:          now,
	}
	for _, f := range opts {
		f(&o)
	}
	gw := New(o)
	jwt, _, err := signer.Issue(authn.NewIdentity("bench-cluster", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return &benchGateway{gw: gw, h: gw.Handler(), fwd: fwd, jwt: jwt}
}

func staticAuth(tb testing.TB) authn.Authenticator {
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: bench-token\n  clusters: ['*']\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return authn.Chain(tokens)
}

// cachedAuth is the production shape with an upstream authorizer: every
// request after the first is a cache hit.
func cachedAuth(tb testing.TB) authn.Authenticator {
	upstream := authn.AuthenticatorFunc(func(_ context.Context, token, clusterID string) (authn.Identity, error) {
		if token != "bench-token" {
			return authn.Identity{}, authn.NewUnauthorized("unknown token")
		}
		return authn.NewIdentity(clusterID, "acct"), nil
	})
	c, err := authn.NewCachingAuthenticator(upstream, 10*time.Minute, 30*time.Second, 100000, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return authn.Chain(c)
}

// request is a reusable request for path with body.
type request struct {
	r    *http.Request
	body *rereader
	raw  []byte
}

func newRequest(path, bearer, contentType, encoding string, body []byte) *request {
	u, _ := url.Parse("http://127.0.0.1:9003" + path)
	rq := &request{body: &rereader{}, raw: body}
	rq.r = (&http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Host:          u.Host,
		ContentLength: int64(len(body)),
		Body:          rq.body,
		Header: http.Header{
			"Authorization":    {"Bearer " + bearer},
			"Content-Type":     {contentType},
			"Content-Encoding": {encoding},
		},
		RemoteAddr: "127.0.0.1:40000",
		RequestURI: path,
	}).WithContext(context.Background())
	return rq
}

func (rq *request) rewind() *http.Request {
	rq.body.Reset(rq.raw)
	return rq.r
}

func receiveRequest(p payload) *request {
	return newRequest("/api/v1/receive", harness.CompositeToken("bench-token", "bench-cluster"),
		"application/x-protobuf", "snappy", p.rw)
}

// serveOnce answers one request and checks the gateway accepted it and
// dropped exactly the non-allowlisted half.
func serveOnce(tb testing.TB, h http.Handler, w *discardWriter, r *http.Request, want int, wantDropped string) {
	w.reset()
	h.ServeHTTP(w, r)
	if w.code != want {
		tb.Fatalf("status %d, want %d", w.code, want)
	}
	if got := w.h.Get("X-Telegate-Dropped-Samples"); got != wantDropped {
		tb.Fatalf("X-Telegate-Dropped-Samples %q, want %q", got, wantDropped)
	}
}

func benchHandler(b *testing.B, bg *benchGateway, rq *request, want int) {
	p := benchPayload()
	series := p.spec.Series()
	wantDropped := "allowlist=" + itoa(series/2)
	w := &discardWriter{h: http.Header{}}
	for range 10 { // warm the pools
		serveOnce(b, bg.h, w, rq.rewind(), want, wantDropped)
	}
	floor := newFloorMeter()
	b.SetBytes(int64(len(rq.raw)))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	n := 0
	m0, start := mallocs(), cpuTime()
	for b.Loop() {
		w.reset()
		bg.h.ServeHTTP(w, rq.rewind())
		if w.code != want {
			b.Fatalf("status %d", w.code)
		}
		if n++; n%floorEvery == 0 {
			cpu += cpuTime() - start
			floor.block(b, floorBlock)
			start = cpuTime()
		}
	}
	cpu += cpuTime() - start
	if n < floorEvery { // too short to have interleaved: one block now
		floor.block(b, floorBlock)
	}
	reportRatio(b, n, series, cpu, mallocs()-m0, floor)
	if bg.fwd.requests.Load() == 0 {
		b.Fatal("nothing forwarded")
	}
}

// reportRatio reports samples/cpu-s, allocs/series (without the floor's
// blocks) and x-naive for n iterations of series series that took cpu and
// allocs heap allocations (the floor's included).
func reportRatio(b *testing.B, n, series int, cpu time.Duration, allocs uint64, floor *floorMeter) {
	if cpu <= 0 {
		cpu = time.Microsecond
	}
	rate := float64(n*series) / cpu.Seconds()
	b.ReportMetric(rate, "samples/cpu-s")
	b.ReportMetric(float64(allocs-floor.mallocs)/float64(n*series), "allocs/series")
	b.ReportMetric(rate/floor.rate(), "x-naive")
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(dst []byte, n int) []byte {
	if n >= 10 {
		dst = appendInt(dst, n/10)
	}
	return append(dst, byte('0'+n%10))
}

// BenchmarkReceive is POST /api/v1/receive (remote write) end to end.
func BenchmarkReceive(b *testing.B) {
	for _, tc := range []struct {
		name string
		auth func(testing.TB) authn.Authenticator
	}{{"auth=static", staticAuth}, {"auth=cached", cachedAuth}} {
		b.Run(tc.name, func(b *testing.B) {
			bg := newBenchGateway(b, tc.auth(b), time.Now)
			benchHandler(b, bg, receiveRequest(benchPayload()), http.StatusNoContent)
		})
	}
}

// benchPayloadV2 is the remote write body of benchPayload as a 2.0
// request (labels sorted, symbolized as Prometheus does), built once.
var benchPayloadV2 = sync.OnceValue(func() []byte {
	var wr prompb.WriteRequest
	raw, err := snappy.Decode(nil, benchPayload().rw)
	if err != nil {
		panic(err)
	}
	if err := wr.Unmarshal(raw); err != nil {
		panic(err)
	}
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, ts := range wr.Timeseries {
		ls := slices.Clone(ts.Labels)
		slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		out := writev2.TimeSeries{}
		for _, l := range ls {
			out.LabelsRefs = append(out.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		for _, x := range ts.Samples {
			out.Samples = append(out.Samples, writev2.Sample{Value: x.Value, Timestamp: x.Timestamp})
		}
		req.Timeseries = append(req.Timeseries, out)
	}
	req.Symbols = st.Symbols()
	data, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, data)
})

// BenchmarkReceiveV2 is POST /api/v1/receive with the same 1000 series as
// BenchmarkReceive sent as remote write 2.0, end to end (static auth).
// Blocks of the 1.0 request, and of the naive floor, are interleaved with
// it and timed on their own: besides samples/cpu-s (2.0), allocs/series
// and x-naive it reports v1-samples/cpu-s and x-v1, the 2.0 request's
// samples per CPU-second over the 1.0 request's in the same run. The
// requests that follow a block of the floor run measurably slower (its
// blocks end in a forced collection): when only 2.0 followed it, x-v1
// read 0.89 to 1.0 for a 2.0 path 1.13x as fast as 1.0's by every other
// measure (BenchmarkRemoteWriteVersions, which has no floor); 2.0 and 1.0
// now take turns after it.
func BenchmarkReceiveV2(b *testing.B) {
	bg := newBenchGateway(b, staticAuth(b), time.Now)
	p := benchPayload()
	series := p.spec.Series()
	wantDropped := "allowlist=" + itoa(series/2)
	v2 := newRequest("/api/v1/receive", harness.CompositeToken("bench-token", "bench-cluster"), decode.RemoteWriteV2ContentType, "snappy", benchPayloadV2())
	v1 := receiveRequest(p)
	w := &discardWriter{h: http.Header{}}
	for range 10 { // warm the pools
		serveOnce(b, bg.h, w, v2.rewind(), http.StatusNoContent, wantDropped)
		serveOnce(b, bg.h, w, v1.rewind(), http.StatusNoContent, wantDropped)
	}
	if got := w.h.Get(writtenSamplesHeader); got != "" {
		b.Fatalf("1.0 answer with %s: %q", writtenSamplesHeader, got)
	}
	serveOnce(b, bg.h, w, v2.rewind(), http.StatusNoContent, wantDropped)
	if got := w.h.Get(writtenSamplesHeader); got != itoa(series/2) {
		b.Fatalf("%s %q, want %d", writtenSamplesHeader, got, series/2)
	}
	floor := newFloorMeter()
	var v1cpu time.Duration
	var v1n int
	var v1mallocs uint64
	v1block := func() {
		b.StopTimer()
		m0, start := mallocs(), cpuTime()
		for range floorEvery {
			w.reset()
			bg.h.ServeHTTP(w, v1.rewind())
			if w.code != http.StatusNoContent {
				b.Fatalf("1.0: status %d", w.code)
			}
		}
		v1cpu += cpuTime() - start
		v1mallocs += mallocs() - m0
		v1n += floorEvery
		b.StartTimer()
	}
	b.SetBytes(int64(len(v2.raw)))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	n := 0
	m0, start := mallocs(), cpuTime()
	for b.Loop() {
		w.reset()
		bg.h.ServeHTTP(w, v2.rewind())
		if w.code != http.StatusNoContent {
			b.Fatalf("status %d", w.code)
		}
		if n++; n%floorEvery == 0 {
			cpu += cpuTime() - start
			// What follows the floor's block (which ends in a
			// collection) runs slower for a while: 2.0 and 1.0 take
			// turns at it.
			if n/floorEvery%2 == 0 {
				v1block()
				floor.block(b, floorBlock)
			} else {
				floor.block(b, floorBlock)
				v1block()
			}
			start = cpuTime()
		}
	}
	cpu += cpuTime() - start
	if n < floorEvery { // too short to have interleaved: one block of each now
		v1block()
		floor.block(b, floorBlock)
	}
	reportRatio(b, n, series, cpu, mallocs()-m0-v1mallocs, floor)
	if v1cpu <= 0 {
		v1cpu = time.Microsecond
	}
	if cpu <= 0 {
		cpu = time.Microsecond
	}
	v1rate := float64(v1n*series) / v1cpu.Seconds()
	b.ReportMetric(v1rate, "v1-samples/cpu-s")
	b.ReportMetric(float64(n*series)/cpu.Seconds()/v1rate, "x-v1")
}

// advancingClock moves a full upload interval per call, so one cluster may
// upload on every iteration without meeting the interval limit.
func advancingClock() func() time.Time {
	var t atomic.Int64
	base := time.Now()
	return func() time.Time {
		return base.Add(time.Duration(t.Add(1)) * 5 * time.Minute)
	}
}

// BenchmarkUpload is POST /upload (telemeter protocol, JWT) end to end.
func BenchmarkUpload(b *testing.B) {
	bg := newBenchGateway(b, staticAuth(b), advancingClock())
	rq := newRequest("/upload", bg.jwt, decode.UploadContentType, "snappy", benchPayload().up)
	benchHandler(b, bg, rq, http.StatusOK)
}

// BenchmarkReceiveParallel is the remote-write handler on every core, for
// throughput (samples/cpu-s stays per CPU-second). The floor, a one-core
// loop, runs in one block before and one after the parallel run.
func BenchmarkReceiveParallel(b *testing.B) {
	bg := newBenchGateway(b, cachedAuth(b), time.Now)
	p := benchPayload()
	series := p.spec.Series()
	floor := newFloorMeter()
	b.SetBytes(int64(len(p.rw)))
	b.ReportAllocs()
	b.ResetTimer()
	floor.block(b, 2*floorBlock)
	m0, start := mallocs(), cpuTime()
	var served atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		rq := receiveRequest(p)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			w.reset()
			bg.h.ServeHTTP(w, rq.rewind())
			if w.code != http.StatusNoContent {
				b.Errorf("status %d", w.code)
				return
			}
			served.Add(1)
		}
	})
	cpu, allocs := cpuTime()-start, mallocs()-m0
	floor.block(b, 2*floorBlock)
	reportRatio(b, int(served.Load()), series, cpu, allocs+floor.mallocs, floor) // allocs excludes the floor already
}

// BenchmarkStages runs the remote-write pipeline up to each stage, without
// HTTP and authentication; a stage's cost is the difference to the one
// before.
func BenchmarkStages(b *testing.B) {
	p := benchPayload()
	al, err := allowlist.Parse(p.allowlist, "allowlist.yaml")
	if err != nil {
		b.Fatal(err)
	}
	pl := relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod", "prometheus_replica"},
		MaxLabels: 64, MaxNameLength: 256, MaxValueLength: 4096, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute})
	series := p.spec.Series()
	stages := []string{"1-snappy-decode", "2-unmarshal", "3-allowlist", "4-relabel", "5-encode", "6-snappy-encode"}
	for level, name := range stages {
		b.Run(name, func(b *testing.B) {
			var sc relabel.Scratch
			bufs := forward.GetBuffers()
			defer forward.PutBuffers(bufs)
			var proto []byte
			run := func() {
				bt := batch.Get()
				defer batch.Put(bt)
				var err error
				if bt.Buf, err = decode.DecodeBlock(bt.Buf[:0], p.rw, 32<<20); err != nil {
					b.Fatal(err)
				}
				if level < 1 {
					return
				}
				if _, err := decode.UnmarshalWriteRequest(bt.Buf, bt, decode.Limits{MaxSeries: 10000, MaxBatchBytes: decode.RemoteWriteBudget(len(bt.Buf))}); err != nil {
					b.Fatal(err)
				}
				if level < 2 {
					return
				}
				kept := bt.Series[:0]
				for i := range bt.Series {
					if al.MatchName(bt.Series[i].Name()) {
						if _, ok := al.Match(bt.Series[i].Labels); ok {
							kept = append(kept, bt.Series[i])
						}
					}
				}
				bt.Series = kept
				if level < 3 {
					return
				}
				if _, err := pl.Process(bt, "bench-cluster", time.Now(), true, &sc); err != nil {
					b.Fatal(err)
				}
				if level < 4 {
					return
				}
				if level < 5 {
					proto = forward.AppendWriteRequest(proto[:0], bt.Series)
					return
				}
				if _, err := bufs.Encode(bt.Series); err != nil {
					b.Fatal(err)
				}
			}
			run()
			b.ReportAllocs()
			b.ResetTimer()
			m := startMeter()
			for b.Loop() {
				run()
			}
			m.report(b, series, series)
		})
	}
}

// TestIngestAllocsPerSeries holds the hot path to its allocation budget:
// amortised, well under one allocation per series (the per-request ones:
// authentication, context, headers, response).
func TestIngestAllocsPerSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation measurement")
	}
	p := benchPayload()
	series := float64(p.spec.Series())
	wantDropped := "allowlist=" + itoa(p.spec.Series()/2)
	for _, tc := range []struct {
		name string
		bg   *benchGateway
		rq   func(bg *benchGateway) *request
		code int
	}{
		{"receive", newBenchGateway(t, cachedAuth(t), time.Now), func(*benchGateway) *request { return receiveRequest(p) }, http.StatusNoContent},
		{"upload", newBenchGateway(t, staticAuth(t), advancingClock()), func(bg *benchGateway) *request {
			return newRequest("/upload", bg.jwt, decode.UploadContentType, "snappy", p.up)
		}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rq := tc.rq(tc.bg)
			w := &discardWriter{h: http.Header{}}
			serveOnce(t, tc.bg.h, w, rq.rewind(), tc.code, wantDropped)
			allocs := testing.AllocsPerRun(50, func() {
				w.reset()
				tc.bg.h.ServeHTTP(w, rq.rewind())
			})
			if w.code != tc.code {
				t.Fatalf("status %d", w.code)
			}
			perSeries := allocs / series
			t.Logf("%.0f allocs per request, %.3f per series", allocs, perSeries)
			if perSeries > 0.05 {
				t.Fatalf("%.3f allocations per series (%.0f per request of %.0f series), want amortised < 0.05", perSeries, allocs, series)
			}
		})
	}
}
