package forward

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// TestEncodeBlocksMatchesEncodeSplit: the blocks of EncodeBlocks decode to
// the requests EncodeSplitMetadata sends, part for part, and they outlive
// the Buffers that encoded them.
func TestEncodeBlocksMatchesEncodeSplit(t *testing.T) {
	var series []batch.Series
	for i := range 300 {
		series = append(series, batch.Series{
			Labels:  []batch.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: string(rune('a'+i%26)) + "-" + string(rune('a'+i/26))}},
			Samples: []batch.Sample{{Timestamp: int64(i), Value: float64(i)}},
		})
	}
	md := []batch.Metadata{{Family: "m", Type: 2, Help: "help"}}
	for _, maxBytes := range []int{0, 1000, 4096} {
		var want [][]byte
		ref := GetBuffers()
		if err := ref.EncodeSplitMetadata(series, md, maxBytes, func(body []byte) error {
			raw, err := snappy.Decode(nil, body)
			want = append(want, raw)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		PutBuffers(ref)

		bl := GetBlocks()
		bufs := GetBuffers()
		if err := bufs.EncodeBlocks(bl, series, md, maxBytes); err != nil {
			t.Fatal(err)
		}
		PutBuffers(bufs)
		// The encoder's buffers are reused: the blocks must not be.
		other := GetBuffers()
		if _, err := other.Encode(series[:1]); err != nil {
			t.Fatal(err)
		}
		if bl.Len() != len(want) {
			t.Fatalf("maxBytes %d: %d blocks, want %d", maxBytes, bl.Len(), len(want))
		}
		for i := range bl.Len() {
			raw, err := snappy.Decode(nil, bl.Block(i))
			if err != nil || !bytes.Equal(raw, want[i]) {
				t.Fatalf("maxBytes %d: block %d decodes to %d bytes (%v), want %d", maxBytes, i, len(raw), err, len(want[i]))
			}
		}
		PutBuffers(other)
		PutBlocks(bl)
	}
}

// TestCoalescerJoinsBlocks: SendBlock's bodies queue behind the send in
// flight and go as one remote write, like SendProto's.
func TestCoalescerJoinsBlocks(t *testing.T) {
	g := newGateDown()
	c := newTestCoalescer(t, g, CoalesceOptions{})
	errs := startQueued(t, c, g, 3, func(_ int, _ string, b []byte) error { return c.SendBlock(context.Background(), b) })
	close(g.release)
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	calls := g.snapshot()
	if len(calls) != 2 || !slices.Equal(calls[1], []string{"m0", "m1", "m2"}) {
		t.Fatalf("requests %v, want [first] [m0 m1 m2]", calls)
	}
}

// blockDown records which of Send and SendBlock it got, and fails.
type blockDown struct {
	mu           sync.Mutex
	sends, block int
	err          error
}

func (b *blockDown) Send(context.Context, []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends++
	return b.err
}

func (b *blockDown) SendBlock(context.Context, []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.block++
	return b.err
}

// TestDurableSendBlock: a block goes to the sender's SendBlock (Send for
// a sender without one) and, when the downstream cannot take it, is
// spooled as it is, to replay like any body.
func TestDurableSendBlock(t *testing.T) {
	blk := body(t, time.Now().UnixMilli(), 2, "m")
	down := &blockDown{err: &Error{Status: 503, Recoverable: true}}
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	d := NewDurable(down, s, DurableOptions{SendDeadline: 100 * time.Millisecond})
	if err := d.SendBlock(context.Background(), "c", blk); err != nil {
		t.Fatal(err)
	}
	if down.block != 1 || down.sends != 0 {
		t.Fatalf("%d SendBlock, %d Send; want the block to SendBlock", down.block, down.sends)
	}
	var replayed [][]byte
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Replay(ctx, BodySenderFunc(func(_ context.Context, b []byte) error {
			replayed = append(replayed, bytes.Clone(b))
			cancel()
			return nil
		}), ReplayOptions{Interval: time.Millisecond})
		close(done)
	}()
	<-done
	if len(replayed) != 1 || !bytes.Equal(replayed[0], blk) {
		t.Fatalf("replayed %d bodies, want the block as it was", len(replayed))
	}

	var got []byte
	plain := Direct(BodySenderFunc(func(_ context.Context, b []byte) error { got = b; return errors.New("x") }))
	if err := plain.SendBlock(context.Background(), "c", blk); err == nil || !bytes.Equal(got, blk) {
		t.Fatalf("Direct over a plain sender: %v, sent %d bytes", err, len(got))
	}
	var wr prompb.WriteRequest
	raw, err := snappy.Decode(nil, got)
	if err != nil || wr.Unmarshal(raw) != nil || len(wr.Timeseries) != 1 {
		t.Fatalf("sent body does not decode: %v", err)
	}
}
