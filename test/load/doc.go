// Package load generates realistic telemetry traffic for telegate: the
// benchmark payload (20 metric names x 50 series, 10 labels each including
// instance and pod, one sample each) in both wire formats, and a fleet
// simulator in which N clusters /authorize and then /upload (or remote
// write) on the 4m30s cadence, time-compressed by a speedup factor, or,
// with Config.Senders, a closed loop of senders that each send the next
// request as soon as the previous one is answered (saturation, or one
// request at a time with a single sender). It
// measures achieved rate, latency percentiles, status codes and, from the
// gateway's own /metrics, its CPU time and memory per upload. Any other
// remote-write receiver exposing process_cpu_seconds_total (vmagent) can be
// measured the same way with another write path (Config.Path); Sink is the
// decode-only downstream (scripts/compare.sh runs both side by side).
//
// It only ever talks to loopback addresses: it is a capacity-planning tool
// for one machine, never a way to load someone else's service.
package load
