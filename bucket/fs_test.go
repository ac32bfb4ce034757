package bucket

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thanos-io/objstore"
)

func TestFilesystemAcceptance(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	objstore.AcceptanceTest(t, b)
}

func TestFilesystemRemovesInterruptedUploads(t *testing.T) {
	dir := t.TempDir()
	b, err := NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Upload(ctx, "a/obj", strings.NewReader("whole")); err != nil {
		t.Fatal(err)
	}
	// A crash mid-upload leaves a temporary file next to the object.
	tmp := filepath.Join(dir, "a", tmpPrefix+"obj2-1234")
	if err := os.WriteFile(tmp, []byte("hal"), 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	collect := func(n string) error { names = append(names, n); return nil }
	if err := b.Iter(ctx, "", collect, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "a/obj" {
		t.Fatalf("listing shows %v, want only a/obj (never a half-written upload)", names)
	}
	if _, err := NewFilesystem(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("interrupted upload not removed on open: %v", err)
	}
	if err := b.Upload(ctx, "a/"+tmpPrefix+"x", strings.NewReader("x")); err == nil {
		t.Fatal("upload under the reserved temporary prefix accepted")
	}
	// A failing reader leaves nothing behind.
	if err := b.Upload(ctx, "a/broken", io.MultiReader(strings.NewReader("part"), errReader{})); err == nil {
		t.Fatal("upload with failing reader succeeded")
	}
	if ok, _ := b.Exists(ctx, "a/broken"); ok {
		t.Fatal("failed upload left an object")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(entries) != 1 {
		t.Fatalf("failed upload left files: %v", entries)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
