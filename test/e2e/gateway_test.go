package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/test/e2e/harness"
)

const allowlistYAML = `matches:
# owners: (@telegate/e2e)
# Prometheus build information.
- '{__name__="prometheus_build_info"}'
# owners: (@telegate/e2e)
# Scrape health of the sender's own job only.
- '{__name__="up",job="sender"}'
# owners: (@telegate/e2e)
# Telemeter-style metrics uploaded by the Go client.
- '{__name__="cluster_version"}'
# owners: (@telegate/e2e)
# A counter.
- '{__name__="cluster_requests_total"}'
# owners: (@telegate/e2e)
# A histogram, as federation exposes it.
- '{__name__=~"cluster_latency_seconds_(bucket|sum|count)"}'
# owners: (@telegate/e2e)
# A summary.
- '{__name__=~"cluster_rpc_seconds(_sum|_count)?"}'
# owners: (@telegate/e2e)
# An untyped metric.
- '{__name__="cluster_untyped"}'
`

const tokensYAML = `tokens:
- token: fleet-token
  clusters: ["*"]
- token: token-a
  clusters: [cluster-a]
`

type gatewayOpts struct {
	downstream    string
	authorizerURL string
	tokens        bool
	extra         string
}

type gatewayProc struct {
	*harness.Process
	url      string
	internal string
}

// startGateway runs the real telegate binary with a config in a temp dir.
func startGateway(t *testing.T, o gatewayOpts) *gatewayProc {
	t.Helper()
	tokensFile := ""
	if o.tokens {
		tokensFile = "tokens.yaml"
	}
	// --web.enable-lifecycle: the reload tests POST /-/reload.
	return runGateway(t, map[string]string{"allowlist.yaml": allowlistYAML}, fmt.Sprintf(`authn:
  tokens_file: %q
  authorizer:
    url: %q
    cache_ttl: 1m
    timeout: 2s
allowlist:
  file: allowlist.yaml
limits:
  upload_interval: 4m30s
  max_request_bytes: 64KiB
  max_decoded_bytes: 256KiB
  max_series_per_request: 1000
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
%s`, tokensFile, o.authorizerURL, o.downstream, o.extra), "--web.enable-lifecycle")
}

// runGateway starts the real gateway in a temp dir holding files (name to
// content; tokens.yaml is tokensYAML unless given) and a gateway.yaml made
// of the web section (two free loopback addresses) and body, and waits
// until it is ready. args are added to the command line.
func runGateway(t *testing.T, files map[string]string, body string, args ...string) *gatewayProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	if _, ok := files["tokens.yaml"]; !ok {
		must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	}
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	cfg := fmt.Sprintf("web:\n  listen_address: %s\n  internal_listen_address: %s\n", pub, internal) + body
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-gateway",
		Binary: bin,
		Args:   append([]string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml"), "--log.level=debug"}, args...),
		Dir:    dir,
	})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)
	return &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func names(v model.Vector) []string {
	var out []string
	for _, s := range v {
		out = append(out, string(s.Metric[model.MetricNameLabel]))
	}
	sort.Strings(out)
	return out
}

// TestRemoteWriteFromPrometheus: a stock Prometheus remote-writes its own
// metrics through the gateway with the composite bearer token; the
// downstream Prometheus holds only allowlisted series, each with the
// cluster's _id and none with instance or pod.
func TestRemoteWriteFromPrometheus(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startGateway(t, gatewayOpts{downstream: down.RemoteWriteURL(), tokens: true})
	harness.StartPrometheus(t, harness.PrometheusOptions{
		Name:          "sender",
		SelfScrapeJob: "sender",
		RemoteWrite: []harness.RemoteWriteTarget{{
			URL:         gw.url + "/api/v1/receive",
			BearerToken: harness.CompositeToken("fleet-token", "cluster-rw"),
		}},
	})

	v := down.QueryEventually(t, `prometheus_build_info`, harness.NonEmpty, 60*time.Second)
	if got := string(v[0].Metric["_id"]); got != "cluster-rw" {
		t.Fatalf("_id = %q", got)
	}
	down.QueryEventually(t, `up{job="sender",_id="cluster-rw"}`, harness.Len(1), 30*time.Second)

	// Only allowlisted names arrived, all stamped, none with instance/pod.
	got := names(down.Query(t, `count by (__name__) ({__name__=~".+"})`))
	if strings.Join(got, ",") != "prometheus_build_info,up" {
		t.Fatalf("metric names downstream: %v", got)
	}
	if v := down.Query(t, `{__name__=~".+",_id!="cluster-rw"}`); len(v) != 0 {
		t.Fatalf("series without the right _id: %v", v)
	}
	if v := down.Query(t, `{__name__=~".+",instance!=""}`); len(v) != 0 {
		t.Fatalf("series with instance: %v", v)
	}
	if v := down.Query(t, `{__name__=~".+",pod!=""}`); len(v) != 0 {
		t.Fatalf("series with pod: %v", v)
	}
}

func metric(kv ...string) *dto.Metric {
	m := &dto.Metric{}
	for i := 0; i < len(kv); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return m
}

func families(clusterID string) []*dto.MetricFamily {
	g := metric("_id", clusterID, "version", "4.16.3", "instance", "10.0.0.1:9099", "pod", "cvo-1")
	g.Gauge = &dto.Gauge{Value: proto.Float64(1)}
	c := metric("_id", clusterID, "code", "200")
	c.Counter = &dto.Counter{Value: proto.Float64(42)}
	h := metric("_id", clusterID, "pod", "api-1")
	h.Histogram = &dto.Histogram{SampleCount: proto.Uint64(10), SampleSum: proto.Float64(2.5), Bucket: []*dto.Bucket{
		{UpperBound: proto.Float64(0.1), CumulativeCount: proto.Uint64(4)},
		{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(9)},
	}}
	s := metric("_id", clusterID)
	s.Summary = &dto.Summary{SampleCount: proto.Uint64(7), SampleSum: proto.Float64(3.5), Quantile: []*dto.Quantile{
		{Quantile: proto.Float64(0.5), Value: proto.Float64(0.4)},
		{Quantile: proto.Float64(0.99), Value: proto.Float64(0.9)},
	}}
	u := metric("_id", clusterID)
	u.Untyped = &dto.Untyped{Value: proto.Float64(5)}
	secret := metric("_id", clusterID)
	secret.Gauge = &dto.Gauge{Value: proto.Float64(1)}
	return []*dto.MetricFamily{
		{Name: proto.String("cluster_version"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{g}},
		{Name: proto.String("cluster_requests_total"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{c}},
		{Name: proto.String("cluster_latency_seconds"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{h}},
		{Name: proto.String("cluster_rpc_seconds"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{s}},
		{Name: proto.String("cluster_untyped"), Type: dto.MetricType_UNTYPED.Enum(), Metric: []*dto.Metric{u}},
		{Name: proto.String("node_secret_info"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{secret}},
	}
}

// TestTelemeterUpload speaks telemeter-client's exact wire format
// (/authorize, then /upload with framed snappy and delimited
// MetricFamilies) and checks every metric type arrived as federation
// would expose it.
func TestTelemeterUpload(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startGateway(t, gatewayOpts{downstream: down.RemoteWriteURL(), tokens: true})
	ctx := context.Background()

	jwt, labels, status, err := harness.Authorize(ctx, gw.url, "fleet-token", "cluster-up")
	if err != nil || status != 200 || labels["_id"] != "cluster-up" {
		t.Fatalf("authorize: %d %v %v", status, labels, err)
	}
	status, body, _, err := harness.Upload(ctx, gw.url, jwt, families("cluster-up"))
	if err != nil || status != 200 {
		t.Fatalf("upload: %d %q %v", status, body, err)
	}

	want := map[string]float64{
		`cluster_version{_id="cluster-up",version="4.16.3"}`:         1,
		`cluster_requests_total{_id="cluster-up",code="200"}`:        42,
		`cluster_latency_seconds_bucket{_id="cluster-up",le="0.1"}`:  4,
		`cluster_latency_seconds_bucket{_id="cluster-up",le="1"}`:    9,
		`cluster_latency_seconds_bucket{_id="cluster-up",le="+Inf"}`: 10,
		`cluster_latency_seconds_sum{_id="cluster-up"}`:              2.5,
		`cluster_latency_seconds_count{_id="cluster-up"}`:            10,
		`cluster_rpc_seconds{_id="cluster-up",quantile="0.5"}`:       0.4,
		`cluster_rpc_seconds{_id="cluster-up",quantile="0.99"}`:      0.9,
		`cluster_rpc_seconds_sum{_id="cluster-up"}`:                  3.5,
		`cluster_rpc_seconds_count{_id="cluster-up"}`:                7,
		`cluster_untyped{_id="cluster-up"}`:                          5,
	}
	for q, val := range want {
		v := down.QueryEventually(t, q, harness.Len(1), 30*time.Second)
		if float64(v[0].Value) != val {
			t.Errorf("%s = %v, want %v", q, v[0].Value, val)
		}
	}
	all := down.Query(t, `{__name__=~".+"}`)
	if len(all) != len(want) {
		t.Errorf("downstream holds %d series, want %d: %v", len(all), len(want), all)
	}
	for _, s := range all {
		if s.Metric["_id"] != "cluster-up" || s.Metric["instance"] != "" || s.Metric["pod"] != "" {
			t.Errorf("bad labels: %v", s.Metric)
		}
	}
	if v := down.Query(t, `node_secret_info`); len(v) != 0 {
		t.Errorf("non-allowlisted metric arrived: %v", v)
	}

	// A second upload inside the interval is refused with Retry-After.
	status, body, hdr, err := harness.Upload(ctx, gw.url, jwt, families("cluster-up"))
	if err != nil || status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("second upload: %d %q retry-after=%q %v", status, body, hdr.Get("Retry-After"), err)
	}
}

// TestRefusals sends every kind of bad request to the real gateway and
// checks the status code of the contract, then that nothing of them
// reached the downstream.
func TestRefusals(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startGateway(t, gatewayOpts{downstream: down.RemoteWriteURL(), tokens: true})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	one := func(name string, kv ...string) *prompb.WriteRequest {
		ls := []prompb.Label{{Name: "__name__", Value: name}}
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}}
	}
	rw := gw.url + "/api/v1/receive"
	check := func(name string, want int, status int, body string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if status != want {
			t.Errorf("%s: status %d (%s), want %d", name, status, strings.TrimSpace(body), want)
		}
	}

	status, body, _, err := harness.RemoteWrite(ctx, rw, harness.CompositeToken("wrong", "cluster-x"), one("cluster_version"))
	check("wrong token", 401, status, body, err)
	status, body, _, err = harness.RemoteWrite(ctx, rw, harness.CompositeToken("token-a", "cluster-b"), one("cluster_version"))
	check("token of A with id B", 403, status, body, err)
	_, _, status, err = harness.Authorize(ctx, gw.url, "token-a", "cluster-b")
	check("authorize token of A with id B", 403, status, "", nil)
	status, body, _, err = harness.RemoteWrite(ctx, rw, harness.CompositeToken("fleet-token", "cluster-x"), one("cluster_version", "_id", "cluster-y"))
	check("series claiming another _id", 400, status, body, err)
	if !strings.Contains(body, "_id") {
		t.Errorf("400 body does not name the label: %q", body)
	}
	status, body, _, err = harness.UploadRaw(ctx, rw, harness.CompositeToken("fleet-token", "cluster-x"), "application/x-protobuf", "snappy", make([]byte, 100<<10))
	check("body over max_request_bytes", 413, status, body, err)
	bomb := snappy.Encode(nil, make([]byte, 1<<20)) // ~50 KB that inflates to 1 MiB
	status, body, _, err = harness.UploadRaw(ctx, rw, harness.CompositeToken("fleet-token", "cluster-x"), "application/x-protobuf", "snappy", bomb)
	check("decoded size over max_decoded_bytes", 413, status, body, err)
	raw, _ := harness.EncodeWriteRequest(one("cluster_version"))
	status, body, _, err = harness.UploadRaw(ctx, rw, harness.CompositeToken("fleet-token", "cluster-x"), "application/json", "snappy", raw)
	check("bad Content-Type", 415, status, body, err)

	jwt, _, _, err := harness.Authorize(ctx, gw.url, "fleet-token", "cluster-x")
	must(t, err)
	status, body, _, err = harness.UploadRaw(ctx, gw.url+"/upload", jwt, "text/plain", "snappy", []byte("x"))
	check("upload bad Content-Type", 415, status, body, err)
	framedBomb := framed(t, make([]byte, 1<<20))
	status, body, _, err = harness.UploadRaw(ctx, gw.url+"/upload", jwt, harness.UploadContentType, "snappy", framedBomb)
	check("upload decoded over cap", 413, status, body, err)
	status, body, _, err = harness.Upload(ctx, gw.url, jwt, families("cluster-y"))
	check("upload claiming another _id", 400, status, body, err)

	// None of it reached long-term storage; the valid control does.
	status, body, _, err = harness.RemoteWrite(ctx, rw, harness.CompositeToken("fleet-token", "cluster-ok"), one("cluster_version"))
	check("control", 204, status, body, err)
	down.QueryEventually(t, `cluster_version{_id="cluster-ok"}`, harness.Len(1), 30*time.Second)
	if v := down.Query(t, `{__name__=~".+",_id!="cluster-ok"}`); len(v) != 0 {
		t.Fatalf("refused data reached the downstream: %v", v)
	}
}

func framed(t *testing.T, data []byte) []byte {
	var b strings.Builder
	w := snappy.NewBufferedWriter(&b)
	_, err := w.Write(data)
	must(t, err)
	must(t, w.Close())
	return []byte(b.String())
}

// TestAuthorizerDown: with an upstream authorizer, a cluster it allowed
// gets through; once it is unreachable a new lookup is 503 + Retry-After,
// never let in.
func TestAuthorizerDown(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	var calls atomic.Int64
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"account_id":"acct-1"}`)
	}))
	gw := startGateway(t, gatewayOpts{downstream: down.RemoteWriteURL(), authorizerURL: authz.URL})
	ctx := context.Background()
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "cluster_version"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
	}}}
	status, body, _, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("pull-secret", "cluster-z"), req)
	if err != nil || status != 204 {
		t.Fatalf("allowed cluster: %d %q %v", status, body, err)
	}
	down.QueryEventually(t, `cluster_version{_id="cluster-z"}`, harness.Len(1), 30*time.Second)
	authz.Close()
	status, body, hdr, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("pull-secret", "cluster-new"), req)
	if err != nil || status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("authorizer down: %d %q retry-after=%q %v", status, body, hdr.Get("Retry-After"), err)
	}
	_, _, status, _ = harness.Authorize(ctx, gw.url, "pull-secret", "cluster-new2")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("authorize with authorizer down: %d", status)
	}
	if v := down.Query(t, `{_id=~"cluster-new.*"}`); len(v) != 0 {
		t.Fatalf("data let in while the authorizer was down: %v", v)
	}
}
