package store

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appended           prometheus.Counter
	appendedHistograms prometheus.Counter
	appendedExemplars  prometheus.Counter
	refused            *prometheus.CounterVec
	refusedExemplars   *prometheus.CounterVec
	failures           prometheus.Counter
	fsyncs             prometheus.Counter
	fsyncDuration      prometheus.Histogram
}

// refusalReasons are the values of telegate_store_refused_samples_total's
// reason label.
var refusalReasons = []string{"out_of_order", "out_of_bounds", "too_old", "duplicate", "invalid"}

// exemplarRefusalReasons are the values of
// telegate_store_refused_exemplars_total's reason label.
var exemplarRefusalReasons = []string{"out_of_order", "label_length", "invalid"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_appended_samples_total",
			Help: "Samples committed to the embedded TSDB, float and native histogram samples.",
		}),
		appendedHistograms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_appended_histograms_total",
			Help: "Native histogram samples committed to the embedded TSDB (also counted in telegate_store_appended_samples_total).",
		}),
		appendedExemplars: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_store_appended_exemplars_total",
			Help: "Exemplars committed to the embedded TSDB.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_store_refused_samples_total",
			Help: "Samples (float or native histogram) the embedded TSDB refused for good, by reason (the request is answered 400).",
		}, []string{"reason"}),
		refusedExemplars: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_store_refused_exemplars_total",
			Help: "Exemplars the embedded TSDB refused, by reason (dropped; the request is not failed for them).",
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
	for _, r := range exemplarRefusalReasons {
		m.refusedExemplars.WithLabelValues(r)
	}
	reg.MustRegister(m.appended, m.appendedHistograms, m.appendedExemplars, m.refused, m.refusedExemplars, m.failures, m.fsyncs, m.fsyncDuration)
	return m
}
