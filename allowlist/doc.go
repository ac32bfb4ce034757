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
package allowlist
