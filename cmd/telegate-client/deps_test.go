package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The lean client binary links none of the gateway's heavy dependencies:
// the TSDB and PromQL of the embedded store, Kubernetes, the cloud SDKs
// and Thanos (objstore) of the spool. A new import in client/ or
// client/cli that drags one of them in fails here.
func TestNoHeavyDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/prometheus/prometheus/tsdb",
		"github.com/prometheus/prometheus/promql",
		"k8s.io/",
		"github.com/aws/",
		"cloud.google.com/",
		"github.com/Azure/",
		"github.com/thanos-io/",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; want the whole graph", len(deps))
	}
	for _, pkg := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("telegate-client depends on %s (forbidden prefix %s)", pkg, f)
			}
		}
	}
	// The same check sees the heavy packages where they are: the full
	// binary has them, so the list is not vacuously clean.
	full, err := exec.Command(goBin, "list", "-deps", "../telegate").Output()
	if err != nil {
		t.Fatalf("go list -deps ../telegate: %v", err)
	}
	if !strings.Contains(string(full), "github.com/prometheus/prometheus/tsdb\n") {
		t.Errorf("cmd/telegate does not list prometheus/tsdb: the check above may be blind")
	}
}
