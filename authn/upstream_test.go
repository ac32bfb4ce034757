package authn

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "pull-secret-XYZ"

// fakeAuthorizer serves the tollbooth protocol, answering with handle after
// checking the request shape.
func fakeAuthorizer(t *testing.T, handle func(w http.ResponseWriter, req tollboothRequest)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method = %s", r.Method)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var req tollboothRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("decoding request: %v", err)
		}
		handle(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestUpstream(t *testing.T, url string, opts UpstreamOptions) *Upstream {
	t.Helper()
	u, err := NewUpstream(url, http.DefaultClient, opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUpstreamAllowed(t *testing.T) {
	srv := fakeAuthorizer(t, func(w http.ResponseWriter, req tollboothRequest) {
		if req.AuthorizationToken != testSecret || req.ClusterID != "cluster-1" {
			t.Errorf("request = %+v", req)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"account_id":"acct-9","cluster_id":"cluster-1","extra":{"nested":[1,2]}}`)
	})
	id, err := newTestUpstream(t, srv.URL, UpstreamOptions{}).Authenticate(context.Background(), testSecret, "cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterID != "cluster-1" || id.AccountID != "acct-9" || id.Labels[ClusterIDLabel] != "cluster-1" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestUpstreamPassthrough(t *testing.T) {
	for _, status := range []int{401, 403, 404, 409, 429} {
		srv := fakeAuthorizer(t, func(w http.ResponseWriter, _ tollboothRequest) {
			if status == 429 {
				w.Header().Set("Retry-After", "42")
			}
			w.WriteHeader(status)
			io.WriteString(w, "nope "+testSecret)
		})
		_, err := newTestUpstream(t, srv.URL, UpstreamOptions{}).Authenticate(context.Background(), testSecret, "c")
		e, ok := err.(*Error)
		if !ok || e.Kind != Passthrough || e.Status != status {
			t.Fatalf("status %d: err = %#v", status, err)
		}
		code, retry := StatusOf(err)
		if code != status {
			t.Fatalf("StatusOf = %d, want %d", code, status)
		}
		if status == 429 && retry != 42*time.Second {
			t.Fatalf("429 retry = %v", retry)
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Fatalf("error leaks the token or upstream body: %q", err)
		}
	}
}

func TestUpstream429RetryAfter(t *testing.T) {
	var header atomic.Value
	srv := fakeAuthorizer(t, func(w http.ResponseWriter, _ tollboothRequest) {
		if h := header.Load().(string); h != "" {
			w.Header().Set("Retry-After", h)
		}
		w.WriteHeader(http.StatusTooManyRequests)
	})
	u := newTestUpstream(t, srv.URL, UpstreamOptions{RetryAfter: 17 * time.Second})
	for _, tc := range []struct {
		header string
		min    time.Duration
		max    time.Duration
	}{
		{"", 17 * time.Second, 17 * time.Second},
		{"garbage", 17 * time.Second, 17 * time.Second},
		{"-5", 17 * time.Second, 17 * time.Second},
		{"5", 5 * time.Second, 5 * time.Second},
		{time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat), 100 * time.Second, 121 * time.Second},
	} {
		header.Store(tc.header)
		_, err := u.Authenticate(context.Background(), testSecret, "c")
		code, retry := StatusOf(err)
		if code != 429 || retry < tc.min || retry > tc.max {
			t.Fatalf("Retry-After %q: %d %v", tc.header, code, retry)
		}
	}
}

func TestUpstreamUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter)
	}{
		{"500", func(w http.ResponseWriter) { w.WriteHeader(500) }},
		{"502", func(w http.ResponseWriter) { w.WriteHeader(502) }},
		{"400", func(w http.ResponseWriter) { w.WriteHeader(400) }},
		{"redirect loop", func(w http.ResponseWriter) { w.Header().Set("Location", "/"); w.WriteHeader(307) }},
		{"2xx not json", func(w http.ResponseWriter) { io.WriteString(w, "OK") }},
		{"2xx empty", func(w http.ResponseWriter) { w.WriteHeader(200) }},
		{"2xx json null", func(w http.ResponseWriter) { io.WriteString(w, "null") }},
		{"2xx broken json", func(w http.ResponseWriter) { io.WriteString(w, `{"account_id":`) }},
		{"2xx oversized", func(w http.ResponseWriter) {
			io.WriteString(w, `{"account_id":"`+strings.Repeat("a", maxUpstreamResponse)+`"}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeAuthorizer(t, func(w http.ResponseWriter, _ tollboothRequest) { tc.handle(w) })
			_, err := newTestUpstream(t, srv.URL, UpstreamOptions{RetryAfter: 11 * time.Second}).Authenticate(context.Background(), testSecret, "c")
			code, retry := StatusOf(err)
			if KindOf(err) != Unavailable || code != 503 || retry != 11*time.Second {
				t.Fatalf("err = %v, StatusOf = %d %v", err, code, retry)
			}
		})
	}
}

func TestUpstreamDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newTestUpstream(t, url, UpstreamOptions{}).Authenticate(context.Background(), testSecret, "c")
	if KindOf(err) != Unavailable {
		t.Fatalf("err = %v", err)
	}
	if code, retry := StatusOf(err); code != 503 || retry != DefaultRetryAfter {
		t.Fatalf("StatusOf = %d %v", code, retry)
	}
	if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), url) {
		t.Fatalf("message %q must be short and not leak", err)
	}
}

func TestUpstreamSlow(t *testing.T) {
	release := make(chan struct{})
	srv := fakeAuthorizer(t, func(w http.ResponseWriter, _ tollboothRequest) {
		<-release
		io.WriteString(w, `{"account_id":"late"}`)
	})
	defer close(release)

	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := newTestUpstream(t, srv.URL, UpstreamOptions{}).Authenticate(ctx, testSecret, "c")
		if KindOf(err) != Unavailable || err.Error() != "authorizer timed out" {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("deadline not honoured")
		}
	})
	t.Run("configured timeout", func(t *testing.T) {
		_, err := newTestUpstream(t, srv.URL, UpstreamOptions{Timeout: 50 * time.Millisecond}).Authenticate(context.Background(), testSecret, "c")
		if KindOf(err) != Unavailable {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestUpstreamRejectsEmptyCredentialsLocally(t *testing.T) {
	var calls atomic.Int32
	srv := fakeAuthorizer(t, func(w http.ResponseWriter, _ tollboothRequest) { calls.Add(1) })
	u := newTestUpstream(t, srv.URL, UpstreamOptions{})
	if _, err := u.Authenticate(context.Background(), "", "c"); KindOf(err) != Unauthorized {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := u.Authenticate(context.Background(), "t", ""); KindOf(err) != Unauthorized {
		t.Fatalf("empty cluster: %v", err)
	}
	if calls.Load() != 0 {
		t.Fatal("authorizer called for empty credentials")
	}
}

func TestNewUpstreamValidation(t *testing.T) {
	for _, tc := range []struct {
		url    string
		client *http.Client
		opts   UpstreamOptions
	}{
		{"", http.DefaultClient, UpstreamOptions{}},
		{"/relative", http.DefaultClient, UpstreamOptions{}},
		{"ftp://host/x", http.DefaultClient, UpstreamOptions{}},
		{"http://%zz", http.DefaultClient, UpstreamOptions{}},
		{"http://host/x", nil, UpstreamOptions{}},
		{"http://host/x", http.DefaultClient, UpstreamOptions{Timeout: -1}},
		{"http://host/x", http.DefaultClient, UpstreamOptions{RetryAfter: -1}},
	} {
		if _, err := NewUpstream(tc.url, tc.client, tc.opts); err == nil {
			t.Fatalf("NewUpstream(%q, %v, %+v) succeeded", tc.url, tc.client, tc.opts)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"10":                            10 * time.Second,
		" 3 ":                           3 * time.Second,
		"0":                             0,
		"99999999":                      0,
		"Wed, 01 Jan 2025 00:01:00 GMT": time.Minute,
		"Tue, 31 Dec 2024 00:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// slowAuthorizer answers allowed at once, except for token "slow", which it
// holds until release is closed or the request is abandoned. inflight and
// calls count what reached it.
type slowAuthorizer struct {
	release         chan struct{}
	inflight, calls atomic.Int32
}

func newSlowAuthorizer(t *testing.T) (*slowAuthorizer, *httptest.Server) {
	s := &slowAuthorizer{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		var req tollboothRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.AuthorizationToken == "slow" {
			select {
			case <-s.release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, `{"account_id":"a"}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.release) })
	return s, srv
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Over MaxConcurrent calls in flight, a call fails at once with 503 and
// Retry-After, without reaching the authorizer.
func TestUpstreamMaxConcurrent(t *testing.T) {
	fake, srv := newSlowAuthorizer(t)
	u := newTestUpstream(t, srv.URL, UpstreamOptions{MaxConcurrent: 2})
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := u.Authenticate(context.Background(), "slow", "c"); done <- err }()
	}
	waitFor(t, "two calls at the authorizer", func() bool { return fake.inflight.Load() == 2 })
	start := time.Now()
	_, err := u.Authenticate(context.Background(), testSecret, "c")
	code, ra := StatusOf(err)
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrSourceBusy) || code != 503 || ra != time.Second {
		t.Fatalf("third call: %v (%d, %v)", err, code, ra)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("refusal took %v", el)
	}
	if n := fake.calls.Load(); n != 2 {
		t.Fatalf("authorizer saw %d calls, want 2", n)
	}
	fake.release <- struct{}{} // one slow call ends
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(context.Background(), testSecret, "c"); err != nil {
		t.Fatalf("after a slot freed up: %v", err)
	}
}

// The request's CallGate bounds its calls (429, ErrSourceBusy); a gate
// admitted but then refused by MaxConcurrent gets its slot back.
func TestUpstreamCallGate(t *testing.T) {
	fake, srv := newSlowAuthorizer(t)
	u := newTestUpstream(t, srv.URL, UpstreamOptions{MaxConcurrent: 2})
	var held atomic.Int32
	gate := func(max int32) CallGate {
		return func() (func(), bool) {
			if held.Add(1) > max {
				held.Add(-1)
				return nil, false
			}
			return func() { held.Add(-1) }, true
		}
	}
	ctx := WithCallGate(context.Background(), gate(1))
	done := make(chan error, 1)
	go func() { _, err := u.Authenticate(ctx, "slow", "c"); done <- err }()
	waitFor(t, "the gated call at the authorizer", func() bool { return fake.inflight.Load() == 1 })
	_, err := u.Authenticate(ctx, testSecret, "c")
	code, ra := StatusOf(err)
	if !errors.Is(err, ErrSourceBusy) || !errors.Is(err, ErrBusy) || KindOf(err) != Limited || code != 429 || ra != time.Second {
		t.Fatalf("second call through the gate: %v (%d, %v)", err, code, ra)
	}
	if n := fake.calls.Load(); n != 1 {
		t.Fatalf("authorizer saw %d calls, want 1", n)
	}
	// Without the gate the call goes through.
	if _, err := u.Authenticate(context.Background(), testSecret, "c"); err != nil {
		t.Fatal(err)
	}
	// Fill MaxConcurrent: a gate that admits is given its slot back when
	// the total bound refuses.
	go func() { _, err := u.Authenticate(context.Background(), "slow", "c"); done <- err }()
	waitFor(t, "two calls at the authorizer", func() bool { return fake.inflight.Load() == 2 })
	if _, err := u.Authenticate(WithCallGate(context.Background(), gate(5)), testSecret, "c"); !errors.Is(err, ErrBusy) || errors.Is(err, ErrSourceBusy) {
		t.Fatalf("over MaxConcurrent: %v", err)
	}
	if n := held.Load(); n != 1 {
		t.Fatalf("gate slots held: %d, want 1 (the slow call's)", n)
	}
	fake.release <- struct{}{}
	fake.release <- struct{}{}
	<-done
	<-done
	if n := held.Load(); n != 0 {
		t.Fatalf("gate slots held after the calls ended: %d", n)
	}
}
