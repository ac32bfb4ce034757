package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// spoolConfig is appended under forward: (startGateway's extra). Short
// deadlines keep the outage tests fast; the spool lives in the gateway's
// working directory (the default ./data/spool), so a restart finds it.
func spoolConfig(maxBytes string) string {
	return fmt.Sprintf(`  spool:
    max_bytes: %s
    send_deadline: 1s
    replay:
      min_backoff: 200ms
      max_backoff: 2s
      interval: 200ms
`, maxBytes)
}

// thanos starts Receive and a Query reading it over gRPC, and checks that
// Query really returns what Receive ingested.
func thanos(t *testing.T) (*harness.ThanosReceive, *harness.ThanosQuery) {
	t.Helper()
	recv := harness.StartThanosReceive(t, harness.ThanosReceiveOptions{})
	q := harness.StartThanosQuery(t, harness.ThanosQueryOptions{Endpoints: []string{recv.GRPCAddr()}})
	harness.CheckThanosReadPath(t, recv, q, 60*time.Second)
	return recv, q
}

// load pushes remote-write requests through the gateway: clusters take
// turns, each request carries one new sample for each of seriesPerReq
// series of its cluster, with strictly increasing timestamps per cluster.
type load struct {
	gw           string
	clusters     []string
	seriesPerReq int

	mu        sync.Mutex
	acked     int // samples in 2xx answers
	uncertain int // samples of requests that got no answer (gateway killed)
	refused   map[int]int
	retryHdr  []string
	lastTS    map[string]int64
	counter   float64
	stop      chan struct{}
	done      chan struct{}
}

func newLoad(gw string, clusters []string, seriesPerReq int) *load {
	return &load{gw: gw, clusters: clusters, seriesPerReq: seriesPerReq, refused: map[int]int{}, lastTS: map[string]int64{}}
}

func (l *load) start(interval time.Duration) {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.one(l.clusters[i%len(l.clusters)])
		}
	}()
}

func (l *load) halt() {
	close(l.stop)
	<-l.done
}

func (l *load) one(cluster string) {
	l.mu.Lock()
	ts := max(time.Now().UnixMilli(), l.lastTS[cluster]+1)
	l.lastTS[cluster] = ts
	l.counter++
	v := l.counter
	l.mu.Unlock()
	req := &prompb.WriteRequest{}
	for s := 0; s < l.seriesPerReq; s++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "cluster_requests_total"},
				{Name: "series", Value: strconv.Itoa(s)},
			},
			Samples: []prompb.Sample{{Value: v, Timestamp: ts}},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, _, hdr, err := harness.RemoteWrite(ctx, l.gw+"/api/v1/receive", harness.CompositeToken("fleet-token", cluster), req)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && status == 0:
		if !strings.Contains(err.Error(), "connection refused") {
			l.uncertain += l.seriesPerReq
		}
	case status/100 == 2:
		l.acked += l.seriesPerReq
	default:
		l.refused[status]++
		if status == http.StatusServiceUnavailable {
			l.retryHdr = append(l.retryHdr, hdr.Get("Retry-After"))
		}
	}
}

func (l *load) counts() (acked, uncertain int, refused map[int]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := map[int]int{}
	for k, v := range l.refused {
		r[k] = v
	}
	return l.acked, l.uncertain, r
}

// gatewayMetric reads one unlabelled metric from the gateway's /metrics.
func gatewayMetric(t *testing.T, gw *gatewayProc, name string) float64 {
	t.Helper()
	v := scrapeValue(t, http.DefaultClient, gw.internal+"/metrics", name)
	if v == -1 {
		t.Fatalf("gateway exposes no %s", name)
	}
	return v
}

// waitSpoolDrained waits until the gateway's spool is empty.
func waitSpoolDrained(t *testing.T, gw *gatewayProc, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for gatewayMetric(t, gw, "telegate_spool_objects") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool still holds %v objects after %s", gatewayMetric(t, gw, "telegate_spool_objects"), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const countQuery = `sum(count_over_time(cluster_requests_total[1h]))`

// storedSamples is what Thanos Query counts now (0 when nothing).
func storedSamples(q *harness.ThanosQuery) (int, error) {
	v, err := q.QueryErr(context.Background(), countQuery)
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, nil
	}
	return int(v[0].Value), nil
}

// assertStored waits until Query counts between lo and hi samples and
// then checks the count stays put (no late duplicates) and that every
// series is the expected one, once.
func assertStored(t *testing.T, q *harness.ThanosQuery, lo, hi, wantSeries int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got int
	var err error
	for {
		got, err = storedSamples(q)
		if err == nil && got >= lo {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Thanos Query counts %d samples (err %v), want %d: acknowledged samples lost", got, err, lo)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if again, err := storedSamples(q); err != nil || again != got {
		t.Fatalf("count moved from %d to %d (err %v)", got, again, err)
	}
	if got > hi {
		t.Fatalf("Thanos Query counts %d samples, more than the %d sent: duplicates", got, hi)
	}
	series := q.Query(t, `count by (_id, series) (count_over_time(cluster_requests_total[1h]))`)
	if len(series) != wantSeries {
		t.Fatalf("%d distinct series, want %d:\n%v", len(series), wantSeries, series)
	}
	for _, s := range series {
		if s.Value != 1 {
			t.Fatalf("series %v stored %v times", s.Metric, s.Value)
		}
	}
	t.Logf("Thanos Query counts %d samples in %d series (acknowledged %d, unanswered %d)", got, len(series), lo, hi-lo)
}

// TestOutageReplay: load flows through the gateway into Thanos Receive;
// Receive is down for 20s mid-run. The gateway keeps answering 2xx
// (spooling), stays ready, and after Receive is back it replays: Thanos
// Query counts exactly the acknowledged samples.
func TestOutageReplay(t *testing.T) {
	recv, q := thanos(t)
	gw := startGateway(t, gatewayOpts{downstream: recv.RemoteWriteURL(), tokens: true, extra: spoolConfig("64MiB")})
	clusters := []string{"cluster-a", "cluster-b", "cluster-c"}
	l := newLoad(gw.url, clusters, 4)
	l.start(50 * time.Millisecond)

	time.Sleep(3 * time.Second)
	recv.Stop()
	outageStart := time.Now()
	time.Sleep(5 * time.Second)
	if n := gatewayMetric(t, gw, "telegate_spool_objects"); n == 0 {
		t.Fatal("downstream down but nothing spooled")
	}
	if !harness.Ready(gw.internal + "/-/ready") {
		t.Fatal("gateway not ready while spooling")
	}
	ackedDuring, _, refused := l.counts()
	if len(refused) != 0 {
		t.Fatalf("requests refused during the outage: %v", refused)
	}
	time.Sleep(20*time.Second - time.Since(outageStart))
	if age := gatewayMetric(t, gw, "telegate_spool_oldest_age_seconds"); age < 10 {
		t.Errorf("telegate_spool_oldest_age_seconds = %v after a 20s outage", age)
	}
	recv.Start()
	time.Sleep(3 * time.Second)
	l.halt()
	waitSpoolDrained(t, gw, 60*time.Second)

	acked, uncertain, refused := l.counts()
	if len(refused) != 0 || uncertain != 0 {
		t.Fatalf("refused %v, unanswered %d samples: the outage should have been absorbed", refused, uncertain)
	}
	if acked <= ackedDuring {
		t.Fatalf("no progress: %d acknowledged", acked)
	}
	if n := gatewayMetric(t, gw, "telegate_spool_replayed_total"); n == 0 {
		t.Fatal("telegate_spool_replayed_total is 0")
	}
	assertStored(t, q, acked, acked, len(clusters)*4)
}

// TestCrashWhileSpooling: as TestOutageReplay, but the gateway is killed
// with SIGKILL while Receive is down and restarted on the same spool
// directory; the new process replays what the old one acknowledged.
func TestCrashWhileSpooling(t *testing.T) {
	recv, q := thanos(t)
	gw := startGateway(t, gatewayOpts{downstream: recv.RemoteWriteURL(), tokens: true, extra: spoolConfig("64MiB")})
	clusters := []string{"cluster-a", "cluster-b"}
	l := newLoad(gw.url, clusters, 3)
	l.start(50 * time.Millisecond)

	time.Sleep(2 * time.Second)
	recv.Stop()
	time.Sleep(8 * time.Second)
	spooled := gatewayMetric(t, gw, "telegate_spool_objects")
	if spooled == 0 {
		t.Fatal("nothing spooled while Receive is down")
	}
	gw.Kill()
	time.Sleep(time.Second) // clients meet a dead gateway
	gw.Restart()
	gw.WaitHTTP(gw.internal+"/-/ready", 30*time.Second)
	if n := gatewayMetric(t, gw, "telegate_spool_objects"); n < spooled {
		t.Fatalf("restarted gateway found %v spooled objects, the killed one had %v", n, spooled)
	}
	time.Sleep(3 * time.Second)
	recv.Start()
	time.Sleep(3 * time.Second)
	l.halt()
	waitSpoolDrained(t, gw, 60*time.Second)

	acked, uncertain, refused := l.counts()
	if len(refused) != 0 {
		t.Fatalf("refused: %v", refused)
	}
	// A request in flight at SIGKILL got no answer: it may or may not have
	// been spooled. Everything answered 2xx must be there, once.
	assertStored(t, q, acked, acked+uncertain, len(clusters)*3)
}

// TestSpoolFull: with Receive down and a tiny spool, the gateway answers
// 503 with Retry-After once the spool is full, instead of accepting what
// it cannot keep; what it did accept arrives after Receive is back.
func TestSpoolFull(t *testing.T) {
	recv, q := thanos(t)
	gw := startGateway(t, gatewayOpts{downstream: recv.RemoteWriteURL(), tokens: true, extra: spoolConfig("8KiB")})
	recv.Stop()
	l := newLoad(gw.url, []string{"cluster-a"}, 5)
	for i := 0; i < 200; i++ {
		l.one("cluster-a")
		if _, _, refused := l.counts(); refused[http.StatusServiceUnavailable] > 0 {
			break
		}
	}
	acked, _, refused := l.counts()
	if refused[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("no 503 after %d acknowledged samples with an 8KiB spool (refused %v)", acked, refused)
	}
	if acked == 0 {
		t.Fatal("nothing spooled before the spool was full")
	}
	for _, ra := range l.retryHdr {
		if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
			t.Fatalf("503 with Retry-After %q", ra)
		}
	}
	if b := gatewayMetric(t, gw, "telegate_spool_bytes"); b > 8*1024 {
		t.Fatalf("spool holds %v bytes, over its 8KiB cap", b)
	}
	recv.Start()
	waitSpoolDrained(t, gw, 60*time.Second)
	assertStored(t, q, acked, acked, 5)
	// With room again, requests are accepted.
	l.one("cluster-a")
	if a2, _, _ := l.counts(); a2 != acked+5 {
		t.Fatalf("after drain a request was not accepted")
	}
}

// TestReplayFairAcrossClusters: one cluster spools a large backlog, then a
// small cluster spools one request. When the downstream recovers, the
// small cluster's data is in Thanos while most of the big backlog is still
// waiting: replay takes clusters in turn, not the oldest object overall.
// The outage is a proxy answering 503, so Query stays connected to
// Receive throughout and sees data the moment it lands.
func TestReplayFairAcrossClusters(t *testing.T) {
	recv, q := thanos(t)
	target, _ := url.Parse(recv.RemoteWriteURL())
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	var down atomic.Bool
	down.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "receive unavailable", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	gw := startGateway(t, gatewayOpts{downstream: front.URL + target.Path, tokens: true, extra: spoolConfig("256MiB")})

	big := newLoad(gw.url, []string{"cluster-big"}, 10)
	for range 600 {
		big.one("cluster-big")
	}
	small := newLoad(gw.url, []string{"cluster-small"}, 1)
	small.one("cluster-small")
	bigAcked, _, refused := big.counts()
	smallAcked, _, _ := small.counts()
	if bigAcked != 6000 || smallAcked != 1 || len(refused) != 0 {
		t.Fatalf("acknowledged %d + %d samples, refused %v", bigAcked, smallAcked, refused)
	}
	backlog := gatewayMetric(t, gw, "telegate_spool_objects")

	down.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := q.QueryErr(context.Background(), `count_over_time(cluster_requests_total{_id="cluster-small"}[1h])`)
		if err == nil && len(v) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("small cluster's sample not in Thanos after 60s (err %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	left := gatewayMetric(t, gw, "telegate_spool_objects")
	t.Logf("small cluster visible with %v of %v spooled objects still waiting", left, backlog)
	if left < backlog/2 {
		t.Fatalf("small cluster's data landed only after %v of the big cluster's %v objects", backlog-left, backlog)
	}
	waitSpoolDrained(t, gw, 120*time.Second)
	assertStored(t, q, bigAcked+smallAcked, bigAcked+smallAcked, 11)
}
