// Package harness is the tooling for telegate's end-to-end tests: it starts
// real processes on 127.0.0.1 (Prometheus, Debian's 2.42 or the pinned
// Prometheus 3 of Prometheus3Binary; Thanos, one Receive or a hashring of
// several with a replication factor, and Query; Redis; HAProxy; and
// telegate itself built from this module), signals them (Kill, Signal for
// SIGSTOP/SIGCONT, HAProxy's reload), speaks the wire protocols a cluster speaks
// (telemeter /authorize and /upload, Prometheus remote write 1.0), and reads
// results back from the real store with PromQL.
//
// Nothing here is a mock: every helper talks HTTP to a live process. All
// waits are bounded by explicit timeouts, processes are stopped (SIGTERM,
// then SIGKILL) in t.Cleanup, and their stdout/stderr are kept in files that
// are dumped to the test log when a test fails.
//
// Executables of this module are built once per test binary by BuildBinary;
// a package using it should remove them in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		harness.CleanupBuilds()
//		os.Exit(code)
//	}
//
// External binaries are found by RequireBinary. A missing binary fails the
// test (CI must never skip silently) unless TELEGATE_E2E_SKIP_MISSING=1 is
// set, which turns the failure into a skip for local runs.
package harness
