package limits

import (
	"context"
	"testing"
	"time"

	"github.com/telegate/telegate/test/e2e/harness"
)

func newRedisStore(t *testing.T, addr string) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(RedisOptions{Address: addr, KeyPrefix: "test:", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisStoreSharedExactly: two stores (two replicas) alternate
// requests; together they admit exactly the budget.
func TestRedisStoreSharedExactly(t *testing.T) {
	r := harness.StartRedis(t)
	a, b := newRedisStore(t, r.Addr()), newRedisStore(t, r.Addr())
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	admittedTotal := 0
	adm := make([]bool, 40)
	for i := 0; i < 10; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		// Every request re-sends the first 10 series and 30 new ones.
		h := append(hashes(0, 10), hashes(1000+i*30, 30)...)
		refused, err := s.AdmitSeries(ctx, "c", h, 100, 10*time.Minute, now.Add(time.Duration(i)*time.Second), adm)
		if err != nil {
			t.Fatal(err)
		}
		if countTrue(adm[:10]) != 10 {
			t.Fatalf("request %d: known series refused", i)
		}
		if refused+countTrue(adm) != 40 {
			t.Fatalf("refused %d + admitted %d != 40", refused, countTrue(adm))
		}
		admittedTotal += countTrue(adm[10:])
	}
	if admittedTotal != 90 {
		t.Fatalf("new series admitted across replicas: %d, want exactly 90 (+10 known = 100)", admittedTotal)
	}
	// Past the window the series expire and new ones fit again.
	adm = make([]bool, 100)
	refused, err := b.AdmitSeries(ctx, "c", hashes(5000, 100), 100, 10*time.Minute, now.Add(11*time.Minute), adm)
	if err != nil || refused != 0 {
		t.Fatalf("after the window: refused %d, %v", refused, err)
	}
}

func TestRedisStoreSamplesAndUploads(t *testing.T) {
	r := harness.StartRedis(t)
	a, b := newRedisStore(t, r.Addr()), newRedisStore(t, r.Addr())
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	if ok, _, err := a.TakeSamples(ctx, "c", 80, 10, 100, now); !ok || err != nil {
		t.Fatalf("80 of 100: %v", err)
	}
	ok, wait, err := b.TakeSamples(ctx, "c", 30, 10, 100, now)
	if ok || err != nil || wait != time.Second {
		t.Fatalf("second replica over the bucket: ok=%v wait=%v err=%v", ok, wait, err)
	}
	if ok, _, _ := b.TakeSamples(ctx, "c", 30, 10, 100, now.Add(time.Second)); !ok {
		t.Fatal("refilled bucket refused")
	}
	if ok, _, _ := a.TakeSamples(ctx, "big", 250, 10, 100, now); !ok {
		t.Fatal("oversized request on a full bucket refused")
	}
	if ok, _, _ := b.TakeSamples(ctx, "big", 1, 10, 100, now.Add(time.Second)); ok {
		t.Fatal("bucket in debt admitted")
	}

	rel, _, ok, err := a.ReserveUpload(ctx, "c", time.Minute, now)
	if !ok || err != nil {
		t.Fatalf("first upload: %v", err)
	}
	_, wait, ok, err = b.ReserveUpload(ctx, "c", time.Minute, now)
	if ok || err != nil || wait <= 50*time.Second || wait > 54*time.Second {
		t.Fatalf("second upload on the other replica: ok=%v wait=%v err=%v", ok, wait, err)
	}
	rel(false)
	rel2, _, ok, _ := b.ReserveUpload(ctx, "c", time.Minute, now)
	if !ok {
		t.Fatal("released slot still held")
	}
	rel2(true)
	if _, _, ok, _ := a.ReserveUpload(ctx, "c", time.Minute, now); ok {
		t.Fatal("successful upload did not hold the slot")
	}
}

func TestRedisStoreDown(t *testing.T) {
	r := harness.StartRedis(t)
	s := newRedisStore(t, r.Addr())
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	r.Process().Stop()
	l := New(Options{Defaults: Budget{ActiveSeries: ActiveSeries{Max: 1, Enforce: true}}, Store: s, FailOpen: true})
	adm := make([]bool, 3)
	start := time.Now()
	d, err := l.AdmitSeries(ctx, "c", []uint64{1, 2, 3}, adm)
	if err != nil || d.Refused != 0 || countTrue(adm) != 3 {
		t.Fatalf("fail open with Redis down: %+v %v", d, err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Redis down took %v", el)
	}
	if value(l.storeErrors.WithLabelValues("active_series")) != 1 {
		t.Fatal("store error not counted")
	}
}

// Replicas sharing a Redis see each other by their heartbeats; one that
// stopped beating drops out after the TTL.
func TestRedisReplicasSeen(t *testing.T) {
	r := harness.StartRedis(t)
	s, err := NewRedisStore(RedisOptions{Address: r.Addr(), KeyPrefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	for _, name := range []string{"gw-0", "gw-1"} {
		if err := s.Heartbeat(ctx, name, now, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Heartbeat(ctx, "gw-2", now.Add(-time.Minute), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	seen, err := s.Replicas(ctx, now, 30*time.Second)
	if err != nil || len(seen) != 2 {
		t.Fatalf("%v %v", seen, err)
	}
	if err := s.Heartbeat(ctx, "gw-0", now.Add(40*time.Second), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	seen, _ = s.Replicas(ctx, now.Add(40*time.Second), 30*time.Second)
	if len(seen) != 1 || seen[0].Name != "gw-0" {
		t.Fatalf("after gw-1 stopped: %v", seen)
	}
}
