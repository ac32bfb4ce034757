package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// thanosHashringConflict is what a Thanos Receive hashring (replication
// factor 3) answers when two replicas refuse a sample as out of order:
// the cause comes after every endpoint's address, past Error.Msg's cut.
func thanosHashringConflict(cause string) string {
	ep := "forwarding request to endpoint addr: thanos-receive-2.thanos-receive-headless.monitoring.svc.cluster.local:10901, capnp_addr: thanos-receive-2.thanos-receive-headless.monitoring.svc.cluster.local:19391, az: "
	return "2 errors: " + ep + ": rpc error: code = AlreadyExists desc = " + ep + ": writing locally: add 2 samples: " + cause + "; " + ep + ": writing locally: add 2 samples: " + cause + "\n"
}

func TestSendClassifiesOutOfOrder(t *testing.T) {
	for _, c := range []struct {
		code int
		body string
		want bool
	}{
		{409, thanosHashringConflict("out of order sample"), true},
		{409, thanosHashringConflict("out of bounds"), true},
		{409, "writing locally: add 1 samples: too old sample", true},
		{400, "out of order sample", true}, // Prometheus' receiver
		{409, "duplicate sample for timestamp", false},
		{400, "invalid label name", false},
		{422, "out of order sample", false},
		{413, "too large", false},
	} {
		t.Run(fmt.Sprintf("%d %.30s", c.code, c.body), func(t *testing.T) {
			_, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				http.Error(w, c.body, c.code)
			})
			s := newSender(t, Config{URL: srv.URL}, nil, nil)
			_, body := testBody(t)
			err := s.Send(context.Background(), body)
			e := asError(t, err)
			if got := errors.Is(err, ErrOutOfOrder); got != c.want {
				t.Fatalf("errors.Is(ErrOutOfOrder) = %v for %d %q", got, c.code, c.body)
			}
			if e.Recoverable || e.Status != c.code || len(e.Msg) > maxErrorMsgBytes {
				t.Fatalf("unexpected error %+v", e)
			}
			if deadReason(err) == "" {
				t.Fatalf("a %d is not a dead-letter reason", c.code)
			}
		})
	}
}

// conflictDown refuses the bodies of the named series as out of order the
// given number of times (-1: always), then accepts them.
type conflictDown struct {
	mu       sync.Mutex
	refuse   map[string]int
	attempts map[string][]time.Time
	accepted []string
}

func (d *conflictDown) Send(_ context.Context, body []byte) error {
	name := decodeNamesNoT(body)[0]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.attempts == nil {
		d.attempts = map[string][]time.Time{}
	}
	d.attempts[name] = append(d.attempts[name], time.Now())
	if n := d.refuse[name]; n != 0 {
		d.refuse[name] = n - 1
		return &Error{Status: 409, Msg: "add 1 samples: out of order sample", err: ErrOutOfOrder}
	}
	d.accepted = append(d.accepted, name)
	return nil
}

func (d *conflictDown) snapshot() (map[string]int, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := map[string]int{}
	for k, v := range d.attempts {
		n[k] = len(v)
	}
	return n, append([]string(nil), d.accepted...)
}

func runReplay(t *testing.T, s *Spool, down BodySender, o ReplayOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Replay(ctx, down, o)
		close(done)
	}()
	return func() { cancel(); <-done }
}

func waitDrained(t *testing.T, s *Spool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if o, _, _ := s.Stats(); o == 0 {
			return
		}
		if time.Now().After(deadline) {
			o, _, _ := s.Stats()
			t.Fatalf("spool still holds %d objects after %s", o, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplayRetriesOutOfOrder: an object refused as out of order is not
// dead-lettered at once: its cluster waits (its next object stays behind
// it), the conflict is counted, other clusters go on, and a later retry
// that the downstream takes removes it.
func TestReplayRetriesOutOfOrder(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, b := openSpool(t, t.TempDir(), SpoolOptions{Registerer: reg})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for _, p := range []struct{ cluster, name string }{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}} {
		if err := s.Put(ctx, p.cluster, body(t, now, 1, p.name)); err != nil {
			t.Fatal(err)
		}
	}
	down := &conflictDown{refuse: map[string]int{"a1": 2}}
	const backoff = 50 * time.Millisecond
	stop := runReplay(t, s, down, ReplayOptions{Interval: 5 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, ConflictBackoff: backoff})
	waitDrained(t, s, 10*time.Second)
	stop()

	attempts, accepted := down.snapshot()
	if attempts["a1"] != 3 {
		t.Fatalf("a1 tried %d times, want 3 (2 refusals, then accepted)", attempts["a1"])
	}
	ia1, ia2 := -1, -1
	for i, n := range accepted {
		switch n {
		case "a1":
			ia1 = i
		case "a2":
			ia2 = i
		}
	}
	if len(accepted) != 3 || ia1 < 0 || ia2 < ia1 {
		t.Fatalf("accepted %v: want all three, a2 after a1", accepted)
	}
	if accepted[0] != "b1" {
		t.Fatalf("accepted %v: cluster b should not wait for a's conflict", accepted)
	}
	down.mu.Lock()
	gap1 := down.attempts["a1"][1].Sub(down.attempts["a1"][0])
	gap2 := down.attempts["a1"][2].Sub(down.attempts["a1"][1])
	down.mu.Unlock()
	if gap1 < backoff || gap2 < 2*backoff {
		t.Fatalf("retries after %v and %v, want at least %v and %v (doubling)", gap1, gap2, backoff, 2*backoff)
	}
	if dead := listAll(t, b, deadDir); len(dead) != 0 {
		t.Fatalf("dead letters %v", dead)
	}
	if v := counterValue(s.m.conflicts); v != 2 {
		t.Fatalf("telegate_spool_replay_conflicts_total = %v, want 2", v)
	}
	if v := counterValue(s.m.replayErrs); v != 0 {
		t.Fatalf("a conflict counted as a replay failure (%v)", v)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := false
	for _, mf := range mfs {
		if mf.GetName() == "telegate_spool_replay_conflicts_total" {
			registered = mf.GetMetric()[0].GetCounter().GetValue() == 2
		}
	}
	if !registered {
		t.Fatal("telegate_spool_replay_conflicts_total not registered with 2")
	}
}

// TestReplayDeadLettersPersistentConflict: a conflict that stays is
// dead-lettered as conflict after ConflictRetries retries, saying so.
func TestReplayDeadLettersPersistentConflict(t *testing.T) {
	s, b := openSpool(t, t.TempDir(), SpoolOptions{})
	ctx := context.Background()
	if err := s.Put(ctx, "a", body(t, time.Now().UnixMilli(), 1, "a1")); err != nil {
		t.Fatal(err)
	}
	down := &conflictDown{refuse: map[string]int{"a1": -1}}
	stop := runReplay(t, s, down, ReplayOptions{Interval: 5 * time.Millisecond, ConflictRetries: 3, ConflictBackoff: 5 * time.Millisecond})
	waitDrained(t, s, 10*time.Second)
	stop()
	attempts, _ := down.snapshot()
	if attempts["a1"] != 4 {
		t.Fatalf("tried %d times, want 4 (1 + 3 retries)", attempts["a1"])
	}
	dead := listAll(t, b, deadDir)
	if len(dead) != 1 || !strings.HasSuffix(dead[0], "."+DeadConflict) {
		t.Fatalf("dead letters %v, want one conflict", dead)
	}
	rc, err := b.Get(ctx, dead[0])
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	h, _, err := decodeObject(data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.Message, "4 times") || !strings.Contains(h.Message, "out of order sample") {
		t.Fatalf("dead letter message %q", h.Message)
	}
	if v := counterValue(s.m.conflicts); v != 4 {
		t.Fatalf("conflicts_total = %v, want 4", v)
	}
}

// TestReplayConflictRetriesNegative: ConflictRetries < 0 dead-letters at
// the first out-of-order refusal, as before retries existed.
func TestReplayConflictRetriesNegative(t *testing.T) {
	s, b := openSpool(t, t.TempDir(), SpoolOptions{})
	if err := s.Put(context.Background(), "a", body(t, time.Now().UnixMilli(), 1, "a1")); err != nil {
		t.Fatal(err)
	}
	down := &conflictDown{refuse: map[string]int{"a1": -1}}
	stop := runReplay(t, s, down, ReplayOptions{Interval: 5 * time.Millisecond, ConflictRetries: -1})
	waitDrained(t, s, 10*time.Second)
	stop()
	if attempts, _ := down.snapshot(); attempts["a1"] != 1 {
		t.Fatalf("tried %d times, want 1", attempts["a1"])
	}
	if dead := listAll(t, b, deadDir); len(dead) != 1 {
		t.Fatalf("dead letters %v", dead)
	}
}

func TestConflictWaitDoubles(t *testing.T) {
	o := ReplayOptions{}
	o.setDefaults()
	var total time.Duration
	for i := 1; i <= o.ConflictRetries; i++ {
		w := o.conflictWait(i)
		if want := DefaultConflictBackoff << (i - 1); w != want {
			t.Fatalf("wait %d = %v, want %v", i, w, want)
		}
		total += w
	}
	if total != 310*time.Second {
		t.Fatalf("default retries span %v", total)
	}
	if w := (&ReplayOptions{ConflictBackoff: time.Minute}).conflictWait(40); w != time.Hour {
		t.Fatalf("capped wait = %v", w)
	}
}
