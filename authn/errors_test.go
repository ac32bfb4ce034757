package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		code  int
		retry time.Duration
	}{
		{"nil", nil, http.StatusOK, 0},
		{"unauthorized", NewUnauthorized("x"), http.StatusUnauthorized, 0},
		{"forbidden", NewForbidden("x"), http.StatusForbidden, 0},
		{"unavailable", NewUnavailable("x", 7*time.Second, nil), http.StatusServiceUnavailable, 7 * time.Second},
		{"unavailable default retry", &Error{Kind: Unavailable}, http.StatusServiceUnavailable, DefaultRetryAfter},
		{"passthrough 401", NewPassthrough(401, "x", 0), 401, 0},
		{"passthrough 403", NewPassthrough(403, "x", 0), 403, 0},
		{"passthrough 404", NewPassthrough(404, "x", 0), 404, 0},
		{"passthrough 409", NewPassthrough(409, "x", 0), 409, 0},
		{"passthrough 429", NewPassthrough(429, "x", 12*time.Second), 429, 12 * time.Second},
		{"passthrough 429 default retry", NewPassthrough(429, "x", 0), 429, DefaultRetryAfter},
		{"passthrough non-4xx fails closed", NewPassthrough(500, "x", 0), 503, DefaultRetryAfter},
		{"wrapped", fmt.Errorf("ctx: %w", NewForbidden("x")), http.StatusForbidden, 0},
		{"foreign error fails closed", errors.New("boom"), http.StatusServiceUnavailable, DefaultRetryAfter},
		{"zero kind fails closed", &Error{}, http.StatusServiceUnavailable, DefaultRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, retry := StatusOf(tc.err)
			if code != tc.code || retry != tc.retry {
				t.Fatalf("StatusOf = %d, %v; want %d, %v", code, retry, tc.code, tc.retry)
			}
		})
	}
}

func TestErrorMessageAndCause(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	e := NewUnavailable("authorizer unreachable", 0, cause)
	if e.Error() != "authorizer unreachable" {
		t.Fatalf("Error() = %q, cause must not leak into the client message", e.Error())
	}
	if !errors.Is(e, cause) {
		t.Fatal("cause not reachable through errors.Is")
	}
	if e.RetryAfter != DefaultRetryAfter {
		t.Fatalf("RetryAfter = %v", e.RetryAfter)
	}
	if got := (&Error{Kind: Forbidden}).Error(); got != "forbidden" {
		t.Fatalf("empty message: %q", got)
	}
	if KindOf(fmt.Errorf("w: %w", e)) != Unavailable || KindOf(cause) != 0 {
		t.Fatal("KindOf")
	}
	for k, want := range map[Kind]string{Unauthorized: "unauthorized", Forbidden: "forbidden", Unavailable: "unavailable", Passthrough: "passthrough", 0: "unknown"} {
		if k.String() != want {
			t.Fatalf("%d.String() = %q", k, k.String())
		}
	}
}

func TestAsAuthErrorFailsClosed(t *testing.T) {
	e := asAuthError(context.DeadlineExceeded, 0)
	if e.Kind != Unavailable || e.Msg != "authorizer timed out" {
		t.Fatalf("%+v", e)
	}
	orig := NewForbidden("no")
	if asAuthError(orig, 0) != orig {
		t.Fatal("*Error must be returned as is")
	}
}
