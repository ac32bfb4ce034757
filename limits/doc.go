// Package limits owns per-cluster budgets: today the upload cadence (one
// /upload per cluster per interval); later issues add active-series and
// sample-rate budgets, shared across replicas through Redis. Limits are
// reached through small interfaces so an unconfigured limit costs nothing.
package limits
