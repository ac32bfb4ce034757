package client

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func gaugeFam(name string, kv ...string) *dto.MetricFamily {
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(time.Now().UnixMilli())}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}}
}

// The client's PII guard hashes (by default) what looks like personal
// data before anything leaves the machine, with a key kept in the state
// directory; drop filters the series as "privacy".
func TestClientPIIGuard(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	c := &Client{logger: log.NewNopLogger(), metrics: newMetrics(reg)}
	cfg := &Config{StateDir: dir, ElideLabel: []string{"prometheus_replica"}}
	cfg.SetDefaults()
	g, err := c.piiGuard(cfg, "")
	if err != nil || g == nil {
		t.Fatalf("guard: %v", err)
	}
	key, err := os.ReadFile(filepath.Join(dir, PIIKeyFile))
	if err != nil || len(strings.TrimSpace(string(key))) != 64 {
		t.Fatalf("key file: %q %v", key, err)
	}
	tr := &Transformer{Guard: g}
	in := []*dto.MetricFamily{
		gaugeFam("owner_info", "owner", "alice@example.com", "team", "a"),
		gaugeFam("node_info", "node_ip", "10.0.0.7", "prometheus_replica", "10.0.0.9"),
	}
	out, st := tr.Transform(in, time.Now())
	got := ""
	for _, f := range out {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				got += f.GetName() + ":" + l.GetName() + "=" + l.GetValue() + "\n"
			}
		}
	}
	if strings.Contains(got, "alice@") || strings.Contains(got, "10.0.0.7") || !strings.Contains(got, "owner=pii:email:") || !strings.Contains(got, "team=a") {
		t.Fatalf("sent:\n%s", got)
	}
	if st.Out != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n := testutil.ToFloat64(c.metrics.piiFindings.WithLabelValues("owner_info", "email", "hash")); n != 1 {
		t.Fatalf("findings %v", n)
	}
	// The same key after a restart: the same hash.
	g2, _ := c.piiGuard(cfg, "")
	out2, _ := (&Transformer{Guard: g2}).Transform(in[:1], time.Now())
	if v1, v2 := out[1].Metric[0].Label[0].GetValue(), out2[0].Metric[0].Label[0].GetValue(); v1 != v2 {
		t.Fatalf("hash changed across restarts: %q %q", v1, v2)
	}
	cfg.PIIGuard = "drop"
	gd, _ := c.piiGuard(cfg, "")
	out, st = (&Transformer{Guard: gd}).Transform(in, time.Now())
	if len(out) != 0 || st.Filtered[FilterPrivacy] != 2 {
		t.Fatalf("drop: %d families, %+v", len(out), st)
	}
	cfg.PIIGuard = "off"
	if g, _ := c.piiGuard(cfg, ""); g != nil {
		t.Fatal("off built a guard")
	}
	cfg.PIIGuard = "bogus"
	if err := cfg.Validate(false); err == nil || !strings.Contains(err.Error(), "pii_guard") {
		t.Fatalf("validate: %v", err)
	}
}

// A 403 opted_out stops the client: nothing more is sent, it says so, and
// telegate_client_enabled turns 0.
func TestOptedOutStopsSending(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, func(n int, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":"this installation has opted out","reason":"opted_out"}`))
	})
	cfg := testConfig(prom.URL, gw.URL)
	cfg.Interval = Duration(time.Second)
	cfg.FromTimeout, cfg.ToTimeout = Duration(500*time.Millisecond), Duration(500*time.Millisecond)
	cfg.StateDir = t.TempDir()
	_, reg := startClient(t, cfg)
	waitFor(t, "opted out", 3*time.Second, func() bool {
		return counter(t, reg, "telegate_client_enabled") == 0
	})
	time.Sleep(2500 * time.Millisecond) // more than two intervals
	if _, ups := gw.snapshot(); len(ups) != 1 {
		t.Fatalf("%d uploads after opting out, want 1", len(ups))
	}
}
