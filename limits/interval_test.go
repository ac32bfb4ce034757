package limits

import (
	"testing"
	"time"
)

func TestIntervalLimiter(t *testing.T) {
	l := NewIntervalLimiter(100 * time.Second) // slack 10s
	t0 := time.Unix(1000, 0)
	rel, _, ok := l.Reserve("a", t0)
	if !ok {
		t.Fatal("first upload refused")
	}
	rel(true)
	if _, wait, ok := l.Reserve("a", t0.Add(50*time.Second)); ok || wait != 40*time.Second {
		t.Fatalf("second upload inside interval: ok=%v wait=%v", ok, wait)
	}
	if _, _, ok := l.Reserve("b", t0.Add(50*time.Second)); !ok {
		t.Fatal("other cluster refused")
	}
	if _, _, ok := l.Reserve("a", t0.Add(91*time.Second)); !ok {
		t.Fatal("upload within slack refused")
	}
}

func TestIntervalLimiterReleaseOnFailure(t *testing.T) {
	l := NewIntervalLimiter(time.Minute)
	t0 := time.Unix(1000, 0)
	rel, _, _ := l.Reserve("a", t0)
	rel(true)
	rel, _, ok := l.Reserve("a", t0.Add(2*time.Minute))
	if !ok {
		t.Fatal("refused")
	}
	rel(false) // failed: the earlier success stays the reference
	if _, _, ok := l.Reserve("a", t0.Add(2*time.Minute+time.Second)); !ok {
		t.Fatal("retry after a failed upload refused")
	}
	rel2, _, _ := l.Reserve("new", t0)
	rel2(false)
	if l.Len() != 1 {
		t.Fatalf("failed first upload left state: %d entries", l.Len())
	}
}

func TestIntervalLimiterSweepsAndDisabled(t *testing.T) {
	l := NewIntervalLimiter(time.Minute)
	t0 := time.Unix(1000, 0)
	for _, c := range []string{"a", "b", "c"} {
		rel, _, _ := l.Reserve(c, t0)
		rel(true)
	}
	l.Reserve("d", t0.Add(2*time.Minute))
	if l.Len() != 1 {
		t.Fatalf("stale clusters kept: %d", l.Len())
	}
	off := NewIntervalLimiter(0)
	for i := 0; i < 3; i++ {
		if _, _, ok := off.Reserve("a", t0); !ok {
			t.Fatal("disabled limiter refused")
		}
	}
}
