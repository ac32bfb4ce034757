package gateway

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/forward"
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
