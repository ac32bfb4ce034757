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
)

// UpstreamOptions tune an Upstream authenticator. Zero values pick defaults.
type UpstreamOptions struct {
	// Timeout bounds one call to the authorizer (default
	// DefaultUpstreamTimeout). The caller's context deadline also applies.
	Timeout time.Duration
	// RetryAfter is advertised with Unavailable errors and with 429s that
	// carry no Retry-After (default DefaultRetryAfter).
	RetryAfter time.Duration
}

// Upstream authenticates against an authorizer speaking the tollbooth
// protocol: it POSTs {"authorization_token":T,"cluster_id":ID} as JSON; a
// 2xx answer with a JSON object (e.g. {"account_id":"..."}) allows; 401,
// 403, 404, 409 and 429 are relayed as Passthrough errors; anything else,
// including network errors and timeouts, is Unavailable.
type Upstream struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	retryAfter time.Duration
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
	if opts.Timeout < 0 || opts.RetryAfter < 0 {
		return nil, errors.New("authorizer: timeout and retry-after must not be negative")
	}
	return &Upstream{
		url:        rawURL,
		client:     client,
		timeout:    positiveOr(opts.Timeout, DefaultUpstreamTimeout),
		retryAfter: positiveOr(opts.RetryAfter, DefaultRetryAfter),
	}, nil
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
