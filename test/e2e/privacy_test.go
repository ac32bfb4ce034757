package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

const privacyAllowlist = `matches:
- '{__name__="owner_info"}'
- '{__name__="node_info"}'
`

// startPrivacyGateway runs the real gateway forwarding to downstream, with
// the default PII guard, a hash key file and an opt-out file.
func startPrivacyGateway(t *testing.T, downstream string) *gatewayProc {
	t.Helper()
	return runGateway(t, map[string]string{
		"allowlist.yaml": privacyAllowlist,
		"pii.key":        "e2e-deployment-key-0123456789",
		"opt-outs.yaml":  "installations: []\n",
	}, fmt.Sprintf(`authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
privacy:
  hash_key_file: pii.key
  opt_out_file: opt-outs.yaml
limits:
  upload_interval: 1s
forward:
  url: %s
  timeout: 5s
  max_retry_time: 10s
`, downstream))
}

// allValues returns every label value of every series downstream holds.
func allValues(t *testing.T, down *harness.Prometheus) []string {
	t.Helper()
	var out []string
	for _, s := range down.Query(t, `{__name__=~".+"}`) {
		for _, v := range s.Metric {
			out = append(out, string(v))
		}
	}
	return out
}

// TestPrivacyEndToEnd: personal data in label values, sent straight to
// the gateway by remote write and through the client from a scraped
// endpoint, never reaches a real Prometheus in clear: the gateway hashes
// it with its deployment key, the client with its own key before sending
// (and the gateway leaves that hash alone); equal values still group. An
// installation put on the opt-out list through the admin API is refused
// 403 opted_out on both paths, its client exits saying so, and nothing
// more of it arrives.
func TestPrivacyEndToEnd(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startPrivacyGateway(t, down.RemoteWriteURL())
	ctx := context.Background()
	now := time.Now().UnixMilli()

	// 1. Remote write straight to the gateway.
	series := func(v float64, kv ...string) prompb.TimeSeries {
		var ls []prompb.Label
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: now}}}
	}
	status, body, _, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "rw-1"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series(1, "__name__", "owner_info", "owner", "alice@example.com", "team", "a"),
		series(1, "__name__", "owner_info", "owner", "alice@example.com", "team", "b"),
		series(1, "__name__", "owner_info", "owner", "bob@example.com", "team", "a"),
		series(1, "__name__", "node_info", "addr", "10.1.2.3:9100", "mac", "00:1a:2b:3c:4d:5e", "version", "4.14.0"),
	}})
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("remote write: %d %s %v", status, body, err)
	}
	down.QueryEventually(t, `owner_info{_id="rw-1"}`, harness.Len(3), 30*time.Second)
	// Equal values hash equal: two owners, alice's on two series.
	v := down.Query(t, `count by (owner) (owner_info{_id="rw-1"})`)
	if len(v) != 2 {
		t.Fatalf("distinct owners %v", v)
	}
	for _, s := range v {
		if o := string(s.Metric["owner"]); !strings.HasPrefix(o, "pii:email:") {
			t.Errorf("owner %q not hashed", o)
		}
	}
	n := down.Query(t, `node_info{_id="rw-1"}`)
	if len(n) != 1 || !strings.HasPrefix(string(n[0].Metric["addr"]), "pii:ip:") || !strings.HasPrefix(string(n[0].Metric["mac"]), "pii:mac:") || n[0].Metric["version"] != "4.14.0" {
		t.Fatalf("node_info %v", n)
	}

	// 2. The client, scraping an endpoint whose labels carry an e-mail
	// address, hashes it with its own key before sending.
	exposition := "# TYPE owner_info gauge\nowner_info{owner=\"carol@example.org\",team=\"c\"} 1\n"
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, exposition)
	}))
	defer app.Close()
	lean := harness.BuildBinary(t, "./cmd/telegate-client")
	state := t.TempDir()
	args := []string{"--once", "--from-scrape=" + app.URL + "/metrics", "--to=" + gw.url, "--to-token=fleet-token",
		"--match-from-gateway", "--state-dir=" + state, "--id=client-1"}
	if code, _, stderr := runOnce(t, lean, args...); code != 0 {
		t.Fatalf("client --once exited %d:\n%s", code, stderr)
	}
	got := down.QueryEventually(t, `owner_info{_id="client-1"}`, harness.Len(1), 30*time.Second)
	keyHex, err := os.ReadFile(filepath.Join(state, "pii-key"))
	must(t, err)
	key, err := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	must(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("carol@example.org"))
	want := "pii:email:" + hex.EncodeToString(m.Sum(nil))[:20]
	if o := string(got[0].Metric["owner"]); o != want {
		t.Errorf("client-1 owner %q, want the client's own hash %q (not hashed again by the gateway)", o, want)
	}

	// Nothing in clear anywhere downstream.
	for _, val := range allValues(t, down) {
		for _, clear := range []string{"@example.", "10.1.2.3", "00:1a:2b"} {
			if strings.Contains(val, clear) {
				t.Errorf("label value %q reached the store in clear", val)
			}
		}
	}

	// 3. Opt-out through the admin API: both installations are refused.
	for _, id := range []string{"rw-1", "client-1"} {
		req, _ := http.NewRequest(http.MethodPost, gw.internal+"/api/v1/opt-outs?id="+id+"&reason=e2e", nil)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("opt out %s: %d", id, resp.StatusCode)
		}
	}
	status, body, _, err = harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "rw-1"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series(2, "__name__", "owner_info", "owner", "dave", "team", "d"),
	}})
	if err != nil || status != http.StatusForbidden || !strings.Contains(body, "opted_out") {
		t.Fatalf("remote write after opting out: %d %s %v", status, body, err)
	}
	time.Sleep(1100 * time.Millisecond) // the gateway's upload_interval
	exposition = "# TYPE owner_info gauge\nowner_info{owner=\"erin\",team=\"e\"} 1\n"
	code, _, stderr := runOnce(t, lean, args...)
	if code != 1 || !strings.Contains(stderr, "opted out") {
		t.Fatalf("client after opting out: exit %d, want 1 saying it opted out:\n%s", code, stderr)
	}
	time.Sleep(2 * time.Second)
	for _, sel := range []string{`owner_info{team=~"d|e"}`, `owner_info{owner="dave"}`} {
		if v := down.Query(t, sel); len(v) != 0 {
			t.Errorf("%s arrived after opting out: %v", sel, v)
		}
	}
	if v := down.Query(t, `count(owner_info)`); len(v) != 1 || v[0].Value != model.SampleValue(4) {
		t.Errorf("owner_info series %v, want the 4 from before", v)
	}
}

// TestPublicViewKAnonymity: the gateway in single-binary mode with a
// public view of count by (version) (cluster_version), k = 3. Five
// installations run one version, two another: the view publishes the
// first group with its count, from the embedded store, and never the
// group of two; a query that would group by installation does not load.
func TestPublicViewKAnonymity(t *testing.T) {
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal, view := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte("matches:\n- '{__name__=\"cluster_version\"}'\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	cfg := func(query string) string {
		return fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
storage:
  path: %s
public_view:
  listen_address: %s
  k: 3
  cache_ttl: 1s
  requests_per_second: 100
  aggregations:
  - name: cluster_versions
    query: '%s'
`, pub, internal, filepath.Join(dir, "data"), view, query)
	}
	// A per-installation grouping is refused at start.
	must(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(cfg(`count by (version, _id) (cluster_version)`)), 0o600))
	code, _, stderr := runOnce(t, bin, "gateway", "--config.file="+filepath.Join(dir, "bad.yaml"), "--config.check")
	if code == 0 || !strings.Contains(stderr, "installation label") {
		t.Fatalf("per-installation grouping: exit %d:\n%s", code, stderr)
	}
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg(`count by (version) (cluster_version)`)), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{Name: "telegate-gateway", Binary: bin,
		Args: []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml")}, Dir: dir})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)

	now := time.Now().UnixMilli()
	for i := range 7 {
		version := "4.14.0"
		if i >= 5 {
			version = "4.15.0-rc.1"
		}
		status, body, _, err := harness.RemoteWrite(context.Background(), "http://"+pub+"/api/v1/receive", harness.CompositeToken("fleet-token", fmt.Sprintf("inst-%d", i)),
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_version"}, {Name: "version", Value: version}},
				Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}})
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("remote write %d: %d %s %v", i, status, body, err)
		}
	}
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + view + "/metrics")
		must(t, err)
		b := new(strings.Builder)
		_, err = io.Copy(b, resp.Body)
		resp.Body.Close()
		must(t, err)
		body = b.String()
		if strings.Contains(body, `cluster_versions{version="4.14.0"} 5`) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(body, `cluster_versions{version="4.14.0"} 5`) || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("public view:\n%s", body)
	}
	if strings.Contains(body, "4.15.0") || strings.Contains(body, "inst-") || strings.Contains(body, "_id") {
		t.Fatalf("a group of fewer than k installations, or an installation, is published:\n%s", body)
	}
}

// TestDeletionOnRequest: in single-binary mode, an installation asks with
// its own credentials (telegate-client --request-deletion) for all its
// data to be removed: its series are gone from the embedded store (PromQL
// before and after) while every other installation's are intact, further
// data of it is refused 403 deleted, and the request with its audit trail
// is listed by the admin API, done.
func TestDeletionOnRequest(t *testing.T) {
	lean := harness.BuildBinary(t, "./cmd/telegate-client")
	gw := runGateway(t, map[string]string{"allowlist.yaml": "matches:\n- '{__name__=\"cluster_version\"}'\n"}, `authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
storage:
  path: data
`)
	store := harness.NewPromAPI(gw.internal)

	write := func(id string, ts int64) (int, string) {
		status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", id),
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_version"}, {Name: "version", Value: "4.14.0"}},
				Samples: []prompb.Sample{{Value: 1, Timestamp: ts}}}}})
		must(t, err)
		return status, body
	}
	now := time.Now().UnixMilli()
	for _, id := range []string{"keep-1", "gone-1", "keep-2"} {
		if status, body := write(id, now); status != http.StatusNoContent {
			t.Fatalf("write %s: %d %s", id, status, body)
		}
	}
	store.QueryEventually(t, `cluster_version`, harness.Len(3), 20*time.Second)

	code, out, stderr := runOnce(t, lean, "--request-deletion", "--to="+gw.url, "--to-token=fleet-token", "--id=gone-1",
		"--from-scrape=http://127.0.0.1:1/metrics", "--match=cluster_version", "--state-dir="+t.TempDir())
	if code != 0 || !strings.Contains(out, `"state":"pending"`) {
		t.Fatalf("--request-deletion: exit %d, %s\n%s", code, out, stderr)
	}
	// Carried out at once: the series is gone, the others stay.
	store.QueryEventually(t, `cluster_version{_id="gone-1"}`, harness.Len(0), 20*time.Second)
	if v := store.Query(t, `count(cluster_version)`); len(v) != 1 || v[0].Value != 2 {
		t.Fatalf("other installations after the deletion: %v", v)
	}
	if status, body := write("gone-1", now+1000); status != http.StatusForbidden || !strings.Contains(body, `"reason":"deleted"`) {
		t.Fatalf("write after deletion: %d %s", status, body)
	}
	resp, err := http.Get(gw.internal + "/api/v1/deletions")
	must(t, err)
	b := new(strings.Builder)
	io.Copy(b, resp.Body)
	resp.Body.Close()
	if !strings.Contains(b.String(), `"id":"gone-1"`) || !strings.Contains(b.String(), `"state":"done"`) || !strings.Contains(b.String(), "series deleted") {
		t.Fatalf("admin API: %s", b)
	}
}
