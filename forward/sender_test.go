package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/prompb"
	"gopkg.in/yaml.v3"

	"github.com/telegate/telegate/batch"
)

// recorder is an httptest handler that answers from a script and records
// what it received.
type recorder struct {
	mu       sync.Mutex
	attempts atomic.Int32
	headers  []http.Header
	bodies   [][]byte
	answer   func(n int, w http.ResponseWriter, r *http.Request) // n is 1-based
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(rec.attempts.Add(1))
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.bodies = append(rec.bodies, body)
	rec.mu.Unlock()
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if rec.answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rec.answer(n, w, r)
}

func newServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) (*recorder, *httptest.Server) {
	t.Helper()
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv
}

func newSender(t *testing.T, cfg Config, reg prometheus.Registerer, logger log.Logger) *Sender {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Millisecond
	}
	s, err := New(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testBody(t *testing.T) ([]batch.Series, []byte) {
	t.Helper()
	series := benchSeries(3, 4)
	var b Buffers
	body, err := b.Encode(series)
	if err != nil {
		t.Fatal(err)
	}
	return series, bytes.Clone(body)
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *forward.Error", err, err)
	}
	return e
}

func TestSendHeadersAndBody(t *testing.T) {
	old := Version
	Version = "1.2.3"
	t.Cleanup(func() { Version = old })

	rec, srv := newServer(t, nil)
	s := newSender(t, Config{URL: srv.URL + "/api/v1/receive", Headers: map[string]string{"THANOS-TENANT": "telemeter", "X-Scope-OrgID": "a b"}}, nil, nil)
	series, body := testBody(t)
	if err := s.Send(context.Background(), body); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if rec.attempts.Load() != 1 {
		t.Fatalf("%d attempts", rec.attempts.Load())
	}
	h := rec.headers[0]
	want := map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"User-Agent":                        "telegate/1.2.3",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"Thanos-Tenant":                     "telemeter",
		"X-Scope-Orgid":                     "a b",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want exactly %q", k, got, v)
		}
	}
	if !bytes.Equal(rec.bodies[0], body) {
		t.Fatal("server received a different body")
	}
	raw, err := snappy.Decode(nil, rec.bodies[0])
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		t.Fatalf("gogo Unmarshal: %v", err)
	}
	checkDecodes(t, raw, series)
}

func TestSendRetriesServerErrors(t *testing.T) {
	rec, srv := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "ingester unavailable", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	reg := prometheus.NewPedanticRegistry()
	s := newSender(t, Config{URL: srv.URL}, reg, nil)
	_, body := testBody(t)
	if err := s.Send(context.Background(), body); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := rec.attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	for _, r := range rec.bodies {
		if !bytes.Equal(r, body) {
			t.Fatal("a retry sent a different body")
		}
	}
	m := s.m
	if v := counter(t, m.requests.WithLabelValues("5xx")); v != 2 {
		t.Errorf("requests{5xx} = %v", v)
	}
	if v := counter(t, m.requests.WithLabelValues("2xx")); v != 1 {
		t.Errorf("requests{2xx} = %v", v)
	}
	if v := counter(t, m.retries); v != 2 {
		t.Errorf("retries = %v", v)
	}
	if v := counter(t, m.sentBytes); v != float64(len(body)) {
		t.Errorf("sent bytes = %v, want %d", v, len(body))
	}
	if got := gathered(t, reg)["telegate_forward_duration_seconds"]; got == nil || got.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("duration histogram: %v", got)
	}
	if got := gathered(t, reg)["telegate_forward_retries_total"]; got == nil || got.GetMetric()[0].GetCounter().GetValue() != 2 {
		t.Errorf("registered retries counter: %v", got)
	}
}

// counter reads a counter.
func counter(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func gathered(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestSendHonoursRetryAfter(t *testing.T) {
	var first time.Time
	var second time.Time
	rec, srv := newServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		second = time.Now()
		w.WriteHeader(http.StatusOK)
	})
	s := newSender(t, Config{URL: srv.URL}, nil, nil)
	_, body := testBody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Send(ctx, body); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if rec.attempts.Load() != 2 {
		t.Fatalf("%d attempts", rec.attempts.Load())
	}
	if gap := second.Sub(first); gap < 950*time.Millisecond || gap > 1800*time.Millisecond {
		t.Fatalf("waited %v between attempts, want about 1s", gap)
	}
}

func TestSendRetryAfterBeyondDeadline(t *testing.T) {
	rec, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	s := newSender(t, Config{URL: srv.URL}, nil, nil)
	_, body := testBody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, body)
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("Send took %v; it should give up at once when Retry-After passes the deadline", el)
	}
	e := asError(t, err)
	if e.Status != 503 || !e.Recoverable || e.RetryAfter != 30*time.Second || e.Msg != "overloaded" {
		t.Fatalf("unexpected error %+v", e)
	}
	if rec.attempts.Load() != 1 {
		t.Fatalf("%d attempts", rec.attempts.Load())
	}
}

func TestSendDoesNotRetryClientErrors(t *testing.T) {
	for _, code := range []int{400, 401, 404, 409, 413} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			rec, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "1") // must be ignored for 4xx
				http.Error(w, "  out of order sample  ", code)
			})
			var logs bytes.Buffer
			s := newSender(t, Config{URL: srv.URL}, nil, log.NewLogfmtLogger(log.NewSyncWriter(&logs)))
			_, body := testBody(t)
			e := asError(t, s.Send(context.Background(), body))
			if e.Status != code || e.Recoverable || e.Msg != "out of order sample" || e.RetryAfter != 0 {
				t.Fatalf("unexpected error %+v", e)
			}
			if !strings.Contains(e.Error(), "out of order sample") {
				t.Fatalf("Error() = %q lacks the downstream message", e.Error())
			}
			if rec.attempts.Load() != 1 {
				t.Fatalf("%d attempts, want 1", rec.attempts.Load())
			}
			if n := strings.Count(logs.String(), "level=warn"); n != 1 || !strings.Contains(logs.String(), `response="out of order sample"`) {
				t.Fatalf("want one warn line with the downstream message, got:\n%s", logs.String())
			}
			if v := counter(t, s.m.requests.WithLabelValues("4xx")); v != 1 {
				t.Fatalf("requests{4xx} = %v", v)
			}
		})
	}
}

func TestSendRespectsDeadline(t *testing.T) {
	rec, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	var logs bytes.Buffer
	s := newSender(t, Config{URL: srv.URL, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}, nil, log.NewLogfmtLogger(log.NewSyncWriter(&logs)))
	_, body := testBody(t)
	const budget = 400 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, body)
	if el := time.Since(start); el > budget+100*time.Millisecond {
		t.Fatalf("Send took %v with a %v deadline", el, budget)
	}
	e := asError(t, err)
	if e.Status != 503 || !e.Recoverable {
		t.Fatalf("unexpected error %+v", e)
	}
	if n := rec.attempts.Load(); n < 3 {
		t.Fatalf("only %d attempts in %v", n, budget)
	}
	if strings.Contains(logs.String(), "level=warn") || !strings.Contains(logs.String(), "level=debug") {
		t.Fatalf("retries should log at debug only:\n%s", logs.String())
	}
}

func TestSendPerAttemptTimeout(t *testing.T) {
	rec, srv := newServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	s := newSender(t, Config{URL: srv.URL, Timeout: 100 * time.Millisecond}, nil, nil)
	_, body := testBody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Send(ctx, body); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Send took %v; the hung attempt was not cut at the 100ms timeout", el)
	}
	if rec.attempts.Load() != 2 {
		t.Fatalf("%d attempts", rec.attempts.Load())
	}
}

func TestSendNetworkError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	s := newSender(t, Config{URL: "http://" + addr + "/api/v1/receive"}, nil, nil)
	_, body := testBody(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	e := asError(t, s.Send(ctx, body))
	if e.Status != 0 || !e.Recoverable || e.Msg == "" {
		t.Fatalf("unexpected error %+v", e)
	}
	if v := counter(t, s.m.retries); v < 1 {
		t.Fatalf("network error was not retried (retries = %v)", v)
	}
	if v := counter(t, s.m.requests.WithLabelValues("error")); v < 2 {
		t.Fatalf("requests{error} = %v", v)
	}
}

func TestSendCancelledContext(t *testing.T) {
	rec, srv := newServer(t, nil)
	s := newSender(t, Config{URL: srv.URL}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, body := testBody(t)
	err := s.Send(ctx, body)
	e := asError(t, err)
	if !e.Recoverable || e.Status != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected error %+v", e)
	}
	if rec.attempts.Load() != 0 {
		t.Fatal("a request was made with a cancelled context")
	}
}

func TestSendTruncatesDownstreamMessage(t *testing.T) {
	// 255 ASCII bytes then a 3-byte rune straddling the 256-byte cut.
	msg := strings.Repeat("x", 255) + "€" + strings.Repeat("y", 100000)
	_, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, msg)
	})
	s := newSender(t, Config{URL: srv.URL}, nil, nil)
	_, body := testBody(t)
	e := asError(t, s.Send(context.Background(), body))
	if e.Msg != strings.Repeat("x", 255) || !utf8.ValidString(e.Msg) {
		t.Fatalf("Msg = %q (len %d)", e.Msg, len(e.Msg))
	}
}

func TestSendAuth(t *testing.T) {
	cases := map[string]struct {
		http config_util.HTTPClientConfig
		want string
	}{
		"basic": {
			http: config_util.HTTPClientConfig{BasicAuth: &config_util.BasicAuth{Username: "user", Password: "pass"}},
			want: "Basic dXNlcjpwYXNz",
		},
		"authorization": {
			http: config_util.HTTPClientConfig{Authorization: &config_util.Authorization{Type: "Bearer", Credentials: "tok"}},
			want: "Bearer tok",
		},
		"bearer_token": {
			http: config_util.HTTPClientConfig{BearerToken: "legacy"},
			want: "Bearer legacy",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec, srv := newServer(t, nil)
			s := newSender(t, Config{URL: srv.URL, HTTPClientConfig: tc.http}, nil, nil)
			_, body := testBody(t)
			if err := s.Send(context.Background(), body); err != nil {
				t.Fatal(err)
			}
			if got := rec.headers[0].Get("Authorization"); got != tc.want {
				t.Fatalf("Authorization = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	basic := config_util.HTTPClientConfig{BasicAuth: &config_util.BasicAuth{Username: "u", Password: "p"}}
	cases := map[string]struct {
		cfg     Config
		wantErr string // "" = valid
	}{
		"ok":                         {cfg: Config{URL: "https://thanos:19291/api/v1/receive", Headers: map[string]string{"THANOS-TENANT": "t"}}},
		"authorization without auth": {cfg: Config{URL: "http://x", Headers: map[string]string{"Authorization": "Bearer x"}}},
		"no url":                     {cfg: Config{}, wantErr: "url is required"},
		"bad url":                    {cfg: Config{URL: "http://[::1"}, wantErr: "invalid url"},
		"bad scheme":                 {cfg: Config{URL: "ftp://x"}, wantErr: "scheme must be http or https"},
		"no host":                    {cfg: Config{URL: "http:///path"}, wantErr: "has no host"},
		"content-encoding":           {cfg: Config{URL: "http://x", Headers: map[string]string{"content-encoding": "gzip"}}, wantErr: `header "Content-Encoding" is reserved`},
		"content-type":               {cfg: Config{URL: "http://x", Headers: map[string]string{"Content-Type": "x"}}, wantErr: `header "Content-Type" is reserved`},
		"user-agent":                 {cfg: Config{URL: "http://x", Headers: map[string]string{"USER-AGENT": "x"}}, wantErr: `header "User-Agent" is reserved`},
		"rw version":                 {cfg: Config{URL: "http://x", Headers: map[string]string{"X-Prometheus-Remote-Write-Version": "2"}}, wantErr: `header "X-Prometheus-Remote-Write-Version" is reserved`},
		"host":                       {cfg: Config{URL: "http://x", Headers: map[string]string{"Host": "y"}}, wantErr: `header "Host" is reserved`},
		"authorization with basic":   {cfg: Config{URL: "http://x", Headers: map[string]string{"authorization": "x"}, HTTPClientConfig: basic}, wantErr: `"Authorization" conflicts`},
		"authorization with bearer":  {cfg: Config{URL: "http://x", Headers: map[string]string{"Authorization": "x"}, HTTPClientConfig: config_util.HTTPClientConfig{BearerToken: "t"}}, wantErr: `"Authorization" conflicts`},
		"duplicate":                  {cfg: Config{URL: "http://x", Headers: map[string]string{"THANOS-TENANT": "a", "thanos-tenant": "b"}}, wantErr: "are the same header"},
		"bad name":                   {cfg: Config{URL: "http://x", Headers: map[string]string{"a b": "x"}}, wantErr: "not a valid HTTP header name"},
		"empty name":                 {cfg: Config{URL: "http://x", Headers: map[string]string{"": "x"}}, wantErr: "not a valid HTTP header name"},
		"crlf value":                 {cfg: Config{URL: "http://x", Headers: map[string]string{"X-A": "a\r\nX-B: b"}}, wantErr: "control characters"},
		"negative timeout":           {cfg: Config{URL: "http://x", Timeout: -time.Second}, wantErr: "timeout must be positive"},
		"negative min backoff":       {cfg: Config{URL: "http://x", MinBackoff: -1}, wantErr: "min_backoff must be positive"},
		"min above max":              {cfg: Config{URL: "http://x", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, wantErr: "must not be below min_backoff"},
		"http client":                {cfg: Config{URL: "http://x", HTTPClientConfig: config_util.HTTPClientConfig{BearerToken: "a", BearerTokenFile: "b"}}, wantErr: "http client config"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := New(tc.cfg, nil, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	var cfg Config
	err := yaml.Unmarshal([]byte(`
url: http://thanos-receive:19291/api/v1/receive
headers:
  THANOS-TENANT: telemeter
timeout: 10s
basic_auth:
  username: u
  password: p
tls_config:
  insecure_skip_verify: true
min_backoff: 100ms
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://thanos-receive:19291/api/v1/receive" || cfg.Headers["THANOS-TENANT"] != "telemeter" {
		t.Fatalf("url/headers not decoded: %+v", cfg)
	}
	if cfg.Timeout != 10*time.Second || cfg.MinBackoff != 100*time.Millisecond || cfg.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("durations: timeout %v min %v max %v", cfg.Timeout, cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.HTTPClientConfig.BasicAuth == nil || cfg.HTTPClientConfig.BasicAuth.Username != "u" || !cfg.HTTPClientConfig.TLSConfig.InsecureSkipVerify {
		t.Fatalf("inline HTTP client config not decoded: %+v", cfg.HTTPClientConfig)
	}
	if !cfg.HTTPClientConfig.FollowRedirects || !cfg.HTTPClientConfig.EnableHTTP2 {
		t.Fatal("HTTP client defaults not applied")
	}

	var defaults Config
	if err := yaml.Unmarshal([]byte("url: http://x\n"), &defaults); err != nil {
		t.Fatal(err)
	}
	if defaults.Timeout != DefaultTimeout || defaults.MinBackoff != DefaultMinBackoff || defaults.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("defaults not applied: %+v", defaults)
	}

	err = yaml.Unmarshal([]byte("url: http://x\nheaders:\n  Content-Type: text/plain\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("reserved header accepted from YAML: %v", err)
	}
}

func TestNewAppliesDefaultsAndRegisters(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{URL: "http://127.0.0.1:1"}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.timeout != DefaultTimeout || s.minBackoff != DefaultMinBackoff || s.maxBackoff != DefaultMaxBackoff {
		t.Fatalf("defaults not applied: %v %v %v", s.timeout, s.minBackoff, s.maxBackoff)
	}
	names := gathered(t, reg)
	for _, n := range []string{"telegate_forward_requests_total", "telegate_forward_retries_total", "telegate_forward_duration_seconds", "telegate_forward_sent_bytes_total"} {
		if names[n] == nil {
			t.Errorf("metric %s not registered", n)
		}
	}
	if _, err := New(Config{URL: "http://127.0.0.1:1"}, nil, reg); err == nil {
		t.Fatal("second Sender on the same registry should fail to register")
	}
}

func TestBackoff(t *testing.T) {
	s := &Sender{minBackoff: 30 * time.Millisecond, maxBackoff: 5 * time.Second}
	for attempt := range 100 {
		ceil := min(s.maxBackoff, s.minBackoff<<min(attempt, 20))
		for range 50 {
			d := s.backoff(attempt)
			if d < s.minBackoff || d > ceil {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, s.minBackoff, ceil)
			}
		}
	}
	if d := s.backoff(0); d != s.minBackoff {
		t.Fatalf("first backoff %v, want MinBackoff", d)
	}
	// Jitter: late attempts are not all the same.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[s.backoff(10)] = true
	}
	if len(seen) < 2 {
		t.Fatal("no jitter")
	}
	same := &Sender{minBackoff: time.Second, maxBackoff: time.Second}
	if d := same.backoff(5); d != time.Second {
		t.Fatalf("min == max: got %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                                 0,
		"  ":                               0,
		"0":                                0,
		"-5":                               0,
		"7":                                7 * time.Second,
		" 2 ":                              2 * time.Second,
		"99999999999999":                   maxRetryAfter,
		"soon":                             0,
		"1.5":                              0,
		"Thu, 02 Jan 2025 03:04:15 GMT":    10 * time.Second,
		"Thu, 02 Jan 2025 03:04:00 GMT":    0,           // past
		"Thursday, 02-Jan-25 03:05:05 GMT": time.Minute, // RFC 850
		"Fri, 03 Jan 2025 03:04:05 GMT":    maxRetryAfter,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBodyGuard(t *testing.T) {
	g := &bodyGuard{}
	r := g.reader([]byte("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	g.release()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, errBodyReleased) {
		t.Fatalf("Read after release = %d, %v", n, err)
	}
	if _, err := g.reader([]byte("x")).Read(buf); !errors.Is(err, errBodyReleased) {
		t.Fatal("GetBody reader readable after release")
	}
}

func TestErrorMessages(t *testing.T) {
	cause := errors.New("connection refused")
	cases := []struct {
		e    *Error
		want string
	}{
		{&Error{Msg: "dial: connection refused", Recoverable: true, err: cause}, "forward: remote write failed: dial: connection refused"},
		{&Error{Status: 400, Msg: "bad label"}, "forward: remote write answered HTTP 400: bad label"},
		{&Error{Status: 502}, "forward: remote write answered HTTP 502"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
	if !errors.Is(cases[0].e, cause) {
		t.Error("Unwrap does not expose the cause")
	}
}
