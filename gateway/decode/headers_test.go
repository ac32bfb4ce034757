package decode

import (
	"bytes"
	"testing"
)

func TestCheckUploadContentType(t *testing.T) {
	for _, ct := range []string{"", UploadContentType, "application/vnd.google.protobuf", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
		if err := CheckUploadContentType(ct); err != nil {
			t.Errorf("%q: %v", ct, err)
		}
	}
	for _, ct := range []string{"text/plain; version=0.0.4", "application/vnd.google.protobuf; proto=other", "application/vnd.google.protobuf; encoding=text", ";;"} {
		wantError(t, CheckUploadContentType(ct), 415, "unsupported Content-Type")
	}
}

func TestUploadBody(t *testing.T) {
	data := payload(5000)
	for _, enc := range []string{"snappy", "Snappy"} {
		if out, err := UploadBody(nil, bytes.NewReader(framed(t, data)), enc, 1<<20, nil); err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%s: %v", enc, err)
		}
	}
	for _, enc := range []string{"", "identity"} {
		if out, err := UploadBody(nil, bytes.NewReader(data), enc, 1<<20, nil); err != nil || !bytes.Equal(out, data) {
			t.Fatalf("%q: %v", enc, err)
		}
	}
	_, err := UploadBody(nil, bytes.NewReader(data), "", 100, nil)
	wantError(t, err, 413, "max_decoded_bytes (100)")
	_, err = UploadBody(nil, bytes.NewReader(data), "gzip", 1<<20, nil)
	wantError(t, err, 415, `unsupported Content-Encoding "gzip"`)
}

func TestCheckRemoteWriteHeaders(t *testing.T) {
	for ct, want := range map[string]MessageType{
		"":                       WriteV1,
		"application/x-protobuf": WriteV1,
		"application/x-protobuf;proto=prometheus.WriteRequest":         WriteV1,
		"application/x-protobuf; proto=prometheus.WriteRequest":        WriteV1,
		"application/x-protobuf;proto=io.prometheus.write.v2.Request":  WriteV2,
		"application/x-protobuf; proto=io.prometheus.write.v2.Request": WriteV2,
		"Application/X-Protobuf;Proto=io.prometheus.write.v2.Request":  WriteV2,
	} {
		got, err := CheckRemoteWriteHeaders(ct, "snappy")
		if err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", ct, got, err, want)
		}
	}
	check := func(ct, ce string, want MessageType, substr string) {
		t.Helper()
		got, err := CheckRemoteWriteHeaders(ct, ce)
		wantError(t, err, 415, substr)
		if got != want {
			t.Errorf("%q %q: message %v, want %v", ct, ce, got, want)
		}
	}
	check("application/x-protobuf", "", WriteV1, "Content-Encoding")
	check("application/x-protobuf", "zstd", WriteV1, "Content-Encoding")
	check(RemoteWriteV2ContentType, "zstd", WriteV2, "Content-Encoding")
	check("application/json", "snappy", 0, "Content-Type")
	check("application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy", 0,
		`unsupported remote write message "io.prometheus.write.v3.Request"; accepted: prometheus.WriteRequest, io.prometheus.write.v2.Request`)
	check("application/x-protobuf;proto=x", "snappy", 0, `unsupported remote write message "x"`)
}
