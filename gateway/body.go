package gateway

import "sync"

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
