package decode

import (
	"io"
	"mime"
	"strings"
)

// Media types of the two ingest protocols.
const (
	UploadContentType      = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	RemoteWriteContentType = "application/x-protobuf"
)

// CheckUploadContentType accepts the /upload Content-Type telemeter-client
// sends (parameters may be omitted, a missing header is tolerated) and
// returns a 415 *Error for anything else.
func CheckUploadContentType(contentType string) error {
	if contentType == "" || contentType == UploadContentType { // what clients send: no parsing
		return nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/vnd.google.protobuf" ||
		(params["proto"] != "" && params["proto"] != "io.prometheus.client.MetricFamily") ||
		(params["encoding"] != "" && params["encoding"] != "delimited") {
		return Unsupported("unsupported Content-Type %q, want %q", contentType, UploadContentType)
	}
	return nil
}

// UploadBody reads a /upload body according to its Content-Encoding:
// "snappy" is the snappy framing format, "" or "identity" is read as is;
// anything else is a 415 *Error. The decoded size is capped, and reserve
// called, as in DecodeFramed.
func UploadBody(dst []byte, r io.Reader, contentEncoding string, maxDecoded int, reserve Reserve) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "snappy":
		return DecodeFramed(dst, r, maxDecoded, reserve)
	case "", "identity":
		return ReadAllCapped(dst, r, maxDecoded, reserve)
	}
	return dst[:0], Unsupported("unsupported Content-Encoding %q for /upload, want snappy or none", contentEncoding)
}

// CheckRemoteWriteHeaders accepts remote write 1.0 requests: Content-Encoding
// snappy and Content-Type application/x-protobuf (proto parameter absent or
// prometheus.WriteRequest; a missing Content-Type is tolerated). Anything
// else, including remote write 2.0, is a 415 *Error.
func CheckRemoteWriteHeaders(contentType, contentEncoding string) error {
	if !strings.EqualFold(strings.TrimSpace(contentEncoding), "snappy") {
		return Unsupported("unsupported Content-Encoding %q for remote write, want snappy", contentEncoding)
	}
	if contentType == "" || contentType == RemoteWriteContentType { // what Prometheus sends: no parsing
		return nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != RemoteWriteContentType {
		return Unsupported("unsupported Content-Type %q, want %q", contentType, RemoteWriteContentType)
	}
	if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
		return Unsupported("unsupported remote write message %q, want prometheus.WriteRequest (remote write 1.0)", p)
	}
	return nil
}
