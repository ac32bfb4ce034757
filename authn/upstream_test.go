package authn

import (
	"context"
	"encoding/json"
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
