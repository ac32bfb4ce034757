package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDurableWithSender runs the real Sender against an HTTP downstream
// that fails in the ways Thanos Receive does.
func TestDurableWithSender(t *testing.T) {
	var mode atomic.Value // "ok", "500", "409", "reset"
	mode.Store("500")
	var mu sync.Mutex
	var tenants []string
	var accepted int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch mode.Load().(string) {
		case "500":
			http.Error(w, "tsdb not ready", 500)
		case "409":
			http.Error(w, "out of order sample", 409)
		case "reset":
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		default:
			mu.Lock()
			tenants = append(tenants, r.Header.Get("THANOS-TENANT"))
			accepted++
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	snd, err := New(Config{URL: srv.URL, Headers: map[string]string{"THANOS-TENANT": "telemetry"}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	d := NewDurable(snd, s, DurableOptions{SendDeadline: 100 * time.Millisecond})
	ctx := context.Background()
	b := body(t, time.Now().UnixMilli(), 2, "m")

	// 500s and connection resets: spooled, acknowledged.
	if err := d.Send(ctx, "a", b); err != nil {
		t.Fatal(err)
	}
	mode.Store("reset")
	if err := d.Send(ctx, "b", b); err != nil {
		t.Fatal(err)
	}
	if o, _, _ := s.Stats(); o != 2 {
		t.Fatalf("%d spooled, want 2", o)
	}
	// 409 for fresh data: the client's problem, returned without retry.
	mode.Store("409")
	err = d.Send(ctx, "c", b)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != 409 || fe.Recoverable {
		t.Fatalf("409: got %v", err)
	}
	if s.HasBacklog("c") {
		t.Fatal("409 spooled")
	}

	// Downstream back: replay delivers both, with the tenant header.
	mode.Store("ok")
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Replay(rctx, snd, ReplayOptions{Interval: 5 * time.Millisecond}); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if o, _, _ := s.Stats(); o == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not replayed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if accepted != 2 || tenants[0] != "telemetry" || tenants[1] != "telemetry" {
		t.Fatalf("accepted %d with tenants %v", accepted, tenants)
	}
}

func TestReplayBacksOffWhileDown(t *testing.T) {
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	if err := s.Put(context.Background(), "a", body(t, time.Now().UnixMilli(), 1, "m")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	down := BodySenderFunc(func(context.Context, []byte) error {
		calls.Add(1)
		return &Error{Status: 503, Recoverable: true}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s.Replay(ctx, down, ReplayOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Interval: time.Millisecond})
	// 100ms, then ~200ms, then ~400ms: a handful of attempts, not a spin.
	if n := calls.Load(); n < 2 || n > 5 {
		t.Fatalf("%d attempts in 500ms with 100ms min backoff", n)
	}
	if o, _, _ := s.Stats(); o != 1 {
		t.Fatal("object lost while the downstream was down")
	}
}

func TestDirect(t *testing.T) {
	var got []byte
	d := Direct(BodySenderFunc(func(_ context.Context, b []byte) error { got = b; return errors.New("x") }))
	if err := d.Send(context.Background(), "c", []byte("b")); err == nil || string(got) != "b" {
		t.Fatalf("Direct: %v %q", err, got)
	}
}
