// Package decode owns the request-body decoders of the gateway: snappy
// (block format for remote write, framed format for /upload, identity) with
// hard caps on the decoded size, hand-written protobuf walks of Prometheus
// remote write 1.0 (prometheus.WriteRequest) and 2.0
// (io.prometheus.write.v2.Request, labels through its symbols table) and of
// telemeter uploads
// (length-delimited io.prometheus.client.MetricFamily messages, whose
// native histograms are re-encoded as remote write histograms), both
// filling a *batch.Batch without allocating in steady state (but for the
// chunks an upload's native histograms are encoded into), and the
// Content-Type / Content-Encoding checks of both endpoints. Pushes (push.go)
// are Prometheus text or OpenMetrics 1.0, parsed by Prometheus' own
// streaming parsers (model/textparse) into the same batch with the same
// limits (a 400 names the line), or the /upload protobuf body; gzip and
// snappy (framed or block) bodies are decompressed under the same caps.
//
// Every failure is an *Error carrying the HTTP status the gateway answers
// with: 400 for malformed bodies, 413 when a cap is hit, 415 for an
// unsupported Content-Type or Content-Encoding.
//
// Strings in the batch alias the decoded buffer (unsafe.String): the buffer
// must not be modified or reused while the batch is in use. Keep it in
// Batch.Buf so both are recycled together.
//
// The remote write walkers push float samples, native histograms (each
// as its protobuf message, aliasing the buffer), exemplars and metric
// metadata (one entry per family).
//
// The protobuf walkers accept exactly what the reference decoders accept:
// remote write follows the gogo-generated prompb code Prometheus and Thanos
// use (2.0: writev2, plus the spec's rules on symbols and label order;
// both: native histograms must pass the rules of Prometheus' histogram
// validation, see histogram.go), telemeter uploads follow
// google.golang.org/protobuf (proto2 semantics, merging of repeated
// optional messages). Differential tests and fuzz targets hold them to
// that.
//
// An optional NameFilter (the active allowlist's name check) lets both
// walkers skim what the gateway will drop by name: such series carry only
// __name__ and the cluster-ID label (and all their samples, histograms and
// exemplars), but are decoded and checked in full, so a filter never
// changes which bodies are accepted.
//
// Memory is bounded while decoding, not after: per request a decoder makes
// the batch (series, labels, samples, histograms, exemplars, metadata)
// hold at most Limits.MaxBatchBytes (RemoteWriteBudget or
// UploadBudget of the decoded size: 4 or 32 bytes per decoded byte plus
// 1 MiB, chosen from measured honest payloads, see the constants), refuses
// a series (or a remote write exemplar) with more than
// Limits.MaxLabelsPerSeries labels and a request with more than
// Limits.MaxSeries series. The batch's arenas add up to a
// quarter more while growing, and only the current generation stays live
// (see batch.Batch). The streaming readers call a Reserve hook before each
// buffer growth, and DecodedLen gives a block's size before DecodeBlock
// allocates it, so a caller can take the memory from a global budget first.
package decode
