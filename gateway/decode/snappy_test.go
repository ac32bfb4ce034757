package decode

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/golang/snappy"
)

func framed(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func payload(n int) []byte {
	return bytes.Repeat([]byte("telegate-payload-"), n/17+1)[:n]
}

func TestDecodeBlock(t *testing.T) {
	data := payload(100000)
	src := snappy.Encode(nil, data)
	dst := make([]byte, 0, 200000)
	out, err := DecodeBlock(dst, src, len(data))
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("decode: %v", err)
	}
	if &out[0] != &dst[:1][0] {
		t.Fatal("dst capacity was not reused")
	}
	if out, err = DecodeBlock(nil, src, 0); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("uncapped decode: %v", err)
	}

	_, err = DecodeBlock(nil, src, len(data)-1)
	wantError(t, err, 413, "decoded body of 100000 bytes exceeds max_decoded_bytes (99999)")

	_, err = DecodeBlock(nil, []byte{0x05, 0xff, 0xff}, 1000)
	wantError(t, err, 400, "snappy: corrupt input")
	_, err = DecodeBlock(nil, []byte{0xff}, 1000)
	wantError(t, err, 400, "snappy: corrupt input")
}

// A tiny block claiming a huge decoded length is refused before any
// allocation of that size.
func TestDecodeBlockRefusesBeforeAllocating(t *testing.T) {
	src := []byte{0x80, 0x80, 0x80, 0x80, 0x04, 0x00} // claims 1 GiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeBlock(nil, src, 32<<20)
	runtime.ReadMemStats(&after)
	wantError(t, err, 413, "decoded body of 1073741824 bytes exceeds max_decoded_bytes (33554432)")
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes", d)
	}
}

func TestDecodeFramed(t *testing.T) {
	data := payload(300000)
	body := framed(t, data)
	dst := make([]byte, 0, 400000)
	out, err := DecodeFramed(dst, bytes.NewReader(body), len(data), nil)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("decode: %v", err)
	}
	if &out[0] != &dst[:1][0] {
		t.Fatal("dst capacity was not reused")
	}
	// Small reads, no cap.
	if out, err = DecodeFramed(nil, iotest.OneByteReader(bytes.NewReader(body)), 0, nil); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("one-byte reads: %v", err)
	}
	// Empty body.
	if out, err = DecodeFramed(nil, bytes.NewReader(nil), 10, nil); err != nil || len(out) != 0 {
		t.Fatalf("empty: %q %v", out, err)
	}
}

func TestDecodeFramedCap(t *testing.T) {
	data := payload(1 << 20)
	body := framed(t, data)
	const limit = 100000
	out, err := DecodeFramed(nil, bytes.NewReader(body), limit, nil)
	wantError(t, err, 413, "decoded body exceeds max_decoded_bytes (100000)")
	if cap(out) > limit+1 {
		t.Fatalf("grew to %d bytes, cap %d", cap(out), limit)
	}
	if _, err := DecodeFramed(nil, bytes.NewReader(framed(t, data[:limit])), limit, nil); err != nil {
		t.Fatalf("exactly at the cap: %v", err)
	}
}

func TestDecodeFramedMalformed(t *testing.T) {
	body := framed(t, payload(1000))
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"block format", snappy.Encode(nil, payload(1000))},
		{"truncated", body[:len(body)-3]},
		{"bad checksum", append(bytes.Clone(body[:len(body)-1]), body[len(body)-1]^0xff)},
	} {
		_, err := DecodeFramed(nil, bytes.NewReader(tc.body), 1<<20, nil)
		wantError(t, err, 400, "snappy: corrupt input")
	}
	_, err := DecodeFramed(nil, io.MultiReader(bytes.NewReader(body[:20]), iotest.ErrReader(errors.New("connection reset"))), 1<<20, nil)
	wantError(t, err, 400, "reading body: connection reset")
}

func TestReadAllCapped(t *testing.T) {
	data := payload(200000)
	dst := make([]byte, 0, 300000)
	out, err := ReadAllCapped(dst, iotest.HalfReader(bytes.NewReader(data)), len(data), nil)
	if err != nil || !bytes.Equal(out, data) || &out[0] != &dst[:1][0] {
		t.Fatalf("read: %v", err)
	}
	out, err = ReadAllCapped(nil, bytes.NewReader(data), len(data)-1, nil)
	wantError(t, err, 413, "max_decoded_bytes (199999)")
	if cap(out) > len(data) {
		t.Fatalf("grew to %d", cap(out))
	}
	// A reused buffer larger than the cap still enforces it.
	_, err = ReadAllCapped(make([]byte, 0, 1<<20), bytes.NewReader(data), 1000, nil)
	wantError(t, err, 413, "max_decoded_bytes (1000)")

	// The server's body limit maps to 413 naming max_request_bytes.
	rec := httptest.NewRecorder()
	body := http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(data)), 100)
	_, err = ReadAllCapped(nil, body, 1<<20, nil)
	wantError(t, err, 413, "request body exceeds max_request_bytes (100)")
	if StatusOf(err) != 413 {
		t.Fatal("StatusOf")
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{BadRequest("x %d", 1), 400},
		{TooLarge(CapSeries, 5, "request"), 413},
		{Unsupported("content-encoding %q", "gzip"), 415},
		{&http.MaxBytesError{Limit: 3}, 413},
		{errors.New("other"), 400},
	} {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if e := Unsupported("content-encoding %q", "gzip"); e.Error() != `content-encoding "gzip"` {
		t.Fatal(e.Error())
	}
	if e := TooLarge(CapSeries, 5, "request"); !strings.Contains(e.Msg, "request exceeds max_series_per_request (5)") {
		t.Fatal(e.Msg)
	}
}

// Reserve is asked before every growth of the streaming readers' buffer,
// with the new capacity, and its error comes back as is.
func TestReserveHook(t *testing.T) {
	data := bytes.Repeat([]byte("telemetry "), 30000) // 300 kB: several growths
	for name, read := range map[string]func(Reserve) ([]byte, error){
		"identity": func(r Reserve) ([]byte, error) { return ReadAllCapped(nil, bytes.NewReader(data), 1<<20, r) },
		"framed":   func(r Reserve) ([]byte, error) { return DecodeFramed(nil, bytes.NewReader(framed(t, data)), 1<<20, r) },
	} {
		var caps []int
		out, err := read(func(newCap int) error { caps = append(caps, newCap); return nil })
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%s: %v", name, err)
		}
		if len(caps) < 2 || caps[len(caps)-1] < len(data) || caps[0] != minRead {
			t.Fatalf("%s: reserved %v for %d bytes", name, caps, len(data))
		}
		full := errors.New("memory budget exhausted")
		calls := 0
		_, err = read(func(newCap int) error {
			if calls++; newCap > 2*minRead {
				return full
			}
			return nil
		})
		if err != full || calls != 3 {
			t.Fatalf("%s: got %v after %d calls, want the hook's error as is after 3", name, err, calls)
		}
	}
}

func TestDecodedLen(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 5000)
	if n, err := DecodedLen(snappy.Encode(nil, data)); err != nil || n != len(data) {
		t.Fatalf("DecodedLen = %d, %v", n, err)
	}
	_, err := DecodedLen([]byte{0xff})
	wantError(t, err, 400, "snappy")
}
