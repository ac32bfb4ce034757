package gateway

import (
	"errors"
	"io"
	"sync"
)

// cappedReader returns a 413 error once more than left bytes were read.
type cappedReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.max == 0 {
		c.max = c.left
	}
	if c.left <= 0 {
		// Peek one byte: exactly max bytes is fine.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, tooLarge("max_request_bytes", c.max, 0)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func asHTTPError(err error, target **httpError) bool { return errors.As(err, target) }

// readAllCapped reads r into dst; r is a cappedReader, so it stops at the
// request cap.
func readAllCapped(dst []byte, r io.Reader, max int64) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			grow := cap(dst)
			if grow < 4096 {
				grow = 4096
			}
			if int64(cap(dst)+grow) > max+1 {
				grow = int(max+1) - cap(dst)
				if grow <= 0 {
					grow = 1
				}
			}
			dst = append(dst, make([]byte, grow)...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

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
