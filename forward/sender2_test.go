package forward

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"gopkg.in/yaml.v3"

	"github.com/telegate/telegate/batch"
)

// v2Body is a 2.0 body of 3 series: 2 samples, 1 histogram, 1 exemplar.
func v2Body(t *testing.T) []byte {
	t.Helper()
	series := []batch.Series{
		{Labels: []batch.Label{{Name: "__name__", Value: "a"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 1}},
			Exemplars: []batch.Exemplar{{Labels: []batch.Label{{Name: "trace_id", Value: "t"}}, Value: 1, Timestamp: 1}}},
		{Labels: []batch.Label{{Name: "__name__", Value: "b"}}, Samples: []batch.Sample{{Timestamp: 1, Value: 2}}},
		{Labels: []batch.Label{{Name: "__name__", Value: "h"}}, Histograms: []batch.Histogram{histogramAt(1)}},
	}
	return snappy.Encode(nil, AppendRequestV2(nil, series, nil))
}

func written(samples, histograms, exemplars string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		for h, v := range map[string]string{writtenSamplesHeader: samples, writtenHistogramsHeader: histograms, writtenExemplarsHeader: exemplars} {
			if v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func TestSendV2Headers(t *testing.T) {
	rec, srv := newServer(t, written("2", "1", "1"))
	reg := prometheus.NewRegistry()
	s := newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, reg, nil)
	body := v2Body(t)
	if err := s.Send(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	h := rec.headers[0]
	if h.Get("Content-Type") != "application/x-protobuf;proto=io.prometheus.write.v2.Request" || h.Get("X-Prometheus-Remote-Write-Version") != "2.0.0" || h.Get("Content-Encoding") != "snappy" {
		t.Fatalf("2.0 headers %v", h)
	}
	raw, _ := snappy.Decode(nil, rec.bodies[0])
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil || len(req.Timeseries) != 3 {
		t.Fatalf("downstream got %d series: %v", len(req.Timeseries), err)
	}
	for kind, want := range map[string]float64{"samples": 2, "histograms": 1, "exemplars": 1} {
		if v := counterValue(s.m.written.WithLabelValues(kind)); v != want {
			t.Errorf("written_total{type=%q} = %v, want %v", kind, v, want)
		}
	}
	if v := counterValue(s.m.partial); v != 0 {
		t.Errorf("partial_writes_total = %v", v)
	}
	// A 1.0 sender keeps the 1.0 headers; SendMessage overrides per body.
	if s.ProtobufMessage() != MessageV2 {
		t.Fatal("ProtobufMessage")
	}
	_, v1 := testBody(t)
	if err := s.SendMessage(context.Background(), v1, MessageV1); err != nil {
		t.Fatal(err)
	}
	if h := rec.headers[1]; h.Get("Content-Type") != "application/x-protobuf" || h.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
		t.Fatalf("1.0 headers %v", h)
	}
}

func TestSendV2PartialWrite(t *testing.T) {
	_, srv := newServer(t, written("1", "1", ""))
	s := newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, nil, nil)
	if err := s.Send(context.Background(), v2Body(t)); err != nil {
		t.Fatalf("a partial 2xx is a success: %v", err)
	}
	if v := counterValue(s.m.partial); v != 1 {
		t.Fatalf("partial_writes_total = %v, want 1", v)
	}
	// A 400 that wrote part of the request is a partial write too.
	_, srv = newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(writtenSamplesHeader, "1")
		http.Error(w, "series b invalid", http.StatusBadRequest)
	})
	s = newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, nil, nil)
	if e := asError(t, s.Send(context.Background(), v2Body(t))); e.Status != 400 || e.Recoverable {
		t.Fatalf("error %+v", e)
	}
	if v := counterValue(s.m.partial); v != 1 {
		t.Fatalf("partial_writes_total = %v after a partial 400, want 1", v)
	}
}

// A 1.0-only receiver that ignores the Content-Type decodes a 2.0 body as
// an empty request and answers 2xx without Written headers: not a success.
func TestSendV2UnconfirmedIsUnsupported(t *testing.T) {
	for name, answer := range map[string]func(int, http.ResponseWriter, *http.Request){
		"no headers": nil,
		"unparsable": written("x", "", ""),
	} {
		t.Run(name, func(t *testing.T) {
			rec, srv := newServer(t, answer)
			var logs bytes.Buffer
			s := newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, nil, log.NewLogfmtLogger(&logs))
			e := asError(t, s.Send(context.Background(), v2Body(t)))
			if !errors.Is(e, ErrUnsupported) || e.Recoverable || rec.attempts.Load() != 1 {
				t.Fatalf("error %+v after %d attempts", e, rec.attempts.Load())
			}
			if v := counterValue(s.m.unsupported); v != 1 {
				t.Fatalf("unsupported_total = %v", v)
			}
			if !strings.Contains(logs.String(), "protobuf_message") {
				t.Fatalf("log does not say what to change: %s", logs.String())
			}
			if spoolable(e) {
				t.Fatal("an unsupported version would be spooled")
			}
			if got := deadReason(e); got != DeadUnsupported {
				t.Fatalf("replay would make it %q, not dead-letter it as unsupported", got)
			}
		})
	}
	// A 1.0 request needs no Written headers.
	_, srv := newServer(t, nil)
	s := newSender(t, Config{URL: srv.URL}, nil, nil)
	_, body := testBody(t)
	if err := s.Send(context.Background(), body); err != nil {
		t.Fatal(err)
	}
}

// Written headers that are there but all zero are a 2.0 receiver saying
// it wrote nothing (it dropped everything by its own policy, deduplicated
// an HA replica, ...): a partial write, not a 1.0 receiver, so neither an
// error the gateway would answer 503 (retried by the client forever) nor
// a dead letter.
func TestSendV2ConfirmedZeroIsPartial(t *testing.T) {
	for name, answer := range map[string]func(int, http.ResponseWriter, *http.Request){
		"all zero": written("0", "0", "0"),
		"one zero": written("0", "", ""),
	} {
		t.Run(name, func(t *testing.T) {
			rec, srv := newServer(t, answer)
			var logs bytes.Buffer
			s := newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, nil, log.NewLogfmtLogger(&logs))
			if err := s.Send(context.Background(), v2Body(t)); err != nil {
				t.Fatalf("error %v", err)
			}
			if !strings.Contains(logs.String(), "level=warn") {
				t.Fatalf("writing nothing is not a silent loss: %q", logs.String())
			}
			if rec.attempts.Load() != 1 {
				t.Fatalf("%d attempts", rec.attempts.Load())
			}
			if v := counterValue(s.m.unsupported); v != 0 {
				t.Fatalf("unsupported_total = %v", v)
			}
			if v := counterValue(s.m.partial); v != 1 {
				t.Fatalf("partial_writes_total = %v, want 1", v)
			}
		})
	}
}

func TestSend415NotRetried(t *testing.T) {
	rec, srv := newServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "unsupported content type", http.StatusUnsupportedMediaType)
	})
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := newSender(t, Config{URL: srv.URL, ProtobufMessage: MessageV2}, reg, log.NewLogfmtLogger(&logs))
	e := asError(t, s.Send(context.Background(), v2Body(t)))
	if e.Status != 415 || e.Recoverable || !errors.Is(e, ErrUnsupported) || rec.attempts.Load() != 1 {
		t.Fatalf("error %+v after %d attempts", e, rec.attempts.Load())
	}
	if v := counterValue(s.m.unsupported); v != 1 {
		t.Fatalf("unsupported_total = %v", v)
	}
	if !strings.Contains(logs.String(), "level=error") || !strings.Contains(logs.String(), "415") || !strings.Contains(logs.String(), MessageV2) {
		t.Fatalf("log: %s", logs.String())
	}
	if got := deadReason(e); got != DeadUnsupported {
		t.Fatalf("dead reason %q", got)
	}
}

func TestConfigProtobufMessage(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte("url: http://x/api/v1/receive\n"), &c); err != nil || c.ProtobufMessage != MessageV1 {
		t.Fatalf("default %q: %v", c.ProtobufMessage, err)
	}
	if err := yaml.Unmarshal([]byte("url: http://x/api/v1/receive\nprotobuf_message: io.prometheus.write.v2.Request\n"), &c); err != nil || c.ProtobufMessage != MessageV2 {
		t.Fatalf("2.0: %q %v", c.ProtobufMessage, err)
	}
	err := yaml.Unmarshal([]byte("url: http://x/api/v1/receive\nprotobuf_message: v2\n"), &c)
	if err == nil || !strings.Contains(err.Error(), "protobuf_message") {
		t.Fatalf("bad value: %v", err)
	}
}

func TestCountV2(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for range 100 {
		series := randSeries(r, r.IntN(20))
		got, err := countV2(snappy.Encode(nil, AppendRequestV2(nil, series, nil)))
		var s, h, e int64
		for i := range series {
			s += int64(len(series[i].Samples))
			h += int64(len(series[i].Histograms))
			e += int64(len(series[i].Exemplars))
		}
		if err != nil || got.samples != s || got.histograms != h || got.exemplars != e {
			t.Fatalf("counted %+v (%v), want %d %d %d", got, err, s, h, e)
		}
	}
	for _, bad := range [][]byte{[]byte("not snappy"), snappy.Encode(nil, []byte{0x2a, 0x05, 0x12}), snappy.Encode(nil, []byte{0x0f})} {
		if _, err := countV2(bad); err == nil {
			t.Errorf("countV2(%x) did not fail", bad)
		}
	}
}

// FuzzCountV2: any body is counted or refused, never a panic.
func FuzzCountV2(f *testing.F) {
	f.Add(AppendRequestV2(nil, randSeries(rand.New(rand.NewPCG(1, 1)), 3), nil))
	f.Add([]byte{0x2a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		w, err := countV2(snappy.Encode(nil, raw))
		if err == nil && (w.samples < 0 || w.histograms < 0 || w.exemplars < 0) {
			t.Fatalf("counts %+v", w)
		}
	})
}
