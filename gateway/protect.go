package gateway

import (
	"context"
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

	"github.com/telegate/telegate/authn"
)

// FailedAuthLimit rate-limits failed authentication attempts per source:
// each failed attempt takes a token from the source's bucket; a source with
// an empty bucket gets 429 before its credentials are even looked at.
// PerMinute 0 disables it.
//
// The source is the client's IP address, IPv6 grouped by /64 (one host
// usually owns a whole /64). The client is the TCP peer, or, when the peer
// is one of TrustedProxies, the rightmost X-Forwarded-For address that is
// not itself a trusted proxy. A trusted proxy's request without a usable
// X-Forwarded-For (none, or a hop that does not parse) is charged to the
// proxy itself, counted in telegate_authn_forwarded_for_missing_total and
// logged once.
//
// A failed attempt is a request whose credentials were checked and not
// accepted, whatever the answer: 401 or 403, the authorizer's 404, 409 or
// 429, 503 because the authorizer timed out or failed, a client that gave
// up while its credentials were checked, and a refusal by
// MaxConcurrentPerSource. Requests refused before their credentials are
// looked at (405, 400 for a malformed cluster ID) and requests that
// authenticated and failed later (413, ...) are not charged; neither is a
// 503 because the authorizer's total bound was reached (the gateway is
// busy, not the source).
type FailedAuthLimit struct {
	PerMinute  float64
	Burst      int
	MaxSources int
	// TrustedProxies are the load balancers and routers in front of the
	// gateway. A request whose TCP peer is one of them is charged to the
	// client address they appended to X-Forwarded-For (the rightmost one
	// that is not itself a trusted proxy), so one failing cluster behind a
	// router does not lock out every cluster behind it.
	TrustedProxies []netip.Prefix
	// MaxConcurrentPerSource bounds one source's calls to the upstream
	// authorizer in flight (answers from the authorizer cache take none); a
	// request over it gets 429 at once, charged as a failed attempt. A
	// call a client abandoned keeps its slot until it ends. 0 = unbounded.
	MaxConcurrentPerSource int
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
	// warnedNoXFF is set once it has logged that a trusted proxy sent a
	// request without a usable X-Forwarded-For.
	warnedNoXFF atomic.Bool
	xffMissing  *prometheus.CounterVec
	logger      log.Logger

	// calls counts each source's calls to the authorizer in flight
	// (MaxConcurrentPerSource); a source is removed at 0.
	callsMu         sync.Mutex
	calls           map[netip.Prefix]int
	upstreamRefused *prometheus.CounterVec
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
		xffMissing: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_authn_forwarded_for_missing_total",
			Help: "Requests from a trusted proxy (limits.failed_auth.trusted_proxies) without a usable X-Forwarded-For, by reason (absent, unparsable): the failed-auth limit charges them to the proxy.",
		}, []string{"reason"}),
		upstreamRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_authn_upstream_refused_total",
			Help: "Authentications refused without calling the authorizer because too many calls were in flight, by bound (max_concurrent_per_source: 429; max_concurrent: 503).",
		}, []string{"reason"}),
		auth:    o.FailedAuth,
		sources: map[netip.Prefix]*authBucket{},
		calls:   map[netip.Prefix]int{},
		now:     o.Now,
		logger:  o.Logger,
	}
	for _, r := range []string{xffAbsent, xffUnparsable} {
		p.xffMissing.WithLabelValues(r)
	}
	for _, r := range []string{refusedPerSource, refusedTotal} {
		p.upstreamRefused.WithLabelValues(r)
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

// Reasons of telegate_authn_forwarded_for_missing_total and
// telegate_authn_upstream_refused_total.
const (
	xffAbsent        = "absent"
	xffUnparsable    = "unparsable"
	refusedPerSource = "max_concurrent_per_source"
	refusedTotal     = "max_concurrent"
)

// sourceOf is the rate-limit key of a request: its client's IP, IPv6
// grouped by /64 (one host usually owns a whole /64). The client is the TCP
// peer, or behind a trusted proxy the address that proxy saw (see
// FailedAuthLimit.TrustedProxies); a trusted proxy that did not say is the
// client itself. ok is false only when the TCP peer's address does not
// parse (not a TCP connection).
func (p *protection) sourceOf(r *http.Request) (src netip.Prefix, ok bool) {
	addr, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	if p.trusted(addr) {
		xff := r.Header.Values("X-Forwarded-For")
		if client, ok := p.forwardedClient(xff); ok {
			addr = client
		} else {
			// Not knowing the client must not mean not limiting it:
			// charge the proxy (an L4 balancer adds no header).
			reason := xffUnparsable
			if len(xff) == 0 {
				reason = xffAbsent
			}
			p.xffMissing.WithLabelValues(reason).Inc()
			if !p.warnedNoXFF.Load() && p.warnedNoXFF.CompareAndSwap(false, true) {
				level.Warn(p.logger).Log("msg", "a trusted proxy (limits.failed_auth.trusted_proxies) sent a request without a usable X-Forwarded-For: the failed-auth limit counts such requests against the proxy's own address, so every client behind it shares one source", "peer", addr, "reason", reason)
			}
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

// authSource is r's key for the failed-auth limit and the per-source bound
// of authorizer calls, computed once per request: the zero (invalid)
// Prefix when both are off or r's peer is unknown, which authLimited,
// authFailed and callGate then ignore.
func (p *protection) authSource(r *http.Request) netip.Prefix {
	if p.auth.PerMinute <= 0 && p.auth.MaxConcurrentPerSource <= 0 {
		return netip.Prefix{}
	}
	src, _ := p.sourceOf(r)
	return src
}

// authLimited returns the 429 to answer when src has used up its failed
// authentications, or nil.
func (g *Gateway) authLimited(src netip.Prefix) *httpError {
	p := g.protect
	if !src.IsValid() || p.auth.PerMinute <= 0 {
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
	if !src.IsValid() || p.auth.PerMinute <= 0 {
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

// callGate bounds src's calls to the authorizer in flight to
// MaxConcurrentPerSource; nil when the bound is off or src unknown.
func (p *protection) callGate(src netip.Prefix) authn.CallGate {
	max := p.auth.MaxConcurrentPerSource
	if max <= 0 || !src.IsValid() {
		return nil
	}
	return func() (func(), bool) {
		p.callsMu.Lock()
		defer p.callsMu.Unlock()
		if p.calls[src] >= max {
			return nil, false
		}
		p.calls[src]++
		return func() {
			p.callsMu.Lock()
			defer p.callsMu.Unlock()
			if p.calls[src]--; p.calls[src] <= 0 {
				delete(p.calls, src)
			}
		}, true
	}
}

// authAttempt is the authentication of one request, as instrument charges
// it to the request's source: the authentication step (authenticate,
// settleAuth) marks it; instrument charges a failure.
type authAttempt struct {
	src    netip.Prefix
	result authResult
	// out is what the request did, for the console's activity record.
	out outcome
}

type authResult uint8

const (
	authNotChecked authResult = iota
	authPassed
	authRejected
)

type attemptKey struct{}

func withAttempt(ctx context.Context, a *authAttempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// attemptOf returns the request's attempt; nil outside instrument.
func attemptOf(ctx context.Context) *authAttempt {
	a, _ := ctx.Value(attemptKey{}).(*authAttempt)
	return a
}

func (a *authAttempt) mark(r authResult) {
	if a != nil {
		a.result = r
	}
}

// charged reports whether instrument charges the attempt that was answered
// code: when its credentials were rejected, or, for a handler that does not
// mark its attempt, when it answered 401 or 403.
func (a *authAttempt) charged(code int) bool {
	switch a.result {
	case authRejected:
		return true
	case authPassed:
		return false
	}
	return code == http.StatusUnauthorized || code == http.StatusForbidden
}
