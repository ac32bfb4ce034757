package harness

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut remembers every port returned in this test binary so that two
// callers never receive the same port, even if the kernel reuses it between
// the two probes.
var handedOut = struct {
	sync.Mutex
	ports map[int]struct{}
}{ports: map[int]struct{}{}}

// FreePort returns a TCP port on 127.0.0.1 that was free when probed and has
// not been returned before by this test binary. The port is released before
// FreePort returns, so the caller should bind it soon.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port, err := probePort()
		if err != nil {
			t.Fatalf("harness: finding a free port on 127.0.0.1: %v", err)
		}
		handedOut.Lock()
		_, seen := handedOut.ports[port]
		if !seen {
			handedOut.ports[port] = struct{}{}
		}
		handedOut.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatalf("harness: no unused free port on 127.0.0.1 after 100 attempts")
	return 0
}

// FreeAddr returns "127.0.0.1:PORT" for a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

func probePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}
