//go:build linux

package harness

import "syscall"

// sysProcAttr makes the kernel SIGKILL the child if the test binary dies
// without running its cleanups (e.g. a `go test -timeout` panic), so no
// orphaned servers keep ports busy.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
