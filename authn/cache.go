package authn

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// CachingAuthenticator caches the answers of another Authenticator (usually
// an Upstream). Allowed answers are kept for ttl and denials (Unauthorized,
// Forbidden, passed-through 4xx other than 429) for negativeTTL; Unavailable
// answers and 429s are never cached. The cache holds at most maxEntries
// answers and evicts the least recently used. Keys are SHA-256 digests of
// the token plus the cluster ID; raw tokens are never stored. Concurrent
// identical lookups share one call to the wrapped Authenticator.
type CachingAuthenticator struct {
	next        Authenticator
	ttl         time.Duration
	negativeTTL time.Duration
	maxEntries  int
	now         func() time.Time

	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     *list.List // front = most recently used; values are *cacheEntry

	hits, misses             prometheus.Counter
	allowed, denied, errored prometheus.Counter
}

type cacheEntry struct {
	key     string
	id      Identity
	err     error
	expires time.Time
}

type lookupResult struct {
	id  Identity
	err error
}

// NewCachingAuthenticator wraps next with a bounded cache. ttl and
// maxEntries must be positive; a non-positive negativeTTL disables caching
// of denials. Metrics are registered with reg when it is not nil; metrics
// already registered by an earlier cache (e.g. before a reload) are reused.
func NewCachingAuthenticator(next Authenticator, ttl, negativeTTL time.Duration, maxEntries int, reg prometheus.Registerer) (*CachingAuthenticator, error) {
	if next == nil {
		return nil, errors.New("authn cache: nil authenticator")
	}
	if ttl <= 0 {
		return nil, errors.New("authn cache: ttl must be positive")
	}
	if maxEntries <= 0 {
		return nil, errors.New("authn cache: max entries must be positive")
	}
	cacheReqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "telegate_authn_cache_requests_total",
		Help: "Authentication cache lookups by result (hit, miss).",
	}, []string{"result"})
	upstreamReqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "telegate_authn_upstream_requests_total",
		Help: "Authentication calls past the cache by result (allowed, denied, error).",
	}, []string{"result"})
	if reg != nil {
		var err error
		if cacheReqs, err = registerCounterVec(reg, cacheReqs); err != nil {
			return nil, err
		}
		if upstreamReqs, err = registerCounterVec(reg, upstreamReqs); err != nil {
			return nil, err
		}
	}
	return &CachingAuthenticator{
		next:        next,
		ttl:         ttl,
		negativeTTL: negativeTTL,
		maxEntries:  maxEntries,
		now:         time.Now,
		entries:     make(map[string]*list.Element),
		lru:         list.New(),
		hits:        cacheReqs.WithLabelValues("hit"),
		misses:      cacheReqs.WithLabelValues("miss"),
		allowed:     upstreamReqs.WithLabelValues("allowed"),
		denied:      upstreamReqs.WithLabelValues("denied"),
		errored:     upstreamReqs.WithLabelValues("error"),
	}, nil
}

func registerCounterVec(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, err
}

// Authenticate implements Authenticator.
func (c *CachingAuthenticator) Authenticate(ctx context.Context, token, clusterID string) (Identity, error) {
	if err := checkRequest(token, clusterID); err != nil {
		return Identity{}, err
	}
	h := sha256.Sum256([]byte(token))
	// The digest has a fixed length, so digest+clusterID is unambiguous.
	key := string(h[:]) + clusterID

	if e, ok := c.lookup(key); ok {
		c.hits.Inc()
		return e.id.clone(), e.err
	}
	c.misses.Inc()

	// The shared call must not be cut short when the caller that started it
	// goes away, so it runs detached from cancellation; every caller still
	// stops waiting when its own context ends. The call keeps the context's
	// values (the caller's CallGate) and its deadline comes from next: an
	// Upstream holds its concurrency slots until the call ends, at most its
	// timeout later, so detached calls are bounded like the others.
	ch := c.group.DoChan(key, func() (any, error) {
		// A flight that finished between our lookup and this call may have
		// just filled the cache.
		if e, ok := c.lookup(key); ok {
			return lookupResult{id: e.id, err: e.err}, nil
		}
		id, err := c.next.Authenticate(context.WithoutCancel(ctx), token, clusterID)
		if err != nil {
			err = asAuthError(err, 0)
		}
		c.record(key, id, err)
		return lookupResult{id: id, err: err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(lookupResult)
		if res.err != nil {
			return Identity{}, res.err
		}
		return res.id.clone(), nil
	case <-ctx.Done():
		return Identity{}, asAuthError(ctx.Err(), 0)
	}
}

// lookup returns the unexpired entry for key, marking it recently used.
// Entries are never modified after insertion, so the pointer may be read
// without the lock.
func (c *CachingAuthenticator) lookup(key string) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e, true
}

// record counts the answer of the wrapped Authenticator (err is always an
// *Error) and caches it when it is an allow or a cacheable denial. A call
// refused for concurrency (ErrBusy) never reached the authorizer: it is
// neither an answer nor counted.
func (c *CachingAuthenticator) record(key string, id Identity, err error) {
	if errors.Is(err, ErrBusy) {
		return
	}
	var ttl time.Duration
	switch {
	case err == nil:
		c.allowed.Inc()
		ttl = c.ttl
	case KindOf(err) == Unavailable:
		c.errored.Inc()
	default:
		c.denied.Inc()
		if isDenial(err) {
			ttl = c.negativeTTL
		}
	}
	if ttl <= 0 {
		return
	}
	e := &cacheEntry{key: key, id: id.clone(), err: err, expires: c.now().Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(e)
	for c.lru.Len() > c.maxEntries {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

// Len returns the number of cached answers, expired ones included until
// they are looked up or evicted.
func (c *CachingAuthenticator) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
