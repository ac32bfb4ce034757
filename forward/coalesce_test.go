package forward

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	"github.com/thanos-io/objstore"
)

// gateDown is a downstream whose first Send blocks until release is
// closed; it records the series names of every body it is sent, per
// call, and answers with fn (nil: 2xx).
type gateDown struct {
	mu      sync.Mutex
	calls   [][]string
	fn      func(names []string) error
	entered chan struct{}
	release chan struct{}
	first   sync.Once
}

func newGateDown() *gateDown {
	return &gateDown{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateDown) Send(ctx context.Context, body []byte) error {
	names := decodeNamesNoT(body)
	block := false
	g.first.Do(func() { block = true })
	if block {
		close(g.entered)
		<-g.release
	}
	g.mu.Lock()
	g.calls = append(g.calls, names)
	fn := g.fn
	g.mu.Unlock()
	if fn != nil {
		return fn(names)
	}
	return nil
}

func (g *gateDown) snapshot() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

func (c *Coalescer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// waitQueued waits until n sends are queued behind the one in flight.
func waitQueued(t *testing.T, c *Coalescer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", c.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func newTestCoalescer(t *testing.T, down BodySender, o CoalesceOptions) *Coalescer {
	t.Helper()
	c, err := NewCoalescer(down, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startQueued starts the blocking first send ("first") and then n more,
// named m0..m(n-1), one at a time so the queue keeps their order, and
// returns their errors' channel (the first's error comes first).
func startQueued(t *testing.T, c *Coalescer, g *gateDown, n int, send func(i int, name string, body []byte) error) []chan error {
	t.Helper()
	ts := time.Now().UnixMilli()
	errs := make([]chan error, n+1)
	for i := range errs {
		errs[i] = make(chan error, 1)
	}
	go func() { errs[0] <- send(-1, "first", body(t, ts, 1, "first")) }()
	<-g.entered
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		b := body(t, ts, 1, name)
		go func() { errs[i+1] <- send(i, name, b) }()
		waitQueued(t, c, i+1)
	}
	return errs
}

func TestCoalescerGroupsSendsQueuedBehindOneInFlight(t *testing.T) {
	g := newGateDown()
	c := newTestCoalescer(t, g, CoalesceOptions{})
	const n = 10
	errs := startQueued(t, c, g, n, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
	close(g.release)
	for i, ch := range errs {
		if err := <-ch; err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	calls := g.snapshot()
	if len(calls) != 2 {
		t.Fatalf("%d downstream requests for %d sends, want 2: %v", len(calls), n+1, calls)
	}
	if want := []string{"first"}; !slices.Equal(calls[0], want) {
		t.Fatalf("first request %v, want %v", calls[0], want)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	// Every queued series exactly once, in arrival order.
	if !slices.Equal(calls[1], want) {
		t.Fatalf("coalesced request %v, want %v", calls[1], want)
	}
	if c.queued() != 0 || c.inFlight != 0 {
		t.Fatal("coalescer not idle after the sends")
	}
}

// TestCoalescerConcurrentRace has many goroutines send at once through a
// slow downstream: fewer requests than sends, every series exactly once.
func TestCoalescerConcurrentRace(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	requests := 0
	down := BodySenderFunc(func(ctx context.Context, b []byte) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		requests++
		for _, n := range decodeNamesNoT(b) {
			seen[n]++
		}
		return nil
	})
	c := newTestCoalescer(t, down, CoalesceOptions{MaxRequests: 8})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	ts := time.Now().UnixMilli()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := c.Send(context.Background(), body(t, ts, 1, fmt.Sprintf("w%d_%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Fatalf("%d distinct series downstream, want %d", len(seen), workers*each)
	}
	for n, k := range seen {
		if k != 1 {
			t.Fatalf("series %s sent %d times", n, k)
		}
	}
	if requests >= workers*each {
		t.Fatalf("%d downstream requests for %d sends: nothing coalesced", requests, workers*each)
	}
	t.Logf("%d downstream requests for %d sends", requests, workers*each)
}

func TestCoalescerSendsAtOnceWhenIdle(t *testing.T) {
	var got []byte
	calls := 0
	c := newTestCoalescer(t, BodySenderFunc(func(_ context.Context, b []byte) error { got = b; calls++; return nil }), CoalesceOptions{})
	b := body(t, 1, 1, "x")
	for range 3 {
		if err := c.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// The body itself, not a re-encoding, one request per send.
	if calls != 3 || &got[0] != &b[0] {
		t.Fatalf("calls %d, same body %v", calls, &got[0] == &b[0])
	}
}

func TestCoalescerCapsGroups(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		g := newGateDown()
		c := newTestCoalescer(t, g, CoalesceOptions{MaxRequests: 3})
		errs := startQueued(t, c, g, 7, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
		close(g.release)
		for _, ch := range errs {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		var sizes []int
		for _, call := range g.snapshot() {
			sizes = append(sizes, len(call))
		}
		if want := []int{1, 3, 3, 1}; !slices.Equal(sizes, want) {
			t.Fatalf("request sizes %v, want %v", sizes, want)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		n, _ := s2.DecodedLen(body(t, time.Now().UnixMilli(), 1, "m0"))
		g := newGateDown()
		c := newTestCoalescer(t, g, CoalesceOptions{MaxBytes: 2*n + n/2})
		errs := startQueued(t, c, g, 5, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
		close(g.release)
		for _, ch := range errs {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		var sizes []int
		for _, call := range g.snapshot() {
			sizes = append(sizes, len(call))
		}
		if want := []int{1, 2, 2, 1}; !slices.Equal(sizes, want) {
			t.Fatalf("request sizes %v, want %v", sizes, want)
		}
	})
}

// TestCoalescerPartialRejectionSendsAlone: a 400 for a coalesced body
// that holds one bad request fails only that request.
func TestCoalescerPartialRejectionSendsAlone(t *testing.T) {
	g := newGateDown()
	g.fn = func(names []string) error {
		if slices.Contains(names, "m2") {
			return &Error{Status: http.StatusBadRequest, Msg: "bad m2"}
		}
		return nil
	}
	c := newTestCoalescer(t, g, CoalesceOptions{})
	errs := startQueued(t, c, g, 4, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
	close(g.release)
	for i, ch := range errs {
		err := <-ch
		var fe *Error
		if i == 3 { // m2
			if !errors.As(err, &fe) || fe.Status != 400 || fe.Msg != "bad m2" {
				t.Fatalf("m2: %v, want its own 400", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	calls := g.snapshot()
	// first, the coalesced m0..m3, then each alone.
	if len(calls) != 6 || len(calls[1]) != 4 {
		t.Fatalf("downstream requests %v", calls)
	}
	alone := []string{}
	for _, call := range calls[2:] {
		if len(call) != 1 {
			t.Fatalf("retry %v not alone", call)
		}
		alone = append(alone, call[0])
	}
	sort.Strings(alone)
	if want := []string{"m0", "m1", "m2", "m3"}; !slices.Equal(alone, want) {
		t.Fatalf("sent alone %v, want %v", alone, want)
	}
}

// TestCoalescerSharedFailure: a failure not about the data is every
// member's, without sending anyone alone.
func TestCoalescerSharedFailure(t *testing.T) {
	for _, e := range []*Error{
		{Status: 503, Recoverable: true, Msg: "down"},
		{Status: 401, Msg: "who"},
		{Status: 415, Msg: "v1 only", err: ErrUnsupported},
	} {
		g := newGateDown()
		g.fn = func([]string) error { return e }
		c := newTestCoalescer(t, g, CoalesceOptions{})
		errs := startQueued(t, c, g, 3, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
		close(g.release)
		for _, ch := range errs {
			if err := <-ch; err != e {
				t.Fatalf("%v, want %v", err, e)
			}
		}
		if calls := g.snapshot(); len(calls) != 2 {
			t.Fatalf("status %d: %d requests, want 2", e.Status, len(calls))
		}
	}
}

// spooledNames reads every object of the spool: cluster key -> names.
func spooledNames(t *testing.T, bkt objstore.Bucket) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := bkt.Iter(context.Background(), spoolDir, func(name string) error {
		key, _, ok := parseSpoolName(name)
		if !ok {
			return nil
		}
		r, err := bkt.Get(context.Background(), name)
		if err != nil {
			return err
		}
		defer r.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		_, b, err := decodeObject(buf.Bytes())
		if err != nil {
			return err
		}
		out[key] = append(out[key], decodeNamesNoT(b)...)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCoalescerDurableSpoolsEachMember: behind Durable, a downstream
// outage spools each member's own body under its own cluster, and a
// cluster with a backlog is spooled behind it, never coalesced ahead.
func TestCoalescerDurableSpoolsEachMember(t *testing.T) {
	g := newGateDown()
	g.fn = func([]string) error { return &Error{Status: 500, Recoverable: true, Msg: "down"} }
	c := newTestCoalescer(t, g, CoalesceOptions{})
	s, bkt := openSpool(t, t.TempDir(), SpoolOptions{})
	d := NewDurable(c, s, DurableOptions{SendDeadline: 5 * time.Second})
	// Cluster c1 already has a backlog.
	if err := s.Put(context.Background(), "c1", body(t, time.Now().UnixMilli(), 1, "old")); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UnixMilli()
	errs := make(chan error, 5)
	go func() { errs <- d.Send(context.Background(), "c0", body(t, ts, 1, "first")) }()
	<-g.entered
	// c1's send must not reach the coalescer.
	if err := d.Send(context.Background(), "c1", body(t, ts, 1, "c1new")); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 5; i++ {
		b := body(t, ts, 1, fmt.Sprintf("m%d", i))
		go func() { errs <- d.Send(context.Background(), fmt.Sprintf("c%d", i), b) }()
		waitQueued(t, c, i-1)
	}
	close(g.release)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := spooledNames(t, bkt)
	want := map[string][]string{"c0": {"first"}, "c1": {"old", "c1new"}, "c2": {"m2"}, "c3": {"m3"}, "c4": {"m4"}}
	for k, names := range want {
		if !slices.Equal(got[clusterKey(k)], names) {
			t.Fatalf("spool of %s: %v, want %v (all: %v)", k, got[clusterKey(k)], names, got)
		}
	}
	for _, call := range g.snapshot() {
		if slices.Contains(call, "c1new") {
			t.Fatal("a cluster with a backlog was sent ahead of it")
		}
	}
}

// TestCoalescerQueuedCallerLeaves: a queued send whose context ends
// leaves the queue with a recoverable error and is never sent.
func TestCoalescerQueuedCallerLeaves(t *testing.T) {
	g := newGateDown()
	c := newTestCoalescer(t, g, CoalesceOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errs := startQueued(t, c, g, 2, func(i int, _ string, b []byte) error {
		if i == 0 {
			return c.Send(ctx, b)
		}
		return c.Send(context.Background(), b)
	})
	cancel()
	var fe *Error
	if err := <-errs[1]; !errors.As(err, &fe) || !fe.Recoverable || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued send: %v", err)
	}
	close(g.release)
	for _, i := range []int{0, 2} {
		if err := <-errs[i]; err != nil {
			t.Fatal(err)
		}
	}
	calls := g.snapshot()
	if len(calls) != 2 || strings.Join(calls[1], ",") != "m1" {
		t.Fatalf("requests %v", calls)
	}
}

// TestCoalescerGroupDeadline: the coalesced send ends at the earliest
// member deadline.
func TestCoalescerGroupDeadline(t *testing.T) {
	g := newGateDown()
	var dls []time.Time
	c := newTestCoalescer(t, BodySenderFunc(func(ctx context.Context, b []byte) error {
		d, _ := ctx.Deadline()
		dls = append(dls, d)
		return g.Send(ctx, b)
	}), CoalesceOptions{})
	early := time.Now().Add(time.Hour)
	errs := startQueued(t, c, g, 2, func(i int, _ string, b []byte) error {
		if i == 1 {
			ctx, cancel := context.WithDeadline(context.Background(), early)
			defer cancel()
			return c.Send(ctx, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		return c.Send(ctx, b)
	})
	close(g.release)
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if len(dls) != 2 || !dls[1].Equal(early) {
		t.Fatalf("deadlines %v, want the group's at %v", dls, early)
	}
}

func TestCoalescerBypassesV2(t *testing.T) {
	snd, err := New(Config{URL: "http://127.0.0.1:1/x", ProtobufMessage: MessageV2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCoalescer(t, snd, CoalesceOptions{})
	if !c.bypass || c.ProtobufMessage() != MessageV2 {
		t.Fatal("a 2.0 sender is coalesced")
	}
	snd1, _ := New(Config{URL: "http://127.0.0.1:1/x"}, nil, nil)
	if c1 := newTestCoalescer(t, snd1, CoalesceOptions{}); c1.bypass {
		t.Fatal("a 1.0 sender is not coalesced")
	}
}

// rawOf returns the uncompressed request of a snappy body.
func rawOf(t *testing.T, b []byte) []byte {
	t.Helper()
	raw, err := s2.Decode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestCoalescerMixesProtoAndBodies: SendProto's uncompressed requests and
// Send's compressed bodies coalesce into one body holding all of them; a
// request sent at once is compressed as Encode would.
func TestCoalescerMixesProtoAndBodies(t *testing.T) {
	g := newGateDown()
	c := newTestCoalescer(t, g, CoalesceOptions{})
	errs := startQueued(t, c, g, 4, func(i int, _ string, b []byte) error {
		if i%2 == 0 { // first (-1 is odd here: i%2 == -1) and m1, m3 compressed
			return c.SendProto(context.Background(), rawOf(t, b))
		}
		return c.Send(context.Background(), b)
	})
	close(g.release)
	for _, ch := range errs {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	calls := g.snapshot()
	if len(calls) != 2 || strings.Join(calls[1], ",") != "m0,m1,m2,m3" {
		t.Fatalf("requests %v", calls)
	}
	// Idle: SendProto compresses and sends at once.
	var got []byte
	c2 := newTestCoalescer(t, BodySenderFunc(func(_ context.Context, b []byte) error { got = bytes.Clone(b); return nil }), CoalesceOptions{})
	want := body(t, 5, 2, "x", "y")
	if err := c2.SendProto(context.Background(), rawOf(t, want)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("SendProto's body differs from Encode's")
	}
}

// TestCoalescerProtoPartialRejection: a member given uncompressed is
// compressed for its retry alone.
func TestCoalescerProtoPartialRejection(t *testing.T) {
	g := newGateDown()
	g.fn = func(names []string) error {
		if slices.Contains(names, "m1") {
			return &Error{Status: http.StatusConflict, Msg: "out of order sample", err: ErrOutOfOrder}
		}
		return nil
	}
	c := newTestCoalescer(t, g, CoalesceOptions{})
	errs := startQueued(t, c, g, 3, func(_ int, _ string, b []byte) error { return c.SendProto(context.Background(), rawOf(t, b)) })
	close(g.release)
	for i, ch := range errs {
		err := <-ch
		if i == 2 {
			if !errors.Is(err, ErrOutOfOrder) {
				t.Fatalf("m1: %v", err)
			}
		} else if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if calls := g.snapshot(); len(calls) != 5 {
		t.Fatalf("requests %v, want first, m0-m2 coalesced, then each alone", calls)
	}
}

// TestDurableSendProto: SendProto goes to a ProtoSender as it is, to a
// plain BodySender compressed, and is spooled compressed.
func TestDurableSendProto(t *testing.T) {
	s, bkt := openSpool(t, t.TempDir(), SpoolOptions{})
	want := body(t, time.Now().UnixMilli(), 2, "p")
	var got []byte
	fail := false
	plain := BodySenderFunc(func(_ context.Context, b []byte) error {
		got = bytes.Clone(b)
		if fail {
			return &Error{Status: 503, Recoverable: true}
		}
		return nil
	})
	d := NewDurable(plain, s, DurableOptions{SendDeadline: time.Second})
	if err := d.SendProto(context.Background(), "a", rawOf(t, want)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("plain sender did not get the compressed body")
	}
	fail = true
	if err := d.SendProto(context.Background(), "a", rawOf(t, want)); err != nil {
		t.Fatal(err)
	}
	if names := spooledNames(t, bkt)[clusterKey("a")]; !slices.Equal(names, []string{"p"}) {
		t.Fatalf("spooled %v", names)
	}
	var proto []byte
	ps := protoSenderFunc(func(_ context.Context, p []byte) error { proto = bytes.Clone(p); return nil })
	if err := NewDurable(ps, s, DurableOptions{}).SendProto(context.Background(), "b", rawOf(t, want)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(proto, rawOf(t, want)) {
		t.Fatal("ProtoSender did not get the uncompressed request")
	}
	got = nil
	fail = false
	if err := Direct(plain).SendProto(context.Background(), "c", rawOf(t, want)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Direct.SendProto: %v", err)
	}
}

type protoSenderFunc func(ctx context.Context, proto []byte) error

func (f protoSenderFunc) Send(context.Context, []byte) error { return errors.New("not this") }
func (f protoSenderFunc) SendProto(ctx context.Context, proto []byte) error {
	return f(ctx, proto)
}

// TestCoalescerMaxInFlight: with MaxInFlight 2, two sends go at once and
// only what arrives while both are in flight queues.
func TestCoalescerMaxInFlight(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	c := newTestCoalescer(t, BodySenderFunc(func(_ context.Context, b []byte) error {
		entered <- struct{}{}
		<-release
		mu.Lock()
		sizes = append(sizes, len(decodeNamesNoT(b)))
		mu.Unlock()
		return nil
	}), CoalesceOptions{MaxInFlight: 2})
	ts := time.Now().UnixMilli()
	errs := make(chan error, 5)
	for i := range 5 {
		b := body(t, ts, 1, fmt.Sprintf("m%d", i))
		go func() { errs <- c.Send(context.Background(), b) }()
		if i < 2 {
			<-entered
		} else {
			waitQueued(t, c, i-1)
		}
	}
	close(release)
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(sizes)
	if want := []int{1, 1, 3}; !slices.Equal(sizes, want) {
		t.Fatalf("request sizes %v, want %v", sizes, want)
	}
}

// TestCoalescerRealSender runs concurrent sends through the real Sender
// to an HTTP receiver that refuses any request holding a "bad" series
// with 400 and answers slowly: fewer requests than sends, every good
// series written exactly once (this receiver writes nothing of a request
// it refuses), and only the bad sends fail, each with its own message.
func TestCoalescerRealSender(t *testing.T) {
	var mu sync.Mutex
	written := map[string]int{}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		names := decodeNamesNoT(b)
		time.Sleep(time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		requests++
		for _, n := range names {
			if strings.HasPrefix(n, "bad") {
				http.Error(w, "invalid sample in "+n, http.StatusBadRequest)
				return
			}
		}
		for _, n := range names {
			written[n]++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	snd, err := New(Config{URL: srv.URL, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	c := newTestCoalescer(t, snd, CoalesceOptions{})
	const workers, each = 8, 20
	ts := time.Now().UnixMilli()
	var wg sync.WaitGroup
	var failed sync.Map
	for w := range workers {
		wg.Go(func() {
			var bufs Buffers
			for i := range each {
				name := fmt.Sprintf("w%d_%d", w, i)
				if w == 3 && i%5 == 0 {
					name = "bad" + name
				}
				raw := rawOf(t, body(t, ts, 1, name))
				var err error
				if i%2 == 0 {
					err = c.SendProto(context.Background(), raw)
				} else {
					b, _ := bufs.Compress(raw)
					err = c.Send(context.Background(), b)
				}
				if err != nil {
					failed.Store(name, err)
				}
			}
		})
	}
	wg.Wait()
	failed.Range(func(k, v any) bool {
		var fe *Error
		if !strings.HasPrefix(k.(string), "bad") || !errors.As(v.(error), &fe) || fe.Status != 400 || !strings.Contains(fe.Msg, k.(string)) {
			t.Errorf("%s: %v", k, v)
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for w := range workers {
		for i := range each {
			name := fmt.Sprintf("w%d_%d", w, i)
			if w == 3 && i%5 == 0 {
				if written["bad"+name] != 0 {
					t.Errorf("%s written", name)
				}
				continue
			}
			if written[name] != 1 { // the receiver writes nothing of a refused request
				t.Errorf("%s written %d times", name, written[name])
			}
		}
	}
	if requests >= workers*each {
		t.Fatalf("%d requests for %d sends", requests, workers*each)
	}
	t.Logf("%d requests for %d sends", requests, workers*each)
}

// TestJoinBlocksDecodesAsConcatenation: the joined blocks are the snappy
// block of the members' bytes one after the other, for the decoder
// Prometheus and Thanos use (golang/snappy) and for s2, with members small
// and large (over snappy's 64 KiB internal blocks) and repetitive enough
// that their copies reach far back.
func TestJoinBlocksDecodesAsConcatenation(t *testing.T) {
	var members [][]byte
	for i, n := range []int{0, 1, 7, 100, 70_000, 200_000, 3} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte((j/13 + i) % 7) // long repeats: many copies
		}
		if n > 50 {
			copy(b[n/2:], fmt.Sprintf("member %d", i)) // and a literal
		}
		members = append(members, b)
	}
	var group []*waiter
	var want []byte
	for _, m := range members {
		w := &waiter{}
		if _, err := w.prepare(m, bodyProto); err != nil {
			t.Fatal(err)
		}
		group = append(group, w)
		want = append(want, m...)
	}
	joined := joinBlocks(nil, group)
	for name, dec := range map[string]func([]byte) ([]byte, error){
		"golang/snappy": func(b []byte) ([]byte, error) { return snappy.Decode(nil, b) },
		"s2":            func(b []byte) ([]byte, error) { return s2.Decode(nil, b) },
	} {
		got, err := dec(joined)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: decoded %d bytes, not the %d bytes of the members", name, len(got), len(want))
		}
	}
}

// TestCoalescerCorruptBodyAlone: a compressed body that does not decode
// alone is never joined into a group (its copies could reach into a
// neighbour's bytes): it goes to the downstream by itself, and the
// members around it are coalesced as usual.
func TestCoalescerCorruptBodyAlone(t *testing.T) {
	g := newGateDown()
	c := newTestCoalescer(t, g, CoalesceOptions{})
	ts := time.Now().UnixMilli()
	errs := startQueued(t, c, g, 2, func(_ int, _ string, b []byte) error { return c.Send(context.Background(), b) })
	// A block whose header says more bytes than its elements hold.
	bad := body(t, ts, 1, "bad")
	n, hdr := binary.Uvarint(bad)
	bad = append(binary.AppendUvarint(nil, n+10), bad[hdr:]...)
	badErr := make(chan error, 1)
	go func() { badErr <- c.Send(context.Background(), bad) }()
	// The corrupt body is sent alone at once, next to the one in flight.
	deadline := time.Now().Add(5 * time.Second)
	for len(g.snapshot()) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the corrupt body was not sent alone")
		}
		time.Sleep(time.Millisecond)
	}
	if c.queued() != 2 {
		t.Fatalf("%d queued, want the 2 good members", c.queued())
	}
	close(g.release)
	for _, ch := range append(errs, badErr) {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	calls := g.snapshot()
	var joined []string
	for _, names := range calls {
		joined = append(joined, strings.Join(names, ","))
	}
	sort.Strings(joined)
	if strings.Join(joined, " ") != " first m0,m1" {
		t.Fatalf("requests %q, want the corrupt one alone (no names decoded), first, and m0,m1 together", joined)
	}
}
