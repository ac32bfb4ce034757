// Package decode owns the request-body decoders of the gateway: snappy
// (block format for remote write, framed format for /upload, identity) with
// hard caps on the decoded size, a hand-written protobuf walk of Prometheus
// remote write 1.0 (prometheus.WriteRequest) and of telemeter uploads
// (length-delimited io.prometheus.client.MetricFamily messages), both
// filling a *batch.Batch without allocating in steady state, and the
// Content-Type / Content-Encoding checks of both endpoints.
//
// Every failure is an *Error carrying the HTTP status the gateway answers
// with: 400 for malformed bodies, 413 when a cap is hit, 415 for an
// unsupported Content-Type or Content-Encoding.
//
// Strings in the batch alias the decoded buffer (unsafe.String): the buffer
// must not be modified or reused while the batch is in use. Keep it in
// Batch.Buf so both are recycled together.
//
// The protobuf walkers accept exactly what the reference decoders accept:
// remote write follows the gogo-generated prompb code Prometheus and Thanos
// use, telemeter uploads follow google.golang.org/protobuf (proto2
// semantics, merging of repeated optional messages). Differential tests and
// fuzz targets hold them to that.
//
// An optional NameFilter (the active allowlist's name check) lets both
// walkers skim what the gateway will drop by name: such series carry only
// __name__ and the cluster-ID label, but are decoded and checked in full,
// so a filter never changes which bodies are accepted.
package decode
