package client

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Snapshot outcomes, the values of telegate_client_snapshots_total's result.
const (
	SnapshotSent     = "sent"
	SnapshotRejected = "rejected" // the gateway refused it (4xx): not retried
	SnapshotReplaced = "replaced" // still unsent when the next cycle's snapshot replaced it
	SnapshotDropped  = "dropped"  // unsent when telemetry was disabled or the client stopped
)

type metrics struct {
	federateRequests *prometheus.CounterVec
	federateDuration prometheus.Histogram
	federatedBytes   prometheus.Gauge
	samplesFederated prometheus.Counter
	samplesFiltered  *prometheus.CounterVec
	samplesSent      prometheus.Counter
	uploadAttempts   *prometheus.CounterVec
	authorize        *prometheus.CounterVec
	retries          prometheus.Counter
	backoffSeconds   prometheus.Counter
	snapshots        *prometheus.CounterVec
	lastSuccess      prometheus.Gauge
	payloadBytes     prometheus.Gauge
	sentBytes        prometheus.Counter
	reloadOK         prometheus.Gauge
	reloadTime       prometheus.Gauge
	enabled          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		federateRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_client_federate_requests_total",
			Help: "Federate requests to Prometheus (in scrape mode: requests to each metrics endpoint), by result (success, error, too_large).",
		}, []string{"result"}),
		federateDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "telegate_client_federate_duration_seconds",
			Help:    "Duration of federate requests (in scrape mode: of reading all endpoints).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		federatedBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_federated_bytes",
			Help: "Size of the last federate response (in scrape mode: of all endpoints' responses; compare with --limit-bytes).",
		}),
		samplesFederated: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_client_samples_federated_total",
			Help: "Samples read from Prometheus (or the scraped endpoints).",
		}),
		samplesFiltered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_client_samples_filtered_total",
			Help: "Samples dropped by the client's transforms (and, in scrape mode, unselected: no selector matched), by reason.",
		}, []string{"reason"}),
		samplesSent: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_client_samples_sent_total",
			Help: "Samples in uploads the gateway accepted.",
		}),
		uploadAttempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_client_upload_attempts_total",
			Help: "Attempts to send a snapshot (authorize and upload), by result.",
		}, []string{"result"}),
		authorize: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_client_authorize_requests_total",
			Help: "Requests to /authorize, by result.",
		}, []string{"result"}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_client_retries_total",
			Help: "Retries scheduled after a failed federate or upload.",
		}),
		backoffSeconds: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_client_backoff_seconds_total",
			Help: "Time scheduled to wait before retries (backoff or Retry-After).",
		}),
		snapshots: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_client_snapshots_total",
			Help: "Snapshots by final outcome (sent, rejected, replaced, dropped).",
		}, []string{"result"}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_last_success_timestamp_seconds",
			Help: "When the gateway last accepted an upload.",
		}),
		payloadBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_payload_bytes",
			Help: "Size of the last upload body (compressed).",
		}),
		sentBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "telegate_client_sent_bytes_total",
			Help: "Bytes of upload bodies the gateway accepted.",
		}),
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
		enabled: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_client_enabled",
			Help: "1 while telemetry is enabled, 0 when disabled.",
		}),
	}
	for _, r := range []string{"success", "error", "too_large"} {
		m.federateRequests.WithLabelValues(r)
	}
	for _, r := range FilterReasons {
		m.samplesFiltered.WithLabelValues(r)
	}
	for _, r := range Results {
		m.uploadAttempts.WithLabelValues(r)
		m.authorize.WithLabelValues(r)
	}
	for _, r := range []string{SnapshotSent, SnapshotRejected, SnapshotReplaced, SnapshotDropped} {
		m.snapshots.WithLabelValues(r)
	}
	return m
}
