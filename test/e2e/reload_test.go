package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

func reload(t *testing.T, gw *gatewayProc) (int, string) {
	t.Helper()
	resp, err := http.Post(gw.internal+"/-/reload", "", nil)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAllowlistReloadUnderLoad swaps the allowlist while requests flow:
// no request fails, and each request met exactly one version (its series
// for the old rule or for the new one reached the store, never both or
// neither). An invalid file keeps the active allowlist.
func TestAllowlistReloadUnderLoad(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startGateway(t, gatewayOpts{downstream: down.RemoteWriteURL(), tokens: true})
	file := filepath.Join(gw.Dir(), "allowlist.yaml")
	oldList := "matches:\n# owners: (@t/t)\n# Old.\n- '{__name__=\"reload_old\"}'\n"
	newList := "matches:\n# owners: (@t/t)\n# New.\n- '{__name__=\"reload_new\"}'\n"
	must(t, os.WriteFile(file, []byte(oldList), 0o600))
	if code, body := reload(t, gw); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}

	const workers, perWorker = 4, 40
	var (
		mu     sync.Mutex
		hashes = map[string]int{}
		failed []string
		wg     sync.WaitGroup
	)
	now := time.Now().UnixMilli()
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			for i := 0; i < perWorker; i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				req := &prompb.WriteRequest{}
				for _, name := range []string{"reload_old", "reload_new"} {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "req", Value: id}},
						Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
					})
				}
				status, body, hdr, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "cluster-reload"), req)
				mu.Lock()
				if err != nil || status != 204 {
					failed = append(failed, fmt.Sprintf("%s: %d %s %v", id, status, body, err))
				}
				hashes[hdr.Get("X-Telegate-Allowlist-Hash")]++
				mu.Unlock()
			}
		}(w)
	}
	close(start)
	time.Sleep(100 * time.Millisecond)
	must(t, os.WriteFile(file, []byte(newList), 0o600))
	if code, body := reload(t, gw); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed during reload, e.g. %s", len(failed), failed[0])
	}
	if len(hashes) != 2 {
		t.Logf("requests per allowlist hash: %v (the reload landed before or after all requests)", hashes)
	}

	total := workers * perWorker
	sel := `{__name__=~"reload_.*",_id="cluster-reload",req!~"after.*"}`
	down.QueryEventually(t, `count(count by (req) (`+sel+`))`, func(v model.Vector) bool {
		return len(v) == 1 && int(v[0].Value) == total
	}, 30*time.Second)
	if v := down.Query(t, `count by (req) (`+sel+`) > 1`); len(v) != 0 {
		t.Fatalf("%d requests saw both allowlists, e.g. %v", len(v), v[0].Metric)
	}
	for name, list := range map[string]string{"reload_old": oldList, "reload_new": newList} {
		want := hashes[hashOf(list)]
		got := 0
		if v := down.Query(t, `count(`+name+`{_id="cluster-reload",req!~"after.*"})`); len(v) == 1 {
			got = int(v[0].Value)
		}
		if got != want {
			t.Errorf("%s: %d requests in the store, %d answered with its allowlist hash (hashes seen: %v)", name, got, want, hashes)
		}
	}

	// An invalid file is refused and the new allowlist stays active.
	must(t, os.WriteFile(file, []byte("matches:\n- '{__name__=~'\n"), 0o600))
	if code, body := reload(t, gw); code == 200 || !strings.Contains(body, "allowlist.yaml:2") {
		t.Fatalf("invalid reload: %d %q", code, body)
	}
	req := &prompb.WriteRequest{}
	for _, name := range []string{"reload_old", "reload_new"} {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "req", Value: "after-invalid"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
		})
	}
	status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "cluster-reload"), req)
	if err != nil || status != 204 {
		t.Fatalf("after invalid reload: %d %s %v", status, body, err)
	}
	down.QueryEventually(t, `reload_new{req="after-invalid"}`, harness.Len(1), 30*time.Second)
	if v := down.Query(t, `reload_old{req="after-invalid"}`); len(v) != 0 {
		t.Fatalf("old rules active after an invalid reload: %v", v)
	}
}

// hashOf is the allowlist hash the gateway reports: the first 16 hex
// digits of the SHA-256 of the file.
func hashOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])[:16]
}

// TestInternalEndpointsNeedFlags: like Prometheus, the gateway binary
// refuses POST /-/reload (403) without --web.enable-lifecycle and serves
// no /debug/pprof (404) without --web.enable-pprof; health, /metrics and
// /debug/limits are always on. With the flags both work.
func TestInternalEndpointsNeedFlags(t *testing.T) {
	status := func(method, url string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
		must(t, err)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	off := startEmbeddedGateway(t, "")
	if code, body := status("POST", off.internal+"/-/reload"); code != http.StatusForbidden || body != "Lifecycle API is not enabled." {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %d %q", code, body)
	}
	if code, _ := status("GET", off.internal+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without --web.enable-pprof: %d, want 404", code)
	}
	for _, p := range []string{"/metrics", "/-/healthy", "/debug/limits"} {
		if code, body := status("GET", off.internal+p); code != 200 {
			t.Errorf("GET %s: %d %q", p, code, body)
		}
	}

	on := startEmbeddedGateway(t, "", "--web.enable-lifecycle", "--web.enable-pprof")
	if code, body := status("POST", on.internal+"/-/reload"); code != 200 {
		t.Errorf("POST /-/reload with --web.enable-lifecycle: %d %q", code, body)
	}
	if code, body := status("GET", on.internal+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET /debug/pprof/goroutine with --web.enable-pprof: %d %.80q", code, body)
	}
}
