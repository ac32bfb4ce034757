package load

import (
	"io"
	"net/http"
	"sync/atomic"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
)

// Sink is a remote-write receiver that only decodes: the "fast downstream"
// of the capacity figures. Point the gateway's forward.url at it.
type Sink struct {
	requests, samples, rejected atomic.Int64
}

// ServeHTTP decodes a remote write 1.0 request and answers 204, or 400 if
// it does not decode.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := 0
	for _, ts := range wr.Timeseries {
		n += len(ts.Samples)
	}
	s.requests.Add(1)
	s.samples.Add(int64(n))
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
