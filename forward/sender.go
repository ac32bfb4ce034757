package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
)

// Version is the telegate version sent in User-Agent (telegate/<Version>).
// The binary sets it at start-up, before the first Send.
var Version = "dev"

// Remote write 1.0 request headers.
const (
	remoteWriteVersion = "0.1.0"
	contentType        = "application/x-protobuf"
	contentEncoding    = "snappy"
)

const (
	// maxErrorMsgBytes bounds Error.Msg (the downstream's response body).
	maxErrorMsgBytes = 256
	// maxDrainBytes bounds how much of a response body is read to let the
	// connection be reused; anything larger closes the connection instead.
	maxDrainBytes = 64 << 10
	// maxRetryAfter caps a downstream's Retry-After so a bogus value cannot
	// park a caller without a deadline for years.
	maxRetryAfter = time.Hour
)

// Error is the error Send returns. The gateway maps it to its own answer:
// Recoverable (network error, 5xx, 429) -> 503 with Retry-After; otherwise
// (400, 409, 413, ...) -> 400/413 with Msg.
type Error struct {
	// Status is the downstream's HTTP status, 0 when no response arrived
	// (network error, timeout, cancelled context).
	Status int
	// Msg is the downstream's response body, trimmed and truncated to 256
	// bytes, or the network error's text.
	Msg string
	// Recoverable says whether the same request may succeed later.
	Recoverable bool
	// RetryAfter is the downstream's Retry-After, 0 if it sent none.
	RetryAfter time.Duration

	err error // underlying network/context error, for errors.Is
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return "forward: remote write failed: " + e.Msg
	}
	if e.Msg == "" {
		return fmt.Sprintf("forward: remote write answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("forward: remote write answered HTTP %d: %s", e.Status, e.Msg)
}

// Unwrap returns the underlying network or context error, if any.
func (e *Error) Unwrap() error { return e.err }

// Sender posts snappy-compressed WriteRequests to one remote write endpoint
// with retries. It is safe for concurrent use.
type Sender struct {
	client     *http.Client
	url        string
	headers    map[string]string
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	logger     log.Logger
	m          *metrics
}

type metrics struct {
	requests  *prometheus.CounterVec
	retries   prometheus.Counter
	duration  prometheus.Histogram
	sentBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_forward_requests_total",
			Help: "Remote write attempts by outcome: HTTP status class (2xx, 4xx, 5xx, ...) or error when no response arrived.",
		}, []string{"code"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_retries_total",
			Help: "Remote write attempts that were retries of an earlier failed attempt.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telegate_forward_duration_seconds",
			Help:    "Duration of a whole remote write Send, including retries and backoff.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_sent_bytes_total",
			Help: "Compressed request body bytes the downstream accepted (2xx).",
		}),
	}
	for _, c := range []string{"2xx", "4xx", "5xx", "error"} {
		m.requests.WithLabelValues(c)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.retries, m.duration, m.sentBytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("forward: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// New validates cfg (after SetDefaults on a copy) and builds a Sender. A nil
// logger logs nothing; a nil reg registers no metrics.
func New(cfg Config, logger log.Logger, reg prometheus.Registerer) (*Sender, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := config_util.NewClientFromConfig(cfg.HTTPClientConfig, "telegate_forward")
	if err != nil {
		return nil, fmt.Errorf("forward: building HTTP client: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	headers := make(map[string]string, len(cfg.Headers))
	for k, v := range cfg.Headers {
		headers[http.CanonicalHeaderKey(k)] = v
	}
	return &Sender{
		client:     client,
		url:        cfg.URL,
		headers:    headers,
		timeout:    cfg.Timeout,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		logger:     logger,
		m:          m,
	}, nil
}

// Close releases idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Send posts body, a snappy-compressed prometheus.WriteRequest, and retries
// recoverable failures (network errors, 5xx, 429) with exponential backoff
// and jitter between MinBackoff and MaxBackoff, or after the downstream's
// Retry-After. Each attempt is bounded by min(Timeout, ctx). Send never
// sleeps past ctx's deadline: when the next wait would reach it, Send gives
// up and returns the last error. Without a deadline it retries until ctx is
// cancelled. Other statuses are not retried.
//
// The error is always an *Error (nil on 2xx). Send does not retain body
// after it returns, so the caller may reuse the buffer.
func (s *Sender) Send(ctx context.Context, body []byte) error {
	start := time.Now()
	defer func() { s.m.duration.Observe(time.Since(start).Seconds()) }()

	var last *Error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return last
			}
			return &Error{Msg: err.Error(), Recoverable: true, err: err}
		}
		if attempt > 0 {
			s.m.retries.Inc()
		}
		e := s.attempt(ctx, body)
		if e == nil {
			return nil
		}
		if !e.Recoverable {
			level.Warn(s.logger).Log("msg", "remote write rejected by downstream", "url", s.url, "status", e.Status, "response", e.Msg)
			return e
		}
		if ctx.Err() != nil && last != nil && last.Status != 0 {
			// The caller's deadline cut this attempt short: the downstream's
			// last answer says more than "context deadline exceeded".
			return last
		}
		last = e

		wait := s.backoff(attempt)
		if e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			level.Debug(s.logger).Log("msg", "remote write failed, no time left to retry", "attempt", attempt+1, "err", e)
			return e
		}
		level.Debug(s.logger).Log("msg", "remote write failed, retrying", "attempt", attempt+1, "wait", wait, "err", e)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return e
		case <-t.C:
		}
	}
}

// backoff returns the wait after the attempt-th failure (0-based): uniform
// in [MinBackoff, min(MaxBackoff, MinBackoff*2^attempt)].
func (s *Sender) backoff(attempt int) time.Duration {
	ceil := s.minBackoff
	for i := 0; i < attempt && ceil < s.maxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, s.maxBackoff)
	if ceil <= s.minBackoff {
		return s.minBackoff
	}
	return s.minBackoff + rand.N(ceil-s.minBackoff+1)
}

// attempt makes one request. It returns nil on 2xx.
func (s *Sender) attempt(ctx context.Context, body []byte) *Error {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	guard := &bodyGuard{}
	defer guard.release()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, nil)
	if err != nil {
		// The URL was validated in New; this cannot be fixed by retrying.
		return &Error{Msg: err.Error(), err: err}
	}
	req.Body = guard.reader(body)
	req.GetBody = func() (io.ReadCloser, error) { return guard.reader(body), nil }
	req.ContentLength = int64(len(body))
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Encoding", contentEncoding)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "telegate/"+Version)
	req.Header.Set("X-Prometheus-Remote-Write-Version", remoteWriteVersion)

	resp, err := s.client.Do(req)
	if err != nil {
		s.m.requests.WithLabelValues("error").Inc()
		return &Error{Msg: err.Error(), Recoverable: true, err: err}
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrainBytes)
		_ = resp.Body.Close()
	}()

	code := resp.StatusCode
	s.m.requests.WithLabelValues(strconv.Itoa(code/100) + "xx").Inc()
	if code/100 == 2 {
		s.m.sentBytes.Add(float64(len(body)))
		return nil
	}
	e := &Error{Status: code, Msg: readMsg(resp.Body)}
	if code >= 500 || code == http.StatusTooManyRequests {
		e.Recoverable = true
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// readMsg reads at most maxErrorMsgBytes of r as a printable message.
func readMsg(r io.Reader) string {
	buf := make([]byte, maxErrorMsgBytes)
	n, _ := io.ReadFull(r, buf)
	msg := buf[:n]
	if n == maxErrorMsgBytes {
		// Do not leave half a rune at the cut.
		for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
			if utf8.RuneStart(msg[i]) {
				if !utf8.FullRune(msg[i:]) {
					msg = msg[:i]
				}
				break
			}
		}
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(msg), "\uFFFD"))
}

// parseRetryAfter parses a Retry-After value (delay-seconds or HTTP-date)
// into a wait from now. It returns 0 for absent, invalid or past values.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// errBodyReleased is what a request body reads after Send has returned.
var errBodyReleased = errors.New("forward: request body released")

// bodyGuard makes sure the HTTP transport cannot read the caller's buffer
// after the attempt returns: net/http may keep writing a request body in
// the background after a response arrived, and callers reuse pooled
// buffers as soon as Send returns.
type bodyGuard struct {
	mu       sync.Mutex
	released bool
}

func (g *bodyGuard) reader(b []byte) io.ReadCloser {
	return &guardedReader{g: g, r: bytes.NewReader(b)}
}

func (g *bodyGuard) release() {
	g.mu.Lock()
	g.released = true
	g.mu.Unlock()
}

type guardedReader struct {
	g *bodyGuard
	r *bytes.Reader
}

func (r *guardedReader) Read(p []byte) (int, error) {
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.g.released {
		return 0, errBodyReleased
	}
	return r.r.Read(p)
}

func (r *guardedReader) Close() error { return nil }
