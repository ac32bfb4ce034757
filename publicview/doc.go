// Package publicview serves a public, aggregate view of the fleet that
// cannot be traced back to any one installation: OpenMetrics text of
// configured PromQL aggregations (for example count by (version)
// (cluster_version)), evaluated over the embedded store or a Thanos Query
// URL. Every output series must be backed by at least K distinct
// installations: a companion query counts the installations behind each
// group, and smaller groups are suppressed and counted. A query is
// refused at load unless it is a sum, count, avg or group aggregation
// whose "by" labels do not include the installation label, so no
// per-installation label can appear in the output. Answers are cached and
// the listener is rate-limited.
package publicview
