package forward

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
)

// fakeClock is a settable SpoolOptions.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// deadLetterOne spools one body for cluster and replays it into a
// downstream that refuses it for good, so it ends under dead/.
func deadLetterOne(t *testing.T, s *Spool, cluster string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Put(ctx, cluster, body(t, time.Now().UnixMilli(), 10, "m")); err != nil {
		t.Fatal(err)
	}
	_, before := s.DeadStats()
	down := &fakeDown{fn: func([]byte) error { return &Error{Status: 400, Msg: "invalid"} }}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s.Replay(rctx, down, ReplayOptions{Interval: 5 * time.Millisecond})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, _, _ := s.Stats()
		if _, db := s.DeadStats(); o == 0 && db > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("object not dead-lettered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeadLettersCountAgainstMaxBytes(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, b := openSpool(t, dir, SpoolOptions{Registerer: reg})
	deadLetterOne(t, s, "bad")
	deadObjs, deadBytes := s.DeadStats()
	if deadObjs != 1 || deadBytes <= 0 {
		t.Fatalf("dead stats %d objects %d bytes, want 1 object", deadObjs, deadBytes)
	}
	if n := listAll(t, b, deadDir); len(n) != 1 {
		t.Fatalf("dead/ holds %v", n)
	}
	if v := gaugeValue(t, reg, "telegate_spool_dead_objects"); v != 1 {
		t.Errorf("telegate_spool_dead_objects = %v, want 1", v)
	}
	if v := gaugeValue(t, reg, "telegate_spool_dead_bytes"); v != float64(deadBytes) {
		t.Errorf("telegate_spool_dead_bytes = %v, want %d", v, deadBytes)
	}
	if v := gaugeValue(t, reg, "telegate_spool_bytes"); v != 0 {
		t.Errorf("telegate_spool_bytes = %v: dead letters are not pending", v)
	}

	// Room for the dead letter and one and a half pending objects: the
	// second Put is refused (without the dead letter both would fit).
	b1 := body(t, time.Now().UnixMilli(), 10, "m")
	obj, _ := encodeObject(&objHeader{ClusterID: "c"}, b1)
	size := int64(len(obj))
	s.opts.MaxBytes = deadBytes + size + size/2
	ctx := context.Background()
	if err := s.Put(ctx, "c", b1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "c", b1); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("second put: %v, want ErrSpoolFull (dead letters count against max_bytes)", err)
	}

	// A new process on the same bucket counts them too.
	s2, _ := openSpool(t, dir, SpoolOptions{MaxBytes: s.opts.MaxBytes})
	if o, db := s2.DeadStats(); o != 1 || db != deadBytes {
		t.Fatalf("after reopen: dead %d objects %d bytes, want 1 and %d", o, db, deadBytes)
	}
	if err := s2.Put(ctx, "c", b1); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("put after reopen: %v, want ErrSpoolFull", err)
	}
}

func TestDeadLettersExpire(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Now()}
	reg := prometheus.NewRegistry()
	s, b := openSpool(t, dir, SpoolOptions{DeadRetention: time.Hour, Now: clock.Now, Registerer: reg})
	deadLetterOne(t, s, "a")
	ctx := context.Background()

	// Younger than the retention: kept.
	clock.Add(30 * time.Minute)
	if err := s.sweepDead(ctx); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.DeadStats(); o != 1 || len(listAll(t, b, deadDir)) != 1 {
		t.Fatalf("dead letter younger than the retention removed (%d indexed)", o)
	}
	deadLetterOne(t, s, "b")

	// The first is now past the retention, the second is not.
	clock.Add(45 * time.Minute)
	if err := s.sweepDead(ctx); err != nil {
		t.Fatal(err)
	}
	left := listAll(t, b, deadDir)
	if len(left) != 1 || !strings.Contains(left[0], "/"+clusterKey("b")+"/") {
		t.Fatalf("after expiry dead/ holds %v, want only b's", left)
	}
	_, bb := s.DeadStats()
	if o, _ := s.DeadStats(); o != 1 {
		t.Fatalf("%d dead letters indexed, want 1", o)
	}
	if v := counterValue(s.m.expired); v != 1 {
		t.Errorf("telegate_spool_dead_expired_total = %v, want 1", v)
	}
	if v := gaugeValue(t, reg, "telegate_spool_dead_bytes"); v != float64(bb) {
		t.Errorf("telegate_spool_dead_bytes = %v, want %d", v, bb)
	}

	// Retention 0 keeps them however old.
	keep, _ := openSpool(t, dir, SpoolOptions{Now: func() time.Time { return clock.Now().Add(1000 * time.Hour) }})
	if err := keep.sweepDead(ctx); err != nil {
		t.Fatal(err)
	}
	if len(listAll(t, b, deadDir)) != 1 {
		t.Fatal("retention 0 expired a dead letter")
	}
}

// A dead letter removed by hand (re-sent, or inspected and deleted) stops
// counting against max_bytes at the next sweep, without counting as
// expired; one put there by hand starts counting.
func TestDeadLettersSweepFollowsBucket(t *testing.T) {
	s, b := openSpool(t, t.TempDir(), SpoolOptions{})
	deadLetterOne(t, s, "a")
	ctx := context.Background()
	for _, n := range listAll(t, b, deadDir) {
		if err := b.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Upload(ctx, deadDir+"x00/manual.bad_request", strings.NewReader("12345")); err != nil {
		t.Fatal(err)
	}
	if err := s.sweepDead(ctx); err != nil {
		t.Fatal(err)
	}
	if o, db := s.DeadStats(); o != 1 || db != 5 {
		t.Fatalf("after sweep: %d dead objects %d bytes, want 1 and 5", o, db)
	}
	if v := counterValue(s.m.expired); v != 0 {
		t.Errorf("expired_total = %v for dead letters removed by hand", v)
	}
}

// Replay sweeps dead/ in the background.
func TestReplayExpiresDeadLetters(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s, b := openSpool(t, t.TempDir(), SpoolOptions{DeadRetention: time.Hour, Now: clock.Now})
	deadLetterOne(t, s, "a")
	clock.Add(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Replay(ctx, &fakeDown{}, ReplayOptions{Interval: 5 * time.Millisecond, DeadSweepInterval: 5 * time.Millisecond})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if o, _ := s.DeadStats(); o == 0 && len(listAll(t, b, deadDir)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replay did not expire the dead letter")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenSpoolRejectsNegativeDeadRetention(t *testing.T) {
	b := objstore.NewInMemBucket()
	if _, err := OpenSpool(context.Background(), b, SpoolOptions{DeadRetention: -time.Second}); err == nil {
		t.Fatal("negative dead_letter_retention accepted")
	}
}
