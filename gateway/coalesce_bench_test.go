package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/telegate/telegate/forward"
)

// decodingDownstream is a remote write receiver that reads and
// snappy-decodes each body, waits delay (a receiver's own work), and
// answers 204; GET /count answers how many bodies it took.
type decodingDownstream struct {
	url      string
	requests atomic.Int64
	// remote, when set, is the count of a receiver in another process.
	remote func() int64
}

func (d *decodingDownstream) count() int64 {
	if d.remote != nil {
		return d.remote()
	}
	return d.requests.Load()
}

func (d *decodingDownstream) handler(delay time.Duration) http.Handler {
	var pool sync.Pool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprint(w, d.requests.Load())
			return
		}
		bp, _ := pool.Get().(*[2][]byte)
		if bp == nil {
			bp = new([2][]byte)
		}
		defer pool.Put(bp)
		buf := bp[0][:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
		}
		bp[0] = buf
		n, err := s2.DecodedLen(buf)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if cap(bp[1]) < n {
			bp[1] = make([]byte, n)
		}
		if _, err := s2.Decode(bp[1][:n], buf); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		d.requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
}

// newDecodingDownstream starts the receiver in this process.
func newDecodingDownstream(tb testing.TB, delay time.Duration) *decodingDownstream {
	d := &decodingDownstream{}
	srv := httptest.NewServer(d.handler(delay))
	tb.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

// downstreamProcessEnv makes the test binary serve as the receiver
// (TestDecodingDownstreamProcess) with the delay it holds.
const downstreamProcessEnv = "TELEGATE_BENCH_DOWNSTREAM_DELAY"

// newDecodingDownstreamProcess starts the receiver in a process of its
// own (this test binary again), so the benchmark's process CPU is the
// gateway's alone, as in the side-by-side runs.
func newDecodingDownstreamProcess(tb testing.TB, delay time.Duration) *decodingDownstream {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDecodingDownstreamProcess$")
	cmd.Env = append(os.Environ(), downstreamProcessEnv+"="+delay.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("downstream process: %v", err)
	}
	d := &decodingDownstream{url: strings.TrimSpace(line)}
	client := &http.Client{}
	d.remote = func() int64 {
		resp, err := client.Get(d.url + "/count")
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			tb.Fatalf("downstream count %q: %v", b, err)
		}
		return n
	}
	return d
}

// TestDecodingDownstreamProcess is the receiver process of
// newDecodingDownstreamProcess; without its environment it does nothing.
// It prints its URL and serves until its stdin closes.
func TestDecodingDownstreamProcess(t *testing.T) {
	v, ok := os.LookupEnv(downstreamProcessEnv)
	if !ok {
		t.Skip("the benchmark's downstream process")
	}
	delay, err := time.ParseDuration(v)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &decodingDownstream{}
	go func() { _ = http.Serve(l, d.handler(delay)) }()
	fmt.Println("http://" + l.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// coalesceSide is one gateway of the comparison and what it measured.
type coalesceSide struct {
	bg          *benchGateway
	cpu         time.Duration
	served      int
	downstream  int64
	latencies   []time.Duration
	downCounter *decodingDownstream
}

// newCoalesceSide builds a gateway coalescing with maxInFlight sends in
// flight, or not at all for 0.
func newCoalesceSide(b *testing.B, down *decodingDownstream, maxInFlight int) *coalesceSide {
	snd, err := forward.New(forward.Config{URL: down.url}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(snd.Close)
	var fwd forward.BodySender = snd
	if maxInFlight > 0 {
		if fwd, err = forward.NewCoalescer(snd, forward.CoalesceOptions{MaxInFlight: maxInFlight}); err != nil {
			b.Fatal(err)
		}
	}
	bg := newBenchGatewayWith(b, staticAuth(b), time.Now, benchPayload().allowlist, func(o *Options) {
		o.Forwarder = forward.Direct(fwd)
	})
	return &coalesceSide{bg: bg, downCounter: down}
}

// block serves n requests from senders goroutines and adds its CPU
// time, downstream requests and latencies to s.
func (s *coalesceSide) block(b *testing.B, senders, n int) {
	p := benchPayload()
	var left atomic.Int64
	left.Store(int64(n))
	lat := make([][]time.Duration, senders)
	down0, cpu0 := s.downCounter.count(), cpuTime()
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			rq := receiveRequest(p)
			w := &discardWriter{h: http.Header{}}
			for left.Add(-1) >= 0 {
				w.reset()
				t0 := time.Now()
				s.bg.h.ServeHTTP(w, rq.rewind())
				lat[g] = append(lat[g], time.Since(t0))
				if w.code != http.StatusNoContent {
					b.Errorf("status %d", w.code)
					return
				}
			}
		})
	}
	wg.Wait()
	s.cpu += cpuTime() - cpu0
	s.downstream += s.downCounter.count() - down0
	s.served += n
	for _, l := range lat {
		s.latencies = append(s.latencies, l...)
	}
}

func (s *coalesceSide) rate(series int) float64 {
	return float64(s.served*series) / max(s.cpu, time.Microsecond).Seconds()
}

func (s *coalesceSide) quantile(q float64) time.Duration {
	slices.Sort(s.latencies)
	if len(s.latencies) == 0 {
		return 0
	}
	return s.latencies[min(len(s.latencies)-1, int(q*float64(len(s.latencies))))]
}

// BenchmarkReceiveCoalesce compares forward.coalesce on (on-: one send
// in flight, the default; on2-: coalesce_max_in_flight 2) and off (off-)
// on the payload of BenchmarkReceive, end to end through a real
// forward.Sender to an HTTP receiver that reads and snappy-decodes each
// body, with senders concurrent clients (8: saturated; 1: one at a time,
// where nothing queues and nothing may be held back) and a receiver
// answering at once or after 2ms. The receiver runs in a process of its
// own (downstream=process: the process CPU is the gateway's alone, as in
// the side-by-side runs) or in the benchmark's (downstream=same:
// its CPU counts too). The gateways serve blocks of requests in turn, so
// a noisy neighbour weighs on all alike. It reports, per side:
// samples/cpu-s (received samples per CPU-second of the process),
// down/req (downstream requests per incoming request), p50-ms and p99-ms
// (request latency); x-coalesce is on's samples/cpu-s over off's,
// x-coalesce2 on2's over off's.
func BenchmarkReceiveCoalesce(b *testing.B) {
	for _, senders := range []int{8, 1} {
		for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
			for _, where := range []string{"process", "same"} {
				b.Run("senders="+itoa(senders)+"/delay="+delay.String()+"/downstream="+where, func(b *testing.B) {
					var down *decodingDownstream
					if where == "same" {
						down = newDecodingDownstream(b, delay)
					} else {
						down = newDecodingDownstreamProcess(b, delay)
					}
					benchCoalesce(b, down, senders)
				})
			}
		}
	}
}

func benchCoalesce(b *testing.B, down *decodingDownstream, senders int) {
	sides := []struct {
		name string
		side *coalesceSide
	}{
		{"on-", newCoalesceSide(b, down, 1)},
		{"off-", newCoalesceSide(b, down, 0)},
		{"on2-", newCoalesceSide(b, down, 2)},
	}
	series := benchPayload().spec.Series()
	const blockN = 200
	for _, s := range sides {
		s.side.block(b, senders, 20) // warm up
		*s.side = coalesceSide{bg: s.side.bg, downCounter: down}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += len(sides) * blockN {
		for _, s := range sides {
			s.side.block(b, senders, blockN)
		}
	}
	b.StopTimer()
	for _, s := range sides {
		b.ReportMetric(s.side.rate(series), s.name+"samples/cpu-s")
		b.ReportMetric(float64(s.side.downstream)/float64(s.side.served), s.name+"down/req")
		b.ReportMetric(float64(s.side.quantile(.5).Microseconds())/1000, s.name+"p50-ms")
		b.ReportMetric(float64(s.side.quantile(.99).Microseconds())/1000, s.name+"p99-ms")
	}
	off := sides[1].side.rate(series)
	b.ReportMetric(sides[0].side.rate(series)/off, "x-coalesce")
	b.ReportMetric(sides[2].side.rate(series)/off, "x-coalesce2")
}
