package gateway

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// readAllCapped reads r into dst; r is an http.MaxBytesReader, so it stops
// at the request cap.
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
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return dst, tooLarge("max_request_bytes", max, 0)
			}
			return dst, newError(http.StatusBadRequest, "malformed", "reading body: "+err.Error())
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
