package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// maxUpstreamResponse bounds how much of an authorizer response is read.
	maxUpstreamResponse = 64 << 10
	// DefaultUpstreamTimeout bounds one authorizer call when none is set.
	DefaultUpstreamTimeout = 10 * time.Second
	// busyRetryAfter is advertised with calls refused because too many
	// are in flight: slots free up within a timeout at most.
	busyRetryAfter = time.Second
)

var (
	// ErrBusy is the cause of the errors of authorizer calls refused
	// before they were made because too many were in flight
	// (UpstreamOptions.MaxConcurrent, or the request's CallGate). They are
	// not answers of the authorizer: CachingAuthenticator neither caches
	// nor counts them.
	ErrBusy = errors.New("too many authorizer calls in flight")
	// ErrSourceBusy is the cause of a refusal by the request's CallGate
	// (a Limited error). It wraps ErrBusy.
	ErrSourceBusy = fmt.Errorf("%w for this source", ErrBusy)
)

// CallGate admits one call to the authorizer on behalf of the request whose
// context carries it (WithCallGate): ok false refuses the call, otherwise
// release is called once the call has ended. It is consulted only for
// calls that are actually made, so answers from a cache and callers that
// share another caller's call take no slot; a call that outlives its
// caller (CachingAuthenticator detaches it) keeps its slot until it ends.
type CallGate func() (release func(), ok bool)

type callGateKey struct{}

// WithCallGate returns ctx carrying g for the Upstream calls made with it.
func WithCallGate(ctx context.Context, g CallGate) context.Context {
	return context.WithValue(ctx, callGateKey{}, g)
}

// UpstreamOptions tune an Upstream authenticator. Zero values pick defaults.
type UpstreamOptions struct {
	// Timeout bounds one call to the authorizer (default
	// DefaultUpstreamTimeout). The caller's context deadline also applies.
	Timeout time.Duration
	// RetryAfter is advertised with Unavailable errors and with 429s that
	// carry no Retry-After (default DefaultRetryAfter).
	RetryAfter time.Duration
	// MaxConcurrent bounds the calls to the authorizer in flight; a call
	// over it fails at once with an Unavailable error caused by ErrBusy,
	// without reaching the authorizer. 0 = unbounded.
	MaxConcurrent int
}

// Upstream authenticates against an authorizer speaking the tollbooth
// protocol: it POSTs {"authorization_token":T,"cluster_id":ID} as JSON; a
// 2xx answer with a JSON object (e.g. {"account_id":"..."}) allows; 401,
// 403, 404, 409 and 429 are relayed as Passthrough errors; anything else,
// including network errors and timeouts, is Unavailable. A call holds its
// slot of MaxConcurrent, and of the caller's CallGate, until it ends, which
// is at most Timeout later.
type Upstream struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	retryAfter time.Duration
	sem        chan struct{} // nil: unbounded
}

// NewUpstream returns an Upstream posting to rawURL with client, which the
// caller builds (TLS, proxy, auth) from its HTTP client configuration.
func NewUpstream(rawURL string, client *http.Client, opts UpstreamOptions) (*Upstream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("authorizer URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("authorizer URL %q: must be an absolute http or https URL", u.Redacted())
	}
	if client == nil {
		return nil, errors.New("authorizer: nil HTTP client")
	}
	if opts.Timeout < 0 || opts.RetryAfter < 0 || opts.MaxConcurrent < 0 {
		return nil, errors.New("authorizer: timeout, retry-after and max concurrent calls must not be negative")
	}
	up := &Upstream{
		url:        rawURL,
		client:     client,
		timeout:    positiveOr(opts.Timeout, DefaultUpstreamTimeout),
		retryAfter: positiveOr(opts.RetryAfter, DefaultRetryAfter),
	}
	if opts.MaxConcurrent > 0 {
		up.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	return up, nil
}

// admit takes a slot of the caller's CallGate and of MaxConcurrent for one
// call, or refuses it. release gives both back.
func (u *Upstream) admit(ctx context.Context) (release func(), err error) {
	release = func() {}
	if g, _ := ctx.Value(callGateKey{}).(CallGate); g != nil {
		rel, ok := g()
		if !ok {
			return nil, &Error{Kind: Limited, Msg: "too many authorizer calls in flight for this source", RetryAfter: busyRetryAfter, Cause: ErrSourceBusy}
		}
		release = rel
	}
	if u.sem != nil {
		select {
		case u.sem <- struct{}{}:
		default:
			release()
			return nil, NewUnavailable("too many authorizer calls in flight", busyRetryAfter, ErrBusy)
		}
		gateRelease := release
		release = func() {
			<-u.sem
			gateRelease()
		}
	}
	return release, nil
}

type tollboothRequest struct {
	AuthorizationToken string `json:"authorization_token"`
	ClusterID          string `json:"cluster_id"`
}

type tollboothResponse struct {
	AccountID string `json:"account_id"`
}

// Authenticate implements Authenticator.
func (u *Upstream) Authenticate(ctx context.Context, token, clusterID string) (Identity, error) {
	if err := checkRequest(token, clusterID); err != nil {
		return Identity{}, err
	}
	release, err := u.admit(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer release()
	body, err := json.Marshal(tollboothRequest{AuthorizationToken: token, ClusterID: clusterID})
	if err != nil {
		return Identity{}, u.unavailable("authorizer request could not be encoded", err)
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return Identity{}, u.unavailable("authorizer request could not be built", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Identity{}, u.unavailable("authorizer timed out", err)
		}
		return Identity{}, u.unavailable("authorizer unreachable", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamResponse+1))
	if err != nil {
		return Identity{}, u.unavailable("authorizer response could not be read", err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if len(data) > maxUpstreamResponse {
			return Identity{}, u.unavailable("authorizer response too large", nil)
		}
		var r tollboothResponse
		if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			return Identity{}, u.unavailable("authorizer response is not a JSON object", nil)
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return Identity{}, u.unavailable("authorizer response is not valid JSON", err)
		}
		return NewIdentity(clusterID, r.AccountID), nil
	case resp.StatusCode == http.StatusUnauthorized:
		return Identity{}, NewPassthrough(resp.StatusCode, "authorization token not recognized by the authorizer", 0)
	case resp.StatusCode == http.StatusForbidden:
		return Identity{}, NewPassthrough(resp.StatusCode, "authorizer denied access for this cluster ID", 0)
	case resp.StatusCode == http.StatusNotFound:
		return Identity{}, NewPassthrough(resp.StatusCode, "authorizer does not know this cluster or account", 0)
	case resp.StatusCode == http.StatusConflict:
		return Identity{}, NewPassthrough(resp.StatusCode, "cluster ID is registered to another account", 0)
	case resp.StatusCode == http.StatusTooManyRequests:
		ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return Identity{}, NewPassthrough(resp.StatusCode, "authorizer rate limit exceeded", positiveOr(ra, u.retryAfter))
	default:
		return Identity{}, u.unavailable(fmt.Sprintf("authorizer answered HTTP %d", resp.StatusCode), nil)
	}
}

func (u *Upstream) unavailable(msg string, cause error) *Error {
	return NewUnavailable(msg, u.retryAfter, cause)
}

// parseRetryAfter parses a Retry-After header (delay-seconds or HTTP-date).
// It returns 0 when the header is absent, invalid or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}
