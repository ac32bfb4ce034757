package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	received  *prometheus.CounterVec
	forwarded prometheus.Counter
	dropped   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_http_requests_total",
			Help: "HTTP requests to the public API by handler and status code.",
		}, []string{"handler", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "telegate_http_request_duration_seconds",
			Help:    "Time to answer a request of the public API, by handler.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler"}),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_samples_received_total",
			Help: "Samples decoded from requests, by protocol (upload, receive, push).",
		}, []string{"protocol"}),
		forwarded: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_samples_forwarded_total",
			Help: "Samples long-term storage accepted.",
		}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_samples_dropped_total",
			Help: "Samples dropped by policy, by reason (allowlist, budget, relabel, collision, too_old, too_new, invalid).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"allowlist", "budget", "relabel", "collision", "too_old", "too_new", "invalid"} {
		m.dropped.WithLabelValues(r)
	}
	return m
}
