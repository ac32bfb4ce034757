// Package limits owns per-cluster budgets: active series (a series is
// active if seen within a window), samples per second (token bucket) and
// the upload cadence (one /upload per interval). Budgets are global
// defaults plus per-cluster overrides from a hot-reloaded file, each with
// an optional expiry; any budget can run in shadow mode (enforce: false).
// State lives in memory for one replica (SeriesTracker: at most 32 bytes
// per tracked series) or in Redis for several (RedisStore: one atomic Lua
// round trip per check), with a configurable fail-open choice.
package limits
