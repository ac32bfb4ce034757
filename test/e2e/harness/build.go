package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds one `go build`.
const buildTimeout = 5 * time.Minute

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var builds = struct {
	sync.Mutex
	dir     string
	results map[string]*buildResult
}{results: map[string]*buildResult{}}

// BuildBinary builds a main package of this module with `go build` and
// returns the path of the executable. pkg is relative to the module root
// ("./cmd/telegate") or a full import path. Each package is built at most
// once per test binary run, even when tests call BuildBinary in parallel; a
// failed build fails every caller with the compiler output.
//
// The executables live in one temporary directory; call CleanupBuilds from
// TestMain after m.Run to remove it.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	builds.Lock()
	r, ok := builds.results[pkg]
	if !ok {
		r = &buildResult{}
		builds.results[pkg] = r
	}
	builds.Unlock()
	r.once.Do(func() { r.path, r.err = build(pkg) })
	if r.err != nil {
		t.Fatalf("harness: building %s: %v", pkg, r.err)
	}
	return r.path
}

// CleanupBuilds removes the executables made by BuildBinary. Later
// BuildBinary calls in the same run would fail, so call it only after all
// tests have finished (in TestMain).
func CleanupBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
}

func buildDir() (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "telegate-e2e-bin-")
		if err != nil {
			return "", err
		}
		builds.dir = d
	}
	return builds.dir, nil
}

func build(pkg string) (string, error) {
	if strings.TrimSpace(pkg) == "" {
		return "", errors.New("empty package path")
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	// One sub-directory per package keeps packages that share a base name
	// apart while the executable keeps its natural name (e.g. "telegate").
	clean := path.Clean(filepath.ToSlash(pkg))
	sub := strings.NewReplacer("/", "_", ".", "_").Replace(strings.Trim(clean, "./"))
	base := path.Base(clean)
	if sub == "" || base == "." || base == "/" {
		sub, base = "root", "main"
	}
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, sub, base)
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	cmd.Dir = root
	output, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -o %s %s (in %s): %v\n%s", out, pkg, root, err, output)
	}
	return out, nil
}

// goTool finds the go command: the one in PATH, else the one of the
// toolchain that built this test binary.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("go command not found in PATH nor at %s", p)
	}
	return p, nil
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory (a test runs in its package directory).
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return findModuleRoot(wd)
}

func findModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", dir)
		}
		d = parent
	}
}
