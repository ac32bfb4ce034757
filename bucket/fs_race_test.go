package bucket

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
)

// Delete removes the directories it empties, up to the root; an Upload to a
// sibling must not fail because its parent vanished between creating the
// directories and creating the file (the spool answered 503 for that).
func TestFilesystemUploadRacesDelete(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				name := fmt.Sprintf("spool/c%d/%06d", g, i)
				if err := b.Upload(ctx, name, bytes.NewReader([]byte("x"))); err != nil {
					errs <- fmt.Errorf("upload %s: %w", name, err)
					return
				}
				if err := b.Delete(ctx, name); err != nil {
					errs <- fmt.Errorf("delete %s: %w", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
