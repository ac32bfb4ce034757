// Package privacy is the PII guard: it looks at the label values of series
// the allowlist kept and finds the ones that carry personal data by
// accident (e-mail addresses, IP and MAC addresses, URLs with credentials,
// host names under configured domains, long secret-looking tokens). Per
// detector, and per metric where configured, it replaces such a value with
// a keyed hash (HMAC-SHA256 with a per-deployment key, so equal values
// still group), redacts it, drops the series, or only counts (shadow).
//
// It runs on the client before anything leaves the machine and again on
// the gateway, after the allowlist and before stamping and budgets. Like
// every stage it works on a batch.Batch and never knows the protocol.
// Values it wrote itself (hashes and redactions) pass untouched, so a
// value the client hashed is not hashed again by the gateway.
//
// It also holds the opt-out list (OptOuts): installations that asked to
// send nothing more, refused by the gateway once authenticated.
//
// False positives matter as much as misses: metric names, the cluster ID,
// le and quantile, versions, UUIDs and ordinary values pass untouched; the
// table test in guard_test.go keeps a corpus of both kinds.
package privacy
