package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/test/e2e/harness"
)

// fakeTollbooth is an upstream authorizer. By token prefix: "slow" waits
// until release is closed (or the call is abandoned), then allows; "ok"
// allows; "s404" and "s409" answer that status; anything else is 401.
// calls and inflight count what reached it.
type fakeTollbooth struct {
	release         chan struct{}
	stopOnce        sync.Once
	calls, inflight atomic.Int32
}

// stop lets every held call through. Tests register it once the gateway
// fixture exists, so it runs before the gateway server's Close waits for
// requests held at the authorizer.
func (f *fakeTollbooth) stop() { f.stopOnce.Do(func() { close(f.release) }) }

func newFakeTollbooth(t *testing.T) (*fakeTollbooth, *httptest.Server) {
	t.Helper()
	f := &fakeTollbooth{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.inflight.Add(1)
		defer f.inflight.Add(-1)
		var req struct {
			Token string `json:"authorization_token"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		switch tok := req.Token; {
		case strings.HasPrefix(tok, "slow"):
			select {
			case <-f.release:
			case <-r.Context().Done():
				return
			}
		case strings.HasPrefix(tok, "s404"):
			w.WriteHeader(http.StatusNotFound)
			return
		case strings.HasPrefix(tok, "s409"):
			w.WriteHeader(http.StatusConflict)
			return
		case !strings.HasPrefix(tok, "ok"):
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"account_id":"acct"}`))
	}))
	t.Cleanup(srv.Close)
	// Runs before srv.Close, which waits for the held calls.
	t.Cleanup(f.stop)
	return f, srv
}

// withTollbooth puts the cached upstream authorizer at srv behind the
// fixture's static tokens, as cmd/telegate chains them.
func withTollbooth(t *testing.T, srv *httptest.Server, opts authn.UpstreamOptions, fa FailedAuthLimit) func(*Options) {
	return func(o *Options) {
		up, err := authn.NewUpstream(srv.URL, srv.Client(), opts)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := authn.NewCachingAuthenticator(up, time.Hour, time.Minute, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Authenticator = authn.Chain(o.Authenticator, cached)
		o.FailedAuth = fa
	}
}

// authorizeFrom calls /authorize with token for cluster c1, as the client
// xff behind the (trusted) test client address when xff is set.
func (f *fixture) authorizeFrom(ctx context.Context, t *testing.T, token, xff string) (int, errorBody, http.Header, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/authorize?id=c1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, errorBody{}, nil, err
	}
	defer resp.Body.Close()
	var eb errorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb, resp.Header, nil
}

// receiveFrom remote-writes one sample with the composite token of
// token/c1.
func (f *fixture) receiveFrom(t *testing.T, token, xff string) int {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(1, f.now.UnixMilli(), "__name__", "cluster_version")}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Authorization", "Bearer "+harness.CompositeToken(token, "c1"))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *fixture) answered(handler, code string) float64 {
	return testutil.ToFloat64(f.gw.metrics.requests.WithLabelValues(handler, code))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A client that hangs up while the authorizer is slow is charged: after
// burst such attempts its source gets 429 without reaching the authorizer.
// (It used to be answered 503 on a closed connection and never charged, so
// every guess reached the authorizer.)
func TestFailedAuthChargesAbandonedAttempts(t *testing.T) {
	fake, srv := newFakeTollbooth(t)
	const burst = 3
	f := newFixture(t, withTollbooth(t, srv, authn.UpstreamOptions{Timeout: 10 * time.Second},
		FailedAuthLimit{PerMinute: 1, Burst: burst, MaxSources: 10}))
	t.Cleanup(fake.stop)
	for i := 0; i < burst; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, _, _, err := f.authorizeFrom(ctx, t, "slow-guess-"+string(rune('a'+i)), "")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("attempt %d: %v, want the client to give up", i, err)
		}
		eventually(t, "the abandoned attempt to be answered", func() bool { return f.answered("authorize", "503") == float64(i+1) })
	}
	if n := fake.calls.Load(); n != burst {
		t.Fatalf("authorizer calls: %d, want %d", n, burst)
	}
	code, eb, _, err := f.authorizeFrom(context.Background(), t, "slow-guess-next", "")
	if err != nil || code != 429 || eb.Reason != "auth_rate_limited" {
		t.Fatalf("after %d abandoned attempts: %d %+v %v, want 429 auth_rate_limited", burst, code, eb, err)
	}
	if n := fake.calls.Load(); n != burst {
		t.Fatalf("the limited attempt reached the authorizer (%d calls)", n)
	}
}

// The authorizer's 404 and 409 (passed through) are failed attempts, like
// 401 and 403, on every endpoint that checks credentials: /authorize and
// remote write against the authorizer, /upload, /allowlist and /explain
// against the JWT.
func TestFailedAuthChargesEveryDenial(t *testing.T) {
	_, srv := newFakeTollbooth(t)
	f := newFixture(t, withTollbooth(t, srv, authn.UpstreamOptions{},
		FailedAuthLimit{PerMinute: 1, Burst: 7, MaxSources: 10}))
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "s404", ""); code != 404 {
		t.Fatalf("authorize, authorizer 404: %d", code)
	}
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "s409", ""); code != 409 {
		t.Fatalf("authorize, authorizer 409: %d", code)
	}
	if code := f.receiveFrom(t, "s404-rw", ""); code != 404 {
		t.Fatalf("receive, authorizer 404: %d", code)
	}
	if code := f.receiveFrom(t, "s409-rw", ""); code != 409 {
		t.Fatalf("receive, authorizer 409: %d", code)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/upload"}, {http.MethodGet, "/allowlist"}, {http.MethodGet, "/explain"},
	} {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, nil)
		req.Header.Set("Authorization", "Bearer not-a-jwt")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("%s with a bad JWT: %v %v", c.path, resp, err)
		}
		resp.Body.Close()
	}
	// Seven failures: the bucket is empty, a valid token gets 429.
	if code, eb, _, _ := f.authorizeFrom(context.Background(), t, "ok", ""); code != 429 || eb.Reason != "auth_rate_limited" {
		t.Fatalf("after 404, 409 and JWT failures: %d %+v, want 429", code, eb)
	}
}

// An authorizer timeout during authentication (503) is a failed attempt.
func TestFailedAuthChargesAuthorizerTimeouts(t *testing.T) {
	_, srv := newFakeTollbooth(t)
	f := newFixture(t, withTollbooth(t, srv, authn.UpstreamOptions{Timeout: 100 * time.Millisecond},
		FailedAuthLimit{PerMinute: 1, Burst: 2, MaxSources: 10}))
	if code := f.receiveFrom(t, "slow-1", ""); code != 503 {
		t.Fatalf("receive, authorizer timeout: %d", code)
	}
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "slow-2", ""); code != 503 {
		t.Fatalf("authorize, authorizer timeout: %d", code)
	}
	if code := f.receiveFrom(t, "ok", ""); code != 429 {
		t.Fatalf("after two timeouts: %d, want 429", code)
	}
}

// Attempts refused before their credentials are checked are not guesses,
// nor are failures after a successful authentication; a handler that does
// not mark its attempt is still charged for 401 and 403.
func TestFailedAuthChargesOnlyCheckedCredentials(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.FailedAuth = FailedAuthLimit{PerMinute: 1, Burst: 1, MaxSources: 10}
		o.Limits.MaxRequestBytes = 16
	})
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/authorize?id=c1", nil) // 405
	req.Header.Set("Authorization", "Bearer guess")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 405 {
		t.Fatalf("GET /authorize: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/authorize?id=", nil) // 400
	req.Header.Set("Authorization", "Bearer guess")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("/authorize without a cluster ID: %v %v", resp, err)
	}
	resp.Body.Close()
	big := make([]byte, 100) // over max_request_bytes, after authentication
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/receive", bytes.NewReader(big))
	req.Header.Set("Authorization", "Bearer "+harness.CompositeToken("dev", "c1"))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("oversized remote write: %v %v", resp, err)
	}
	resp.Body.Close()

	// Handlers driven directly: authenticated then 403 is not charged, an
	// unmarked 401 is.
	src := netip.MustParsePrefix("192.0.2.1/32")
	run := func(h handlerFunc) {
		r := httptest.NewRequest(http.MethodPost, "/x", nil)
		r.RemoteAddr = "192.0.2.1:5000"
		f.gw.instrument("test", http.MethodPost, h).ServeHTTP(httptest.NewRecorder(), r)
	}
	run(func(w http.ResponseWriter, r *http.Request) int {
		f.gw.settleAuth(r, nil)
		return f.gw.writeError(w, r, newError(http.StatusForbidden, "x", "after authentication"))
	})
	if f.gw.authLimited(src) != nil {
		t.Fatal("a 403 after authentication was charged")
	}
	run(func(w http.ResponseWriter, r *http.Request) int {
		return f.gw.writeError(w, r, newError(http.StatusUnauthorized, "x", "unmarked"))
	})
	if f.gw.authLimited(src) == nil {
		t.Fatal("an unmarked 401 was not charged")
	}

	// The test client's own source was never charged.
	if code, eb, _, _ := f.authorizeFrom(context.Background(), t, "dev", ""); code != 200 {
		t.Fatalf("valid /authorize after the uncharged refusals: %d %+v", code, eb)
	}
}

// One source has at most max_concurrent_per_source authorizer calls in
// flight: more get 429 at once (charged) without reaching the authorizer.
// Answers from the cache take no slot, and other sources are not held up.
func TestAuthorizerCallsBoundedPerSource(t *testing.T) {
	fake, srv := newFakeTollbooth(t)
	f := newFixture(t, withTollbooth(t, srv, authn.UpstreamOptions{Timeout: 10 * time.Second},
		FailedAuthLimit{PerMinute: 1, Burst: 1, MaxSources: 10, MaxConcurrentPerSource: 2,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}))
	t.Cleanup(fake.stop)
	const a, b = "203.0.113.1", "198.51.100.1"
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "ok-cached", a); code != 200 {
		t.Fatalf("priming the cache: %d", code)
	}
	var wg sync.WaitGroup
	for _, tok := range []string{"slow-1", "slow-2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, eb, _, err := f.authorizeFrom(context.Background(), t, tok, a); code != 200 {
				t.Errorf("slow call %s: %d %+v %v", tok, code, eb, err)
			}
		}()
	}
	eventually(t, "two calls at the authorizer", func() bool { return fake.inflight.Load() == 2 })
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "ok-cached", a); code != 200 {
		t.Fatalf("cache hit while the source is at its bound: %d", code)
	}
	start := time.Now()
	code, eb, hdr, _ := f.authorizeFrom(context.Background(), t, "ok-third", a)
	if code != 429 || eb.Reason != "auth_concurrency_limited" || hdr.Get("Retry-After") != "1" || eb.Limit != 2 {
		t.Fatalf("third call in flight: %d %+v %q", code, eb, hdr.Get("Retry-After"))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("refusal took %v", el)
	}
	if n := fake.calls.Load(); n != 3 {
		t.Fatalf("authorizer calls: %d, want 3 (priming and the two slow ones)", n)
	}
	if code, _, _, _ := f.authorizeFrom(context.Background(), t, "ok-other", b); code != 200 {
		t.Fatalf("another source: %d", code)
	}
	// The refusal was charged (burst 1).
	if code, eb, _, _ := f.authorizeFrom(context.Background(), t, "ok-cached", a); code != 429 || eb.Reason != "auth_rate_limited" {
		t.Fatalf("after the refusal: %d %+v, want auth_rate_limited", code, eb)
	}
	if v := testutil.ToFloat64(f.gw.protect.upstreamRefused.WithLabelValues(refusedPerSource)); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	fake.release <- struct{}{}
	fake.release <- struct{}{}
	wg.Wait()
	f.gw.protect.callsMu.Lock()
	defer f.gw.protect.callsMu.Unlock()
	if len(f.gw.protect.calls) != 0 {
		t.Fatalf("slots still held: %v", f.gw.protect.calls)
	}
}

// The authorizer's total bound answers 503 at once without calling it, and
// does not charge the source (the gateway is busy, not the client).
func TestAuthorizerCallsBoundedInTotal(t *testing.T) {
	fake, srv := newFakeTollbooth(t)
	f := newFixture(t, withTollbooth(t, srv, authn.UpstreamOptions{Timeout: 10 * time.Second, MaxConcurrent: 2},
		FailedAuthLimit{PerMinute: 1, Burst: 1, MaxSources: 10,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}))
	t.Cleanup(fake.stop)
	var wg sync.WaitGroup
	for _, tok := range []string{"slow-1", "slow-2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.authorizeFrom(context.Background(), t, tok, "203.0.113.1")
		}()
	}
	eventually(t, "two calls at the authorizer", func() bool { return fake.inflight.Load() == 2 })
	for i := 0; i < 2; i++ {
		code, eb, hdr, _ := f.authorizeFrom(context.Background(), t, "ok", "198.51.100.1")
		if code != 503 || eb.Reason != "authorizer_overloaded" || hdr.Get("Retry-After") != "1" {
			t.Fatalf("over the total bound: %d %+v %q", code, eb, hdr.Get("Retry-After"))
		}
	}
	if code := f.receiveFrom(t, "dev", "198.51.100.1"); code != 204 {
		t.Fatalf("static token from the refused source: %d, want 204 (refusals are not charged)", code)
	}
	if n := fake.calls.Load(); n != 2 {
		t.Fatalf("authorizer calls: %d, want 2", n)
	}
	if v := testutil.ToFloat64(f.gw.protect.upstreamRefused.WithLabelValues(refusedTotal)); v != 2 {
		t.Fatalf("refusals counted: %v", v)
	}
	fake.release <- struct{}{}
	fake.release <- struct{}{}
	wg.Wait()
}

// A trusted proxy's request without a usable X-Forwarded-For is limited
// under the proxy's own address (it used to be not limited at all), counted
// and warned about once; clients the proxy names keep their own buckets.
func TestFailedAuthTrustedProxyWithoutForwardedFor(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, func(o *Options) {
		o.Logger = log.NewLogfmtLogger(&logs)
		o.FailedAuth = FailedAuthLimit{PerMinute: 1, Burst: 2, MaxSources: 10,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	})
	if code := f.receiveFrom(t, "guess-1", ""); code != 401 {
		t.Fatalf("guess without X-Forwarded-For: %d", code)
	}
	if code := f.receiveFrom(t, "guess-2", "junk"); code != 401 {
		t.Fatalf("guess with an unparsable X-Forwarded-For: %d", code)
	}
	if code := f.receiveFrom(t, "dev", ""); code != 429 {
		t.Fatalf("third request from the proxy without X-Forwarded-For: %d, want 429", code)
	}
	if code := f.receiveFrom(t, "dev", "198.51.100.1"); code != 204 {
		t.Fatalf("a client the proxy names: %d, want 204", code)
	}
	m := f.gw.protect.xffMissing
	if a, u := testutil.ToFloat64(m.WithLabelValues(xffAbsent)), testutil.ToFloat64(m.WithLabelValues(xffUnparsable)); a != 2 || u != 1 {
		t.Fatalf("forwarded_for_missing: absent %v unparsable %v, want 2 and 1", a, u)
	}
	if n := strings.Count(logs.String(), "without a usable X-Forwarded-For"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
