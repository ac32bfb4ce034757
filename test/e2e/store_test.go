package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// embeddedGateway is the real binary in single-binary mode (no
// forward.url): it stores into its embedded TSDB and serves the query API.
type embeddedGateway struct {
	*gatewayProc
	storage  string           // the TSDB directory
	query    *harness.PromAPI // the query API (internal listener or its own)
	queryURL string
}

// startEmbeddedGateway writes a config without forward.url, with
// storage.path set to a directory that survives restarts of the process
// (p.Restart and Kill+Restart keep the same arguments and so the same
// storage). queryListen "" serves the query API on the internal listener.
func startEmbeddedGateway(t *testing.T, queryListen string, args ...string) *embeddedGateway {
	t.Helper()
	return startEmbeddedGatewayWith(t, allowlistYAML, "", queryListen, args...)
}

// startEmbeddedGatewayWith is startEmbeddedGateway with another allowlist
// and extra top-level configuration sections (extraYAML).
func startEmbeddedGatewayWith(t *testing.T, allowlist, extraYAML, queryListen string, args ...string) *embeddedGateway {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(allowlist), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	storage := filepath.Join(dir, "tsdb")
	cfg := fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
limits:
  upload_interval: 4m30s
storage:
  path: %s
  query:
    listen_address: %q
    timeout: 30s
%s`, pub, internal, storage, queryListen, extraYAML)
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:        "telegate",
		Binary:      bin,
		Args:        append([]string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml"), "--log.level=debug"}, args...),
		Dir:         dir,
		StopTimeout: 20 * time.Second,
	})
	g := &embeddedGateway{gatewayProc: &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}, storage: storage}
	g.queryURL = g.internal
	if queryListen != "" {
		g.queryURL = "http://" + queryListen
	}
	g.query = harness.NewPromAPI(g.queryURL)
	g.waitReady(t)
	return g
}

func (g *embeddedGateway) waitReady(t *testing.T) {
	t.Helper()
	g.WaitHTTP(g.internal+"/-/ready", 30*time.Second)
}

// restart stops the gateway with SIGTERM (it must exit 0: a clean
// shutdown closes the TSDB) and starts it again on the same storage.
func (g *embeddedGateway) restart(t *testing.T) {
	t.Helper()
	if err := g.Stop(); err != nil {
		t.Fatalf("gateway did not shut down cleanly: %v", err)
	}
	g.Restart()
	g.waitReady(t)
}

// crashRestart kills the gateway with SIGKILL and starts it again: the
// TSDB replays its WAL.
func (g *embeddedGateway) crashRestart(t *testing.T) {
	t.Helper()
	g.Kill()
	g.Restart()
	g.waitReady(t)
}

// samplesOverTime maps each series selector matches (by its labels,
// name included) to its samples of the last hour, read with a range
// query (selector[1h]) from the query API at base.
func samplesOverTime(t *testing.T, base, selector string) map[string][]string {
	t.Helper()
	r := harness.GetJSON(t, base, "/api/v1/query", url.Values{"query": {selector + "[1h]"}})
	data, _ := r.Body["data"].(map[string]any)
	if r.Code != 200 || data["resultType"] != "matrix" {
		t.Fatalf("range query %s: %d %v", selector, r.Code, r.Body)
	}
	out := map[string][]string{}
	for _, s := range data["result"].([]any) {
		s := s.(map[string]any)
		key, _ := json.Marshal(s["metric"]) // map keys are sorted
		for _, v := range s["values"].([]any) {
			b, _ := json.Marshal(v) // [unix seconds,"value"]
			out[string(key)] = append(out[string(key)], string(b))
		}
	}
	return out
}

// TestSingleBinaryIngestAndRestart: with no downstream, a stock
// Prometheus remote-writing and a telemeter client uploading both land in
// the embedded TSDB, queryable with PromQL over HTTP with _id stamped and
// instance stripped; a clean restart keeps every sample. The storage
// path comes from --storage.path, overriding the config file.
func TestSingleBinaryIngestAndRestart(t *testing.T) {
	flagPath := filepath.Join(t.TempDir(), "from-flag")
	gw := startEmbeddedGateway(t, "", "--storage.path="+flagPath, "--storage.retention.time=2d")
	if !strings.Contains(gw.Stderr(), "single-binary mode") || !strings.Contains(gw.Stderr(), "query_url="+gw.internal+"/api/v1/query") {
		t.Fatalf("no single-binary startup line with the query URL in the log:\n%s", gw.Stderr())
	}
	if _, err := os.Stat(filepath.Join(flagPath, "wal")); err != nil {
		t.Fatalf("--storage.path not used: %v", err)
	}
	if _, err := os.Stat(gw.storage); !os.IsNotExist(err) {
		t.Fatalf("storage.path of the file used despite --storage.path: %v", err)
	}

	sender := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:          "sender",
		SelfScrapeJob: "sender",
		RemoteWrite: []harness.RemoteWriteTarget{{
			URL:         gw.url + "/api/v1/receive",
			BearerToken: harness.CompositeToken("fleet-token", "cluster-rw"),
		}},
	})
	ctx := context.Background()
	jwt, _, status, err := harness.Authorize(ctx, gw.url, "fleet-token", "cluster-up")
	if err != nil || status != 200 {
		t.Fatalf("authorize: %d %v", status, err)
	}
	status, body, _, err := harness.Upload(ctx, gw.url, jwt, families("cluster-up"))
	if err != nil || status != 200 {
		t.Fatalf("upload: %d %q %v", status, body, err)
	}

	// /upload: every metric type, as federation exposes it, right away
	// (a 200 means committed).
	want := map[string]float64{
		`cluster_version{_id="cluster-up",version="4.16.3"}`:         1,
		`cluster_requests_total{_id="cluster-up",code="200"}`:        42,
		`cluster_latency_seconds_bucket{_id="cluster-up",le="+Inf"}`: 10,
		`cluster_latency_seconds_sum{_id="cluster-up"}`:              2.5,
		`cluster_rpc_seconds{_id="cluster-up",quantile="0.99"}`:      0.9,
		`cluster_untyped{_id="cluster-up"}`:                          5,
	}
	for q, val := range want {
		v := gw.query.Query(t, q)
		if len(v) != 1 || float64(v[0].Value) != val {
			t.Errorf("%s = %v, want %v", q, v, val)
		}
	}
	if v := gw.query.Query(t, `{__name__=~".+",_id="cluster-up"}`); len(v) != 12 {
		t.Errorf("%d uploaded series stored, want 12: %v", len(v), v)
	}
	if v := gw.query.Query(t, `node_secret_info`); len(v) != 0 {
		t.Errorf("non-allowlisted metric stored: %v", v)
	}

	// Remote write from a real Prometheus.
	v := gw.query.QueryEventually(t, `prometheus_build_info`, harness.NonEmpty, 60*time.Second)
	if got := string(v[0].Metric["_id"]); got != "cluster-rw" {
		t.Fatalf("_id = %q", got)
	}
	gw.query.QueryEventually(t, `up{job="sender",_id="cluster-rw"}`, harness.Len(1), 30*time.Second)
	if v := gw.query.Query(t, `{__name__=~".+",instance!=""}`); len(v) != 0 {
		t.Fatalf("series with instance: %v", v)
	}
	if got := names(gw.query.Query(t, `count by (__name__) ({_id="cluster-rw"})`)); strings.Join(got, ",") != "prometheus_build_info,up" {
		t.Fatalf("metric names from remote write: %v", got)
	}
	if vals := gw.query.LabelValues(t, "_id"); strings.Join(vals, ",") != "cluster-rw,cluster-up" {
		t.Fatalf("_id values: %v", vals)
	}

	// Self-metrics of the embedded store on /metrics.
	if n := gatewayMetric(t, gw.gatewayProc, "telegate_store_appended_samples_total"); n < 12 {
		t.Errorf("telegate_store_appended_samples_total = %v", n)
	}
	if n := gatewayMetric(t, gw.gatewayProc, "prometheus_tsdb_head_series"); n < 14 {
		t.Errorf("prometheus_tsdb_head_series = %v", n)
	}
	if n := gatewayMetric(t, gw.gatewayProc, "telegate_store_wal_fsyncs_total"); n < 1 {
		t.Errorf("telegate_store_wal_fsyncs_total = %v", n)
	}

	// Stop sending, note what is stored, restart cleanly: all still there.
	if err := sender.Process().Stop(); err != nil {
		t.Fatal(err)
	}
	before := samplesOverTime(t, gw.internal, `{__name__=~".+"}`)
	gw.restart(t)
	after := samplesOverTime(t, gw.internal, `{__name__=~".+"}`)
	if len(before) < 14 || !reflect.DeepEqual(before, after) {
		t.Fatalf("stored samples changed across a clean restart:\nbefore %v\nafter  %v", before, after)
	}
	if !strings.Contains(gw.Stderr(), "received signal, shutting down gracefully") {
		t.Fatal("no graceful shutdown logged")
	}
}

// TestSingleBinarySIGKILLAfterAck: every write the gateway acknowledged
// survives SIGKILL right after the acknowledgement (WAL replay).
func TestSingleBinarySIGKILLAfterAck(t *testing.T) {
	gw := startEmbeddedGateway(t, "")
	t0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bearer := harness.CompositeToken("fleet-token", "cluster-"+strconv.Itoa(w))
			for i := 0; i < perWriter; i++ {
				req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
					Labels:  []prompb.Label{{Name: "__name__", Value: "cluster_requests_total"}, {Name: "code", Value: "200"}, {Name: "pod", Value: "p"}},
					Samples: []prompb.Sample{{Timestamp: t0 + int64(i)*1000, Value: float64(i)}},
				}}}
				status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", bearer, req)
				if err != nil || status != http.StatusNoContent {
					errs <- fmt.Errorf("writer %d request %d: %d %s %v", w, i, status, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	gw.crashRestart(t)
	got := samplesOverTime(t, gw.internal, `cluster_requests_total`)
	if len(got) != writers {
		t.Fatalf("%d series after SIGKILL and restart, want %d: %v", len(got), writers, got)
	}
	for w := 0; w < writers; w++ {
		key := fmt.Sprintf(`{"__name__":"cluster_requests_total","_id":"cluster-%d","code":"200"}`, w)
		vals := got[key]
		if len(vals) != perWriter {
			t.Errorf("%s: %d acknowledged samples after SIGKILL, want %d (all: %v)", key, len(vals), perWriter, got)
			continue
		}
		for i, v := range vals {
			if want := fmt.Sprintf(`[%s,"%d"]`, strconv.FormatFloat(float64(t0+int64(i)*1000)/1000, 'f', -1, 64), i); v != want {
				t.Errorf("%s sample %d = %s, want %s", key, i, v, want)
			}
		}
	}
}

// TestSingleBinaryQueryAPIMatchesPrometheus: the same samples, sent
// through the gateway (query API on its own listener) and written as
// stored into a real Prometheus, give the same answers field by field.
func TestSingleBinaryQueryAPIMatchesPrometheus(t *testing.T) {
	ref := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "reference", EnableRemoteWriteReceiver: true})
	gw := startEmbeddedGateway(t, harness.FreeAddr(t))

	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	type series struct {
		cluster string
		labels  []string // name, value pairs, as the cluster sends them
		values  []float64
	}
	input := []series{
		{"cluster-a", []string{"__name__", "cluster_version", "version", "4.16.2", "instance", "10.0.0.1:9099"}, []float64{1, 1, 1, 1}},
		{"cluster-b", []string{"__name__", "cluster_version", "version", "4.17.0", "pod", "cvo"}, []float64{1, 1, 0, 1}},
		{"cluster-a", []string{"__name__", "cluster_requests_total", "code", "200"}, []float64{10, 25.5, 40, 1e22}},
		{"cluster-b", []string{"__name__", "cluster_requests_total", "code", "500"}, []float64{0.0000001, 2, 3, 4}},
	}
	var stored prompb.WriteRequest
	for _, s := range input {
		var sent, kept []prompb.Label
		for i := 0; i < len(s.labels); i += 2 {
			l := prompb.Label{Name: s.labels[i], Value: s.labels[i+1]}
			sent = append(sent, l)
			if l.Name != "instance" && l.Name != "pod" {
				kept = append(kept, l)
			}
		}
		kept = append(kept, prompb.Label{Name: "_id", Value: s.cluster})
		var samples []prompb.Sample
		for i, v := range s.values {
			samples = append(samples, prompb.Sample{Timestamp: t0 + int64(i)*15000, Value: v})
		}
		status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive",
			harness.CompositeToken("fleet-token", s.cluster), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: sent, Samples: samples}}})
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("remote write to the gateway: %d %s %v", status, body, err)
		}
		stored.Timeseries = append(stored.Timeseries, prompb.TimeSeries{Labels: kept, Samples: samples})
	}
	status, body, _, err := harness.RemoteWrite(context.Background(), ref.RemoteWriteURL(), "", &stored)
	if err != nil || status/100 != 2 {
		t.Fatalf("remote write to the reference Prometheus: %d %s %v", status, body, err)
	}

	sec := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) }
	at, start, end := sec(t0+45000), sec(t0-30000), sec(t0+120000)
	v := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	for _, c := range []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", v("query", `cluster_version`, "time", at)},
		{"/api/v1/query", v("query", `cluster_version{_id="cluster-b"} == 0`, "time", sec(t0+30000))},
		{"/api/v1/query", v("query", `sum by (_id) (rate(cluster_requests_total[1m]))`, "time", at)},
		{"/api/v1/query", v("query", `cluster_requests_total[1m]`, "time", at)},
		{"/api/v1/query", v("query", `count(cluster_version) / 3`, "time", at)},
		{"/api/v1/query_range", v("query", `cluster_version`, "start", start, "end", end, "step", "15")},
		{"/api/v1/query_range", v("query", `sum(cluster_requests_total) by (_id)`, "start", start, "end", end, "step", "7.5s")},
		{"/api/v1/series", v("match[]", `cluster_version`)},
		{"/api/v1/series", v("match[]", `{_id="cluster-b"}`, "start", start, "end", end)},
		{"/api/v1/labels", nil},
		{"/api/v1/labels", v("match[]", `cluster_requests_total`)},
		{"/api/v1/label/_id/values", nil},
		{"/api/v1/label/__name__/values", nil},
		{"/api/v1/label/version/values", v("match[]", `cluster_version{_id="cluster-a"}`)},
		{"/api/v1/label/instance/values", nil},
	} {
		t.Run(c.path+"?"+c.params.Encode(), func(t *testing.T) {
			want := harness.GetJSON(t, ref.URL(), c.path, c.params)
			got := harness.GetJSON(t, gw.queryURL, c.path, c.params)
			if got.Code != want.Code || !reflect.DeepEqual(got.Body, want.Body) {
				t.Fatalf("\nprometheus: %d %v\ntelegate:   %d %v", want.Code, want.Body, got.Code, got.Body)
			}
		})
	}
	// The query API is on its own listener, not on the internal one.
	if r := harness.GetJSON(t, gw.queryURL, "/api/v1/status/buildinfo", nil); r.Code != 200 {
		t.Fatalf("buildinfo: %d %v", r.Code, r.Body)
	}
	resp, err := http.Get(gw.internal + "/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("query API also on the internal listener: %d", resp.StatusCode)
	}
}
