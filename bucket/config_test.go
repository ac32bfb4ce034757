package bucket

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Config{Type: "filesystem", Config: map[string]any{"directory": dir}, Prefix: "gw-0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(context.Background(), "o", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gw-0", "o")); err != nil {
		t.Fatalf("prefix not applied: %v", err)
	}
	for _, c := range []Config{
		{},
		{Type: "S3", Config: map[string]any{"bucket": "x"}}, // no endpoint
		{Type: "FILESYSTEM"},
		{Type: "FILESYSTEM", Config: map[string]any{"directory": dir, "dirctory": "typo"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
