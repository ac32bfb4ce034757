package decode

import (
	"errors"
	"fmt"
	"net/http"
)

// Cap names as they appear in the configuration file; error messages name
// them so an operator knows which limit to look at.
const (
	CapDecodedBytes = "max_decoded_bytes"
	CapSeries       = "max_series_per_request"
	CapBodyBytes    = "max_request_bytes"
)

// Error is a decoding failure together with the HTTP status the gateway
// answers with. Msg is short, human-readable and safe to send to clients.
type Error struct {
	Status int
	Msg    string
	// Reason, when set, is the machine-readable reason the gateway
	// answers with instead of the one it derives from Status.
	Reason string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest returns a 400 error for a malformed body.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// TooLarge returns a 413 error naming the configured cap, its value and
// what the request brought (seen, e.g. "decoded body of 40000000 bytes").
func TooLarge(capName string, limit int, seen string) *Error {
	return &Error{
		Status: http.StatusRequestEntityTooLarge,
		Msg:    fmt.Sprintf("%s exceeds %s (%d)", seen, capName, limit),
	}
}

// Unsupported returns a 415 error for an unsupported Content-Type or
// Content-Encoding.
func Unsupported(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf returns the HTTP status for err: the Status of an *Error in its
// chain, 413 for an *http.MaxBytesError (the body reader's cap), and 400 for
// anything else, since every error a decoder returns stems from the request.
func StatusOf(err error) int {
	var de *Error
	if errors.As(err, &de) {
		return de.Status
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// readError classifies an error returned while reading the request body.
func readError(err error) *Error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return TooLarge(CapBodyBytes, int(mbe.Limit), "request body")
	}
	return BadRequest("reading body: %v", err)
}
