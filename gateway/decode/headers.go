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

// MessageType is the remote write protobuf message a request carries,
// negotiated by the proto parameter of its Content-Type.
type MessageType int

const (
	// WriteV1 is remote write 1.0, prometheus.WriteRequest.
	WriteV1 MessageType = 1
	// WriteV2 is remote write 2.0, io.prometheus.write.v2.Request.
	WriteV2 MessageType = 2
)

// Fully qualified names of the remote write messages, as the proto
// parameter of Content-Type names them.
const (
	WriteV1Message = "prometheus.WriteRequest"
	WriteV2Message = "io.prometheus.write.v2.Request"
	// RemoteWriteV2ContentType is the Content-Type Prometheus sends with
	// remote write 2.0.
	RemoteWriteV2ContentType = RemoteWriteContentType + ";proto=" + WriteV2Message
)

// String returns the message's fully qualified name.
func (m MessageType) String() string {
	switch m {
	case WriteV1:
		return WriteV1Message
	case WriteV2:
		return WriteV2Message
	}
	return "unknown"
}

// CheckRemoteWriteHeaders negotiates a remote write request by its headers,
// with the rules of Prometheus' receiver (client_golang exp/api/remote
// ParseProtoMsg): Content-Type application/x-protobuf with the proto
// parameter absent or prometheus.WriteRequest is remote write 1.0 (a
// missing Content-Type too), proto=io.prometheus.write.v2.Request is 2.0,
// any other proto or media type is a 415 *Error naming the accepted
// messages. Unlike Prometheus, parameters are parsed per RFC 9110
// (mime.ParseMediaType: spaces around ";" and the parameter name's case
// do not matter). Content-Encoding must be snappy (a 415 *Error
// otherwise), checked first.
//
// The message type is returned whenever the Content-Type names one, also
// with an error about Content-Encoding, so the gateway can answer a 2.0
// request the 2.0 way whatever is refused.
func CheckRemoteWriteHeaders(contentType, contentEncoding string) (MessageType, error) {
	mt, ctErr := remoteWriteMessage(contentType)
	if !strings.EqualFold(strings.TrimSpace(contentEncoding), "snappy") {
		return mt, Unsupported("unsupported Content-Encoding %q for remote write, want snappy", contentEncoding)
	}
	return mt, ctErr
}

func remoteWriteMessage(contentType string) (MessageType, error) {
	switch contentType {
	case "", RemoteWriteContentType: // what Prometheus sends for 1.0: no parsing
		return WriteV1, nil
	case RemoteWriteV2ContentType: // and for 2.0
		return WriteV2, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != RemoteWriteContentType {
		return 0, Unsupported("unsupported Content-Type %q, want %q (remote write 1.0) or %q (2.0)", contentType, RemoteWriteContentType, RemoteWriteV2ContentType)
	}
	switch p := params["proto"]; p {
	case "", WriteV1Message:
		return WriteV1, nil
	case WriteV2Message:
		return WriteV2, nil
	default:
		return 0, Unsupported("unsupported remote write message %q; accepted: %s, %s", p, WriteV1Message, WriteV2Message)
	}
}
