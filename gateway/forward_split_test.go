package gateway

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// TestForwardSplitsAndNamesCluster: a request larger than MaxForwardBytes
// reaches the forwarder as several remote writes, each under the cap, all
// series in order, each tagged with the sender's cluster ID.
func TestForwardSplitsAndNamesCluster(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxForwardBytes = 300 })
	ms := f.now.UnixMilli()
	var series []prompb.TimeSeries
	for i := 0; i < 30; i++ {
		series = append(series, ts(float64(i), ms, "__name__", "cluster_version", "type", strconv.Itoa(i)))
	}
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c7"), series...)
	if status != http.StatusNoContent {
		t.Fatalf("status %d: %s", status, body)
	}
	f.fwd.mu.Lock()
	defer f.fwd.mu.Unlock()
	if len(f.fwd.reqs) < 2 {
		t.Fatalf("%d remote writes for a request over MaxForwardBytes, want several", len(f.fwd.reqs))
	}
	n := 0
	for i, r := range f.fwd.reqs {
		if f.fwd.sizes[i] > 300 {
			t.Errorf("remote write %d is %d bytes, over the 300 cap", i, f.fwd.sizes[i])
		}
		if f.fwd.clusters[i] != "c7" {
			t.Errorf("remote write %d sent for cluster %q, want c7", i, f.fwd.clusters[i])
		}
		n += len(r.Timeseries)
	}
	if n != 30 {
		t.Fatalf("%d series forwarded, want 30", n)
	}
}
