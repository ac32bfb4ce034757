package authn

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// countingAuth answers with answer and counts calls.
type countingAuth struct {
	calls  atomic.Int32
	answer func(token, clusterID string) (Identity, error)
}

func (c *countingAuth) Authenticate(_ context.Context, token, clusterID string) (Identity, error) {
	c.calls.Add(1)
	return c.answer(token, clusterID)
}

func allowAll(_, clusterID string) (Identity, error) { return NewIdentity(clusterID, "acct"), nil }

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestCache(t *testing.T, next Authenticator, ttl, negTTL time.Duration, max int) (*CachingAuthenticator, *prometheus.Registry, *fakeClock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewCachingAuthenticator(next, ttl, negTTL, max, reg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c.now = clock.now
	return c, reg, clock
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func cacheCount(c *CachingAuthenticator, result string) float64 {
	switch result {
	case "hit":
		return counterValue(c.hits)
	case "miss":
		return counterValue(c.misses)
	case "allowed":
		return counterValue(c.allowed)
	case "denied":
		return counterValue(c.denied)
	default:
		return counterValue(c.errored)
	}
}

// gathered returns "name{result=...}" -> value for every counter in reg.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestCacheHitMissAndExpiry(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	c, reg, clock := newTestCache(t, next, time.Minute, 10*time.Second, 10)
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		id, err := c.Authenticate(ctx, "tok", "c1")
		if err != nil || id.ClusterID != "c1" || id.AccountID != "acct" {
			t.Fatalf("%+v %v", id, err)
		}
	}
	if n := next.calls.Load(); n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
	if cacheCount(c, "hit") != 2 || cacheCount(c, "miss") != 1 || cacheCount(c, "allowed") != 1 {
		t.Fatal("metrics do not match")
	}
	// Different cluster or token: separate entries.
	c.Authenticate(ctx, "tok", "c2")
	c.Authenticate(ctx, "tok2", "c1")
	if n := next.calls.Load(); n != 3 {
		t.Fatalf("upstream calls = %d, want 3", n)
	}
	clock.advance(59 * time.Second)
	c.Authenticate(ctx, "tok", "c1")
	if n := next.calls.Load(); n != 3 {
		t.Fatalf("entry expired early: calls = %d", n)
	}
	clock.advance(time.Second)
	c.Authenticate(ctx, "tok", "c1")
	if n := next.calls.Load(); n != 4 {
		t.Fatalf("expired entry served: calls = %d", n)
	}

	want := map[string]float64{
		"telegate_authn_cache_requests_total{result=hit}":        3,
		"telegate_authn_cache_requests_total{result=miss}":       4,
		"telegate_authn_upstream_requests_total{result=allowed}": 4,
		"telegate_authn_upstream_requests_total{result=denied}":  0,
		"telegate_authn_upstream_requests_total{result=error}":   0,
	}
	if got := gathered(t, reg); !maps.Equal(got, want) {
		t.Fatalf("gathered metrics = %v, want %v", got, want)
	}
}

func TestCacheNegative(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		cached bool
		metric string
	}{
		{"unauthorized", NewUnauthorized("no"), true, "denied"},
		{"forbidden", NewForbidden("no"), true, "denied"},
		{"passthrough 401", NewPassthrough(401, "no", 0), true, "denied"},
		{"passthrough 404", NewPassthrough(404, "no", 0), true, "denied"},
		{"passthrough 409", NewPassthrough(409, "no", 0), true, "denied"},
		{"passthrough 429", NewPassthrough(429, "slow down", time.Second), false, "denied"},
		{"unavailable", NewUnavailable("down", 0, nil), false, "error"},
		{"foreign error", errors.New("boom"), false, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &countingAuth{answer: func(string, string) (Identity, error) { return Identity{}, tc.err }}
			c, _, clock := newTestCache(t, next, time.Hour, 30*time.Second, 10)
			for i := 0; i < 2; i++ {
				_, err := c.Authenticate(context.Background(), "tok", "c")
				if err == nil {
					t.Fatal("denial turned into allow")
				}
				if KindOf(err) == 0 {
					t.Fatalf("non-*Error escaped: %v", err)
				}
			}
			want := int32(2)
			if tc.cached {
				want = 1
			}
			if n := next.calls.Load(); n != want {
				t.Fatalf("calls = %d, want %d", n, want)
			}
			if cacheCount(c, tc.metric) != float64(want) {
				t.Fatalf("%s counter = %v", tc.metric, cacheCount(c, tc.metric))
			}
			if tc.cached {
				clock.advance(30 * time.Second)
				c.Authenticate(context.Background(), "tok", "c")
				if n := next.calls.Load(); n != 2 {
					t.Fatalf("negative entry outlived negativeTTL: calls = %d", n)
				}
			}
		})
	}
}

func TestCacheNegativeTTLDisabled(t *testing.T) {
	next := &countingAuth{answer: func(string, string) (Identity, error) { return Identity{}, NewForbidden("no") }}
	c, _, _ := newTestCache(t, next, time.Hour, 0, 10)
	c.Authenticate(context.Background(), "tok", "c")
	c.Authenticate(context.Background(), "tok", "c")
	if n := next.calls.Load(); n != 2 {
		t.Fatalf("calls = %d, denials must not be cached", n)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 2)
	ctx := context.Background()
	c.Authenticate(ctx, "t", "a")
	c.Authenticate(ctx, "t", "b")
	c.Authenticate(ctx, "t", "a") // a is now most recent
	c.Authenticate(ctx, "t", "c") // evicts b
	if c.Len() != 2 {
		t.Fatalf("Len = %d", c.Len())
	}
	before := next.calls.Load()
	c.Authenticate(ctx, "t", "a")
	c.Authenticate(ctx, "t", "c")
	if next.calls.Load() != before {
		t.Fatal("recently used entries were evicted")
	}
	c.Authenticate(ctx, "t", "b")
	if next.calls.Load() != before+1 {
		t.Fatal("least recently used entry was not evicted")
	}
}

func TestCacheSingleflight(t *testing.T) {
	release := make(chan struct{})
	next := &countingAuth{answer: func(_, clusterID string) (Identity, error) {
		<-release
		return NewIdentity(clusterID, ""), nil
	}}
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 10)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.Authenticate(context.Background(), "tok", "c")
			if err == nil && id.ClusterID != "c" {
				err = errors.New("wrong identity")
			}
			errs <- err
		}()
	}
	// Wait until every goroutine has missed the cache and joined the flight.
	deadline := time.Now().Add(5 * time.Second)
	for cacheCount(c, "miss") < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := next.calls.Load(); got != 1 {
		t.Fatalf("upstream calls = %d, want 1", got)
	}
}

func TestCacheCallerCancelDoesNotAbortSharedCall(t *testing.T) {
	release := make(chan struct{})
	var sawCancel atomic.Bool
	next := AuthenticatorFunc(func(ctx context.Context, _, clusterID string) (Identity, error) {
		<-release
		if ctx.Err() != nil {
			sawCancel.Store(true)
		}
		return NewIdentity(clusterID, ""), nil
	})
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 10)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Authenticate(ctx, "tok", "c"); done <- err }()
	for cacheCount(c, "miss") < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; KindOf(err) != Unavailable {
		t.Fatalf("canceled caller: %v", err)
	}
	close(release)
	// The shared call completes and fills the cache for the next caller.
	deadline := time.Now().Add(5 * time.Second)
	for c.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Authenticate(context.Background(), "tok", "c"); err != nil {
		t.Fatal(err)
	}
	if cacheCount(c, "hit") != 1 || sawCancel.Load() {
		t.Fatal("shared call was aborted by the first caller's cancellation")
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 10)
	id, _ := c.Authenticate(context.Background(), "tok", "c")
	id.Labels[ClusterIDLabel] = "mutated"
	id2, _ := c.Authenticate(context.Background(), "tok", "c")
	if id2.Labels[ClusterIDLabel] != "c" {
		t.Fatal("caller mutation leaked into the cache")
	}
}

func TestCacheNeverStoresRawTokens(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 10)
	c.Authenticate(context.Background(), testSecret, "c")
	for k := range c.entries {
		if strings.Contains(k, testSecret) {
			t.Fatal("raw token used as cache key")
		}
	}
}

func TestCacheRejectsEmptyCredentials(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	c, _, _ := newTestCache(t, next, time.Hour, time.Minute, 10)
	if _, err := c.Authenticate(context.Background(), "", "c"); KindOf(err) != Unauthorized {
		t.Fatal(err)
	}
	if next.calls.Load() != 0 {
		t.Fatal("empty token reached the next authenticator")
	}
}

func TestNewCachingAuthenticatorValidationAndReregistration(t *testing.T) {
	next := &countingAuth{answer: allowAll}
	if _, err := NewCachingAuthenticator(nil, time.Minute, 0, 1, nil); err == nil {
		t.Fatal("nil next accepted")
	}
	if _, err := NewCachingAuthenticator(next, 0, 0, 1, nil); err == nil {
		t.Fatal("zero ttl accepted")
	}
	if _, err := NewCachingAuthenticator(next, time.Minute, 0, 0, nil); err == nil {
		t.Fatal("zero size accepted")
	}
	reg := prometheus.NewRegistry()
	c1, err := NewCachingAuthenticator(next, time.Minute, 0, 1, reg)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewCachingAuthenticator(next, time.Minute, 0, 1, reg)
	if err != nil {
		t.Fatalf("second cache on the same registry (reload): %v", err)
	}
	c1.Authenticate(context.Background(), "t", "c")
	c2.Authenticate(context.Background(), "t", "c")
	if counterValue(c2.misses) != 2 {
		t.Fatal("re-registered cache does not share the metrics")
	}
	bad := prometheus.NewRegistry()
	bad.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "telegate_authn_cache_requests_total", Help: "x"}))
	if _, err := NewCachingAuthenticator(next, time.Minute, 0, 1, bad); err == nil {
		t.Fatal("conflicting registration accepted")
	}
}

// A call the cache detaches from an abandoning caller still holds its
// Upstream slot until it ends, and ends by the Upstream timeout: it does
// not run unbounded. Refusals for concurrency are neither cached nor
// counted as authorizer answers.
func TestCacheDetachedCallHoldsItsSlot(t *testing.T) {
	fake, srv := newSlowAuthorizer(t)
	u := newTestUpstream(t, srv.URL, UpstreamOptions{MaxConcurrent: 1, Timeout: 300 * time.Millisecond})
	c, _, _ := newTestCache(t, u, time.Hour, time.Minute, 10)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Authenticate(ctx, "slow", "c"); KindOf(err) != Unavailable {
		t.Fatalf("abandoned caller: %v", err)
	}
	// The detached call is still at the authorizer and holds the only slot.
	if n := fake.inflight.Load(); n != 1 {
		t.Fatalf("calls in flight at the authorizer: %d, want 1", n)
	}
	if _, err := c.Authenticate(context.Background(), testSecret, "c"); !errors.Is(err, ErrBusy) {
		t.Fatalf("while the detached call runs: %v, want ErrBusy", err)
	}
	if got := fake.calls.Load(); got != 1 {
		t.Fatalf("authorizer calls: %d, want 1", got)
	}
	// The timeout ends the detached call and frees the slot.
	waitFor(t, "the detached call to time out", func() bool { return fake.inflight.Load() == 0 && cacheCount(c, "error") == 1 })
	start := time.Now()
	for {
		_, err := c.Authenticate(context.Background(), testSecret, "c")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Since(start) > 2*time.Second {
			t.Fatalf("after the timeout: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := cacheCount(c, "error"); got != 1 {
		t.Fatalf("upstream errors counted: %v, want 1 (the timeout; refusals are not answers)", got)
	}
	if c.Len() != 1 {
		t.Fatalf("%d cached answers, want 1 (the allow)", c.Len())
	}
}
