package gateway

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/test/e2e/harness"
)

// blockRecorder is a BlockForwarder that records which call it got and
// the series count of what it got.
type blockRecorder struct {
	mu           sync.Mutex
	sends, raws  int
	seriesRaw    int
	clusterIDRaw string
}

func (p *blockRecorder) Send(context.Context, string, []byte) error {
	p.mu.Lock()
	p.sends++
	p.mu.Unlock()
	return nil
}

func (p *blockRecorder) SendBlock(_ context.Context, clusterID string, block []byte) error {
	proto, err := snappy.Decode(nil, block)
	if err != nil {
		return err
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(proto); err != nil {
		return err
	}
	p.mu.Lock()
	p.raws++
	p.seriesRaw += len(wr.Timeseries)
	p.clusterIDRaw = clusterID
	p.mu.Unlock()
	return nil
}

// TestForwardBlocksToBlockForwarder: remote write 1.0 goes to a
// BlockForwarder as trusted blocks; 2.0 keeps the compressed Send.
func TestForwardBlocksToBlockForwarder(t *testing.T) {
	p := benchPayload()
	for _, msg := range []string{forward.MessageV1, forward.MessageV2} {
		rec := &blockRecorder{}
		bg := newBenchGatewayWith(t, staticAuth(t), time.Now, p.allowlist, func(o *Options) {
			o.Forwarder = rec
			o.ForwardMessage = msg
		})
		w := &discardWriter{h: http.Header{}}
		bg.h.ServeHTTP(w, receiveRequest(p).rewind())
		if w.code != http.StatusNoContent {
			t.Fatalf("%s: status %d", msg, w.code)
		}
		if msg == forward.MessageV2 {
			if rec.sends == 0 || rec.raws != 0 {
				t.Fatalf("2.0: %d Send, %d SendBlock", rec.sends, rec.raws)
			}
			continue
		}
		if rec.sends != 0 || rec.raws == 0 || rec.seriesRaw != p.spec.Series()/2 || rec.clusterIDRaw != "bench-cluster" {
			t.Fatalf("1.0: %d Send, %d SendBlock of %d series for %q", rec.sends, rec.raws, rec.seriesRaw, rec.clusterIDRaw)
		}
	}
}

// gateForwarder is a BlockForwarder whose SendBlock blocks until open
// is closed, counting the calls waiting.
type gateForwarder struct {
	open    chan struct{}
	waiting atomic.Int64
}

func (f *gateForwarder) Send(context.Context, string, []byte) error { return nil }

func (f *gateForwarder) SendBlock(ctx context.Context, _ string, _ []byte) error {
	f.waiting.Add(1)
	defer f.waiting.Add(-1)
	select {
	case <-f.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestWaitingRequestHoldsOnlyItsBlocks: a remote write waiting for the
// downstream (behind a coalesced send in flight, say) has given its batch
// and encoding buffers back already: with requests parked in SendBlock
// and the pools emptied by two collections, the heap holds little more
// than their compressed bodies. Holding the batches it would hold their
// decoded bodies, label arenas and series (about 0.5 MB each).
func TestWaitingRequestHoldsOnlyItsBlocks(t *testing.T) {
	p := benchPayload()
	gate := &gateForwarder{open: make(chan struct{})}
	bg := newBenchGatewayWith(t, staticAuth(t), time.Now, p.allowlist, func(o *Options) { o.Forwarder = gate })
	// Warm up: the pools and the gateway's own state (caches, metrics).
	close(gate.open)
	w := &discardWriter{h: http.Header{}}
	for range 3 {
		w.reset()
		bg.h.ServeHTTP(w, receiveRequest(p).rewind())
		if w.code != http.StatusNoContent {
			t.Fatalf("status %d", w.code)
		}
	}
	gate.open = make(chan struct{})
	heap := func() int64 {
		runtime.GC()
		runtime.GC() // the pools' victim caches too
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	const parked = 8
	reqs := make([]*request, parked)
	for i := range reqs {
		reqs[i] = receiveRequest(p) // the bodies are the test's, before the baseline
	}
	before := heap()
	var wg sync.WaitGroup
	for i := range parked {
		wg.Go(func() {
			w := &discardWriter{h: http.Header{}}
			bg.h.ServeHTTP(w, reqs[i].rewind())
			if w.code != http.StatusNoContent {
				t.Errorf("status %d", w.code)
			}
		})
	}
	for gate.waiting.Load() < parked {
		time.Sleep(time.Millisecond)
	}
	held := heap() - before
	close(gate.open)
	wg.Wait()
	perRequest := held / parked
	t.Logf("%d requests waiting hold %d bytes, %d each (compressed body %d bytes)", parked, held, perRequest, len(p.rw))
	if perRequest > 4*int64(len(p.rw))+64<<10 {
		t.Fatalf("a waiting request holds %d bytes: more than its compressed parts", perRequest)
	}
}

// TestCoalescedForwardingEndToEnd sends remote writes of several
// clusters concurrently through the gateway to a Coalescer over a slow
// downstream: every request's series arrive exactly once, under their
// cluster's ID, in fewer downstream requests than requests (run with
// -race: the gateway reuses its encoding buffers once Send returns).
func TestCoalescedForwardingEndToEnd(t *testing.T) {
	p := benchPayload()
	var mu sync.Mutex
	perCluster := map[string]int{}
	requests := 0
	down := forward.BodySender(bodySenderFunc(func(_ context.Context, body []byte) error {
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return err
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		requests++
		for _, ts := range wr.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "_id" {
					perCluster[l.Value]++
				}
			}
		}
		return nil
	}))
	co, err := forward.NewCoalescer(down, forward.CoalesceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bg := newBenchGatewayWith(t, staticAuth(t), time.Now, p.allowlist, func(o *Options) { o.Forwarder = forward.Direct(co) })
	const clusters, each = 6, 5
	var wg sync.WaitGroup
	for c := range clusters {
		wg.Go(func() {
			rq := newRequest("/api/v1/receive", harness.CompositeToken("bench-token", "c"+itoa(c)), "application/x-protobuf", "snappy", p.rw)
			w := &discardWriter{h: http.Header{}}
			for range each {
				w.reset()
				bg.h.ServeHTTP(w, rq.rewind())
				if w.code != http.StatusNoContent {
					t.Errorf("cluster %d: status %d", c, w.code)
				}
			}
		})
	}
	wg.Wait()
	want := p.spec.Series() / 2 * each
	for c := range clusters {
		if got := perCluster["c"+itoa(c)]; got != want {
			t.Errorf("cluster c%d: %d series downstream, want %d", c, got, want)
		}
	}
	if requests >= clusters*each {
		t.Fatalf("%d downstream requests for %d requests", requests, clusters*each)
	}
	t.Logf("%d downstream requests for %d requests", requests, clusters*each)
}

type bodySenderFunc func(ctx context.Context, body []byte) error

func (f bodySenderFunc) Send(ctx context.Context, body []byte) error { return f(ctx, body) }
