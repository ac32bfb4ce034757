// Package deploy holds what it takes to run telegate in production: the
// Kubernetes manifests (kubernetes/: kustomize bases and overlays), the
// Grafana dashboards and the Prometheus alerting and recording rules with
// their promtool unit tests (monitoring/).
//
// The Go code embeds those files (FS) and extracts the PromQL the
// dashboards and rules use (Queries, MetricNames), so tests can check that
// every metric they reference is one the binaries expose.
package deploy
