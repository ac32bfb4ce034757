package client

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"

	kitlog "github.com/go-kit/log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// appText is a service's /metrics in the Prometheus text format.
func appText(stampedMs int64) string {
	return fmt.Sprintf(`# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{code="200"} 5
app_requests_total{code="500"} 1
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 1
app_latency_seconds_bucket{le="+Inf"} 2
app_latency_seconds_sum 0.3
app_latency_seconds_count 2
app_stamped 7 %d
# TYPE go_goroutines gauge
go_goroutines 12
`, stampedMs)
}

// fakeApp serves /metrics (text, or OpenMetrics when asked for it and om
// is set) and /installer.om (the static OpenMetrics file, with the
// Content-Type a plain file server gives it), checking credentials.
type fakeApp struct {
	*httptest.Server
	mu       sync.Mutex
	accepts  []string
	auths    []string
	om       bool   // answer OpenMetrics to /metrics when the Accept header allows
	omType   string // Content-Type of /installer.om
	wantAuth func(r *http.Request) bool
	stamped  int64
}

func newFakeApp(t *testing.T, tls bool) *fakeApp {
	t.Helper()
	a := &fakeApp{omType: "application/openmetrics-text; version=1.0.0; charset=utf-8", stamped: time.Now().Add(-time.Minute).UnixMilli()}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.accepts = append(a.accepts, r.Header.Get("Accept"))
		a.auths = append(a.auths, r.Header.Get("Authorization"))
		if a.wantAuth != nil && !a.wantAuth(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			if a.om && strings.Contains(r.Header.Get("Accept"), "application/openmetrics-text") {
				w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
				fmt.Fprint(w, strings.Replace(appText(a.stamped), fmt.Sprint(a.stamped), fmt.Sprintf("%.3f", float64(a.stamped)/1000), 1)+"# EOF\n")
				return
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			fmt.Fprint(w, appText(a.stamped))
		case "/installer.om":
			b, err := os.ReadFile("testdata/installer.om")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			if a.omType != "" {
				w.Header().Set("Content-Type", a.omType)
			}
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	})
	if tls {
		a.Server = httptest.NewUnstartedServer(h)
		a.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes the tests make fail
		a.StartTLS()
	} else {
		a.Server = httptest.NewServer(h)
	}
	t.Cleanup(a.Close)
	return a
}

// scrapeConfig reads urls and sends to gw with an explicit ID.
func scrapeConfig(t *testing.T, gw string, urls ...string) *Config {
	c := &Config{FromScrape: urls, To: gw, ID: "install-1", ToToken: "pull-secret",
		Match:    []string{`{__name__=~"app_.+"}`, `assisted_installer_cluster_installation_minutes_bucket`, `{__name__="assisted_installer_clusters_created_total",platform!=""}`},
		Interval: Duration(2 * time.Second), MinBackoff: Duration(20 * time.Millisecond), MaxBackoff: Duration(50 * time.Millisecond), StateDir: t.TempDir()}
	c.SetDefaults()
	return c
}

func newTestClient(t *testing.T, cfg *Config) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// Scrape mode reads a Prometheus text endpoint and a static OpenMetrics
// file, keeps only the series the selectors match (the rest never leaves
// the machine), stamps samples without a timestamp with the scrape time,
// and uploads through the same pipeline: token labels, staging,
// /last-payload.
func TestScrapeModeUploadsSelectedSeries(t *testing.T) {
	app := newFakeApp(t, false)
	gw := newFakeGateway(t, nil)
	cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics", app.URL+"/installer.om")
	cfg.StagingDir = t.TempDir()
	if cfg.LimitBytes != DefaultScrapeLimitBytes {
		t.Errorf("scrape mode limit_bytes default %d, want %d", cfg.LimitBytes, DefaultScrapeLimitBytes)
	}
	c, reg := newTestClient(t, cfg)
	before := time.Now().UnixMilli()
	if err := c.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	_, ups := gw.snapshot()
	if len(ups) != 1 {
		t.Fatalf("%d uploads, want 1", len(ups))
	}
	fams, err := DecodePayload(ups[0].body)
	if err != nil {
		t.Fatal(err)
	}
	got := text(t, fams)
	for _, want := range []string{
		`app_requests_total{_id="install-1",code="200"} 5`,
		`app_requests_total{_id="install-1",code="500"} 1`,
		`app_latency_seconds_bucket{_id="install-1",le="+Inf"} 2`,
		`app_latency_seconds_count{_id="install-1"} 2`,
		fmt.Sprintf(`app_stamped{_id="install-1"} 7 %d`, app.stamped),
		`assisted_installer_cluster_installation_minutes_bucket{_id="install-1",le="60.0",result="ok"} 9`,
		`assisted_installer_cluster_installation_minutes_bucket{_id="install-1",le="+Inf",result="ok"} 10`,
		`assisted_installer_clusters_created_total{_id="install-1",platform="baremetal"} 42`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("payload lacks %s:\n%s", want, got)
		}
	}
	for _, never := range []string{"go_goroutines", "internal_debug", "hunter2", "_created{", "installation_minutes_count", "installation_minutes_sum", "assisted_installer_hosts", "build_info", "trace_id"} {
		if strings.Contains(got, never) {
			t.Errorf("payload holds %q, which no selector matches:\n%s", never, got)
		}
	}
	if bytes.Contains(ups[0].body, []byte("hunter2")) {
		t.Error("the upload body holds an unselected label value")
	}
	// Samples without a timestamp carry the scrape time.
	re := regexp.MustCompile(`app_requests_total\{_id="install-1",code="200"\} 5 (\d+)`)
	m := re.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no timestamp on a scraped sample:\n%s", got)
	}
	var ts int64
	fmt.Sscan(m[1], &ts)
	if ts < before || ts > after {
		t.Errorf("timestamp %d, want the scrape time in [%d, %d]", ts, before, after)
	}
	// Unselected samples are counted, not sent.
	if v := counter(t, reg, "telegate_client_samples_filtered_total", "reason", FilterUnselected); v != 8 {
		t.Errorf("unselected samples %v", v)
	}
	if v := counter(t, reg, "telegate_client_federate_requests_total", "result", "success"); v != 2 {
		t.Errorf("successful reads %v, want 2 (one per endpoint)", v)
	}
	// The same transparency as federation.
	last, _ := c.LastPayload()
	if !strings.Contains(text(t, last), `app_requests_total{_id="install-1",code="200"} 5`) {
		t.Errorf("last payload %s", text(t, last))
	}
	if files, _ := StagedPayloads(cfg.StagingDir); len(files) != 1 {
		t.Errorf("staged %v", files)
	}
}

// The client asks for OpenMetrics first and text second, like a
// Prometheus scrape, and reads whichever the endpoint answers.
func TestScrapeContentNegotiation(t *testing.T) {
	for _, om := range []bool{false, true} {
		app := newFakeApp(t, false)
		app.om = om
		gw := newFakeGateway(t, nil)
		c, _ := newTestClient(t, scrapeConfig(t, gw.URL, app.URL+"/metrics"))
		if err := c.Once(context.Background()); err != nil {
			t.Fatalf("om=%v: %v", om, err)
		}
		if app.accepts[0] != ScrapeAccept || !strings.HasPrefix(ScrapeAccept, "application/openmetrics-text;version=1.0.0") {
			t.Errorf("Accept %q", app.accepts[0])
		}
		_, ups := gw.snapshot()
		fams, _ := DecodePayload(ups[0].body)
		// OpenMetrics timestamps are seconds, text ones milliseconds:
		// both must arrive as the same instant.
		if want := fmt.Sprintf(`app_stamped{_id="install-1"} 7 %d`, app.stamped); !strings.Contains(text(t, fams), want) {
			t.Errorf("om=%v: payload lacks %s:\n%s", om, want, text(t, fams))
		}
	}

	for _, tc := range []struct {
		ctype, body, want string
	}{
		{"application/openmetrics-text; version=1.0.0; charset=utf-8", "a 1\n# EOF\n", "openmetrics"},
		{"application/openmetrics-text; version=0.0.1", "a 1\n# EOF\n", "openmetrics"},
		{"application/openmetrics-text", "a 1\n# EOF\n", "openmetrics"},
		{"text/plain; version=0.0.4; charset=utf-8", "a 1\n", "text"},
		{"text/plain; charset=utf-8", "a 1\n# EOF\n", "openmetrics"}, // a .txt file holding OpenMetrics
		{"text/plain; version=0.0.4", "a 1\n# EOF\n", "text"},
		{"application/octet-stream", "a 1\n# EOF\n\n", "openmetrics"},
		{"", "a 1\n", "text"},
		{"garbage;;", "a 1\n", "text"},
		{"application/openmetrics-text; version=2.0.0", "", "error"},
		{"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", "", "error"},
	} {
		got, err := ExpositionFormat(tc.ctype, []byte(tc.body))
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("ExpositionFormat(%q, %q) = %s (%v), want %s", tc.ctype, tc.body, got, err, tc.want)
		}
	}
}

// OpenMetrics must end with # EOF; malformed input fails the endpoint
// with the parser's message; a static file served as octet-stream is
// recognised by its # EOF.
func TestScrapeParseErrors(t *testing.T) {
	s := &Scraper{Client: http.DefaultClient, Limit: 1 << 20}
	sel, _ := ParseSelectors([]string{`{__name__=~".+"}`})
	for _, tc := range []struct{ ctype, body, want string }{
		{"application/openmetrics-text; version=1.0.0", "a 1\n", "# EOF"},
		{"text/plain; version=0.0.4", "a{b=\"c} 1\n", "parsing the Prometheus text format"},
		{"text/plain; version=0.0.4", "a 1 2 3\n", "parsing the Prometheus text format"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.ctype)
			fmt.Fprint(w, tc.body)
		}))
		s.URLs = []string{srv.URL}
		_, err := s.Scrape(context.Background(), sel, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
		srv.Close()
	}
	app := newFakeApp(t, false)
	app.omType = "application/octet-stream"
	s.URLs = []string{app.URL + "/installer.om"}
	res, err := s.Scrape(context.Background(), sel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res.Families); !strings.Contains(got, `assisted_installer_clusters_created_total{platform="baremetal"} 42`) {
		t.Errorf("octet-stream OpenMetrics file read as:\n%s", got)
	}
}

// The source's credentials are sent: a bearer token from a file, or basic
// auth with the password from a file; without them the endpoint refuses
// and nothing is sent.
func TestScrapeSourceAuth(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("app-token\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "password"), []byte("s3cret\n"), 0o600)
	for name, tc := range map[string]struct {
		set   func(*Config)
		check func(r *http.Request) bool
	}{
		"bearer": {func(c *Config) { c.FromTokenFile = filepath.Join(dir, "token") },
			func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer app-token" }},
		"basic": {func(c *Config) {
			c.FromBasicAuthUser, c.FromBasicAuthPasswordFile = "telemetry", filepath.Join(dir, "password")
		}, func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "telemetry" && p == "s3cret" }},
	} {
		app := newFakeApp(t, false)
		app.wantAuth = tc.check
		gw := newFakeGateway(t, nil)
		cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics")
		tc.set(cfg)
		c, _ := newTestClient(t, cfg)
		if err := c.Once(context.Background()); err != nil {
			t.Errorf("%s: %v (Authorization sent: %q)", name, err, app.auths)
		}
		// Without credentials: refused, nothing uploaded, an error.
		gw2 := newFakeGateway(t, nil)
		c2, _ := newTestClient(t, scrapeConfig(t, gw2.URL, app.URL+"/metrics"))
		if err := c2.Once(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s: no credentials: err %v, want the endpoint's 401", name, err)
		}
		if _, ups := gw2.snapshot(); len(ups) != 0 {
			t.Errorf("%s: uploaded %d times without data", name, len(ups))
		}
	}
}

// TLS options of the source: a CA file with a server name other than
// the URL's host, or skipping verification; an unknown CA fails.
func TestScrapeSourceTLS(t *testing.T) {
	app := newFakeApp(t, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: app.Certificate().Raw}), 0o600)
	gw := newFakeGateway(t, nil)
	for name, tc := range map[string]struct {
		set func(*Config)
		ok  bool
	}{
		"ca and server name": {func(c *Config) { c.FromCAFile, c.FromServerName = ca, "example.com" }, true},
		"wrong server name":  {func(c *Config) { c.FromCAFile, c.FromServerName = ca, "other.example" }, false},
		"unknown CA":         {func(c *Config) {}, false},
		"skip verify":        {func(c *Config) { c.FromInsecureSkipVerify = true }, true},
	} {
		cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics")
		tc.set(cfg)
		c, _ := newTestClient(t, cfg)
		err := c.Once(context.Background())
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tc.ok)
		}
	}
}

// Once: 0 errors when sent; a refusal is final (one upload, an error);
// a 503 is retried; an endpoint that cannot be read fails the run, but the
// other endpoints' series are still sent.
func TestOnce(t *testing.T) {
	app := newFakeApp(t, false)
	run := func(respond func(n int, w http.ResponseWriter), urls ...string) (error, int) {
		gw := newFakeGateway(t, respond)
		c, _ := newTestClient(t, scrapeConfig(t, gw.URL, urls...))
		err := c.Once(context.Background())
		_, ups := gw.snapshot()
		return err, len(ups)
	}
	if err, n := run(nil, app.URL+"/metrics"); err != nil || n != 1 {
		t.Errorf("success: err %v, %d uploads", err, n)
	}
	if err, n := run(func(int, http.ResponseWriter) {}, app.URL+"/metrics"); err != nil || n != 1 {
		t.Errorf("success: err %v, %d uploads", err, n)
	}
	refuse := func(n int, w http.ResponseWriter) { http.Error(w, `{"error":"no"}`, http.StatusBadRequest) }
	if err, n := run(refuse, app.URL+"/metrics"); err == nil || !strings.Contains(err.Error(), "refused") || n != 1 {
		t.Errorf("refused: err %v, %d uploads, want an error after one", err, n)
	}
	flaky := func(n int, w http.ResponseWriter) {
		if n < 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}
	if err, n := run(flaky, app.URL+"/metrics"); err != nil || n != 3 {
		t.Errorf("flaky: err %v, %d uploads, want success on the third", err, n)
	}
	always503 := func(n int, w http.ResponseWriter) { http.Error(w, "busy", http.StatusServiceUnavailable) }
	start := time.Now()
	if err, n := run(always503, app.URL+"/metrics"); err == nil || !strings.Contains(err.Error(), "giving up") || n < 2 {
		t.Errorf("always 503: err %v, %d uploads", err, n)
	}
	// Bounded by the interval (2s) plus the last attempt: a generous
	// bound, so a busy machine does not fail it; retrying forever would.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("gave up after %s; the interval is 2s", d)
	}
	if err, n := run(nil, app.URL+"/missing"); err == nil || n != 0 {
		t.Errorf("endpoint 404: err %v, %d uploads", err, n)
	}
	if err, n := run(nil, app.URL+"/metrics", app.URL+"/missing"); err == nil || !strings.Contains(err.Error(), "sent, but") || n != 1 {
		t.Errorf("one of two endpoints 404: err %v, %d uploads, want the other's series sent and an error", err, n)
	}
	// Disabled: nothing read or sent, no error.
	gw := newFakeGateway(t, nil)
	cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics")
	cfg.Disabled = true
	c, _ := newTestClient(t, cfg)
	if err := c.Once(context.Background()); err != nil {
		t.Errorf("disabled: %v", err)
	}
	if _, ups := gw.snapshot(); len(ups) != 0 {
		t.Errorf("disabled client uploaded")
	}
}

// A response over limit_bytes fails that endpoint, naming it and the
// limit.
func TestScrapeTooLarge(t *testing.T) {
	app := newFakeApp(t, false)
	s := &Scraper{Client: http.DefaultClient, URLs: []string{app.URL + "/metrics"}, Limit: 100}
	sel, _ := ParseSelectors([]string{"app_stamped"})
	_, err := s.Scrape(context.Background(), sel, time.Now())
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Seen <= 100 || !strings.Contains(err.Error(), "/metrics") || !strings.Contains(err.Error(), "--limit-bytes=100") {
		t.Fatalf("err %v", err)
	}
}

func TestParseSelector(t *testing.T) {
	ls := func(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
	up := ls("__name__", "up", "job", "prometheus", "instance", "a:9090")
	for _, tc := range []struct {
		sel   string
		match bool
	}{
		{`up`, true},
		{` up `, true},
		{`down`, false},
		{`{__name__="up"}`, true},
		{`up{job="prometheus"}`, true},
		{`up{job="node"}`, false},
		{`up{job!="node"}`, true},
		{`up{job=~"prom.*"}`, true},
		{`up{job=~"prom"}`, false}, // anchored
		{`up{job!~"prom.*"}`, false},
		{`{__name__=~"u.", job='prometheus',}`, true},
		{"{job=`prometheus`, instance=~\"a:.*\"}", true},
		{`{"up"}`, true},
		{`{"up", job="prometheus"}`, true},
		{`{"down"}`, false},
		{`up{job="prom\"etheus"}`, false},
		{`up{missing=""}`, true},
		{`up{missing!=""}`, false},
		{`{job='it\'s'}`, false},
	} {
		s, err := ParseSelector(tc.sel)
		if err != nil {
			t.Errorf("%s: %v", tc.sel, err)
			continue
		}
		if got := s.Matches(up); got != tc.match {
			t.Errorf("%s matches %v: %v, want %v", tc.sel, up, got, tc.match)
		}
	}
	if s, err := ParseSelector(`{job='it\'s "x"'}`); err != nil || !s.Matches(ls("job", `it's "x"`)) {
		t.Errorf("single-quoted escapes: %v %v", s, err)
	}
	for _, bad := range []string{``, `{}`, `{a=""}`, `{a=~".*"}`, `up{`, `up{job}`, `up{job="x"`, `up{job=x}`, `up{job=~"("}`, `up job`, `up{job="x"}}`, `{"unterminated}`, `1up`} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	sels, err := ParseSelectors([]string{"a", "b{x=\"1\"}"})
	if err != nil || !sels.Matches(ls("__name__", "a")) || !sels.Matches(ls("__name__", "b", "x", "1")) || sels.Matches(ls("__name__", "b")) {
		t.Errorf("union: %v %v", sels, err)
	}
}

// Scrape mode with match_from_gateway applies exactly the gateway's
// allowlist on the client.
func TestScrapeWithGatewayAllowlist(t *testing.T) {
	app := newFakeApp(t, false)
	gw := newFakeGateway(t, nil)
	gw.matches = []string{`app_requests_total{code="500"}`, `not a selector{`}
	cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics")
	cfg.Match, cfg.MatchFromGateway = nil, true
	c, _ := newTestClient(t, cfg)
	if err := c.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, ups := gw.snapshot()
	fams, _ := DecodePayload(ups[0].body)
	if got := text(t, fams); !strings.Contains(got, `app_requests_total{_id="install-1",code="500"} 1`) || strings.Contains(got, `code="200"`) || strings.Contains(got, "app_latency") {
		t.Errorf("payload:\n%s", got)
	}
}

// The installation ID: a random v4 UUID generated once and kept in the
// state directory (the same on every later start), replaced by
// RotateID; a damaged file is an error, never silently replaced.
func TestInstallationID(t *testing.T) {
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := NewUUID()
		if !uuidRE.MatchString(id) || seen[id] {
			t.Fatalf("NewUUID %q (repeated: %v)", id, seen[id])
		}
		seen[id] = true
	}
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := ReadID(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadID of nothing: %v", err)
	}
	id, created, err := LoadOrCreateID(dir)
	if err != nil || !created || !uuidRE.MatchString(id) {
		t.Fatalf("first start: %q %v %v", id, created, err)
	}
	again, created, err := LoadOrCreateID(dir)
	if err != nil || created || again != id {
		t.Fatalf("second start: %q %v %v, want %q", again, created, err, id)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, IDFile)); string(b) != id+"\n" {
		t.Errorf("file holds %q", b)
	}
	rotated, err := RotateID(dir)
	if err != nil || rotated == id || !uuidRE.MatchString(rotated) {
		t.Fatalf("rotate: %q %v", rotated, err)
	}
	if now, _, _ := LoadOrCreateID(dir); now != rotated {
		t.Errorf("after rotation %q, want %q", now, rotated)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state dir holds %d entries (temporary files left?)", len(entries))
	}
	os.WriteFile(filepath.Join(dir, IDFile), []byte("not-a-uuid\n"), 0o644)
	if _, _, err := LoadOrCreateID(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("damaged file: %v", err)
	}

	// Without id, the client authorizes with the kept ID, and the same
	// one after a restart (a new Client on the same state directory).
	app := newFakeApp(t, false)
	gw := newFakeGateway(t, nil)
	state := t.TempDir()
	var ids []string
	for range 2 {
		cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics")
		cfg.ID, cfg.StateDir = "", state
		c, _ := newTestClient(t, cfg)
		if err := c.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, ups := gw.snapshot()
		fams, _ := DecodePayload(ups[len(ups)-1].body)
		m := regexp.MustCompile(`_id="([^"]+)"`).FindStringSubmatch(text(t, fams))
		if m == nil {
			t.Fatalf("no _id in %s", text(t, fams))
		}
		ids = append(ids, m[1])
	}
	kept, _ := ReadID(state)
	if ids[0] != kept || ids[1] != kept {
		t.Errorf("sent as %q, want the kept ID %q both times", ids, kept)
	}
}

// The long-running client in scrape mode: it uploads every interval,
// logs at start what it sends, from where, to where and how to turn it
// off, and logs every send at info level; a dry run prints only the
// selected series.
func TestScrapeRunLogsAndDryRun(t *testing.T) {
	app := newFakeApp(t, false)
	gw := newFakeGateway(t, nil)
	cfg := scrapeConfig(t, gw.URL, app.URL+"/metrics", app.URL+"/installer.om")
	cfg.Interval, cfg.FromTimeout, cfg.ToTimeout = Duration(time.Second), Duration(500*time.Millisecond), Duration(500*time.Millisecond)
	var logs syncBuffer
	c, err := New(cfg, Options{Logger: kitlog.NewLogfmtLogger(&logs), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	waitFor(t, "two uploads", 5*time.Second, func() bool { _, u := gw.snapshot(); return len(u) >= 2 })
	cancel()
	<-done
	out := logs.String()
	for _, want := range []string{"telemetry is enabled", "read from 2 metrics endpoints", app.URL + "/metrics," + app.URL + "/installer.om",
		gw.URL + "/upload", "--disabled", `{__name__=~\"app_.+\"}`, "id=install-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `level=info msg="sent telemetry" to=`+gw.URL+"/upload id=install-1 series=14 "); n < 2 {
		t.Errorf("%d send lines for 2 uploads:\n%s", n, out)
	}

	var dry bytes.Buffer
	dc, err := New(cfg, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.DryRun(context.Background(), &dry); err != nil {
		t.Fatal(err)
	}
	got := dry.String()
	if !strings.Contains(got, "# from: "+app.URL+"/metrics,"+app.URL+"/installer.om") || !strings.Contains(got, `app_requests_total{code="200"} 5`) ||
		strings.Contains(got, "go_goroutines") || strings.Contains(got, "hunter2") {
		t.Errorf("dry run:\n%s", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The start-up line lists at most maxLoggedSelectors selectors, and says
// when the client sends once.
func TestStartupLineBounded(t *testing.T) {
	gw := newFakeGateway(t, nil)
	cfg := scrapeConfig(t, gw.URL, "http://127.0.0.1:1/metrics")
	cfg.Match = nil
	for i := range 25 {
		cfg.Match = append(cfg.Match, fmt.Sprintf("metric_%d", i))
	}
	var logs syncBuffer
	c, err := New(cfg, Options{Logger: kitlog.NewLogfmtLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	c.logStartup(c.settings.Load(), true)
	out := logs.String()
	if !strings.Contains(out, "25 selectors (metric_0 metric_1") || !strings.Contains(out, "metric_19 and 5 more)") || strings.Contains(out, "metric_20") ||
		!strings.Contains(out, "sent to the gateway once (--once)") {
		t.Errorf("start-up line:\n%s", out)
	}
}
