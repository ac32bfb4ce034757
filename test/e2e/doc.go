// Package e2e holds the end-to-end tests: the real telegate binary between
// real Prometheus processes (and, for durability, real Thanos), all on
// 127.0.0.1. Every test asserts on data read back from the real store with
// PromQL. `make test` installs the Debian prometheus package they need and
// builds the pinned Thanos and Prometheus 3 (`make thanos prometheus3`).
package e2e
