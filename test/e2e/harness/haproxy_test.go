package harness

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHAProxy: HAProxy balances by a header with consistent hashing, so
// one header value always reaches the same backend, and keeps serving
// across a reload.
func TestHAProxy(t *testing.T) {
	var backends []*httptest.Server
	for i := 0; i < 2; i++ {
		i := i
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, i) }))
		t.Cleanup(s.Close)
		backends = append(backends, s)
	}
	front := FreeAddr(t)
	cfg := fmt.Sprintf(`global
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend f
  bind %s
  default_backend b
backend b
  balance hdr(X-Key)
  hash-type consistent
  server s0 %s
  server s1 %s
`, front, backends[0].Listener.Addr(), backends[1].Listener.Addr())
	h := StartHAProxy(t, cfg, front)
	get := func(key string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+front+"/", nil)
		req.Header.Set("X-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	seen := map[string]bool{}
	for k := 0; k < 20; k++ {
		key := fmt.Sprintf("installation-%d", k)
		first := get(key)
		seen[first] = true
		for range 3 {
			if got := get(key); got != first {
				t.Fatalf("key %s went to backend %s, then %s", key, first, got)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("20 keys all on one backend: %v", seen)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		get("after-reload") // fails the test if the listener went away
		time.Sleep(100 * time.Millisecond)
	}
	if !h.Process().Running() {
		t.Fatal("haproxy exited on reload")
	}
}
