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
)

// Version is the telegate version sent in User-Agent (telegate/<Version>).
// The binary sets it at start-up, before the first Send.
var Version = "dev"

// Remote write request headers: 1.0, and 2.0's where they differ.
const (
	remoteWriteVersion   = "0.1.0"
	contentType          = "application/x-protobuf"
	contentEncoding      = "snappy"
	remoteWriteVersionV2 = "2.0.0"
	contentTypeV2        = "application/x-protobuf;proto=" + MessageV2
)

// The remote write 2.0 response headers: what the receiver wrote.
const (
	writtenSamplesHeader    = "X-Prometheus-Remote-Write-Samples-Written"
	writtenHistogramsHeader = "X-Prometheus-Remote-Write-Histograms-Written"
	writtenExemplarsHeader  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// ErrUnsupported is wrapped by the *Error of a downstream that does not take
// the configured protobuf_message: it answered 415 Unsupported Media Type,
// or it answered a 2.0 request with data 2xx without any
// X-Prometheus-Remote-Write-*-Written header: a 1.0 receiver that ignores
// the Content-Type decodes a 2.0 body as an empty 1.0 request (the spec's
// test for it). Headers that are there but all zero come from a 2.0
// receiver that wrote nothing (e.g. dropped it all by its own policy, or
// deduplicated an HA replica): a partial write, not this. Neither is
// retried; the gateway's configuration must change.
var ErrUnsupported = errors.New("forward: downstream does not support the configured protobuf_message")

// ErrOutOfOrder is wrapped by the *Error of a downstream that refused
// samples for their timestamps relative to what it already holds for the
// series: Thanos Receive answers 409 "out of order sample", "out of
// bounds" or "too old sample", Prometheus 400 with the same words. The
// rest of the request was written. It happens when the same series reaches
// the downstream through different gateway replicas in a different order,
// e.g. one replica replays its spool after another forwarded newer samples
// of the same installation. A receiver with an out-of-order window
// (Thanos Receive --tsdb.out-of-order.time-window, Prometheus
// tsdb.out_of_order_time_window) at least as long as the spool keeps data
// takes such samples; without one, no retry can store them. Like any 4xx
// it is not recoverable for Send; Spool.Replay retries it a bounded number
// of times before dead-lettering (see ReplayOptions.ConflictRetries).
var ErrOutOfOrder = errors.New("forward: downstream refused samples as out of order")

// outOfOrderMarkers are the downstream messages ErrOutOfOrder stands for
// (Prometheus tsdb's storage.ErrOutOfOrderSample, ErrOutOfBounds,
// ErrTooOldSample), matched case-insensitively.
var outOfOrderMarkers = []string{"out of order sample", "out of bounds", "too old sample"}

// isOutOfOrderAnswer reports whether a 409 or 400 with this body is an
// out-of-order refusal.
func isOutOfOrderAnswer(code int, msg string) bool {
	if code != http.StatusConflict && code != http.StatusBadRequest {
		return false
	}
	msg = strings.ToLower(msg)
	for _, m := range outOfOrderMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

const (
	// maxErrorMsgBytes bounds Error.Msg (the downstream's response body).
	maxErrorMsgBytes = 256
	// maxClassifyBytes bounds how much of a refusal's body is searched for
	// the reason (ErrOutOfOrder).
	maxClassifyBytes = 4 << 10
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

	err error // underlying network/context error, ErrUnsupported or ErrOutOfOrder, for errors.Is
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

// Unwrap returns the underlying network or context error, or
// ErrUnsupported or ErrOutOfOrder for those refusals; nil otherwise.
func (e *Error) Unwrap() error { return e.err }

// Sender posts snappy-compressed WriteRequests to one remote write endpoint
// with retries. It is safe for concurrent use.
type Sender struct {
	client     *http.Client
	fast       bool // client is the synchronous HTTP/1.1 one (newClient)
	url        string
	message    string
	headers    map[string]string
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	logger     log.Logger
	m          *metrics
}

type metrics struct {
	requests    *prometheus.CounterVec
	retries     prometheus.Counter
	duration    prometheus.Histogram
	sentBytes   prometheus.Counter
	unsupported prometheus.Counter
	partial     prometheus.Counter
	written     *prometheus.CounterVec
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
		unsupported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_unsupported_total",
			Help: "Remote writes the downstream refused for their protobuf_message: 415, or a 2.0 request answered 2xx without anything written.",
		}),
		partial: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_partial_writes_total",
			Help: "Remote write 2.0 requests the downstream wrote only part of, by its X-Prometheus-Remote-Write-*-Written headers.",
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_forward_written_total",
			Help: "Samples, histograms and exemplars the downstream said it wrote (X-Prometheus-Remote-Write-*-Written headers, remote write 2.0).",
		}, []string{"type"}),
	}
	for _, c := range []string{"2xx", "4xx", "5xx", "error"} {
		m.requests.WithLabelValues(c)
	}
	for _, t := range []string{"samples", "histograms", "exemplars"} {
		m.written.WithLabelValues(t)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.retries, m.duration, m.sentBytes, m.unsupported, m.partial, m.written} {
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
	client, fast, err := newClient(&cfg)
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
	if fast {
		level.Debug(logger).Log("msg", "remote write client: synchronous HTTP/1.1", "url", cfg.URL)
	} else {
		level.Debug(logger).Log("msg", "remote write client: net/http", "url", cfg.URL, "http1_fast_path_unused", fastPathUnsupported(&cfg))
	}
	headers := make(map[string]string, len(cfg.Headers))
	for k, v := range cfg.Headers {
		headers[http.CanonicalHeaderKey(k)] = v
	}
	return &Sender{
		client:     client,
		fast:       fast,
		url:        cfg.URL,
		message:    cfg.ProtobufMessage,
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

// Send posts body, a snappy-compressed request of the configured
// protobuf_message (prometheus.WriteRequest or io.prometheus.write.v2.
// Request) with that version's headers, and retries
// recoverable failures (network errors, 5xx, 429) with exponential backoff
// and jitter between MinBackoff and MaxBackoff, or after the downstream's
// Retry-After. Each attempt is bounded by min(Timeout, ctx). Send never
// sleeps past ctx's deadline: when the next wait would reach it, Send gives
// up and returns the last error. Without a deadline it retries until ctx is
// cancelled. Other statuses are not retried.
//
// A 415, or a 2.0 request answered 2xx without any Written header, is an
// *Error wrapping ErrUnsupported, logged as an error and counted in
// telegate_forward_unsupported_total. For 2.0 the
// X-Prometheus-Remote-Write-*-Written headers are counted in
// telegate_forward_written_total and compared with what the body holds: a
// partial write counts in telegate_forward_partial_writes_total (a 2xx
// that wrote part of the request is still a success).
//
// The error is always an *Error (nil on 2xx). Send does not retain body
// after it returns, so the caller may reuse the buffer.
func (s *Sender) Send(ctx context.Context, body []byte) error {
	return s.SendMessage(ctx, body, s.message)
}

// ProtobufMessage returns the message Send sends (Config.ProtobufMessage).
func (s *Sender) ProtobufMessage() string { return s.message }

// SendMessage is Send for a body of the given protobuf message (MessageV1,
// MessageV2; "" is MessageV1) whatever the configuration says: replay
// sends a spooled body as what it was encoded as.
func (s *Sender) SendMessage(ctx context.Context, body []byte, msg string) error {
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
		e := s.attempt(ctx, body, msg)
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
func (s *Sender) attempt(ctx context.Context, body []byte, msg string) *Error {
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
	req.Header.Set("User-Agent", "telegate/"+Version)
	v2 := msg == MessageV2
	if v2 {
		req.Header.Set("Content-Type", contentTypeV2)
		req.Header.Set("X-Prometheus-Remote-Write-Version", remoteWriteVersionV2)
	} else {
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Prometheus-Remote-Write-Version", remoteWriteVersion)
	}

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
	if code == http.StatusUnsupportedMediaType {
		s.m.unsupported.Inc()
		e := &Error{Status: code, Msg: readMsg(resp.Body), err: ErrUnsupported}
		level.Error(s.logger).Log("msg", "downstream does not support this remote write version (415 Unsupported Media Type); set forward.protobuf_message to what it supports", "url", s.url, "protobuf_message", msgName(msg), "response", e.Msg)
		return e
	}
	var written writeStats
	if v2 {
		written = s.countWritten(resp.Header)
	}
	if code/100 == 2 {
		if v2 {
			if e := s.checkWritten(code, body, written); e != nil {
				return e
			}
		}
		s.m.sentBytes.Add(float64(len(body)))
		return nil
	}
	if written.confirmed && written.total() > 0 {
		// A refusal of part of the request: the rest was written.
		s.m.partial.Inc()
	}
	// Read more than Msg keeps: a Thanos hashring names every replica's
	// endpoint before the cause.
	head := make([]byte, maxClassifyBytes)
	n, _ := io.ReadFull(resp.Body, head)
	e := &Error{Status: code, Msg: readMsg(bytes.NewReader(head[:n]))}
	if isOutOfOrderAnswer(code, string(head[:n])) {
		e.err = ErrOutOfOrder
	}
	if code >= 500 || code == http.StatusTooManyRequests {
		e.Recoverable = true
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// msgName is msg with "" spelled out as the default it means.
func msgName(msg string) string {
	if msg == "" {
		return MessageV1
	}
	return msg
}

// writeStats are the counts of a 2.0 request or of its Written headers.
type writeStats struct {
	samples, histograms, exemplars int64
	confirmed                      bool // a Written header was there
}

func (w writeStats) total() int64 { return w.samples + w.histograms + w.exemplars }

// countWritten reads the X-Prometheus-Remote-Write-*-Written headers
// (absent means 0; unparsable ones count as absent) and counts them in
// telegate_forward_written_total.
func (s *Sender) countWritten(h http.Header) writeStats {
	var w writeStats
	for _, f := range []struct {
		header, kind string
		n            *int64
	}{{writtenSamplesHeader, "samples", &w.samples}, {writtenHistogramsHeader, "histograms", &w.histograms}, {writtenExemplarsHeader, "exemplars", &w.exemplars}} {
		v := h.Get(f.header)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			continue
		}
		w.confirmed = true
		*f.n = n
		s.m.written.WithLabelValues(f.kind).Add(float64(n))
	}
	return w
}

// checkWritten compares a 2xx's Written headers with what the 2.0 body
// holds: no header at all for something sent is ErrUnsupported (as the
// spec and client_golang's remote API judge it; Prometheus' own sender
// also refuses all-zero headers, which are a 2.0 receiver's answer),
// less than sent a partial write (logged as a warning when it is nothing).
func (s *Sender) checkWritten(code int, body []byte, written writeStats) *Error {
	sent, err := countV2(body)
	if err != nil {
		// Not a body this package encoded; nothing to compare with.
		level.Debug(s.logger).Log("msg", "cannot count the remote write 2.0 body's samples", "err", err)
		return nil
	}
	if sent.total() > 0 && !written.confirmed {
		s.m.unsupported.Inc()
		e := &Error{Status: code, err: ErrUnsupported,
			Msg: fmt.Sprintf("answered a remote write 2.0 request of %d samples, %d histograms, %d exemplars with HTTP %d but no X-Prometheus-Remote-Write-*-Written headers: it probably only speaks remote write 1.0",
				sent.samples, sent.histograms, sent.exemplars, code)}
		level.Error(s.logger).Log("msg", "downstream did not confirm a remote write 2.0 request; set forward.protobuf_message to "+MessageV1+" if it only supports 1.0", "url", s.url, "err", e)
		return e
	}
	if written.samples < sent.samples || written.histograms < sent.histograms || written.exemplars < sent.exemplars {
		s.m.partial.Inc()
		lvl := level.Debug
		if written.total() == 0 {
			lvl = level.Warn // not a silent loss
		}
		lvl(s.logger).Log("msg", "downstream wrote part of a remote write 2.0 request", "url", s.url,
			"samples", written.samples, "of_samples", sent.samples, "histograms", written.histograms, "of_histograms", sent.histograms,
			"exemplars", written.exemplars, "of_exemplars", sent.exemplars)
	}
	return nil
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
// buffers as soon as Send returns. (The HTTP/1.1 fast path writes the
// whole body before it reads the answer, but net/http's client serves the
// configurations it does not.)
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
