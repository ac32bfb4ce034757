package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// SkipMissingEnv, when set to 1, makes RequireBinary skip the test instead
// of failing it. Meant for local runs only; CI must leave it unset.
const SkipMissingEnv = "TELEGATE_E2E_SKIP_MISSING"

// PrometheusEnv overrides the path of the prometheus binary.
const PrometheusEnv = "TELEGATE_E2E_PROMETHEUS"

// DefaultPrometheusBinary is where the Debian package installs Prometheus.
const DefaultPrometheusBinary = "/usr/bin/prometheus"

// RequireBinary returns the path of an external executable: the value of
// the environment variable env if set (and env is not empty), else the
// first candidate that exists (a path containing a slash, or a name looked
// up in PATH). If none is found it fails the test with hint (say how to
// install it), or skips it when TELEGATE_E2E_SKIP_MISSING=1.
func RequireBinary(t testing.TB, env, hint string, candidates ...string) string {
	t.Helper()
	tried := []string{}
	if env != "" {
		if p := os.Getenv(env); p != "" {
			if isExecutable(p) {
				return p
			}
			t.Fatalf("harness: $%s=%s is not an executable file", env, p)
		}
		tried = append(tried, "$"+env)
	}
	for _, c := range candidates {
		tried = append(tried, c)
		if strings.ContainsRune(c, os.PathSeparator) || strings.ContainsRune(c, '/') {
			if isExecutable(c) {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "harness: required executable not found (tried " + strings.Join(tried, ", ") + "); " + hint
	if os.Getenv(SkipMissingEnv) == "1" {
		t.Skipf("%s [skipped because %s=1]", msg, SkipMissingEnv)
	}
	t.Fatalf("%s (set %s=1 to skip locally instead)", msg, SkipMissingEnv)
	return ""
}

// PrometheusBinary returns the prometheus executable ($TELEGATE_E2E_PROMETHEUS
// or /usr/bin/prometheus), failing the test if it is missing.
func PrometheusBinary(t testing.TB) string {
	t.Helper()
	return RequireBinary(t, PrometheusEnv, "run `make test`, which installs the prometheus package", DefaultPrometheusBinary)
}

// Prometheus3Env overrides the path of the Prometheus 3 binary.
const Prometheus3Env = "TELEGATE_E2E_PROMETHEUS3"

// Prometheus3Binary returns a stock Prometheus 3 executable:
// $TELEGATE_E2E_PROMETHEUS3, else bin/prometheus3 under the module root
// (built by `make prometheus3` at the version test/tools/prometheus3/go.mod
// pins). It fails the test if it is missing. Pass it as
// PrometheusOptions.Binary for what Debian's Prometheus 2.42 cannot do:
// scrape_native_histograms, remote write 2.0.
func Prometheus3Binary(t testing.TB) string {
	t.Helper()
	var candidates []string
	if root, err := ModuleRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, "bin", "prometheus3"))
	}
	return RequireBinary(t, Prometheus3Env, "run `make prometheus3` (builds bin/prometheus3 from the module proxy)", candidates...)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
