// Package store is the gateway's embedded long-term storage, used when
// forward.url is empty ("single-binary mode"): a Prometheus TSDB
// (github.com/prometheus/prometheus/tsdb) on local disk, and the Prometheus
// HTTP query API over it.
//
// It owns three things:
//
//   - Store: opens the TSDB (WAL on, retention by time and size, exemplar
//     storage on) and appends the gateway's processed batches to it: float
//     samples, native histogram samples (the batch's remote write
//     Histogram messages, decoded here, integer or float) and exemplars.
//     Append returns nil only after the TSDB transaction committed to the
//     WAL and the WAL segment was fsynced (group commit: concurrent
//     requests share one fsync), so a 2xx survives SIGKILL and power
//     loss. Samples and histograms the TSDB refuses for good (out of
//     order, out of bounds, too old, a different value for an existing
//     timestamp, invalid labels, a histogram that does not decode or
//     breaks the histogram rules) are counted and reported as a
//     non-recoverable *forward.Error with status 400, which the gateway
//     answers 400 downstream_rejected; the rest of the request is stored,
//     as Prometheus' own remote-write receiver does. Refused exemplars
//     (out of order, labels too long) are counted and dropped without
//     failing the request. AppendWritten also returns what was stored, by
//     kind (the remote write 2.0 written headers). Storage failures (disk
//     full, WAL write errors) are recoverable (503). Send accepts a
//     snappy-compressed remote-write body too, so Store is a drop-in
//     gateway.Forwarder.
//   - API: /api/v1/query, /api/v1/query_range, /api/v1/series,
//     /api/v1/labels, /api/v1/label/NAME/values and
//     /api/v1/query_exemplars with Prometheus' JSON shapes (native
//     histogram samples as "histogram"/"histograms" objects with count,
//     sum and buckets) and error types, plus what Grafana's Prometheus
//     data source asks for (/api/v1/status/buildinfo, /api/v1/metadata,
//     /api/v1/rules, /api/v1/alerts) answered with correct empty shapes.
//   - Its self-metrics: the TSDB's own prometheus_tsdb_* and the engine's
//     prometheus_engine_* under the caller's registry, plus telegate_store_*.
//
// store does not import gateway. Store.Send satisfies gateway.Forwarder;
// Store.Append takes the processed batch directly, for an optional
// gateway.BatchForwarder interface that skips the encode/decode round trip.
package store
