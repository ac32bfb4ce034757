package store

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
)

func openTest(t *testing.T, dir string, o Options) (*Store, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

func series(name, id string, samples ...batch.Sample) batch.Series {
	return batch.Series{Labels: []batch.Label{{Name: "__name__", Value: name}, {Name: "_id", Value: id}}, Samples: samples}
}

// read returns the samples of name{_id=id}.
func read(t *testing.T, s *Store, name, id string) []batch.Sample {
	t.Helper()
	q, err := s.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, "__name__", name), labels.MustNewMatcher(labels.MatchEqual, "_id", id))
	var out []batch.Sample
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out = append(out, batch.Sample{Timestamp: ts, Value: v})
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func now() int64 { return time.Now().UnixMilli() }

func TestAppendIsReadableAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, reg := openTest(t, dir, Options{})
	t0 := now()
	if err := s.Append(context.Background(), "c1", []batch.Series{
		series("up", "c1", batch.Sample{Timestamp: t0, Value: 1}, batch.Sample{Timestamp: t0 + 1000, Value: 0}),
		series("up", "c2", batch.Sample{Timestamp: t0, Value: 1}),
	}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, "up", "c1"); len(got) != 2 || got[1].Value != 0 {
		t.Fatalf("read %v", got)
	}
	if n := testutil.ToFloat64(s.m.appended); n != 3 {
		t.Fatalf("appended = %v", n)
	}
	if n := testutil.ToFloat64(s.m.fsyncs); n < 1 {
		t.Fatalf("no WAL fsync before acknowledging")
	}
	if n, err := testutil.GatherAndCount(reg, "prometheus_tsdb_head_series"); err != nil || n != 1 {
		t.Fatalf("prometheus_tsdb_head_series not registered: %d %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var fe *forward.Error
	if err := s.Append(context.Background(), "c1", []batch.Series{series("up", "c1", batch.Sample{Timestamp: t0 + 2000, Value: 1})}); !errors.As(err, &fe) || !fe.Recoverable {
		t.Fatalf("append after close: %v", err)
	}
	s2, _ := openTest(t, dir, Options{})
	if got := read(t, s2, "up", "c1"); len(got) != 2 {
		t.Fatalf("after reopen (WAL replay) read %v", got)
	}
}

func TestRefusedSamplesAre400AndTheRestIsStored(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{})
	ctx := context.Background()
	t0 := now()
	if err := s.Append(ctx, "c", []batch.Series{series("m", "c", batch.Sample{Timestamp: t0, Value: 1})}); err != nil {
		t.Fatal(err)
	}
	// The same sample again is idempotent (a client retry).
	if err := s.Append(ctx, "c", []batch.Series{series("m", "c", batch.Sample{Timestamp: t0, Value: 1})}); err != nil {
		t.Fatalf("identical resend: %v", err)
	}
	err := s.Append(ctx, "c", []batch.Series{
		series("m", "c", batch.Sample{Timestamp: t0 - 1000, Value: 2}), // out of order
		series("m", "c", batch.Sample{Timestamp: t0, Value: 3}),        // another value at a stored timestamp
		series("other", "c", batch.Sample{Timestamp: t0, Value: 4}),    // fine
	})
	var fe *forward.Error
	if !errors.As(err, &fe) || fe.Recoverable || fe.Status != http.StatusBadRequest {
		t.Fatalf("want non-recoverable 400, got %#v", err)
	}
	if got := read(t, s, "other", "c"); len(got) != 1 || got[0].Value != 4 {
		t.Fatalf("good sample of the refused request: %v", got)
	}
	if got := read(t, s, "m", "c"); len(got) != 1 || got[0].Value != 1 {
		t.Fatalf("refused samples stored: %v", got)
	}
	for reason, want := range map[string]float64{"out_of_order": 1, "duplicate": 1} {
		if n := testutil.ToFloat64(s.m.refused.WithLabelValues(reason)); n != want {
			t.Errorf("refused{%s} = %v", reason, n)
		}
	}
	// Duplicate label names are invalid, not an internal error.
	bad := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "x"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, Samples: []batch.Sample{{Timestamp: t0, Value: 1}}}
	if err := s.Append(ctx, "c", []batch.Series{bad}); !errors.As(err, &fe) || fe.Status != http.StatusBadRequest {
		t.Fatalf("duplicate label names: %#v", err)
	}
}

func TestOutOfOrderWindowAcceptsLateSamples(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{OutOfOrderTimeWindow: time.Hour})
	ctx := context.Background()
	t0 := now()
	if err := s.Append(ctx, "c", []batch.Series{series("m", "c", batch.Sample{Timestamp: t0, Value: 1})}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "c", []batch.Series{series("m", "c", batch.Sample{Timestamp: t0 - 60000, Value: 2})}); err != nil {
		t.Fatalf("late sample inside the window: %v", err)
	}
	if got := read(t, s, "m", "c"); len(got) != 2 {
		t.Fatalf("read %v", got)
	}
}

// The gateway's batches alias a pooled request buffer that is reused
// after Append returns: new series must not keep pointers into it.
func TestNewSeriesDoNotAliasTheRequestBuffer(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{NoWALFsync: true})
	buf := []byte("up" + "_id" + "cluster-a")
	str := func(from, to int) string { return unsafe.String(&buf[from], to-from) }
	b := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: str(0, 2)}, {Name: str(2, 5), Value: str(5, 14)}}, Samples: []batch.Sample{{Timestamp: now(), Value: 1}}}
	if err := s.Append(context.Background(), "cluster-a", []batch.Series{b}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXXXXXXXX")
	if got := read(t, s, "up", "cluster-a"); len(got) != 1 {
		t.Fatalf("series labels were overwritten with the request buffer: %v", got)
	}
}

func TestSendDecodesRemoteWriteBodies(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{})
	t0 := now()
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "_id", Value: "c"}},
		Samples: []prompb.Sample{{Timestamp: t0, Value: 1}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), "c", snappy.Encode(nil, raw)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, "up", "c"); len(got) != 1 || got[0].Timestamp != t0 {
		t.Fatalf("read %v", got)
	}
	var fe *forward.Error
	for name, body := range map[string][]byte{"not snappy": []byte("\xff\xff\xff\xff\xff"), "not protobuf": snappy.Encode(nil, []byte("\x0a\xff"))} {
		if err := s.Send(context.Background(), "c", body); !errors.As(err, &fe) || fe.Status != http.StatusBadRequest {
			t.Errorf("%s: %#v", name, err)
		}
	}
}

func TestConcurrentAppendsShareFsyncs(t *testing.T) {
	s, _ := openTest(t, t.TempDir(), Options{})
	t0 := now()
	const n = 32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := "c" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			errs <- s.Append(context.Background(), id, []batch.Series{series("up", id, batch.Sample{Timestamp: t0, Value: 1})})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if f := testutil.ToFloat64(s.m.fsyncs); f < 1 || f > n {
		t.Fatalf("fsyncs = %v for %d appends", f, n)
	}
}
