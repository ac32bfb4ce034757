package forward

import (
	"context"
	"testing"
	"time"
)

// Purge deletes one cluster's pending objects (a deletion request) and
// leaves the others' in place, in the index and in the bucket.
func TestSpoolPurge(t *testing.T) {
	dir := t.TempDir()
	s, b := openSpool(t, dir, SpoolOptions{})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for i, name := range []string{"a1", "a2"} {
		if err := s.Put(ctx, "cluster-a", body(t, now+int64(i), 1, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "cluster-b", body(t, now, 1, "b1")); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(ctx, "cluster-a")
	if err != nil || n != 2 {
		t.Fatalf("purged %d: %v", n, err)
	}
	if s.HasBacklog("cluster-a") || !s.HasBacklog("cluster-b") {
		t.Fatal("backlog after purge")
	}
	if objs, _, _ := s.Stats(); objs != 1 {
		t.Fatalf("%d objects left", objs)
	}
	if names := listAll(t, b, spoolDir); len(names) != 1 {
		t.Fatalf("bucket holds %v", names)
	}
	// A restart sees the same.
	s2, _ := openSpool(t, dir, SpoolOptions{})
	if s2.HasBacklog("cluster-a") || !s2.HasBacklog("cluster-b") {
		t.Fatal("after reopen")
	}
	if n, err := s.Purge(ctx, "nobody"); n != 0 || err != nil {
		t.Fatalf("purge of an unknown cluster: %d %v", n, err)
	}
}
