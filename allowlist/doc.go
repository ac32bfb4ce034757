// Package allowlist owns the metrics allowlist: parsing the file teams edit,
// and deciding quickly whether a series may leave the gateway.
//
// The file is the format OpenShift telemeter uses: a YAML document with one
// top-level key, "matches", holding a list of Prometheus series selectors.
// The same document may also be embedded in a Kubernetes ConfigMap. The
// comment block directly above an entry (no blank line in between) documents
// it: a line "owners: (@org/team-a, @org/team-b)" names the owning teams and
// the other lines are its description.
//
//	matches:
//	# owners: (@openshift/openshift-team-cvo)
//	#
//	# cluster_version reports the installed and desired versions.
//	- '{__name__="cluster_version"}'
//	- 'cluster:capacity_cpu_cores:sum'
//
// Selectors are OR'ed; the matchers inside one selector are AND'ed, with
// Prometheus semantics (a matcher on an absent label sees the value "").
// An empty list is valid and denies every series.
//
// Matching is indexed by metric name and does not allocate, so it can run on
// every series of every request. Each Entry keeps its line, owners and
// description for the lint, docs and explain tooling.
//
// The tooling for teams that edit the file (telegate allowlist ...):
//
//   - Lint checks a document the way a reviewer would (owners,
//     description, exact metric names, duplicates and overlaps, matchers on
//     stripped labels, recording rule names, personal data) and returns
//     findings printed as FILE:LINE: error|warning: message (rule). A
//     comment line "# lint: allow-RULE" above an entry turns off one of the
//     SuppressibleRules for it.
//   - WriteDocs renders a Markdown reference of every allowed metric.
//   - Diff compares two versions metric by metric (allowed, denied,
//     changed matchers or owners).
//   - Explain takes a set of series (a cluster's upload, a Prometheus's
//     answer, SeriesFromText of an exposition) and reports per metric
//     whether and by which entry it is allowed or why not, what stripping
//     removes and which series then collide, and series counts per metric,
//     entry and owner against the cardinality guidance. It needs no
//     network, so the gateway can serve it for an upload it received.
package allowlist
