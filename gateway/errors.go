package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log/level"

	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/relabel"
)

// httpError is an answer the gateway decided on itself.
type httpError struct {
	status     int
	reason     string // short machine-readable cause, e.g. "max_request_bytes"
	msg        string
	limit      int64
	retryAfter time.Duration
}

func (e *httpError) Error() string { return e.msg }

func newError(status int, reason, msg string) *httpError {
	return &httpError{status: status, reason: reason, msg: msg}
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	Limit      int64  `json:"limit,omitempty"`
	RetryAfter int64  `json:"retry_after_seconds,omitempty"`
}

// toHTTP maps any error of the write path to the status table of DESIGN.md.
// This is the only place where errors become status codes.
func toHTTP(err error) *httpError {
	var (
		he *httpError
		de *decode.Error
		ie *relabel.InvalidError
		ae *authn.Error
		fe *forward.Error
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &de):
		reason := "malformed"
		switch de.Status {
		case http.StatusRequestEntityTooLarge:
			reason = "too_large"
		case http.StatusUnsupportedMediaType:
			reason = "unsupported_media_type"
		}
		if de.Reason != "" {
			reason = de.Reason
		}
		return &httpError{status: de.Status, reason: reason, msg: de.Error()}
	case errors.As(err, &ie):
		return &httpError{status: http.StatusBadRequest, reason: "invalid_series", msg: ie.Error()}
	case errors.As(err, &ae):
		code, ra := authn.StatusOf(ae)
		reason := map[int]string{401: "unauthorized", 403: "forbidden", 429: "rate_limited", 503: "authorizer_unavailable"}[code]
		if reason == "" {
			reason = "authorizer_denied"
		}
		return &httpError{status: code, reason: reason, msg: ae.Error(), retryAfter: ra}
	case errors.As(err, &fe):
		if fe.Recoverable {
			ra := fe.RetryAfter
			if ra <= 0 {
				ra = 30 * time.Second
			}
			return &httpError{status: http.StatusServiceUnavailable, reason: "downstream_unavailable", msg: "long-term storage unavailable: " + fe.Error(), retryAfter: ra}
		}
		switch fe.Status {
		case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
			return &httpError{status: http.StatusBadRequest, reason: "downstream_rejected", msg: "long-term storage rejected the data: " + fe.Error()}
		case http.StatusRequestEntityTooLarge:
			return &httpError{status: http.StatusRequestEntityTooLarge, reason: "downstream_too_large", msg: "long-term storage rejected the request size: " + fe.Error()}
		}
		// 401/403/404 from downstream mean the gateway is misconfigured,
		// not that the client sent something wrong: let it retry.
		return &httpError{status: http.StatusServiceUnavailable, reason: "downstream_misconfigured", msg: "long-term storage refused the gateway: " + fe.Error(), retryAfter: 60 * time.Second}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &httpError{status: http.StatusServiceUnavailable, reason: "timeout", msg: "request timed out", retryAfter: 30 * time.Second}
	}
	return &httpError{status: http.StatusInternalServerError, reason: "internal", msg: "internal error"}
}

// writeError answers err as JSON with the status of the table.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	he := toHTTP(err)
	if a := attemptOf(r.Context()); a != nil {
		a.out.errReason, a.out.errMsg = he.reason, he.msg
	}
	if he.status >= 500 && he.status != http.StatusServiceUnavailable {
		level.Error(g.logger).Log("msg", "internal error", "path", r.URL.Path, "err", err)
	} else {
		level.Debug(g.logger).Log("msg", "request refused", "path", r.URL.Path, "code", he.status, "err", err)
	}
	h := w.Header()
	if r.ContentLength != 0 {
		// The body may be unread: without this, Go's server would read
		// what is left of it (from a client that may send it slowly)
		// before answering, to keep the connection alive.
		h.Set("Connection", "close")
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	body := errorBody{Error: he.msg, Reason: he.reason, Limit: he.limit}
	if he.retryAfter > 0 {
		secs := int64((he.retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
		body.RetryAfter = secs
	}
	w.WriteHeader(he.status)
	b, _ := json.Marshal(body)
	w.Write(append(b, '\n'))
	return he.status
}
