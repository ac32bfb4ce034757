package store

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appended      prometheus.Counter
	refused       *prometheus.CounterVec
	failures      prometheus.Counter
	fsyncs        prometheus.Counter
	fsyncDuration prometheus.Histogram
}

// refusalReasons are the values of telegate_store_refused_samples_total's
// reason label.
var refusalReasons = []string{"out_of_order", "out_of_bounds", "too_old", "duplicate", "invalid"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_appended_samples_total",
			Help: "Samples committed to the embedded TSDB.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_store_refused_samples_total",
			Help: "Samples the embedded TSDB refused for good, by reason (the request is answered 400).",
		}, []string{"reason"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_append_failures_total",
			Help: "Requests the embedded TSDB could not store (WAL write, commit or fsync failed; answered 503).",
		}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_wal_fsyncs_total",
			Help: "WAL fsyncs made before acknowledging writes (concurrent requests share one).",
		}),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telegate_store_wal_fsync_duration_seconds",
			Help:    "Duration of the WAL fsyncs made before acknowledging writes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	for _, r := range refusalReasons {
		m.refused.WithLabelValues(r)
	}
	reg.MustRegister(m.appended, m.refused, m.failures, m.fsyncs, m.fsyncDuration)
	return m
}
