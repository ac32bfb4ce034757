package harness

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFreePortUniqueAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p <= 0 || p > 65535 {
			t.Fatalf("bad port %d", p)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, want 127.0.0.1:PORT", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s not bindable: %v", addr, err)
	}
	l.Close()
}

func TestFindModuleRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := findModuleRoot(deep)
	if err != nil || got != root {
		t.Fatalf("findModuleRoot = %q, %v; want %q", got, err, root)
	}
	// A directory named go.mod is not a module file: keep walking up.
	fake := filepath.Join(root, "a", "go.mod")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findModuleRoot(deep); err != nil || got != root {
		t.Fatalf("with a go.mod directory: findModuleRoot = %q, %v; want %q", got, err, root)
	}
	if _, err := os.Stat("/go.mod"); err != nil {
		if got, err := findModuleRoot("/"); err == nil {
			t.Fatalf("findModuleRoot(/) = %q, want an error", got)
		}
	}

	mr, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mr, "test", "e2e", "harness", "doc.go")); err != nil {
		t.Fatalf("ModuleRoot() = %s does not contain this package: %v", mr, err)
	}
}

func TestBuildBinaryOncePerPackage(t *testing.T) {
	var wg sync.WaitGroup
	paths := make([]string, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runTB(t, func(tb testing.TB) { paths[i] = fakeproc(tb) })
			if f, _ := r.result(); f != "" {
				t.Errorf("build failed: %s", f)
			}
		}()
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("BuildBinary returned different paths: %q", paths)
		}
	}
	if filepath.Base(paths[0]) != "fakeproc" {
		t.Fatalf("binary named %q, want fakeproc", filepath.Base(paths[0]))
	}
	if !isExecutable(paths[0]) {
		t.Fatalf("%s is not executable", paths[0])
	}
	// The same pkg again reuses the build (no rebuild: same mtime).
	before, _ := os.Stat(paths[0])
	again := fakeproc(t)
	after, _ := os.Stat(again)
	if again != paths[0] || !before.ModTime().Equal(after.ModTime()) {
		t.Fatalf("second BuildBinary rebuilt or moved the binary")
	}
}

func TestBuildBinaryFailureFailsEveryCaller(t *testing.T) {
	for range 2 {
		r := runTB(t, func(tb testing.TB) { BuildBinary(tb, "./test/e2e/harness/testdata/does-not-exist") })
		fatal, _ := r.result()
		if !strings.Contains(fatal, "does-not-exist") || !strings.Contains(fatal, "go build") {
			t.Fatalf("fatal = %q, want the go build failure", fatal)
		}
	}
	r := runTB(t, func(tb testing.TB) { BuildBinary(tb, "  ") })
	if fatal, _ := r.result(); !strings.Contains(fatal, "empty package path") {
		t.Fatalf("fatal = %q", fatal)
	}
}

func TestProcessStartWaitStop(t *testing.T) {
	addr := FreeAddr(t)
	p := StartProcess(t, ProcessOptions{Binary: fakeproc(t), Args: []string{"-listen", addr}})
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	WaitHTTP(t, "http://"+addr+"/-/ready", time.Second)
	if p.Name() != "fakeproc" || p.Dir() == "" || p.Pid() <= 0 || !p.Running() {
		t.Fatalf("name=%q dir=%q pid=%d running=%v", p.Name(), p.Dir(), p.Pid(), p.Running())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	if !strings.Contains(p.Stdout(), "fakeproc started") {
		t.Fatalf("stdout = %q", p.Stdout())
	}
	if !strings.Contains(p.Stderr(), "fakeproc stderr hello") || !strings.Contains(p.Stderr(), "got SIGTERM") {
		t.Fatalf("stderr = %q", p.Stderr())
	}
	outPath, errPath := p.LogPaths()
	if filepath.Base(outPath) != "fakeproc.stdout.log" || filepath.Base(errPath) != "fakeproc.stderr.log" {
		t.Fatalf("log paths %s %s", outPath, errPath)
	}
	// Stopping again reports how it exited, without signalling anything.
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestProcessWorkingDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	p := StartProcess(t, ProcessOptions{
		Name:   "sh",
		Binary: "/bin/sh",
		Args:   []string{"-c", `pwd; echo "v=$HARNESS_TEST_VAR"`},
		Env:    []string{"HARNESS_TEST_VAR=42"},
		Dir:    dir,
	})
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("sh did not exit")
	}
	if err := p.ExitError(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	out := p.Stdout()
	if !strings.Contains(out, dir) || !strings.Contains(out, "v=42") {
		t.Fatalf("stdout = %q, want dir %s and v=42", out, dir)
	}
}

func TestProcessStopEscalatesToKill(t *testing.T) {
	addr := FreeAddr(t)
	p := StartProcess(t, ProcessOptions{
		Binary:      fakeproc(t),
		Args:        []string{"-listen", addr, "-ignore-term"},
		StopTimeout: 300 * time.Millisecond,
	})
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	start := time.Now()
	err := p.Stop()
	if err == nil || !strings.Contains(err.Error(), "SIGKILL") {
		t.Fatalf("Stop = %v, want SIGKILL escalation", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Stop took %s", d)
	}
	if !strings.Contains(p.Stderr(), "ignoring SIGTERM") {
		t.Fatalf("SIGTERM was not delivered first; stderr = %q", p.Stderr())
	}
}

func TestProcessKill(t *testing.T) {
	addr := FreeAddr(t)
	p := StartProcess(t, ProcessOptions{Binary: fakeproc(t), Args: []string{"-listen", addr}})
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	p.Kill()
	var ee *exec.ExitError
	if err := p.ExitError(); !errors.As(err, &ee) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("ExitError = %v, want killed", err)
	}
	if strings.Contains(p.Stderr(), "SIGTERM") {
		t.Fatal("Kill sent SIGTERM")
	}
	p.Kill() // no-op on an exited process
}

func TestProcessRestart(t *testing.T) {
	addr := FreeAddr(t)
	p := StartProcess(t, ProcessOptions{Binary: fakeproc(t), Args: []string{"-listen", addr}})
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	pid := p.Pid()
	p.Restart()
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	if p.Pid() == pid {
		t.Fatal("pid unchanged after Restart")
	}
	out := p.Stdout()
	if strings.Count(out, "fakeproc started") != 2 || !strings.Contains(out, "=== harness: restart #1") {
		t.Fatalf("stdout after restart = %q", out)
	}
	// Restart after a crash starts it again too.
	p.Kill()
	p.Restart()
	p.WaitHTTP("http://"+addr+"/-/ready", 10*time.Second)
	if c := strings.Count(p.Stdout(), "fakeproc started"); c != 3 {
		t.Fatalf("%d starts, want 3", c)
	}
}

func TestProcessWaitHTTPFailsFastWhenProcessExits(t *testing.T) {
	addr := FreeAddr(t)
	start := time.Now()
	r := runTB(t, func(tb testing.TB) {
		p := StartProcess(tb, ProcessOptions{Binary: fakeproc(t), Args: []string{"-exit-after", "100ms", "-exit-code", "7"}})
		p.WaitHTTP("http://"+addr+"/-/ready", 30*time.Second)
	})
	fatal, _ := r.result()
	if !strings.Contains(fatal, "process exited") || !strings.Contains(fatal, "exit status 7") {
		t.Fatalf("fatal = %q, want process exited with status 7", fatal)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s; should not wait for the full timeout", d)
	}
	// The logs were dumped to the test log.
	if l := r.logged(); !strings.Contains(l, "fakeproc stderr hello") || !strings.Contains(l, "exiting by itself") {
		t.Fatalf("logs not dumped; logged:\n%s", l)
	}
}

func TestProcessDumpLogsOnlyWhenChanged(t *testing.T) {
	r := &recorder{TB: t}
	p := StartProcess(r, ProcessOptions{Binary: fakeproc(t), Args: []string{"-exit-after", "1ms"}})
	<-p.Exited()
	p.dumpLogs()
	n := strings.Count(r.logged(), "exiting by itself")
	p.dumpLogs()
	if n != 1 || strings.Count(r.logged(), "exiting by itself") != 1 {
		t.Fatalf("dumped %d then %d times, want once", n, strings.Count(r.logged(), "exiting by itself"))
	}
	p.Restart()
	<-p.Exited()
	p.dumpLogs()
	if c := strings.Count(r.logged(), "exiting by itself"); c != 3 { // old run again plus the new one
		t.Fatalf("after restart: %d occurrences, want 3", c)
	}
}

func TestWaitHTTPTimeout(t *testing.T) {
	addr := FreeAddr(t) // nothing listens here
	start := time.Now()
	r := runTB(t, func(tb testing.TB) { WaitHTTP(tb, "http://"+addr+"/-/ready", 300*time.Millisecond) })
	fatal, _ := r.result()
	if !strings.Contains(fatal, "did not answer 200 within 300ms") {
		t.Fatalf("fatal = %q", fatal)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestStartProcessErrors(t *testing.T) {
	r := runTB(t, func(tb testing.TB) { StartProcess(tb, ProcessOptions{}) })
	if fatal, _ := r.result(); !strings.Contains(fatal, "Binary is empty") {
		t.Fatalf("fatal = %q", fatal)
	}
	r = runTB(t, func(tb testing.TB) {
		StartProcess(tb, ProcessOptions{Binary: filepath.Join(t.TempDir(), "missing")})
	})
	if fatal, _ := r.result(); !strings.Contains(fatal, "starting missing") {
		t.Fatalf("fatal = %q", fatal)
	}
}

func TestRequireBinary(t *testing.T) {
	const env = "HARNESS_TEST_BINARY"
	t.Setenv(SkipMissingEnv, "")
	t.Setenv(env, "")

	if got := RequireBinary(t, env, "hint", "/definitely/missing", "/bin/sh"); got != "/bin/sh" {
		t.Fatalf("got %q, want /bin/sh", got)
	}
	if got := RequireBinary(t, "", "hint", "sh"); !strings.HasSuffix(got, "/sh") {
		t.Fatalf("PATH lookup got %q", got)
	}
	t.Setenv(env, "/bin/sh")
	if got := RequireBinary(t, env, "hint", "/definitely/missing"); got != "/bin/sh" {
		t.Fatalf("env override got %q", got)
	}
	t.Setenv(env, "/definitely/missing")
	r := runTB(t, func(tb testing.TB) { RequireBinary(tb, env, "hint", "/bin/sh") })
	if fatal, _ := r.result(); !strings.Contains(fatal, "not an executable") {
		t.Fatalf("bad env override: fatal = %q", fatal)
	}
	t.Setenv(env, "")

	r = runTB(t, func(tb testing.TB) { RequireBinary(tb, env, "run `make test`", "/definitely/missing") })
	fatal, skipped := r.result()
	if skipped != "" || !strings.Contains(fatal, "run `make test`") || !strings.Contains(fatal, SkipMissingEnv) {
		t.Fatalf("missing: fatal = %q, skipped = %q", fatal, skipped)
	}

	t.Setenv(SkipMissingEnv, "1")
	r = runTB(t, func(tb testing.TB) { RequireBinary(tb, env, "run `make test`", "/definitely/missing") })
	fatal, skipped = r.result()
	if fatal != "" || !strings.Contains(skipped, "run `make test`") {
		t.Fatalf("missing with skip: fatal = %q, skipped = %q", fatal, skipped)
	}
}

func TestPrometheusBinaryHonoursEnv(t *testing.T) {
	t.Setenv(PrometheusEnv, "/bin/sh")
	if got := PrometheusBinary(t); got != "/bin/sh" {
		t.Fatalf("PrometheusBinary = %q with $%s=/bin/sh", got, PrometheusEnv)
	}
	t.Setenv(PrometheusEnv, "")
	if _, err := os.Stat(DefaultPrometheusBinary); err == nil {
		if got := PrometheusBinary(t); got != DefaultPrometheusBinary {
			t.Fatalf("PrometheusBinary = %q", got)
		}
	}
}
