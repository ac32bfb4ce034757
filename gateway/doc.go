// Package gateway owns the HTTP surface: the routes (/authorize, /upload,
// /api/v1/receive and its alias, the push of text exposition at
// /metrics/v1/push and the Pushgateway path form /metrics/job/... (push.go),
// health, and the internal /metrics and pprof), the handlers that run every protocol through one pipeline
// (decode -> identity -> allowlist -> relabel -> limits -> forward), and the
// status-code contract of DESIGN.md, mapped from typed errors in one place
// (errors.go). Protocol decoders live in gateway/decode.
package gateway
