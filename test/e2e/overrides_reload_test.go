package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// TestOverridesReloadOnRequest: a new budget override applies on
// POST /-/reload (the file poll is set to an hour, so only the explicit
// reload can pick it up), and the store shows the cluster growing past
// its old budget to exactly the new one.
func TestOverridesReloadOnRequest(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream: down.RemoteWriteURL(),
		limits: `  budgets:
    active_series: {max: 2, window: 1h}
    overrides_file: overrides.yaml
    overrides_reload_interval: 1h`,
		files: map[string]string{"overrides.yaml": "overrides: {}\n"},
	})
	ctx := context.Background()
	rw := gw.url + "/api/v1/receive"
	bearer := harness.CompositeToken("fleet-token", "grower")
	now := time.Now().UnixMilli()
	send := func(from, n int) {
		t.Helper()
		status, body, _, err := harness.RemoteWrite(ctx, rw, bearer, &prompb.WriteRequest{Timeseries: versionSeries(now, from, n)})
		if err != nil || status != 204 {
			t.Fatalf("write: %d %s %v", status, body, err)
		}
	}
	count := func(want int) {
		t.Helper()
		down.QueryEventually(t, `count(cluster_version{_id="grower"})`, func(v model.Vector) bool {
			return len(v) == 1 && int(v[0].Value) == want
		}, 30*time.Second)
	}
	send(0, 5)
	count(2)

	must(t, os.WriteFile(filepath.Join(gw.Dir(), "overrides.yaml"), []byte("overrides:\n  grower:\n    active_series: {max: 6}\n"), 0o600))
	if code, body := reload(t, gw); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	send(5, 10)
	count(6)
}
