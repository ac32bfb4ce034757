package deletion

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/bucket"
)

func TestLogDurableSharedAndAudited(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, bkt, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, bkt, nil) // another replica on the same bucket
	if err != nil {
		t.Fatal(err)
	}
	r, created, err := a.Request(ctx, "c1", ByInstallation)
	if err != nil || !created || r.State != Pending {
		t.Fatalf("%+v %v %v", r, created, err)
	}
	if _, created, _ := a.Request(ctx, "c1", ByOperator); created {
		t.Fatal("a second request created another")
	}
	if !a.Deleted("c1") || a.Deleted("c2") {
		t.Fatal("Deleted")
	}
	if b.Deleted("c1") {
		t.Fatal("the other replica knew before refreshing")
	}
	if err := b.Refresh(ctx); err != nil || !b.Deleted("c1") {
		t.Fatalf("the other replica after refreshing: %v", err)
	}
	if err := a.Note(ctx, "c1", "spool purged", false); err != nil {
		t.Fatal(err)
	}
	cfg := string(a.RewriteConfig("_id"))
	if !strings.Contains(cfg, `- matchers: "{_id=\"c1\"}"`) {
		t.Fatalf("rewrite config:\n%s", cfg)
	}
	if err := a.Note(ctx, "c1", "rewritten in the bucket", true); err != nil {
		t.Fatal(err)
	}
	if len(a.Pending()) != 0 || !strings.Contains(string(a.RewriteConfig("_id")), "[]") {
		t.Fatal("done request still pending")
	}
	// A restart reads state and audit trail back.
	c, err := Open(ctx, bkt, func() time.Time { return time.Unix(0, 0) })
	if err != nil {
		t.Fatal(err)
	}
	list := c.List()
	if len(list) != 1 || list[0].State != Done || len(list[0].Audit) != 3 || list[0].Audit[1].What != "spool purged" {
		t.Fatalf("%+v", list)
	}
	if err := c.Note(ctx, "nope", "x", false); err == nil {
		t.Fatal("note on an unknown ID")
	}
}
