package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/telegate/telegate/batch"
)

// body encodes one series per name with n samples at ts.
func body(t testing.TB, ts int64, n int, names ...string) []byte {
	t.Helper()
	var series []batch.Series
	for _, name := range names {
		s := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: name}}}
		for i := 0; i < n; i++ {
			s.Samples = append(s.Samples, batch.Sample{Timestamp: ts + int64(i), Value: float64(i + 1)})
		}
		series = append(series, s)
	}
	var b Buffers
	out, err := b.Encode(series)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(out)
}

func decodeNames(t testing.TB, body []byte) []string {
	t.Helper()
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ts := range wr.Timeseries {
		out = append(out, ts.Labels[0].Value)
	}
	return out
}

// fakeDown records bodies and answers with fn.
type fakeDown struct {
	mu   sync.Mutex
	got  [][]byte
	fn   func(body []byte) error
	sent chan string
}

func (f *fakeDown) Send(ctx context.Context, body []byte) error {
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	var err error
	if fn != nil {
		err = fn(body)
	}
	if err == nil {
		f.mu.Lock()
		f.got = append(f.got, bytes.Clone(body))
		f.mu.Unlock()
		if f.sent != nil {
			f.sent <- strings.Join(decodeNamesNoT(body), ",")
		}
	}
	return err
}

func (f *fakeDown) set(fn func([]byte) error) { f.mu.Lock(); f.fn = fn; f.mu.Unlock() }

func decodeNamesNoT(body []byte) []string {
	raw, _ := snappy.Decode(nil, body)
	var wr prompb.WriteRequest
	_ = wr.Unmarshal(raw)
	var out []string
	for _, ts := range wr.Timeseries {
		out = append(out, ts.Labels[0].Value)
	}
	return out
}

// openSpool opens a spool on dir with objstore's own filesystem provider
// (the crash-safe bucket.Filesystem is tested in package bucket; forward's
// tests must not link the cloud SDKs package bucket brings).
func openSpool(t *testing.T, dir string, o SpoolOptions) (*Spool, objstore.Bucket) {
	t.Helper()
	b, err := filesystem.NewBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpool(context.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func listAll(t *testing.T, b objstore.Bucket, dir string) []string {
	t.Helper()
	var names []string
	if err := b.Iter(context.Background(), dir, func(n string) error { names = append(names, n); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSpoolPutSurvivesRestartAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir, SpoolOptions{})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for i, name := range []string{"a1", "a2", "a3"} {
		if err := s.Put(ctx, "cluster/a", body(t, now+int64(i), 1, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "b", body(t, now, 2, "b1")); err != nil {
		t.Fatal(err)
	}
	if !s.HasBacklog("cluster/a") || s.HasBacklog("c") {
		t.Fatal("HasBacklog wrong")
	}
	objs, size, oldest := s.Stats()
	if objs != 4 || size <= 0 || oldest.IsZero() {
		t.Fatalf("stats = %d objects, %d bytes, oldest %v", objs, size, oldest)
	}

	// A new process on the same directory sees the same spool.
	s2, _ := openSpool(t, dir, SpoolOptions{})
	objs2, size2, _ := s2.Stats()
	if objs2 != objs || size2 != size {
		t.Fatalf("after reopen: %d objects %d bytes, want %d %d", objs2, size2, objs, size)
	}
	down := &fakeDown{sent: make(chan string, 10)}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s2.Replay(ctx, down, ReplayOptions{Concurrency: 1, Interval: 10 * time.Millisecond})
		close(done)
	}()
	var got []string
	for range 4 {
		select {
		case n := <-down.sent:
			got = append(got, n)
		case <-time.After(5 * time.Second):
			t.Fatalf("replay stalled after %v", got)
		}
	}
	// The last send is answered before replay deletes its object: wait for
	// the spool to empty before stopping replay (stopping it first could
	// leave that object for the next run, as it should).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if o, _, _ := s2.Stats(); o == 0 {
			break
		}
	}
	cancel()
	<-done
	// Round robin across clusters, oldest first within each.
	var a []string
	for _, n := range got {
		if n[0] == 'a' {
			a = append(a, n)
		}
	}
	if strings.Join(a, " ") != "a1 a2 a3" {
		t.Fatalf("cluster a replayed as %v, want a1 a2 a3", a)
	}
	if got[0] != "b1" && got[1] != "b1" {
		t.Fatalf("b1 replayed at %v: one cluster's backlog delayed the other", got)
	}
	if o, b, _ := s2.Stats(); o != 0 || b != 0 {
		t.Fatalf("after replay: %d objects %d bytes", o, b)
	}
	if left := listAll(t, s2.bkt, ""); len(left) != 0 {
		t.Fatalf("objects left after replay: %v", left)
	}
}

func TestReplayFairness(t *testing.T) {
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for i := range 50 {
		if err := s.Put(ctx, "big", body(t, now+int64(i), 1, "big")); err != nil {
			t.Fatal(err)
		}
	}
	down := &fakeDown{sent: make(chan string)} // unbuffered: one send at a time
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Replay(ctx, down, ReplayOptions{Concurrency: 1, Interval: 10 * time.Millisecond})
	// Let the big backlog start draining, then a small cluster spools.
	for range 5 {
		<-down.sent
	}
	if err := s.Put(ctx, "small", body(t, now, 1, "small")); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		n := <-down.sent
		if n == "small" {
			if i > 2 {
				t.Fatalf("small cluster's object waited behind %d of the big backlog", i)
			}
			return
		}
	}
}

func TestReplayOutcomes(t *testing.T) {
	now := time.Now()
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	s, b := openSpool(t, dir, SpoolOptions{MaxSampleAge: time.Hour, Registerer: reg})
	ctx := context.Background()
	put := func(cluster string, ts time.Time, name string) {
		if err := s.Put(ctx, cluster, body(t, ts.UnixMilli(), 1, name)); err != nil {
			t.Fatal(err)
		}
	}
	put("ok", now, "ok")
	put("bad", now, "bad")
	put("conflict", now, "conflict")
	put("old", now.Add(-2*time.Hour), "old")
	put("flaky", now, "flaky")
	put("misconf", now, "misconf")
	// A bit flip on disk: the checksum catches it.
	put("corrupt", now, "corrupt")
	for _, n := range listAll(t, b, spoolDir) {
		if strings.Contains(n, clusterKey("corrupt")) {
			p := filepath.Join(dir, n)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0xff
			os.WriteFile(p, data, 0o600)
		}
	}

	var mu sync.Mutex
	flakyFails, misconfFails := 2, 2
	down := &fakeDown{}
	down.set(func(body []byte) error {
		mu.Lock()
		defer mu.Unlock()
		switch decodeNamesNoT(body)[0] {
		case "bad":
			return &Error{Status: 400, Msg: "invalid labels"}
		case "conflict":
			return &Error{Status: 409, Msg: "out of order sample"}
		case "flaky":
			if flakyFails > 0 {
				flakyFails--
				return &Error{Status: 503, Recoverable: true}
			}
		case "misconf":
			if misconfFails > 0 {
				misconfFails--
				return &Error{Status: 401, Msg: "unauthorized"}
			}
		case "old":
			t.Error("too old object was sent")
		}
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s.Replay(rctx, down, ReplayOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Interval: 5 * time.Millisecond})
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if o, _, _ := s.Stats(); o == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained: %v", listAll(t, b, ""))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	var sent []string
	for _, g := range down.got {
		sent = append(sent, decodeNamesNoT(g)...)
	}
	if strings.Join(sortedCopy(sent), ",") != "flaky,misconf,ok" {
		t.Fatalf("accepted downstream: %v", sent)
	}
	dead := listAll(t, b, deadDir)
	want := map[string]string{"bad": DeadBadRequest, "conflict": DeadConflict, "old": DeadTooOld, "corrupt": DeadCorrupt}
	if len(dead) != len(want) {
		t.Fatalf("dead letters %v, want %d", dead, len(want))
	}
	for cluster, reason := range want {
		found := false
		for _, n := range dead {
			if strings.Contains(n, "/"+clusterKey(cluster)+"/") && strings.HasSuffix(n, "."+reason) {
				found = true
				rc, err := b.Get(ctx, n)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(rc)
				rc.Close()
				if reason == DeadCorrupt {
					continue
				}
				h, bd, err := decodeObject(data)
				if err != nil {
					t.Fatalf("dead object %s: %v", n, err)
				}
				if h.Reason != reason || h.ClusterID != cluster || h.Message == "" || len(bd) == 0 {
					t.Fatalf("dead object %s header %+v", n, h)
				}
			}
		}
		if !found {
			t.Errorf("no dead letter for %s with reason %s in %v", cluster, reason, dead)
		}
	}
	if left := listAll(t, b, spoolDir); len(left) != 0 {
		t.Fatalf("pending objects left: %v", left)
	}
	if v := counterValue(s.m.replayed); v != 3 {
		t.Errorf("replayed_total = %v, want 3", v)
	}
	for _, r := range []string{DeadBadRequest, DeadConflict, DeadTooOld, DeadCorrupt} {
		if v := counterValue(s.m.dead.WithLabelValues(r)); v != 1 {
			t.Errorf("dead_lettered_total{reason=%q} = %v, want 1", r, v)
		}
	}
	if v := gaugeValue(t, reg, "telegate_spool_objects"); v != 0 {
		t.Errorf("telegate_spool_objects = %v after drain", v)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSpoolFullAndDurable(t *testing.T) {
	b1 := body(t, time.Now().UnixMilli(), 10, "m")
	obj, _ := encodeObject(&objHeader{}, b1)
	reg := prometheus.NewRegistry()
	// Room for two objects, with margin for header differences.
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{MaxBytes: int64(2*len(obj) + 100), Registerer: reg})
	down := &fakeDown{}
	down.set(func([]byte) error { return &Error{Msg: "connection refused", Recoverable: true} })
	d := NewDurable(down, s, DurableOptions{SendDeadline: 50 * time.Millisecond, FullRetryAfter: 7 * time.Second})
	ctx := context.Background()
	for i := range 2 {
		if err := d.Send(ctx, "c", b1); err != nil {
			t.Fatalf("send %d with downstream down: %v (want spooled, nil)", i, err)
		}
	}
	err := d.Send(ctx, "c", b1)
	var fe *Error
	if !errors.As(err, &fe) || !fe.Recoverable || fe.RetryAfter != 7*time.Second || !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("spool full: got %v, want recoverable *Error with RetryAfter 7s", err)
	}
	if o, _, _ := s.Stats(); o != 2 {
		t.Fatalf("%d objects spooled, want 2", o)
	}

	// Downstream back: a cluster with a backlog is still spooled (order),
	// another goes straight through.
	down.set(nil)
	s.opts.MaxBytes = 0
	if err := d.Send(ctx, "c", b1); err != nil {
		t.Fatal(err)
	}
	if o, _, _ := s.Stats(); o != 3 || len(down.got) != 0 {
		t.Fatalf("backlogged cluster sent ahead of its spool: %d objects, %d sent", o, len(down.got))
	}
	if err := d.Send(ctx, "fresh", b1); err != nil || len(down.got) != 1 {
		t.Fatalf("cluster without backlog: err %v, sent %d", err, len(down.got))
	}

	// Data rejections are not spooled; credential problems are.
	down.set(func([]byte) error { return &Error{Status: http.StatusBadRequest, Msg: "bad"} })
	if err := d.Send(ctx, "other", b1); !errors.As(err, &fe) || fe.Status != 400 {
		t.Fatalf("400 from downstream: got %v", err)
	}
	down.set(func([]byte) error { return &Error{Status: http.StatusForbidden, Msg: "no"} })
	if err := d.Send(ctx, "other", b1); err != nil {
		t.Fatalf("403 from downstream should spool: %v", err)
	}
	if !s.HasBacklog("other") {
		t.Fatal("403 not spooled")
	}
}

func TestDurableSlowDownstreamSpoolsWithinCallerDeadline(t *testing.T) {
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	down := &fakeDown{}
	down.set(func([]byte) error { time.Sleep(50 * time.Millisecond); return nil })
	slow := BodySenderFunc(func(ctx context.Context, b []byte) error {
		<-ctx.Done()
		return &Error{Msg: ctx.Err().Error(), Recoverable: true}
	})
	d := NewDurable(slow, s, DurableOptions{SendDeadline: time.Minute, WriteReserve: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Send(ctx, "c", body(t, time.Now().UnixMilli(), 1, "m")); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 450*time.Millisecond {
		t.Fatalf("Send took %v: did not keep its write reserve", el)
	}
	if !s.HasBacklog("c") {
		t.Fatal("slow downstream: not spooled")
	}
}

// BodySenderFunc adapts a function to BodySender (tests).
type BodySenderFunc func(ctx context.Context, body []byte) error

func (f BodySenderFunc) Send(ctx context.Context, body []byte) error { return f(ctx, body) }

func TestSpoolRejectsInvalidBody(t *testing.T) {
	s, _ := openSpool(t, t.TempDir(), SpoolOptions{})
	if err := s.Put(context.Background(), "c", []byte("not snappy")); err == nil {
		t.Fatal("invalid body spooled")
	}
	if o, b, _ := s.Stats(); o != 0 || b != 0 {
		t.Fatalf("failed put left %d objects %d bytes", o, b)
	}
}

func TestObjectCodec(t *testing.T) {
	b1 := body(t, 1000, 3, "x", "y")
	h := &objHeader{ClusterID: "c"}
	if err := bodyStats(b1, h); err != nil {
		t.Fatal(err)
	}
	if h.Series != 2 || h.Samples != 6 || h.MinTS != 1000 || h.MaxTS != 1002 {
		t.Fatalf("stats %+v", h)
	}
	obj, err := encodeObject(h, b1)
	if err != nil {
		t.Fatal(err)
	}
	h2, b2, err := decodeObject(obj)
	if err != nil || *h2 != *h || !bytes.Equal(b2, b1) {
		t.Fatalf("round trip: %v %+v", err, h2)
	}
	for i := 0; i < len(obj); i++ {
		if _, _, err := decodeObject(obj[:i]); err == nil {
			t.Fatalf("truncated object (%d of %d bytes) decoded", i, len(obj))
		}
	}
	if got := decodeNames(t, b2); strings.Join(got, ",") != "x,y" {
		t.Fatalf("names %v", got)
	}
	if k := clusterKey(strings.Repeat("z", 300)); len(k) != 65 {
		t.Fatalf("long cluster key %q", k)
	}
	if _, _, ok := parseSpoolName("spool/x61/00000000000000000001-00000001"); !ok {
		t.Fatal("valid name not parsed")
	}
	for _, n := range []string{"spool/x61", "dead/x61/00000000000000000001-1", "spool/x61/12-1", "spool/x61/a/00000000000000000001-1"} {
		if _, _, ok := parseSpoolName(n); ok {
			t.Errorf("%q parsed", n)
		}
	}
}

// FuzzDecodeObject: whatever is on disk, decoding returns an error or a
// header and body, never panics.
func FuzzDecodeObject(f *testing.F) {
	obj, _ := encodeObject(&objHeader{ClusterID: "c", Samples: 1}, []byte("body"))
	f.Add(obj)
	f.Add([]byte("TGSPOOL\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, b, err := decodeObject(data)
		if err == nil && (h == nil || len(b) > len(data)) {
			t.Fatalf("decoded %v %d bytes from %d", h, len(b), len(data))
		}
	})
}
