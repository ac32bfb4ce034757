package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// HAProxyEnv overrides the path of the haproxy binary.
const HAProxyEnv = "TELEGATE_E2E_HAPROXY"

// DefaultHAProxyBinary is where Debian's haproxy package installs it.
const DefaultHAProxyBinary = "/usr/sbin/haproxy"

// HAProxyBinary returns the haproxy executable ($TELEGATE_E2E_HAPROXY,
// /usr/sbin/haproxy or haproxy in PATH), failing the test if it is
// missing.
func HAProxyBinary(t testing.TB) string {
	t.Helper()
	return RequireBinary(t, HAProxyEnv, "run `make test`, which installs the haproxy package", DefaultHAProxyBinary, "haproxy")
}

// HAProxy is a haproxy in master-worker mode owned by a test, running a
// configuration the test wrote.
type HAProxy struct {
	proc *Process
	cfg  string
}

// StartHAProxy writes config to a file, runs `haproxy -W -db -f` on it and
// waits until every address in listen accepts connections. It is stopped
// when the test ends.
func StartHAProxy(t testing.TB, config string, listen ...string) *HAProxy {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatalf("harness: writing haproxy config: %v", err)
	}
	h := &HAProxy{cfg: cfg}
	h.proc = StartProcess(t, ProcessOptions{Name: "haproxy", Binary: HAProxyBinary(t), Args: []string{"-W", "-db", "-f", cfg}, Dir: dir})
	for _, addr := range listen {
		if err := waitDial(addr, 20*time.Second, h.proc.Exited()); err != nil {
			h.proc.dumpLogs()
			t.Fatalf("harness: haproxy: %v", err)
		}
	}
	return h
}

// Process returns the underlying process.
func (h *HAProxy) Process() *Process { return h.proc }

// Reload asks the master to reload its configuration (SIGUSR2): new
// workers take over the listeners, old ones finish their connections.
func (h *HAProxy) Reload() error { return h.proc.Signal(syscall.SIGUSR2) }

// waitDial waits until addr accepts a TCP connection.
func waitDial(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %s: %w", addr, timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before %s accepted connections", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
