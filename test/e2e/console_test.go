package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

const consoleAllowlist = `matches:
# owners: (@telegate/cvo)
# The version each cluster runs.
- '{__name__="cluster_version"}'
# owners: (@telegate/node)
# CPU seconds per node: the instance and pod labels are stripped.
- '{__name__="node_cpu_seconds_total"}'
# owners: (@telegate/evil)
# A description with markup: <script>alert("description")</script>
- '{__name__="hostile_total"}'
`

// Hostile strings a client controls: an installation ID, label values,
// metric names.
var consoleHostile = []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `it's "quoted" & <b>bold</b>`}

// ScreenshotsEnv names the directory the browser tests save their
// screenshots to (default: a temporary directory of the test).
const ScreenshotsEnv = "TELEGATE_SCREENSHOTS"

// TestConsoleInBrowser starts the gateway (forwarding to a real
// Prometheus, and in single-binary mode), sends it remote writes with an
// allowlisted, a refused and a stripped metric and hostile names, and
// loads every console page in headless Chromium: rendered content, the
// "why is my metric not arriving?" form's verdicts, no browser console
// errors or exceptions, hostile names inert (no dialog, no element, shown
// as text). Screenshots go to $TELEGATE_SCREENSHOTS or a temp dir.
func TestConsoleInBrowser(t *testing.T) {
	chrome := harness.RequireBinary(t, "TELEGATE_E2E_CHROMIUM", "install the chromium package (scripts/install-test-deps.sh)", "chromium", "chromium-browser", "google-chrome")
	shots := os.Getenv(ScreenshotsEnv)
	if shots == "" {
		shots = t.TempDir()
	}
	must(t, os.MkdirAll(shots, 0o755))
	t.Logf("screenshots in %s", shots)
	for _, mode := range []string{"forwarding", "single-binary"} {
		t.Run(mode, func(t *testing.T) {
			downstream := ""
			if mode == "forwarding" {
				down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
				downstream = down.RemoteWriteURL()
			}
			gw := startConsoleGateway(t, downstream)
			consoleTraffic(t, gw)
			fillInstallations(t, gw, 10000)
			stop := backgroundLoad(t, gw)
			defer stop()
			b := newBrowser(t, chrome)
			checkConsolePages(t, b, gw, mode, filepath.Join(shots, mode))
		})
	}
}

func startConsoleGateway(t *testing.T, downstream string) *gatewayProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(consoleAllowlist), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	cfg := fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
authn:
  tokens_file: tokens.yaml
allowlist:
  file: allowlist.yaml
relabel:
  drop_labels: [instance, pod]
limits:
  max_label_value_length: 20000
forward:
  url: %q
storage:
  path: %s
`, pub, internal, downstream, filepath.Join(dir, "tsdb"))
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate",
		Binary: bin,
		Args:   []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml")},
		Dir:    dir,
	})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)
	return &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}
}

func rwSeries(name string, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}
}

func consoleWrite(t *testing.T, gw *gatewayProc, cluster string, ts ...prompb.TimeSeries) int {
	t.Helper()
	status, _, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", cluster), &prompb.WriteRequest{Timeseries: ts})
	must(t, err)
	return status
}

func consoleTraffic(t *testing.T, gw *gatewayProc) {
	t.Helper()
	for i := range 3 {
		if s := consoleWrite(t, gw, "cluster-a",
			rwSeries("cluster_version", "version", "4.16.3"),
			rwSeries("refused_metric_total", "job", "x"),
			rwSeries("node_cpu_seconds_total", "cpu", fmt.Sprint(i), "instance", "10.0.0.1:9100", "pod", "node-exporter-1"),
		); s != http.StatusNoContent {
			t.Fatalf("remote write: %d", s)
		}
	}
	long := strings.Repeat("x", 10000)
	for _, h := range consoleHostile {
		// A hostile installation ID, label value and (denied) metric name.
		if s := consoleWrite(t, gw, h, rwSeries("cluster_version", "version", h)); s != http.StatusNoContent {
			t.Fatalf("remote write as %q: %d", h, s)
		}
		consoleWrite(t, gw, "cluster-b", rwSeries("hostile_total", "v", h, "long", long), rwSeries(h))
		// A series claiming another installation: a 400 quoting it.
		consoleWrite(t, gw, "cluster-b", rwSeries("cluster_version", "_id", h))
	}
}

// fillInstallations makes the gateway know n more installations, each
// sending one allowlisted series.
func fillInstallations(t *testing.T, gw *gatewayProc, n int) {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", fmt.Sprintf("fleet-%05d", i)),
					&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{rwSeries("cluster_version", "version", "4.17.0")}})
				if err == nil && status != http.StatusNoContent {
					err = fmt.Errorf("status %d: %s", status, body)
				}
				if err != nil {
					errs <- err
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
	t.Logf("%d installations sent a remote write in %v", n, time.Since(start))
}

// backgroundLoad keeps remote writes coming (a few installations, 200
// series each) while the pages are checked; stop ends it.
func backgroundLoad(t *testing.T, gw *gatewayProc) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent, failed int64
	var mu sync.Mutex
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var ts []prompb.TimeSeries
				for k := range 200 {
					ts = append(ts, rwSeries("node_cpu_seconds_total", "cpu", fmt.Sprint(k), "instance", fmt.Sprintf("10.0.%d.1:9100", w)))
				}
				status, _, _, err := harness.RemoteWrite(ctx, gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", fmt.Sprintf("load-%d", w)), &prompb.WriteRequest{Timeseries: ts})
				mu.Lock()
				if err == nil && status == http.StatusNoContent {
					sent++
				} else if ctx.Err() == nil {
					failed++
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		t.Logf("background load: %d remote writes of 200 series, %d failed", sent, failed)
	}
}

type browser struct {
	ctx context.Context
	mu  sync.Mutex
	// problems are console errors, exceptions, failed loads and dialogs.
	problems []string
}

func newBrowser(t *testing.T, chrome string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // tests often run as root in containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeWarning || ev.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				p = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			p = "exception: " + ev.ExceptionDetails.Error()
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.LevelError || ev.Entry.Level == cdplog.LevelWarning {
				p = fmt.Sprintf("log %s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		case *page.EventJavascriptDialogOpening:
			p = fmt.Sprintf("dialog %s: %s", ev.Type, ev.Message)
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(false))
		}
		if p != "" {
			b.mu.Lock()
			b.problems = append(b.problems, p)
			b.mu.Unlock()
		}
	})
	must(t, chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error { return cdplog.Enable().Do(ctx) })))
	return b
}

// takeProblems returns and forgets what the browser reported.
func (b *browser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// load opens url, waits for the page, checks it reported no problem and
// saves a screenshot; it returns the page's text.
func (b *browser) load(t *testing.T, u, shot string) string {
	t.Helper()
	var text string
	var png []byte
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	must(t, chromedp.Run(ctx,
		chromedp.Navigate(u),
		chromedp.WaitReady("main", chromedp.ByQuery),
		chromedp.Sleep(200*time.Millisecond), // late console messages
		chromedp.Text("body", &text, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&png),
	))
	must(t, os.WriteFile(shot, png, 0o644))
	// The server's part of the page load (request sent to response
	// read), with 10,000 installations known and remote writes coming.
	var server, total float64
	must(t, chromedp.Run(ctx,
		chromedp.Evaluate(`(() => { const n = performance.getEntriesByType("navigation")[0]; return n.responseEnd - n.requestStart })()`, &server),
		chromedp.Evaluate(`performance.getEntriesByType("navigation")[0].duration`, &total),
	))
	t.Logf("%s: served in %.0f ms, loaded in %.0f ms", u, server, total)
	if server > 1000 {
		t.Errorf("%s: the server took %.0f ms, over a second", u, server)
	}
	if p := b.takeProblems(); len(p) > 0 {
		t.Errorf("%s: the browser reported:\n%s", u, strings.Join(p, "\n"))
	}
	return text
}

// inert checks the page holds no element a hostile name could have made.
func (b *browser) inert(t *testing.T, where string) {
	t.Helper()
	var scripts, imgs, bolds int
	must(t, chromedp.Run(b.ctx,
		chromedp.Evaluate(`document.querySelectorAll("script").length`, &scripts),
		chromedp.Evaluate(`document.querySelectorAll("img").length`, &imgs),
		chromedp.Evaluate(`document.querySelectorAll("b").length`, &bolds),
	))
	if scripts != 0 || imgs != 0 || bolds > 1 { // one <b> is the console's own (shadow mode)
		t.Errorf("%s: %d script, %d img, %d b elements: a hostile name became markup", where, scripts, imgs, bolds)
	}
}

// contains checks the page's text holds each of want (ignoring case: the
// CSS upper-cases some headings).
func contains(t *testing.T, where, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
			t.Errorf("%s: no %q in the page:\n%.2000s", where, w, text)
		}
	}
}

func checkConsolePages(t *testing.T, b *browser, gw *gatewayProc, mode, shots string) {
	must(t, os.MkdirAll(shots, 0o755))
	base := gw.internal

	text := b.load(t, base+"/", filepath.Join(shots, "console-fleet.png"))
	contains(t, "fleet", text, "Fleet", "Accepted samples/s", "refused_metric_total", "cluster-a", consoleHostile[0], consoleHostile[1], mode)
	b.inert(t, "fleet")

	text = b.load(t, base+"/allowlist", filepath.Join(shots, "console-allowlist.png"))
	contains(t, "allowlist", text, "@telegate/cvo", "The version each cluster runs.", "node_cpu_seconds_total", `<script>alert("description")</script>`)
	b.inert(t, "allowlist")
	text = b.load(t, base+"/allowlist?owner=node", filepath.Join(shots, "console-allowlist-owner.png"))
	if strings.Contains(text, "@telegate/cvo") || !strings.Contains(text, "@telegate/node") {
		t.Errorf("owner filter:\n%s", text)
	}

	text = b.load(t, base+"/installations", filepath.Join(shots, "console-installations.png"))
	contains(t, "installations", text, "10,0", "known", "fleet-")
	text = b.load(t, base+"/installations?sort=dropped", filepath.Join(shots, "console-installations-dropped.png"))
	contains(t, "installations by drops", text, "cluster-a", "cluster-b")
	// Every hostile ID has a "<" in it.
	text = b.load(t, base+"/installations?q=%3C", filepath.Join(shots, "console-installations-hostile.png"))
	contains(t, "hostile installations", text, "3 matching", consoleHostile[0], consoleHostile[1], consoleHostile[2])
	b.inert(t, "installations")

	text = b.load(t, base+"/installations/cluster-a", filepath.Join(shots, "console-installation.png"))
	contains(t, "installation", text, "cluster-a", "allowlist", "Budget", "Last remote write")
	text = b.load(t, base+"/installations/cluster-b", filepath.Join(shots, "console-installation-errors.png"))
	contains(t, "installation errors", text, "invalid_series", "but the credentials are for cluster")
	b.inert(t, "installation errors")
	text = b.load(t, base+"/installations/"+url.PathEscape(consoleHostile[0]), filepath.Join(shots, "console-installation-hostile.png"))
	contains(t, "hostile installation", text, consoleHostile[0])
	b.inert(t, "hostile installation")

	// The form: allowlisted, refused and stripped metrics.
	b.load(t, base+"/diagnose", filepath.Join(shots, "console-diagnose-empty.png"))
	var png, full []byte
	verdicts := map[string]string{}
	var stripping string
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	must(t, chromedp.Run(ctx,
		chromedp.SetValue(`input[name="installation"]`, "cluster-a", chromedp.ByQuery),
		chromedp.SetValue(`input[name="metric"]`, "cluster_version refused_metric_total", chromedp.ByQuery),
		chromedp.SetValue(`textarea[name="text"]`, "# TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",instance=\"10.0.0.1:9100\",pod=\"node-exporter-1\"} 1\n", chromedp.ByQuery),
		chromedp.Click(`#explain`, chromedp.ByQuery),
		chromedp.WaitVisible(`section.metric`, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			for _, m := range []string{"cluster_version", "refused_metric_total", "node_cpu_seconds_total"} {
				var v string
				var ok bool
				if err := chromedp.AttributeValue(`section.metric[data-metric="`+m+`"]`, "data-verdict", &v, &ok, chromedp.ByQuery).Do(ctx); err != nil {
					return err
				}
				verdicts[m] = v
			}
			return nil
		}),
		chromedp.Text(`section.metric[data-metric="node_cpu_seconds_total"] tr[data-stage="label stripping"]`, &stripping, chromedp.ByQuery),
		chromedp.Sleep(200*time.Millisecond),
		chromedp.CaptureScreenshot(&png),
		chromedp.FullScreenshot(&full, 100),
	))
	must(t, os.WriteFile(filepath.Join(shots, "console-diagnose.png"), png, 0o644))
	must(t, os.WriteFile(filepath.Join(shots, "console-diagnose-full.png"), full, 0o644))
	if verdicts["cluster_version"] != "pass" || verdicts["refused_metric_total"] != "drop" || verdicts["node_cpu_seconds_total"] != "pass" {
		t.Errorf("verdicts %v", verdicts)
	}
	if stripping = strings.ToLower(stripping); !strings.Contains(stripping, "info") || !strings.Contains(stripping, "strips instance, pod") {
		t.Errorf("stripping stage %q", stripping)
	}
	var refusedWhy string
	must(t, chromedp.Run(b.ctx, chromedp.Text(`section.metric[data-metric="refused_metric_total"] tr[data-stage="allowlist"]`, &refusedWhy, chromedp.ByQuery)))
	if !strings.Contains(strings.ToLower(refusedWhy), "drop") || !strings.Contains(refusedWhy, `no entry allows the metric name "refused_metric_total"`) {
		t.Errorf("refused metric's allowlist stage %q", refusedWhy)
	}
	if p := b.takeProblems(); len(p) > 0 {
		t.Errorf("diagnose form: the browser reported:\n%s", strings.Join(p, "\n"))
	}

	// A hostile metric name in the form: shown as text, inert.
	text = b.load(t, base+"/diagnose?installation="+url.QueryEscape(consoleHostile[0])+"&metric="+url.QueryEscape(`hostile_total{v="\"><img src=x onerror=alert(2)>"}`), filepath.Join(shots, "console-diagnose-hostile.png"))
	contains(t, "hostile diagnose", text, consoleHostile[0], "hostile_total")
	b.inert(t, "hostile diagnose")

	// A phone-sized viewport: the home page stays readable.
	must(t, chromedp.Run(b.ctx, chromedp.EmulateViewport(390, 844)))
	b.load(t, base+"/", filepath.Join(shots, "console-fleet-phone.png"))
	var overflow bool
	must(t, chromedp.Run(b.ctx, chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow)))
	if overflow {
		t.Errorf("the fleet page scrolls sideways on a 390px wide screen")
	}
	must(t, chromedp.Run(b.ctx, chromedp.EmulateViewport(1280, 900)))

	// The JSON twin of the fleet page says the mode.
	resp, err := http.Get(base + "/api/console/fleet")
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var fleet struct {
		Mode          string `json:"mode"`
		Installations int    `json:"installations"`
	}
	must(t, json.Unmarshal(body, &fleet))
	if fleet.Mode != mode || fleet.Installations < 10000 {
		t.Errorf("fleet JSON: %s", body)
	}
	// The pages the console does not own still answer.
	for _, p := range []string{"/metrics", "/debug/limits", "/-/ready"} {
		resp, err := http.Get(base + p)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
