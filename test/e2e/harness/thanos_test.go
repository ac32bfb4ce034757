package harness

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// TestThanosReceiveQuery: Query reads what Receive ingested, and again
// after Receive was stopped and started on the same TSDB.
func TestThanosReceiveQuery(t *testing.T) {
	r := StartThanosReceive(t, ThanosReceiveOptions{})
	q := StartThanosQuery(t, ThanosQueryOptions{Endpoints: []string{r.GRPCAddr()}})
	CheckThanosReadPath(t, r, q, 60*time.Second)
	r.Stop()
	if Ready(r.HTTPURL() + "/-/ready") {
		t.Fatal("receive still ready after Stop")
	}
	r.Start()
	CheckThanosReadPath(t, r, q, 60*time.Second)
	// Both probes survive the restart (the TSDB was kept).
	q.QueryEventually(t, `count({__name__=~"harness_read_path_probe_.*"})`, func(v model.Vector) bool {
		return len(v) == 1 && v[0].Value == 2
	}, 30*time.Second)
}
