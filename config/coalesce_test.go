package config

import (
	"strings"
	"testing"

	"github.com/telegate/telegate/forward"
)

func TestForwardCoalesce(t *testing.T) {
	c, err := Parse([]byte(spoolBase), "x.yaml", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if f := c.Forward; !f.Coalesce || f.CoalesceMaxRequests != forward.DefaultCoalesceMaxRequests || f.CoalesceMaxInFlight != 1 {
		t.Fatalf("coalesce defaults %v %d %d", f.Coalesce, f.CoalesceMaxRequests, f.CoalesceMaxInFlight)
	}
	c, err = Parse([]byte(spoolBase+"  coalesce: false\n  coalesce_max_requests: 8\n  coalesce_max_in_flight: 3\n"), "x.yaml", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if f := c.Forward; f.Coalesce || f.CoalesceMaxRequests != 8 || f.CoalesceMaxInFlight != 3 {
		t.Fatalf("coalesce %v %d %d", f.Coalesce, f.CoalesceMaxRequests, f.CoalesceMaxInFlight)
	}
	for _, bad := range []struct{ yaml, key string }{
		{"  coalesce_max_requests: 0\n", "forward.coalesce_max_requests"},
		{"  coalesce_max_in_flight: 0\n", "forward.coalesce_max_in_flight"},
	} {
		if _, err := Parse([]byte(spoolBase+bad.yaml), "x.yaml", nil, ""); err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%q: error %v, want one naming %s", bad.yaml, err, bad.key)
		}
	}
}
