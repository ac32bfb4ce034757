// Package client is the cluster-side sidecar of telegate (`telegate
// client`), a drop-in replacement for OpenShift's telemeter-client.
//
// Every interval it federates a snapshot of the selected series from the
// cluster's Prometheus (/federate, delimited protobuf with text fallback,
// size-capped), transforms it (validation, label elision, renames, extra
// labels, salted-hash anonymization, de-duplication, then the token labels
// of /authorize), and uploads it to a telemeter-compatible gateway
// (/authorize, then /upload with framed snappy). A failed upload is retried
// with jittered exponential backoff, honouring Retry-After, until it is
// sent or the next cycle replaces it; 4xx refusals are not retried.
//
// For transparency the last payloads can be kept in a staging directory
// (Inspect prints one as text), the last payload is served at
// /last-payload, and DryRun prints what would be sent.
//
// It works on client_model's dto.MetricFamily and depends on no other
// telegate package.
package client
