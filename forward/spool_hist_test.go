package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
)

// encodeBody is the snappy body EncodeSplitMetadata makes for one request.
func encodeBody(t *testing.T, series []batch.Series, md []batch.Metadata) []byte {
	t.Helper()
	var b Buffers
	var out []byte
	err := b.EncodeSplitMetadata(series, md, 1<<20, func(body []byte) error {
		if out != nil {
			t.Fatal("more than one body")
		}
		out = bytes.Clone(body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func histogramAt(ts int64) batch.Histogram {
	return batch.Histogram{Timestamp: ts, Raw: mustMarshal(prompb.Histogram{Timestamp: ts, Count: &prompb.Histogram_CountInt{CountInt: 1},
		ZeroCount: &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1}})}
}

func TestBodyStatsCountsHistogramsExemplarsMetadata(t *testing.T) {
	series := []batch.Series{
		{Labels: []batch.Label{{Name: "__name__", Value: "floats"}}, Samples: []batch.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 1001, Value: 2}},
			Exemplars: []batch.Exemplar{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 99999}}},
		{Labels: []batch.Label{{Name: "__name__", Value: "hist"}}, Histograms: []batch.Histogram{histogramAt(990), histogramAt(1005), histogramAt(1010)},
			Exemplars: []batch.Exemplar{{Value: 3, Timestamp: 1005}}},
	}
	md := []batch.Metadata{{Family: "floats", Type: 1}, {Family: "hist", Type: 3}}
	h := &objHeader{ClusterID: "c"}
	if err := bodyStats(encodeBody(t, series, md), h); err != nil {
		t.Fatal(err)
	}
	want := objHeader{ClusterID: "c", Series: 2, Samples: 5, Histograms: 3, Exemplars: 3, Metadata: 2, MinTS: 990, MaxTS: 1010}
	if *h != want {
		t.Fatalf("stats %+v, want %+v", *h, want)
	}
	obj, err := encodeObject(h, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if h2, _, err := decodeObject(obj); err != nil || *h2 != *h {
		t.Fatalf("round trip %+v: %v", h2, err)
	}

	// Histograms alone carry the timestamps.
	h = &objHeader{}
	if err := bodyStats(encodeBody(t, series[1:], nil), h); err != nil {
		t.Fatal(err)
	}
	if h.Samples != 3 || h.Histograms != 3 || h.MinTS != 990 || h.MaxTS != 1010 {
		t.Fatalf("histogram-only stats %+v", *h)
	}

	// Metadata alone: no samples, no timestamps.
	h = &objHeader{}
	if err := bodyStats(encodeBody(t, nil, md), h); err != nil {
		t.Fatal(err)
	}
	if (*h != objHeader{Metadata: 2}) {
		t.Fatalf("metadata-only stats %+v", *h)
	}

	// A header written before histograms were counted still decodes.
	var old objHeader
	if err := json.Unmarshal([]byte(`{"cluster_id":"c","enqueued_ms":5,"series":1,"samples":2,"min_ts_ms":1,"max_ts_ms":2}`), &old); err != nil {
		t.Fatal(err)
	}
	if (old != objHeader{ClusterID: "c", EnqueuedMS: 5, Series: 1, Samples: 2, MinTS: 1, MaxTS: 2}) {
		t.Fatalf("old header %+v", old)
	}
}

// An object of native histograms only is dead-lettered as too old by its
// histograms' timestamps, and replayed when they are recent.
func TestReplayHistogramOnlyObjectAge(t *testing.T) {
	now := time.Now()
	s, b := openSpool(t, t.TempDir(), SpoolOptions{MaxSampleAge: time.Hour})
	ctx := context.Background()
	for _, c := range []struct {
		cluster string
		ts      time.Time
	}{{"old", now.Add(-2 * time.Hour)}, {"new", now}} {
		series := []batch.Series{{Labels: []batch.Label{{Name: "__name__", Value: c.cluster}}, Histograms: []batch.Histogram{histogramAt(c.ts.UnixMilli())}}}
		if err := s.Put(ctx, c.cluster, encodeBody(t, series, nil)); err != nil {
			t.Fatal(err)
		}
	}
	down := &fakeDown{}
	r := &replayer{s: s, down: down, o: ReplayOptions{}}
	r.o.setDefaults()
	for range 2 {
		key, e, _, ok := s.next()
		if !ok {
			t.Fatal("nothing to replay")
		}
		removed, _, err := r.replayOne(ctx, e, 0)
		s.done(key, removed)
		if err != nil || !removed {
			t.Fatalf("replay %s: removed %v, %v", e.name, removed, err)
		}
	}
	if len(down.got) != 1 || decodeNamesNoT(down.got[0])[0] != "new" {
		t.Fatalf("sent %d bodies", len(down.got))
	}
	dead := listAll(t, b, deadDir)
	if len(dead) != 1 || !bytes.HasSuffix([]byte(dead[0]), []byte("."+DeadTooOld)) {
		t.Fatalf("dead letters %v", dead)
	}
}

func TestBodyStatsV2(t *testing.T) {
	series := []batch.Series{
		{Labels: []batch.Label{{Name: "__name__", Value: "floats_total"}}, Samples: []batch.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 1001, Value: 2}},
			Exemplars: []batch.Exemplar{{Value: 1, Timestamp: 1}}},
		{Labels: []batch.Label{{Name: "__name__", Value: "hist"}}, Histograms: []batch.Histogram{histogramAt(990), histogramAt(1010)}},
		{Labels: []batch.Label{{Name: "__name__", Value: "other"}}},
	}
	md := []batch.Metadata{{Family: "floats", Type: 1}, {Family: "hist", Type: 3, Help: "h"}}
	h := &objHeader{}
	if err := bodyStats(snappy.Encode(nil, AppendRequestV2(nil, series, md)), h); err != nil {
		t.Fatal(err)
	}
	want := objHeader{Proto: MessageV2, Series: 3, Samples: 4, Histograms: 2, Exemplars: 1, Metadata: 2, MinTS: 990, MaxTS: 1010}
	if *h != want {
		t.Fatalf("stats %+v, want %+v", *h, want)
	}
	// A 1.0 body after a 2.0 one: the proto is reset.
	if err := bodyStats(encodeBody(t, series, nil), h); err != nil || h.Proto != "" || h.Series != 3 {
		t.Fatalf("1.0 stats %+v: %v", *h, err)
	}
	if err := bodyStats(snappy.Encode(nil, []byte{0x2a, 0x05, 0x0a}), h); err == nil {
		t.Fatal("truncated 2.0 body accepted")
	}
}

// messageDown records the message replay sends each body as.
type messageDown struct {
	fakeDown
	msgs []string
	err  error
}

func (m *messageDown) SendMessage(ctx context.Context, body []byte, msg string) error {
	m.msgs = append(m.msgs, msg)
	if m.err != nil {
		return m.err
	}
	return m.Send(ctx, body)
}

// Replay sends a spooled body as the message it was encoded as, and
// dead-letters one the downstream does not support.
func TestReplaySendsAsEncoded(t *testing.T) {
	s, b := openSpool(t, t.TempDir(), SpoolOptions{})
	ctx := context.Background()
	series := []batch.Series{{Labels: []batch.Label{{Name: "__name__", Value: "x"}}, Samples: []batch.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}}
	if err := s.Put(ctx, "c", encodeBody(t, series, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "c", snappy.Encode(nil, AppendRequestV2(nil, series, nil))); err != nil {
		t.Fatal(err)
	}
	down := &messageDown{}
	r := &replayer{s: s, down: down}
	r.o.setDefaults()
	replay := func() {
		key, e, _, ok := s.next()
		if !ok {
			t.Fatal("nothing to replay")
		}
		removed, _, err := r.replayOne(ctx, e, 0)
		s.done(key, removed)
		if err != nil || !removed {
			t.Fatalf("replay %s: removed %v, %v", e.name, removed, err)
		}
	}
	replay()
	down.err = &Error{Status: 415, Msg: "unsupported", err: ErrUnsupported}
	replay()
	if len(down.msgs) != 2 || down.msgs[0] != "" || down.msgs[1] != MessageV2 {
		t.Fatalf("sent as %q", down.msgs)
	}
	dead := listAll(t, b, deadDir)
	if len(dead) != 1 || !strings.HasSuffix(dead[0], "."+DeadUnsupported) {
		t.Fatalf("dead letters %v", dead)
	}
	if v := counterValue(s.m.dead.WithLabelValues(DeadUnsupported)); v != 1 {
		t.Fatalf("dead_lettered_total{reason=unsupported} = %v", v)
	}
}
