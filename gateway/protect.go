package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// FailedAuthLimit rate-limits failed authentications (401/403) per source
// address: each failure takes a token from the source's bucket; a source
// with an empty bucket gets 429 before its credentials are even looked at.
// IPv6 sources are grouped by /64. PerMinute 0 disables it.
type FailedAuthLimit struct {
	PerMinute  float64
	Burst      int
	MaxSources int
}

// protection holds the concurrency limit and the failed-auth guard.
type protection struct {
	sem        chan struct{}
	overloaded prometheus.Counter
	inflight   prometheus.Gauge

	auth        FailedAuthLimit
	mu          sync.Mutex
	sources     map[netip.Prefix]*authBucket
	lastSweep   time.Time
	authBlocked prometheus.Counter
	now         func() time.Time
}

type authBucket struct {
	tokens float64
	last   time.Time
}

func newProtection(o Options, reg prometheus.Registerer) *protection {
	f := promauto.With(reg)
	p := &protection{
		overloaded: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_http_overloaded_total",
			Help: "Public API requests answered 503 at once because limits.max_concurrent_requests were in flight.",
		}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_http_inflight_requests",
			Help: "Public API requests in flight.",
		}),
		authBlocked: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_authn_failed_auth_limited_total",
			Help: "Requests answered 429 because their source failed authentication too often (limits.failed_auth).",
		}),
		auth:    o.FailedAuth,
		sources: map[netip.Prefix]*authBucket{},
		now:     o.Now,
	}
	if o.MaxConcurrentRequests > 0 {
		p.sem = make(chan struct{}, o.MaxConcurrentRequests)
	}
	return p
}

// limitConcurrency answers 503 at once when MaxConcurrentRequests are in
// flight, instead of queueing without bound. Health probes are exempt.
func (g *Gateway) limitConcurrency(next http.Handler) http.Handler {
	p := g.protect
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.sem == nil || strings.HasPrefix(r.URL.Path, "/-/") {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case p.sem <- struct{}{}:
		default:
			p.overloaded.Inc()
			e := newError(http.StatusServiceUnavailable, "overloaded", "too many requests in flight; retry shortly")
			e.retryAfter = time.Second
			e.limit = int64(cap(p.sem))
			// Do not read the body: close the connection so a client
			// that is still sending does not keep it busy.
			w.Header().Set("Connection", "close")
			g.writeError(w, r, e)
			return
		}
		p.inflight.Inc()
		defer func() {
			p.inflight.Dec()
			<-p.sem
		}()
		next.ServeHTTP(w, r)
	})
}

// sourceOf is the rate-limit key of a request: its remote IP, IPv6
// grouped by /64 (one host usually owns a whole /64).
func sourceOf(r *http.Request) (netip.Prefix, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// authLimited returns the 429 to answer when r's source has used up its
// failed authentications, or nil.
func (g *Gateway) authLimited(r *http.Request) *httpError {
	p := g.protect
	if p.auth.PerMinute <= 0 {
		return nil
	}
	src, ok := sourceOf(r)
	if !ok {
		return nil
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.refill(src, now)
	if b == nil || b.tokens >= 1 {
		return nil
	}
	p.authBlocked.Inc()
	e := newError(http.StatusTooManyRequests, "auth_rate_limited", "too many failed authentications from this address; wait before retrying")
	e.retryAfter = time.Duration((1 - b.tokens) / p.auth.PerMinute * float64(time.Minute))
	e.limit = int64(p.auth.Burst)
	return e
}

// authFailed charges one failed authentication to r's source.
func (g *Gateway) authFailed(r *http.Request) {
	p := g.protect
	if p.auth.PerMinute <= 0 {
		return
	}
	src, ok := sourceOf(r)
	if !ok {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.refill(src, now)
	if b == nil {
		p.sweep(now)
		if len(p.sources) >= p.auth.MaxSources {
			// Full of sources still failing: forget an arbitrary one
			// rather than grow without bound.
			for k := range p.sources {
				delete(p.sources, k)
				break
			}
		}
		b = &authBucket{tokens: float64(p.auth.Burst), last: now}
		p.sources[src] = b
	}
	b.tokens = max(b.tokens-1, 0)
}

// refill returns src's bucket brought up to now, or nil if it has none.
func (p *protection) refill(src netip.Prefix, now time.Time) *authBucket {
	b := p.sources[src]
	if b == nil {
		return nil
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(p.auth.Burst), b.tokens+el.Minutes()*p.auth.PerMinute)
		b.last = now
	}
	return b
}

// sweep forgets sources whose bucket has refilled, at most once a second.
func (p *protection) sweep(now time.Time) {
	if now.Sub(p.lastSweep) < time.Second {
		return
	}
	p.lastSweep = now
	for k, b := range p.sources {
		if b.tokens+now.Sub(b.last).Minutes()*p.auth.PerMinute >= float64(p.auth.Burst) {
			delete(p.sources, k)
		}
	}
}
