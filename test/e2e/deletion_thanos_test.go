package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/telegate/telegate/test/e2e/harness"
)

// floatSample is a float sample for tsdb.CreateBlock.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// writeThanosBlock writes a TSDB block holding cluster_version of each
// installation (one sample a minute over the last hour) into the
// filesystem bucket bkt, with the Thanos section of meta.json that
// Thanos' tools and Store Gateway read, and returns its ULID.
func writeThanosBlock(t *testing.T, bkt string, ids []string) string {
	t.Helper()
	now := time.Now().Add(-30 * time.Second).UnixMilli()
	var series []storage.Series
	for _, id := range ids {
		var samples []chunks.Sample
		for i := 60; i >= 0; i-- {
			samples = append(samples, floatSample{t: now - int64(i)*60_000, f: 1})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "cluster_version", "_id", id, "version", "4.14.0"), samples))
	}
	tmp := t.TempDir()
	dir, err := tsdb.CreateBlock(series, tmp, 2*3600*1000, slog.New(slog.DiscardHandler))
	must(t, err)
	ulid := filepath.Base(dir)
	metaPath := filepath.Join(dir, "meta.json")
	raw, err := os.ReadFile(metaPath)
	must(t, err)
	var meta map[string]any
	must(t, json.Unmarshal(raw, &meta))
	meta["thanos"] = map[string]any{"labels": map[string]string{"receive_replica": "0"}, "downsample": map[string]any{"resolution": 0}, "source": "receive"}
	raw, err = json.Marshal(meta)
	must(t, err)
	must(t, os.WriteFile(metaPath, raw, 0o644))
	must(t, os.Rename(dir, filepath.Join(bkt, ulid)))
	return ulid
}

// TestDeletionThanosRewrite: with Thanos as long-term storage, an
// installation's deletion request is exported by the gateway as the
// deletion config of Thanos' own block rewrite tool; `thanos tools bucket
// rewrite` applied with it removes that installation's series from a real
// bucket while every other installation's stay (PromQL through Thanos
// Store and Query, before and after), and the request is marked done.
func TestDeletionThanosRewrite(t *testing.T) {
	thanos := harness.ThanosBinary(t)
	bkt := t.TempDir()
	bktCfg := filepath.Join(t.TempDir(), "bucket.yaml")
	must(t, os.WriteFile(bktCfg, []byte("type: FILESYSTEM\nconfig:\n  directory: "+bkt+"\n"), 0o600))
	block := writeThanosBlock(t, bkt, []string{"keep-1", "gone-1", "keep-2"})

	storeGRPC, storeHTTP := harness.FreeAddr(t), harness.FreeAddr(t)
	st := harness.StartProcess(t, harness.ProcessOptions{Name: "thanos-store", Binary: thanos, Args: []string{"store",
		"--objstore.config-file=" + bktCfg, "--data-dir=" + t.TempDir(), "--grpc-address=" + storeGRPC, "--http-address=" + storeHTTP,
		"--sync-block-duration=2s", "--ignore-deletion-marks-delay=0s"}})
	st.WaitHTTP("http://"+storeHTTP+"/-/ready", 60*time.Second)
	q := harness.StartThanosQuery(t, harness.ThanosQueryOptions{Endpoints: []string{storeGRPC}})
	q.QueryEventually(t, `count(cluster_version)`, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 3 }, 60*time.Second)

	// The gateway forwarding to Thanos, its deletion requests on a shared bucket.
	gw := runGateway(t, map[string]string{"allowlist.yaml": "matches:\n- '{__name__=\"cluster_version\"}'\n"}, `authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
privacy:
  deletions_bucket:
    type: FILESYSTEM
    config: {directory: deletions}
forward:
  url: http://127.0.0.1:1/api/v1/receive
  spool:
    bucket:
      type: FILESYSTEM
      config: {directory: spool}
`)

	req, _ := http.NewRequest(http.MethodPost, gw.url+"/deletion", nil)
	req.Header.Set("Authorization", "Bearer "+harness.CompositeToken("fleet-token", "gone-1"))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /deletion: %d", resp.StatusCode)
	}
	get := func(path string) string {
		resp, err := http.Get(gw.internal + path)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	cfg := get("/api/v1/deletions/rewrite-config")
	if !strings.Contains(cfg, `{_id=\"gone-1\"}`) {
		t.Fatalf("rewrite config:\n%s", cfg)
	}
	delCfg := filepath.Join(t.TempDir(), "delete.yaml")
	must(t, os.WriteFile(delCfg, []byte(cfg), 0o600))
	out, err := exec.Command(thanos, "tools", "bucket", "rewrite", "--objstore.config-file="+bktCfg, "--id="+block,
		"--rewrite.to-delete-config-file="+delCfg, "--tmp.dir="+t.TempDir(), "--no-dry-run", "--delete-blocks").CombinedOutput()
	if err != nil {
		t.Fatalf("thanos tools bucket rewrite: %v\n%s", err, out)
	}
	q.QueryEventually(t, `count(cluster_version)`, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 2 }, 60*time.Second)
	if v := q.Query(t, `cluster_version{_id="gone-1"}`); len(v) != 0 {
		t.Fatalf("gone-1 still stored: %v", v)
	}
	if v := q.Query(t, `count by (_id) (cluster_version)`); len(v) != 2 {
		t.Fatalf("other installations: %v", v)
	}
	resp, err = http.Post(gw.internal+"/api/v1/deletions/done?id=gone-1", "", nil)
	must(t, err)
	resp.Body.Close()
	if list := get("/api/v1/deletions"); !strings.Contains(list, `"state":"done"`) || !strings.Contains(list, "block rewrite applied") {
		t.Fatalf("after marking done: %s", list)
	}
	if cfg := get("/api/v1/deletions/rewrite-config"); strings.Contains(cfg, "gone-1") {
		t.Fatalf("done request still exported:\n%s", cfg)
	}
}
