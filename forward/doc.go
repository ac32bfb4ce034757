// Package forward sends batches to long-term storage by Prometheus remote
// write 1.0 (Thanos Receive, or Prometheus with
// --web.enable-remote-write-receiver).
//
// It owns three things:
//
//   - Encoding: AppendWriteRequest writes a prometheus.WriteRequest for a
//     slice of batch.Series (labels, samples, exemplars, native histograms
//     as their already-encoded Raw) without intermediate structs,
//     byte-identical to prompb's Marshal, and AppendMetadata its
//     MetricMetadata; Buffers.Encode adds snappy block compression (s2's
//     snappy-compatible encoder) into reused (pooled) buffers;
//     Buffers.EncodeSplitMetadata (EncodeSplit without metadata) keeps
//     each request under a size limit, splitting an oversized series by
//     its points and exemplars, the metadata in the first request.
//   - Sending: Sender.Send posts one compressed body with the headers the
//     spec requires plus configured ones, retries network errors, 5xx and
//     429 with jittered exponential backoff (or the downstream's
//     Retry-After) within the caller's deadline, and returns an *Error that
//     says whether the failure is recoverable, so the gateway can answer
//     503 or 400/413.
//   - Durability: Durable.Send tries the Sender within a deadline and, when
//     the downstream cannot take the body now, writes it to a Spool on a
//     thanos-io/objstore bucket (FSBucket: atomic, fsynced uploads) and
//     returns nil, so a 2xx always means forwarded or durably spooled.
//     Spool.Replay drains it in the background: oldest first per cluster,
//     clusters in turn, delete only after a 2xx, dead/ for what the
//     downstream refuses for good.
//   - Its self-metrics (telegate_forward_*, telegate_spool_*).
//
// Send takes an encoded body rather than series so a durable spool can
// store bodies and replay them through the same call.
package forward
