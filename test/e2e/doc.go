// Package e2e holds the end-to-end tests: the real telegate binary between
// real Prometheus processes (and, for durability, real Thanos), all on
// 127.0.0.1. Every test asserts on data read back from the real store with
// PromQL. `make test` installs the Debian prometheus, redis-server and
// haproxy packages they need and builds the pinned Thanos and Prometheus 3
// (`make thanos prometheus3`). The scale-out tests (scale_test.go) run
// three gateway replicas behind HAProxy over a Thanos Receive hashring
// under faults and count every acknowledged sample among the receivers'
// raw samples.
package e2e
