package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
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
	// TrustedProxies are the load balancers and routers in front of the
	// gateway. A request whose TCP peer is one of them is charged to the
	// client address they appended to X-Forwarded-For (the rightmost one
	// that is not itself a trusted proxy), so one failing cluster behind a
	// router does not lock out every cluster behind it. Such a request
	// without a usable X-Forwarded-For is not limited.
	TrustedProxies []netip.Prefix
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
	// warnedXFF is set once the gateway has logged that requests carry
	// X-Forwarded-For from a peer that is not a trusted proxy.
	warnedXFF atomic.Bool
	logger    log.Logger
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
		logger:  o.Logger,
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

// sourceOf is the rate-limit key of a request: its client's IP, IPv6
// grouped by /64 (one host usually owns a whole /64). The client is the TCP
// peer, or behind a trusted proxy the address that proxy saw (see
// FailedAuthLimit.TrustedProxies). ok is false when the client is unknown.
func (p *protection) sourceOf(r *http.Request) (src netip.Prefix, ok bool) {
	addr, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	if p.trusted(addr) {
		if addr, ok = p.forwardedClient(r.Header.Values("X-Forwarded-For")); !ok {
			return netip.Prefix{}, false
		}
	} else if len(p.auth.TrustedProxies) == 0 && !p.warnedXFF.Load() && r.Header.Get("X-Forwarded-For") != "" && p.warnedXFF.CompareAndSwap(false, true) {
		level.Warn(p.logger).Log("msg", "requests arrive through a proxy (they carry X-Forwarded-For) but limits.failed_auth.trusted_proxies is empty: the failed-auth limit counts every client behind the proxy as one source", "peer", addr)
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	src, err := addr.Prefix(bits)
	return src, err == nil
}

// forwardedClient returns the client address of X-Forwarded-For values
// (each a comma-separated list, oldest hop first): the rightmost address
// that is not a trusted proxy, or the leftmost when every hop is trusted.
// Addresses left of the first untrusted one were written by the client and
// prove nothing. ok is false for a missing or unparsable header.
func (p *protection) forwardedClient(values []string) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			hop := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			a, ok := parseAddr(strings.TrimSpace(hop))
			if !ok {
				return netip.Addr{}, false
			}
			if !p.trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// trusted reports whether a is one of the trusted proxies.
func (p *protection) trusted(a netip.Addr) bool {
	for _, t := range p.auth.TrustedProxies {
		if t.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr parses "ip", "ip:port", "[ipv6]" or "[ipv6]:port", unmapping
// IPv4-mapped IPv6 addresses.
func parseAddr(s string) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// authSource is r's key for the failed-auth limit, computed once per
// request: the zero (invalid) Prefix when the limit is off or r's client is
// unknown, which authLimited and authFailed then ignore.
func (p *protection) authSource(r *http.Request) netip.Prefix {
	if p.auth.PerMinute <= 0 {
		return netip.Prefix{}
	}
	src, _ := p.sourceOf(r)
	return src
}

// authLimited returns the 429 to answer when src has used up its failed
// authentications, or nil.
func (g *Gateway) authLimited(src netip.Prefix) *httpError {
	p := g.protect
	if !src.IsValid() {
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

// authFailed charges one failed authentication to src.
func (g *Gateway) authFailed(src netip.Prefix) {
	p := g.protect
	if !src.IsValid() {
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
