package e2e

import (
	"os"
	"testing"

	"github.com/telegate/telegate/test/e2e/harness"
)

// TestMain removes the binaries harness.BuildBinary built for this run.
func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupBuilds()
	os.Exit(code)
}
