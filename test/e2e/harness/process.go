package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// logTailBytes bounds how much of each log file is dumped on failure.
const logTailBytes = 64 << 10

// ProcessOptions describes a process to run.
type ProcessOptions struct {
	// Name labels the process in test logs and log file names; defaults to
	// the base name of Binary.
	Name string
	// Binary is the path of the executable. Required.
	Binary string
	// Args are the command-line arguments (without the program name).
	Args []string
	// Env holds extra KEY=VALUE entries appended to the test's environment.
	Env []string
	// Dir is the working directory; defaults to a fresh t.TempDir().
	Dir string
	// StopTimeout is the grace period between SIGTERM and SIGKILL in Stop
	// and Restart; defaults to DefaultStopTimeout.
	StopTimeout time.Duration
}

// Process is a child process owned by a test. Its stdout and stderr go to
// files under t.TempDir() that survive restarts (each run is appended after
// a marker line). It is stopped in t.Cleanup, and its logs are written to
// the test log if the test failed.
//
// Methods that can fail the test (Restart, WaitHTTP) must be called from
// the test goroutine, like t.Fatal.
type Process struct {
	t          testing.TB
	opts       ProcessOptions
	stdoutPath string
	stderrPath string

	opMu sync.Mutex // serialises Stop, Kill and Restart

	mu      sync.Mutex // guards cmd, done and runs
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // written before done is closed
	runs    int

	dumpedSize [2]int64 // log sizes at the last dump, to avoid repeats
}

// StartProcess starts opts.Binary and fails the test if it cannot be
// started. The process is stopped when the test finishes.
func StartProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	if opts.Binary == "" {
		t.Fatalf("harness: ProcessOptions.Binary is empty")
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(opts.Binary)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	logDir := t.TempDir()
	p := &Process{
		t:          t,
		opts:       opts,
		stdoutPath: filepath.Join(logDir, opts.Name+".stdout.log"),
		stderrPath: filepath.Join(logDir, opts.Name+".stderr.log"),
	}
	if err := p.start(); err != nil {
		t.Fatalf("harness: starting %s: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Logf("harness: %s: %v", opts.Name, err)
		}
		if t.Failed() {
			p.dumpLogs()
		}
	})
	return p
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	stdout, err := os.OpenFile(p.stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(p.stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	if p.runs > 0 {
		marker := fmt.Sprintf("=== harness: restart #%d at %s ===\n", p.runs, time.Now().Format(time.RFC3339Nano))
		_, _ = io.WriteString(stdout, marker)
		_, _ = io.WriteString(stderr, marker)
	}
	cmd := exec.Command(p.opts.Binary, p.opts.Args...)
	cmd.Dir = p.opts.Dir
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Stdout = stdout // *os.File: the child writes to it directly
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	p.runs++
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// state returns the current command and its done channel (nil, nil if the
// process was never started).
func (p *Process) state() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Name returns the process name used in logs.
func (p *Process) Name() string { return p.opts.Name }

// Dir returns the working directory.
func (p *Process) Dir() string { return p.opts.Dir }

// Pid returns the OS process ID of the current run.
func (p *Process) Pid() int {
	cmd, _ := p.state()
	return cmd.Process.Pid
}

// Running reports whether the current run has not exited yet.
func (p *Process) Running() bool {
	_, done := p.state()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current run exits.
func (p *Process) Exited() <-chan struct{} {
	_, done := p.state()
	return done
}

// ExitError returns the result of the last run's Wait once it has exited
// (nil for exit code 0), and nil while it is still running.
func (p *Process) ExitError() error {
	if p.Running() {
		return nil
	}
	return p.exitErr()
}

// Stop sends SIGTERM and waits up to StopTimeout for the process to exit,
// then sends SIGKILL. It returns the exit error (nil for a clean exit with
// code 0), or an error saying SIGKILL was needed. Stopping a process that
// has already exited returns how it exited.
func (p *Process) Stop() error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	return p.stop()
}

func (p *Process) stop() error {
	cmd, done := p.state()
	select {
	case <-done:
		return p.exitErr()
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGTERM: %w", err)
	}
	timer := time.NewTimer(p.opts.StopTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return p.exitErr()
	case <-timer.C:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return fmt.Errorf("did not exit within %s of SIGTERM; sent SIGKILL", p.opts.StopTimeout)
}

// Kill sends SIGKILL and waits for the process to exit, simulating a crash.
func (p *Process) Kill() {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	cmd, done := p.state()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Signal sends sig to the current run (e.g. SIGSTOP and SIGCONT to stall
// it, SIGHUP to reload); a run that has exited is left alone.
func (p *Process) Signal(sig os.Signal) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	cmd, done := p.state()
	select {
	case <-done:
		return fmt.Errorf("%s has exited", p.opts.Name)
	default:
	}
	return cmd.Process.Signal(sig)
}

// Restart stops the process (if it is still running) and starts it again
// with the same binary, arguments, environment and working directory. It
// fails the test if the new run cannot be started.
func (p *Process) Restart() {
	p.t.Helper()
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if err := p.stop(); err != nil {
		p.t.Logf("harness: %s before restart: %v", p.opts.Name, err)
	}
	if err := p.start(); err != nil {
		p.t.Fatalf("harness: restarting %s: %v", p.opts.Name, err)
	}
}

// WaitHTTP polls url until it answers 200, like the package-level WaitHTTP,
// but fails at once (with the process logs) if the process exits first.
func (p *Process) WaitHTTP(url string, timeout time.Duration) {
	p.t.Helper()
	if err := waitHTTP(url, timeout, p.Exited()); err != nil {
		p.dumpLogs()
		if !p.Running() {
			err = fmt.Errorf("%w; exit: %v", err, p.exitErr())
		}
		p.t.Fatalf("harness: %s: %v", p.opts.Name, err)
	}
}

// LogPaths returns the files holding stdout and stderr of all runs.
func (p *Process) LogPaths() (stdout, stderr string) { return p.stdoutPath, p.stderrPath }

// Stdout returns everything the process wrote to stdout so far.
func (p *Process) Stdout() string { return readFile(p.stdoutPath) }

// Stderr returns everything the process wrote to stderr so far.
func (p *Process) Stderr() string { return readFile(p.stderrPath) }

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// dumpLogs writes the tail of both logs to the test log, unless nothing
// was written since the previous dump.
func (p *Process) dumpLogs() {
	p.t.Helper()
	sizes := [2]int64{fileSize(p.stdoutPath), fileSize(p.stderrPath)}
	p.mu.Lock()
	same := sizes == p.dumpedSize
	p.dumpedSize = sizes
	p.mu.Unlock()
	if same {
		return
	}
	for _, f := range []struct{ stream, path string }{{"stdout", p.stdoutPath}, {"stderr", p.stderrPath}} {
		s := readFile(f.path)
		if len(s) > logTailBytes {
			s = "[... truncated, full log in " + f.path + "]\n" + s[len(s)-logTailBytes:]
		}
		if s == "" {
			s = "(empty)\n"
		}
		p.t.Logf("harness: ---- %s %s (pid %d, run %d) ----\n%s", p.opts.Name, f.stream, p.Pid(), p.runCount(), s)
	}
}

func (p *Process) runCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
