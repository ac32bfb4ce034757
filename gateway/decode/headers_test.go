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
	for _, ct := range []string{"", "application/x-protobuf", "application/x-protobuf;proto=prometheus.WriteRequest"} {
		if err := CheckRemoteWriteHeaders(ct, "snappy"); err != nil {
			t.Errorf("%q: %v", ct, err)
		}
	}
	wantError(t, CheckRemoteWriteHeaders("application/x-protobuf", ""), 415, "Content-Encoding")
	wantError(t, CheckRemoteWriteHeaders("application/x-protobuf", "zstd"), 415, "Content-Encoding")
	wantError(t, CheckRemoteWriteHeaders("application/json", "snappy"), 415, "Content-Type")
	wantError(t, CheckRemoteWriteHeaders("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy"), 415, "remote write 1.0")
}
