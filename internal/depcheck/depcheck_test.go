package depcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/telegate/telegate/"

// hotPath are the packages on the request path. tests says whether their
// test binaries must be clean too: gateway's tests run the embedded store,
// whose Prometheus dependencies (prometheus/config: remote-write auth via
// Azure AD, Google IAM, SigV4) bring cloud SDKs that are not the spool's.
var hotPath = []struct {
	pkg   string
	tests bool
}{
	{"gateway", false},
	{"gateway/decode", true},
	{"forward", true},
	{"relabel", true},
	{"limits", true},
	{"batch", true},
}

// cloudPrefixes are the import paths of cloud SDKs.
var cloudPrefixes = []string{
	"github.com/aws/",
	"cloud.google.com/",
	"github.com/Azure/",
	"github.com/AzureAD/",
	"github.com/minio/",
	"google.golang.org/api/",
}

func isCloud(path string) bool {
	for _, p := range cloudPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// goList runs go list with args and returns, per listed package, the
// space-separated list the template's second field prints.
func goList(t *testing.T, args ...string) map[string][]string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(goCmd, append([]string{"list"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	res := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		name, list, _ := strings.Cut(sc.Text(), "\t")
		res[name] = strings.Fields(list)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestHotPathHasNoCloudSDK fails when a request-path package (or its test
// binary, where marked) depends on a cloud SDK, and prints the import
// chain that brings it in.
func TestHotPathHasNoCloudSDK(t *testing.T) {
	var pkgs []string
	for _, h := range hotPath {
		pkgs = append(pkgs, module+h.pkg)
	}
	// One go list for all: each package with all its dependencies, and
	// with -test also each test binary's variant ("p [p.test]").
	deps := goList(t, append([]string{"-test", "-f", "{{.ImportPath}}\t{{join .Deps \" \"}}"}, pkgs...)...)
	checked := 0
	for _, h := range hotPath {
		p := module + h.pkg
		roots := []string{p}
		if h.tests {
			for name := range deps {
				if strings.HasSuffix(name, "["+p+".test]") || name == p+".test" {
					roots = append(roots, name)
				}
			}
		}
		for _, root := range roots {
			d, ok := deps[root]
			if !ok {
				t.Errorf("go list did not list %s", root)
				continue
			}
			checked++
			if i := slices.IndexFunc(d, isCloud); i >= 0 {
				t.Errorf("%s depends on the cloud SDK package %s: %s", root, d[i], chain(t, root, p, h.tests, d[i]))
			}
		}
	}
	if checked < len(hotPath) {
		t.Fatalf("checked %d packages, want at least %d", checked, len(hotPath))
	}
}

// chain returns the shortest import chain from root (pkg or one of its
// test variants) to target.
func chain(t *testing.T, root, pkg string, tests bool, target string) string {
	args := []string{"-deps", "-f", "{{.ImportPath}}\t{{join .Imports \" \"}}"}
	if tests {
		args = append(args, "-test")
	}
	imports := goList(t, append(args, pkg)...)
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == target {
			var path []string
			for n := cur; n != ""; n = prev[n] {
				path = append(path, n)
			}
			slices.Reverse(path)
			return strings.Join(path, " -> ")
		}
		for _, next := range imports[cur] {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return "(chain not found)"
}
