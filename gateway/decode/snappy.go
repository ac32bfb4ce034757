package decode

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
)

// minRead is the smallest buffer growth step of the streaming readers; one
// snappy frame decodes to at most 64 KiB.
const minRead = 64 << 10

// DecodeBlock decodes src, a snappy block (the remote-write body), into dst's
// capacity and returns the decoded bytes. The decoded length the block
// announces is checked against maxDecoded before anything is allocated, so a
// small body claiming a huge size costs nothing. maxDecoded <= 0 disables
// the cap.
//
// The decoder is klauspost/compress/s2, which reads snappy blocks about a
// third faster than golang/snappy (and also accepts S2's extensions).
func DecodeBlock(dst, src []byte, maxDecoded int) ([]byte, error) {
	n, err := DecodedLen(src)
	if err != nil {
		return dst[:0], err
	}
	if maxDecoded > 0 && n > maxDecoded {
		return dst[:0], TooLarge(CapDecodedBytes, maxDecoded, fmt.Sprintf("decoded body of %d bytes", n))
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := s2.Decode(dst[:n], src)
	if err != nil {
		return dst[:0], BadRequest("%s", snappyMsg(err))
	}
	return out, nil
}

// DecodedLen returns the decoded length a snappy block announces, so a
// caller can reserve memory before DecodeBlock allocates it. A bad header
// is a 400 *Error.
func DecodedLen(src []byte) (int, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return 0, BadRequest("%s", snappyMsg(err))
	}
	return n, nil
}

// Reserve, when not nil, is called by the streaming readers before their
// buffer grows, with the capacity it is about to grow to (while the bytes
// are copied, the old buffer is live too). An error stops the read and is
// returned as is: the caller decides what it means (for example a 503
// when a global memory budget is exhausted).
type Reserve func(newCap int) error

// reserveError carries a Reserve error through the readers' error mapping.
type reserveError struct{ err error }

func (e reserveError) Error() string { return e.err.Error() }

var framedReaders = sync.Pool{New: func() any { return s2.NewReader(nil, s2.ReaderMaxBlockSize(maxSnappyBlock)) }}

// maxSnappyBlock is the largest chunk the snappy framing format allows.
const maxSnappyBlock = 64 << 10

// DecodeFramed decodes the snappy framing format (Content-Encoding: snappy on
// /upload) read from r into dst's capacity. It stops as soon as the decoded
// size passes maxDecoded (413) and never grows dst beyond maxDecoded+1
// bytes; the pooled snappy reader holds at most one more chunk. maxDecoded
// <= 0 disables the cap. reserve, if not nil, is called before dst grows.
func DecodeFramed(dst []byte, r io.Reader, maxDecoded int, reserve Reserve) ([]byte, error) {
	sr := framedReaders.Get().(*s2.Reader)
	sr.Reset(r)
	dst, err := readCapped(dst, sr, maxDecoded, reserve)
	sr.Reset(nil)
	framedReaders.Put(sr)
	if re, ok := err.(reserveError); ok {
		return dst[:0], re.err
	}
	if err != nil {
		if errors.Is(err, s2.ErrCorrupt) || errors.Is(err, s2.ErrUnsupported) || errors.Is(err, s2.ErrTooLarge) {
			return dst[:0], BadRequest("%s", snappyMsg(err))
		}
		return dst[:0], readError(err)
	}
	return dst, nil
}

// ReadAllCapped reads r (an identity-encoded body) to EOF into dst's capacity
// with the same cap, guarantees and reserve hook as DecodeFramed.
func ReadAllCapped(dst []byte, r io.Reader, maxDecoded int, reserve Reserve) ([]byte, error) {
	dst, err := readCapped(dst, r, maxDecoded, reserve)
	if re, ok := err.(reserveError); ok {
		return dst[:0], re.err
	}
	if err != nil {
		return dst[:0], readError(err)
	}
	return dst, nil
}

// readCapped reads r to EOF into dst, failing with a 413 *Error once more
// than maxDecoded bytes arrived. dst never grows past maxDecoded+1 bytes.
// reserve, if not nil, approves each growth first; its error comes back
// as a reserveError.
func readCapped(dst []byte, r io.Reader, maxDecoded int, reserve Reserve) ([]byte, error) {
	dst = dst[:0]
	limit := maxDecoded + 1 // one byte past the cap proves the overflow
	if maxDecoded <= 0 {
		limit = int(^uint(0) >> 1)
	}
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= limit {
				return dst, TooLarge(CapDecodedBytes, maxDecoded, "decoded body")
			}
			newCap := max(2*cap(dst), minRead)
			if newCap > limit || newCap < 0 {
				newCap = limit
			}
			if reserve != nil {
				if err := reserve(newCap); err != nil {
					return dst, reserveError{err}
				}
			}
			grown := make([]byte, len(dst), newCap)
			copy(grown, dst)
			dst = grown
		}
		end := min(cap(dst), limit)
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if maxDecoded > 0 && len(dst) > maxDecoded {
			return dst, TooLarge(CapDecodedBytes, maxDecoded, "decoded body")
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// snappyMsg turns a snappy error into a client-facing message.
func snappyMsg(err error) string {
	switch {
	case errors.Is(err, s2.ErrCorrupt):
		return "snappy: corrupt input"
	case errors.Is(err, s2.ErrTooLarge):
		return "snappy: decoded block is too large"
	case errors.Is(err, s2.ErrUnsupported):
		return "snappy: unsupported input"
	}
	return "snappy: " + err.Error()
}
