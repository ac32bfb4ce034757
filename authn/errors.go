package authn

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// DefaultRetryAfter is advertised with Unavailable errors and upstream 429s
// that carry no usable Retry-After of their own.
const DefaultRetryAfter = 30 * time.Second

// Kind classifies an authentication failure. Each kind maps to one HTTP
// status code (see StatusOf).
type Kind int

const (
	// Unauthorized: credentials missing, malformed, unknown or expired (401).
	Unauthorized Kind = iota + 1
	// Forbidden: credentials valid but not for this cluster (403).
	Forbidden
	// Unavailable: a dependency failed; the answer is unknown and access is
	// denied (503 with Retry-After).
	Unavailable
	// Passthrough: the upstream authorizer answered with a 4xx status that
	// is relayed as is (401, 403, 404, 409 or 429 with Retry-After).
	Passthrough
	// Limited: the authorizer was not called because the request's source
	// has too many calls to it in flight (429 with Retry-After; see
	// CallGate).
	Limited
)

// String returns the lower-case name of the kind.
func (k Kind) String() string {
	switch k {
	case Unauthorized:
		return "unauthorized"
	case Forbidden:
		return "forbidden"
	case Unavailable:
		return "unavailable"
	case Passthrough:
		return "passthrough"
	case Limited:
		return "limited"
	default:
		return "unknown"
	}
}

// Error is the error type returned by every Authenticator and by Signer.Verify.
// Msg is short, human-readable and safe to send to clients; it never contains
// a token. Cause, if set, is the underlying error for logs only.
type Error struct {
	Kind Kind
	Msg  string
	// RetryAfter is set for Unavailable and Limited errors and upstream 429s.
	RetryAfter time.Duration
	// Status is the upstream HTTP status for Passthrough errors.
	Status int
	// Cause is the underlying error, for logging. It is not part of Error().
	Cause error
}

// Error returns the client-facing message.
func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Kind.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Cause }

// NewUnauthorized returns an Unauthorized error with the given message.
func NewUnauthorized(msg string) *Error { return &Error{Kind: Unauthorized, Msg: msg} }

// NewForbidden returns a Forbidden error with the given message.
func NewForbidden(msg string) *Error { return &Error{Kind: Forbidden, Msg: msg} }

// NewUnavailable returns an Unavailable error. A non-positive retryAfter is
// replaced by DefaultRetryAfter.
func NewUnavailable(msg string, retryAfter time.Duration, cause error) *Error {
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
	return &Error{Kind: Unavailable, Msg: msg, RetryAfter: retryAfter, Cause: cause}
}

// NewPassthrough returns a Passthrough error relaying an upstream status.
func NewPassthrough(status int, msg string, retryAfter time.Duration) *Error {
	return &Error{Kind: Passthrough, Msg: msg, Status: status, RetryAfter: retryAfter}
}

// KindOf returns the Kind of err, or 0 if err is not (and does not wrap) an
// *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// StatusOf maps an authentication error to the HTTP status code and
// Retry-After the gateway must answer with. A nil error maps to 200. Errors
// that are not *Error (which no function of this package returns) are treated
// as dependency failures: 503, failing closed.
func StatusOf(err error) (code int, retryAfter time.Duration) {
	if err == nil {
		return http.StatusOK, 0
	}
	var e *Error
	if !errors.As(err, &e) {
		return http.StatusServiceUnavailable, DefaultRetryAfter
	}
	switch e.Kind {
	case Unauthorized:
		return http.StatusUnauthorized, 0
	case Forbidden:
		return http.StatusForbidden, 0
	case Limited:
		return http.StatusTooManyRequests, positiveOr(e.RetryAfter, DefaultRetryAfter)
	case Passthrough:
		if e.Status == http.StatusTooManyRequests {
			return e.Status, positiveOr(e.RetryAfter, DefaultRetryAfter)
		}
		if e.Status >= 400 && e.Status < 500 {
			return e.Status, 0
		}
	}
	return http.StatusServiceUnavailable, positiveOr(e.RetryAfter, DefaultRetryAfter)
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// isDenial reports whether err is a definitive "no" that may be cached:
// Unauthorized, Forbidden, or a passed-through 4xx other than 429.
func isDenial(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case Unauthorized, Forbidden:
		return true
	case Passthrough:
		return e.Status != http.StatusTooManyRequests
	}
	return false
}

// asAuthError converts any error into an *Error, failing closed: unknown
// errors become Unavailable.
func asAuthError(err error, retryAfter time.Duration) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := "authorizer unavailable"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "authorizer timed out"
	}
	return NewUnavailable(msg, retryAfter, err)
}
