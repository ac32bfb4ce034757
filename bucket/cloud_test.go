package bucket

import (
	"context"
	"strings"
	"testing"

	"github.com/thanos-io/objstore"
)

func TestCloudConfigChecks(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Type: "S3", Config: map[string]any{"bucket": "b"}}, "needs endpoint"},
		{Config{Type: "s3", Config: map[string]any{"bucket": "b", "endpoint": "x", "acess_key": "typo"}}, "acess_key"},
		{Config{Type: "GCS", Config: map[string]any{}}, "needs bucket"},
		{Config{Type: "AZURE", Config: map[string]any{"container": "c"}}, "storage_account"},
		{Config{Type: "S3", Prefix: "../x", Config: map[string]any{"bucket": "b", "endpoint": "x"}}, "prefix"},
		{Config{Type: "SWIFT", Config: map[string]any{}}, "not supported"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	ok := Config{Type: "S3", Config: map[string]any{"bucket": "b", "endpoint": "127.0.0.1:1", "insecure": true, "access_key": "a", "secret_key": "s"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// An S3 spool whose store is unreachable makes Put fail, so the gateway
// answers 503 instead of acknowledging data it did not keep.
func TestS3SpoolUnreachableFailsPut(t *testing.T) {
	b, err := New(Config{Type: "S3", Prefix: "gw-1", Config: map[string]any{
		"bucket": "spool", "endpoint": "127.0.0.1:1", "insecure": true, "access_key": "a", "secret_key": "s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*objstore.PrefixedBucket); !ok {
		t.Fatalf("prefix not applied: %T", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	if err := b.Upload(ctx, "o", strings.NewReader("x")); err == nil {
		t.Fatal("upload to an unreachable S3 endpoint succeeded")
	}
}
