package gateway

import (
	"sync"

	"github.com/telegate/telegate/batch"
)

type buf struct{ b []byte }

var bufPool = sync.Pool{New: func() any { return &buf{} }}

func getBuf() *buf { return bufPool.Get().(*buf) }

func putBuf(b *buf) {
	if cap(b.b) > 8<<20 {
		return
	}
	b.b = b.b[:0]
	bufPool.Put(b)
}

// held is what a handler took from the pools for one request: its batch
// and its compressed body. The handler gives them back when it returns
// (defer release), or ingest does earlier, once the request's series are
// encoded for a BlockForwarder: a request that then waits for the
// downstream leaves them to the next request while they are still in the
// cache of the core that used them. Nothing may read the batch after
// release.
type held struct {
	b  *batch.Batch
	cb *buf
}

// release gives back what h holds; a second call does nothing.
func (h *held) release() {
	if h.b != nil {
		batch.Put(h.b)
		h.b = nil
	}
	if h.cb != nil {
		putBuf(h.cb)
		h.cb = nil
	}
}
