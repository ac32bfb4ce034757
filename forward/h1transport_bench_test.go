package forward

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// benchServer answers 204 after reading the body, like a receiver's fast
// path.
func benchServer(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchSenders(b *testing.B, url string) (fast, std *Sender) {
	b.Helper()
	off := false
	var err error
	if fast, err = New(Config{URL: url}, nil, nil); err != nil {
		b.Fatal(err)
	}
	if std, err = New(Config{URL: url, HTTP1FastPath: &off}, nil, nil); err != nil {
		b.Fatal(err)
	}
	if !fast.fast || std.fast {
		b.Fatal("wrong clients")
	}
	b.Cleanup(fast.Close)
	b.Cleanup(std.Close)
	return fast, std
}

func benchPayload() []byte {
	body := make([]byte, 40<<10) // a typical compressed remote write
	r := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	return body
}

// processCPU is the process's user plus system CPU time so far: client and
// server both, as they share the process.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSenderSerial sends a 40 KB body to an httptest server one
// request at a time, alternating blocks of 100 sends between the HTTP/1.1
// fast path and net/http's client in the same run, and reports the process
// CPU (client and server) per request of each and their ratio.
// The /fast and /std sub-benchmarks run one client alone (e.g. under
// strace -f -c to count syscalls per request).
func BenchmarkSenderSerial(b *testing.B) {
	srv := benchServer(b)
	body := benchPayload()
	ctx := context.Background()
	b.Run("interleaved", func(b *testing.B) {
		fast, std := benchSenders(b, srv.URL)
		senders := [2]*Sender{fast, std}
		for _, s := range senders { // warm up: connections, pools
			for range 50 {
				if err := s.Send(ctx, body); err != nil {
					b.Fatal(err)
				}
			}
		}
		const block = 100
		var cpu [2]time.Duration
		var sent [2]int
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for i := 0; i < b.N; {
			k := (i / block) % 2
			start := processCPU(b)
			for j := 0; j < block && i < b.N; j, i = j+1, i+1 {
				if err := senders[k].Send(ctx, body); err != nil {
					b.Fatal(err)
				}
				sent[k]++
			}
			cpu[k] += processCPU(b) - start
		}
		if sent[0] == 0 || sent[1] == 0 {
			return
		}
		f := float64(cpu[0].Microseconds()) / float64(sent[0])
		s := float64(cpu[1].Microseconds()) / float64(sent[1])
		b.ReportMetric(f, "fast-cpu-µs/req")
		b.ReportMetric(s, "std-cpu-µs/req")
		b.ReportMetric(f/s, "fast/std")
	})
	for _, name := range []string{"fast", "std"} {
		b.Run(name, func(b *testing.B) {
			fast, std := benchSenders(b, srv.URL)
			s := fast
			if name == "std" {
				s = std
			}
			b.SetBytes(int64(len(body)))
			start := processCPU(b)
			b.ResetTimer()
			for range b.N {
				if err := s.Send(ctx, body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-start).Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}
