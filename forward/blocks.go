package forward

import (
	"context"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/telegate/telegate/batch"
)

// Blocks holds the compressed remote write 1.0 requests of one batch
// (Buffers.EncodeBlocks'), in a buffer of their own: once they are
// encoded, the encoder's Buffers and the caller's batch can go back to
// their pools while the blocks wait to be sent (behind a Coalescer's send
// in flight, say). A request that holds only its compressed body while it
// waits leaves the decoded body, the label arena and the protobuf
// encoding (about 20 times the compressed size) to the next request, in
// the cache of the core that just used them. Take one from GetBlocks and
// return it with PutBlocks once every block has been sent.
type Blocks struct {
	buf  []byte
	ends []int
}

// Len returns the number of blocks.
func (bl *Blocks) Len() int { return len(bl.ends) }

// Block returns the i-th block: a snappy block that decodes alone to a
// prometheus.WriteRequest (a trusted block: SendBlock joins it into a
// coalesced body without checking it). It aliases bl.
func (bl *Blocks) Block(i int) []byte {
	from := 0
	if i > 0 {
		from = bl.ends[i-1]
	}
	return bl.buf[from:bl.ends[i]:bl.ends[i]]
}

// add compresses proto into a new block at the end of bl.
func (bl *Blocks) add(proto []byte) error {
	n := s2.MaxEncodedLen(len(proto))
	if n < 0 {
		return ErrTooLarge
	}
	at := len(bl.buf)
	if cap(bl.buf)-at < n {
		grown := make([]byte, at, at+n+at/4)
		copy(grown, bl.buf)
		bl.buf = grown
	}
	z := s2.EncodeSnappy(bl.buf[at:at+n], proto)
	bl.buf = bl.buf[:at+len(z)]
	bl.ends = append(bl.ends, len(bl.buf))
	return nil
}

// EncodeBlocks is EncodeSplitMetadata into bl: each request is compressed
// into a block of bl (appended to what bl holds) instead of being handed
// to a send function, so the series' batch and b are free once it
// returns. On error, bl holds the blocks encoded before it.
func (b *Buffers) EncodeBlocks(bl *Blocks, series []batch.Series, md []batch.Metadata, maxBytes int) error {
	return b.encodeSplit(series, md, maxBytes, false, bl.add)
}

var blocksPool = sync.Pool{New: func() any { return new(Blocks) }}

// GetBlocks returns an empty Blocks from a process-wide pool.
func GetBlocks() *Blocks { return blocksPool.Get().(*Blocks) }

// PutBlocks returns bl to the pool. Neither bl nor any block it returned
// may be used afterwards.
func PutBlocks(bl *Blocks) {
	if bl == nil || cap(bl.buf) > maxPooledBufferBytes {
		return
	}
	bl.buf, bl.ends = bl.buf[:0], bl.ends[:0]
	blocksPool.Put(bl)
}

// BlockSender is a BodySender that also takes trusted blocks (Blocks'):
// bodies this process compressed from requests it encoded, which a
// Coalescer joins without checking that they decode alone. *Coalescer is
// one.
type BlockSender interface {
	BodySender
	SendBlock(ctx context.Context, block []byte) error
}
