package load

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
)

// Sink is a remote-write receiver that only decodes: the "fast downstream"
// of the capacity figures. Point the gateway's forward.url at it. It
// decodes with telegate's own decoder (which accepts exactly what gogo's
// prompb accepts; see gateway/decode), pooled, so on a shared machine it
// takes as little CPU as a downstream can and counts every sample.
type Sink struct {
	requests, samples, rejected atomic.Int64
}

// sinkBuffers holds one request's compressed body and its decoding.
type sinkBuffers struct {
	body []byte
	b    batch.Batch
}

var sinkPool = sync.Pool{New: func() any { return new(sinkBuffers) }}

// ServeHTTP decodes a remote write 1.0 request and answers 204, or 400 if
// it does not decode.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	sb := sinkPool.Get().(*sinkBuffers)
	defer sinkPool.Put(sb)
	sb.b.Reset()
	var err error
	if sb.body, err = decode.ReadAllCapped(sb.body[:0], r.Body, 64<<20, nil); err == nil {
		if sb.b.Buf, err = decode.DecodeBlock(sb.b.Buf[:0], sb.body, 256<<20); err == nil {
			_, err = decode.UnmarshalWriteRequest(sb.b.Buf, &sb.b, decode.Limits{})
		}
	}
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.samples.Add(int64(sb.b.Samples()))
	w.WriteHeader(http.StatusNoContent)
}

// Requests, Samples and Rejected count what the sink received.
func (s *Sink) Requests() int64 { return s.requests.Load() }

// Samples is the number of samples in accepted requests.
func (s *Sink) Samples() int64 { return s.samples.Load() }

// Rejected is the number of requests that did not decode.
func (s *Sink) Rejected() int64 { return s.rejected.Load() }

// SinkCounts is a snapshot of a Sink's counters.
type SinkCounts struct {
	Requests int64 `json:"requests"`
	Samples  int64 `json:"samples"`
	Rejected int64 `json:"rejected"`
}

// Counts returns the sink's counters.
func (s *Sink) Counts() SinkCounts {
	return SinkCounts{Requests: s.Requests(), Samples: s.Samples(), Rejected: s.Rejected()}
}

// Register exposes the sink's counters as telegate_load_sink_requests_total,
// telegate_load_sink_samples_total and telegate_load_sink_rejected_total,
// so a script can read what a long-running sink (`telegate load
// --sink-only`) received between two points in time.
func (s *Sink) Register(reg prometheus.Registerer) error {
	for _, c := range []struct {
		name, help string
		f          func() int64
	}{
		{"telegate_load_sink_requests_total", "Remote-write requests the load sink decoded.", s.Requests},
		{"telegate_load_sink_samples_total", "Samples in the remote-write requests the load sink decoded.", s.Samples},
		{"telegate_load_sink_rejected_total", "Requests the load sink could not decode.", s.Rejected},
	} {
		f := c.f
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(f()) })); err != nil {
			return err
		}
	}
	return nil
}
