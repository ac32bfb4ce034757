package load_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/test/load"
)

// vmagentMetrics is an excerpt of vmagent v1.122.0's /metrics: no HELP or
// TYPE lines, summaries as quantile labels, a counter for the CPU time.
const vmagentMetrics = `process_cpu_cores_available 2
vm_cache_entries{type="promql/regexp"} 0
vm_http_requests_total{path="/api/v1/write", protocol="promremotewrite"} 12
go_memstats_heap_inuse_bytes 2088960
go_gc_duration_seconds{quantile="0"} 0
go_gc_duration_seconds{quantile="0.5"} 0
go_gc_duration_seconds_sum 0
go_gc_duration_seconds_count 3
go_info{version="go1.26.8"} 1
go_info_ext{compiler="gc", GOARCH="amd64", GOOS="linux", GOROOT=""} 1
process_cpu_seconds_system_total 0
process_cpu_seconds_total %g
process_cpu_seconds_user_total 0
process_resident_memory_bytes 14675968
process_resident_memory_peak_bytes 14938112
`

// fakeReceiver is a remote-write receiver on a path of its own (like
// vmagent's /api/v1/write) that exposes vmagent-style /metrics whose CPU
// counter grows by 10ms per accepted write.
type fakeReceiver struct {
	sink       load.Sink
	mu         sync.Mutex
	paths      map[string]int
	lastWrite  time.Time
	lastScrape time.Time
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/metrics" {
		f.lastScrape = time.Now()
		fmt.Fprintf(w, vmagentMetrics, 0.5+0.01*float64(f.sink.Requests()))
		return
	}
	f.paths[r.URL.Path]++
	f.lastWrite = time.Now()
	if r.URL.Path != "/api/v1/write" {
		http.NotFound(w, r)
		return
	}
	f.sink.ServeHTTP(w, r)
}

func TestPathOverrideAgainstAnotherReceiver(t *testing.T) {
	spec := load.Spec{Names: 2, SeriesPerName: 5, Seed: 1}
	recv := &fakeReceiver{paths: map[string]int{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	const settle = 300 * time.Millisecond
	res, err := load.Run(context.Background(), load.Config{
		Target: srv.URL, MetricsURL: srv.URL + "/metrics", Protocol: load.ProtocolRemoteWrite,
		Path: "/api/v1/write", Clusters: 10, Interval: 100 * time.Millisecond, Duration: 600 * time.Millisecond,
		Spec: spec, Templates: 2, Concurrency: 4, Settle: settle,
	})
	if err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	paths, lastWrite, lastScrape := recv.paths, recv.lastWrite, recv.lastScrape
	recv.mu.Unlock()
	if len(paths) != 1 || paths["/api/v1/write"] != res.Writes || res.Writes < 20 {
		t.Fatalf("requests by path %v, %d writes", paths, res.Writes)
	}
	if res.Path != "/api/v1/write" || res.Accepted != res.Writes || res.Codes["receive 204"] != res.Writes {
		t.Fatalf("path %q, %d of %d accepted, codes %v", res.Path, res.Accepted, res.Writes, res.Codes)
	}
	if got := recv.sink.Samples(); got != int64(res.SamplesSent) || got != int64(res.Writes*spec.Series()) {
		t.Fatalf("receiver got %d samples, load sent %d", got, res.SamplesSent)
	}
	// CPU from the foreign /metrics: 10ms per write.
	if want := 0.01 * float64(res.Writes); res.GatewayCPU < want-1e-9 || res.GatewayCPU > want+1e-9 || res.RSS != 14675968 || res.Heap != 2088960 {
		t.Fatalf("cpu %v (want %v), rss %v, heap %v (%s)", res.GatewayCPU, want, res.RSS, res.Heap, res.GatewayMetricsError)
	}
	if d := res.CPUPerWrite - 0.01; d < -1e-9 || d > 1e-9 {
		t.Fatalf("cpu per write %v", res.CPUPerWrite)
	}
	// The final reading waited for --settle after the last answer.
	if gap := lastScrape.Sub(lastWrite); gap < settle {
		t.Fatalf("final metrics read %v after the last write, want at least %v", gap, settle)
	}
	var out strings.Builder
	if _, err := res.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "remote-write to /api/v1/write, 10 clusters") || !strings.Contains(out.String(), "samples per CPU-second") {
		t.Fatalf("text report:\n%s", out.String())
	}
}

func TestDefaultPathsUnchanged(t *testing.T) {
	spec := load.Spec{Names: 1, SeriesPerName: 1, Seed: 1}
	for protocol, want := range map[string]string{load.ProtocolRemoteWrite: "/api/v1/receive", load.ProtocolUpload: "/upload"} {
		res, err := load.Run(context.Background(), load.Config{
			Target: "http://127.0.0.1:1", Protocol: protocol, Clusters: 1, Duration: time.Millisecond, Spec: spec,
		})
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		res.WriteTo(&out)
		if res.Path != want || !strings.HasPrefix(out.String(), "protocol            "+protocol+", 1 clusters") {
			t.Errorf("%s: path %q, report:\n%s", protocol, res.Path, out.String())
		}
	}
}

func TestPathAndSettleValidation(t *testing.T) {
	for _, c := range []load.Config{
		{Path: "api/v1/write"},
		{Path: "/api/v1/write?x=1"},
		{Settle: -time.Second},
	} {
		c.Target = "http://127.0.0.1:1"
		if _, err := load.Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestResultJSON(t *testing.T) {
	res := &load.Result{
		Protocol: load.ProtocolRemoteWrite, Path: "/api/v1/write", Clusters: 100, Elapsed: 10 * time.Second,
		Expected: 10, Achieved: 9.9, Writes: 99, Accepted: 98, Codes: map[string]int{"receive 204": 98, "receive 0": 1},
		P50: 2 * time.Millisecond, P90: 3 * time.Millisecond, P99: 5 * time.Millisecond, Max: 7 * time.Millisecond,
		SamplesSent: 98000, GatewayCPU: 0.196, CPUPerWrite: 0.002, RSS: 100 << 20, PeakRSS: 120 << 20, Heap: 50 << 20,
		Sink: &load.SinkCounts{Requests: 40, Samples: 49000},
	}
	var b strings.Builder
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatal(err)
	}
	target := got["target"].(map[string]any)
	lat := got["latency_seconds"].(map[string]any)
	sink := got["sink"].(map[string]any)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"path", got["path"], "/api/v1/write"},
		{"writes", got["writes"], 99.0},
		{"accepted_writes", got["accepted_writes"], 98.0},
		{"achieved_rate", got["achieved_rate"], 9.9},
		{"samples_accepted", got["samples_accepted"], 98000.0},
		{"codes", got["codes"].(map[string]any)["receive 204"], 98.0},
		{"p50", lat["p50"], 0.002},
		{"p99", lat["p99"], 0.005},
		{"cpu_seconds", target["cpu_seconds"], 0.196},
		{"samples_per_cpu_second", target["samples_per_cpu_second"], 500000.0},
		{"peak_rss_bytes", target["peak_rss_bytes"], float64(120 << 20)},
		{"sink samples", sink["samples"], 49000.0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v in\n%s", c.name, c.got, c.want, b.String())
		}
	}
	// Without target metrics the "target" object is left out.
	res = &load.Result{Protocol: load.ProtocolUpload, Writes: 1}
	if j := res.JSON(); j.Target != nil || j.Sink != nil || j.Codes == nil {
		t.Fatalf("%+v", j)
	}
}

func TestSinkCounters(t *testing.T) {
	s := &load.Sink{}
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	body, err := load.EncodeRemoteWrite(load.Spec{Names: 3, SeriesPerName: 4, Seed: 1}.WriteRequest(time.Now().UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{body, body, []byte("not snappy")} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/write", strings.NewReader(string(b))))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
	}
	want := map[string]float64{"telegate_load_sink_requests_total": 2, "telegate_load_sink_samples_total": 24, "telegate_load_sink_rejected_total": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if c := s.Counts(); c != (load.SinkCounts{Requests: 2, Samples: 24, Rejected: 1}) {
		t.Fatalf("counts %+v", c)
	}
}
