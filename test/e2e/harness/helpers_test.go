package harness

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBuilds()
	os.Exit(code)
}

// recorder is a testing.TB whose Fatal and Skip record the message and end
// only the goroutine started by runTB, so tests can assert on the harness's
// own failures. Everything else is delegated to the real test.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped string
	logs    []string
}

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.TB.Logf(format, args...)
}

func (r *recorder) logged() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) { r.Skipf("%s", fmt.Sprint(args...)) }

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal != "" || r.TB.Failed()
}

func (r *recorder) result() (fatal, skipped string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal, r.skipped
}

// runTB runs fn with a recorder in its own goroutine and waits for it.
func runTB(t *testing.T, fn func(tb testing.TB)) *recorder {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r
}

// fakeproc builds the test child program.
func fakeproc(t testing.TB) string {
	t.Helper()
	return BuildBinary(t, "./test/e2e/harness/testdata/fakeproc")
}
