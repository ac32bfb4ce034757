package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
)

// UploadContentType is the Content-Type of /upload (telemeter's).
const UploadContentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

// UserAgent is sent with every request; the command sets the version.
var UserAgent = "telegate-client"

// Results of a request to the gateway, the values of the result label.
const (
	ResultSuccess      = "success"
	ResultRateLimited  = "rate_limited"  // 429: wait Retry-After
	ResultServerError  = "server_error"  // 5xx, 408: retry with backoff
	ResultNetworkError = "network_error" // no answer: retry with backoff
	ResultUnauthorized = "unauthorized"  // 401 after re-authorizing: retry with backoff
	ResultRejected     = "rejected"      // other 4xx: never retried
)

// Results lists every result, for metrics.
var Results = []string{ResultSuccess, ResultRateLimited, ResultServerError, ResultNetworkError, ResultUnauthorized, ResultRejected}

// RequestError is a failed request to the gateway.
type RequestError struct {
	Op         string // authorize, upload, allowlist
	Status     int    // 0: no answer
	Reason     string // the gateway's machine-readable reason, if any
	Message    string // the gateway's message, or the transport error
	RetryAfter time.Duration
	Result     string
}

func (e *RequestError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s", e.Op, e.Message)
	}
	s := fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Retryable tells whether the same request may succeed later.
func (e *RequestError) Retryable() bool { return e.Result != ResultRejected }

// result classifies an error of any kind into a Result value.
func result(err error) string {
	if err == nil {
		return ResultSuccess
	}
	var re *RequestError
	if errors.As(err, &re) {
		return re.Result
	}
	return ResultNetworkError
}

// Gateway talks to a telemeter-compatible gateway: /authorize, /upload and
// /allowlist. It caches the JWT of /authorize until shortly before it
// expires.
type Gateway struct {
	Client       *http.Client
	AuthorizeURL string
	UploadURL    string
	AllowlistURL string
	ClusterID    string
	// Token is the pull-secret token sent to /authorize.
	Token   string
	Timeout time.Duration
	// OnAuthorize is called with the result of every /authorize call.
	OnAuthorize func(result string)
	Now         func() time.Time

	mu      sync.Mutex
	jwt     string
	labels  map[string]string
	refresh time.Time // re-authorize from then on
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

type authorizeResponse struct {
	Version          int               `json:"version"`
	Token            string            `json:"token"`
	ExpiresInSeconds int64             `json:"expiresInSeconds"`
	Labels           map[string]string `json:"labels"`
}

// Authorize returns the cached JWT and token labels, calling /authorize if
// there is none or it expires soon (within a tenth of its lifetime, at
// least 30s and at most 10m).
func (g *Gateway) Authorize(ctx context.Context) (string, map[string]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.jwt != "" && g.now().Before(g.refresh) {
		return g.jwt, g.labels, nil
	}
	u, err := url.Parse(g.AuthorizeURL)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("id", g.ClusterID)
	u.RawQuery = q.Encode()
	status, body, hdr, err := g.do(ctx, "authorize", http.MethodPost, u.String(), g.Token, nil, nil)
	if err == nil && status != http.StatusOK {
		err = requestError("authorize", status, body, hdr)
	}
	var r authorizeResponse
	if err == nil {
		if jerr := json.Unmarshal(body, &r); jerr != nil || r.Token == "" {
			err = &RequestError{Op: "authorize", Status: status, Message: fmt.Sprintf("unexpected response %q", truncate(string(body), 200)), Result: ResultServerError}
		}
	}
	if g.OnAuthorize != nil {
		g.OnAuthorize(result(err))
	}
	if err != nil {
		return "", nil, err
	}
	life := time.Duration(r.ExpiresInSeconds) * time.Second
	margin := min(max(life/10, 30*time.Second), 10*time.Minute)
	g.jwt, g.labels = r.Token, r.Labels
	g.refresh = g.now().Add(life - margin)
	return g.jwt, g.labels, nil
}

// Invalidate drops the cached JWT.
func (g *Gateway) Invalidate() {
	g.mu.Lock()
	g.jwt = ""
	g.mu.Unlock()
}

// Upload sends an encoded body (EncodePayload) with the JWT.
func (g *Gateway) Upload(ctx context.Context, jwt string, body []byte) error {
	status, resp, hdr, err := g.do(ctx, "upload", http.MethodPost, g.UploadURL, jwt, map[string]string{
		"Content-Type":     UploadContentType,
		"Content-Encoding": "snappy",
	}, body)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return requestError("upload", status, resp, hdr)
	}
	return nil
}

type allowlistResponse struct {
	Version int      `json:"version"`
	Hash    string   `json:"hash"`
	Matches []string `json:"matches"`
}

// Allowlist fetches the gateway's allowlist selectors.
func (g *Gateway) Allowlist(ctx context.Context, jwt string) ([]string, string, error) {
	status, body, hdr, err := g.do(ctx, "allowlist", http.MethodGet, g.AllowlistURL, jwt, nil, nil)
	if err != nil {
		return nil, "", err
	}
	if status != http.StatusOK {
		return nil, "", requestError("allowlist", status, body, hdr)
	}
	var r allowlistResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Version != 1 {
		return nil, "", &RequestError{Op: "allowlist", Status: status, Message: fmt.Sprintf("unexpected response %q", truncate(string(body), 200)), Result: ResultServerError}
	}
	return r.Matches, r.Hash, nil
}

// WithToken runs fn with a JWT; when fn fails with 401 it re-authorizes
// once and runs fn again.
func (g *Gateway) WithToken(ctx context.Context, fn func(jwt string, labels map[string]string) error) error {
	jwt, labels, err := g.Authorize(ctx)
	if err != nil {
		return err
	}
	err = fn(jwt, labels)
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		return err
	}
	g.Invalidate()
	if jwt, labels, err = g.Authorize(ctx); err != nil {
		return err
	}
	return fn(jwt, labels)
}

func (g *Gateway) do(ctx context.Context, op, method, u, bearer string, headers map[string]string, body []byte) (int, []byte, http.Header, error) {
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, &RequestError{Op: op, Message: err.Error(), Result: ResultRejected}
	}
	req.Header.Set("User-Agent", UserAgent)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return 0, nil, nil, &RequestError{Op: op, Message: err.Error(), Result: ResultNetworkError}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, &RequestError{Op: op, Message: "reading response: " + err.Error(), Result: ResultNetworkError}
	}
	return resp.StatusCode, b, resp.Header, nil
}

// requestError builds the error of a non-2xx answer, keeping the gateway's
// JSON message and reason ({"error":..., "reason":...}) or its text.
func requestError(op string, status int, body []byte, hdr http.Header) *RequestError {
	e := &RequestError{Op: op, Status: status}
	var j struct {
		Error      string `json:"error"`
		Reason     string `json:"reason"`
		RetryAfter int64  `json:"retry_after_seconds"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		e.Message, e.Reason = j.Error, j.Reason
	} else {
		e.Message = truncate(strings.TrimSpace(string(body)), 512)
	}
	e.RetryAfter = parseRetryAfter(hdr.Get("Retry-After"), time.Now())
	if e.RetryAfter == 0 && j.RetryAfter > 0 {
		e.RetryAfter = time.Duration(j.RetryAfter) * time.Second
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.Result = ResultRateLimited
	case status == http.StatusUnauthorized && op != "authorize":
		e.Result = ResultUnauthorized
	case status >= 500 || status == http.StatusRequestTimeout:
		e.Result = ResultServerError
	default:
		// 400, 403, 404, 413, 415, a 401 from /authorize (wrong pull
		// secret), redirects: sending the same again cannot help.
		e.Result = ResultRejected
	}
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent or
// invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// EncodePayload encodes families as /upload expects them: length-delimited
// MetricFamily messages in snappy's framed format.
func EncodePayload(fams []*dto.MetricFamily) ([]byte, error) {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	for _, f := range fams {
		if _, err := protodelim.MarshalTo(w, f); err != nil {
			return nil, fmt.Errorf("encoding family %q: %w", f.GetName(), err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodePayload is the inverse of EncodePayload.
func DecodePayload(data []byte) ([]*dto.MetricFamily, error) {
	raw, err := io.ReadAll(snappy.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil, fmt.Errorf("not a framed-snappy payload: %w", err)
	}
	var out []*dto.MetricFamily
	r := bytes.NewReader(raw)
	for r.Len() > 0 {
		mf := &dto.MetricFamily{}
		if err := protodelim.UnmarshalFrom(r, mf); err != nil {
			return nil, fmt.Errorf("decoding family %d: %w", len(out), err)
		}
		out = append(out, mf)
	}
	return out, nil
}

// DeletionURL is the gateway's deletion endpoint next to UploadURL.
func (g *Gateway) DeletionURL() string {
	return strings.TrimSuffix(strings.TrimRight(g.UploadURL, "/"), "/upload") + "/deletion"
}

// RequestDeletion asks the gateway to delete all of this installation's
// data (POST /deletion), authenticated by the pull secret and the ID
// themselves (remote write's composite token), so it works even when
// /authorize is refused (an installation that opted out). It returns the
// gateway's answer.
func (g *Gateway) RequestDeletion(ctx context.Context) ([]byte, error) {
	raw, err := json.Marshal(map[string]string{"authorization_token": g.Token, "cluster_id": g.ClusterID})
	if err != nil {
		return nil, err
	}
	bearer := base64.StdEncoding.EncodeToString(raw)
	status, body, hdr, err := g.do(ctx, "deletion", http.MethodPost, g.DeletionURL(), bearer, nil, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusAccepted {
		return nil, requestError("deletion", status, body, hdr)
	}
	return body, nil
}
