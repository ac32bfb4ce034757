// Package client is the cluster-side sidecar of telegate (`telegate
// client`), a drop-in replacement for OpenShift's telemeter-client, and the
// agent beside a service's plain metrics endpoint.
//
// Every interval it collects a snapshot of the selected series: it
// federates them from the cluster's Prometheus (/federate, delimited
// protobuf with text fallback, size-capped), or, in scrape mode (Scraper,
// --from-scrape), it reads plain metrics endpoints (OpenMetrics or the
// Prometheus text format, negotiated and parsed with Prometheus'
// model/textparse) and keeps the series its selectors match (ParseSelector:
// the client applies them itself, so nothing outside them leaves the
// machine). It transforms the snapshot (validation, label elision, renames,
// extra labels, salted-hash anonymization, de-duplication, then the token
// labels of /authorize), and uploads it to a telemeter-compatible gateway
// (/authorize, then /upload with framed snappy). A failed upload is
// retried with jittered exponential backoff, honouring Retry-After, until
// it is sent or the next cycle replaces it; 4xx refusals are not retried.
// Once runs a single cycle, for cron-style senders.
//
// Without an id it identifies itself with an installation ID, a random
// UUID generated on first start and kept in the state directory
// (LoadOrCreateID, RotateID), so it survives restarts and upgrades.
//
// For transparency the start-up log says what is sent, where, and how to
// turn it off, and every send is logged; the last payloads can be kept in
// a staging directory (Inspect prints one as text), the last payload is
// served at /last-payload, and DryRun prints what would be sent.
//
// It works on client_model's dto.MetricFamily and depends on no other
// telegate package but bytesize.
package client
