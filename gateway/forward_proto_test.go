package gateway

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/test/e2e/harness"
)

// protoRecorder is a ProtoForwarder that records which call it got and
// the series count of what it got.
type protoRecorder struct {
	mu           sync.Mutex
	sends, raws  int
	seriesRaw    int
	clusterIDRaw string
}

func (p *protoRecorder) Send(context.Context, string, []byte) error {
	p.mu.Lock()
	p.sends++
	p.mu.Unlock()
	return nil
}

func (p *protoRecorder) SendProto(_ context.Context, clusterID string, proto []byte) error {
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

// TestForwardUncompressedToProtoForwarder: remote write 1.0 goes to a
// ProtoForwarder uncompressed (it compresses, once per coalesced body);
// 2.0 keeps the compressed Send.
func TestForwardUncompressedToProtoForwarder(t *testing.T) {
	p := benchPayload()
	for _, msg := range []string{forward.MessageV1, forward.MessageV2} {
		rec := &protoRecorder{}
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
				t.Fatalf("2.0: %d Send, %d SendProto", rec.sends, rec.raws)
			}
			continue
		}
		if rec.sends != 0 || rec.raws == 0 || rec.seriesRaw != p.spec.Series()/2 || rec.clusterIDRaw != "bench-cluster" {
			t.Fatalf("1.0: %d Send, %d SendProto of %d series for %q", rec.sends, rec.raws, rec.seriesRaw, rec.clusterIDRaw)
		}
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
