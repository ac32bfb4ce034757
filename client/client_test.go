package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// fakeProm serves /federate with fixed families, as protobuf or text.
type fakeProm struct {
	*httptest.Server
	mu      sync.Mutex
	fams    []*dto.MetricFamily
	text    bool
	matches [][]string
	accept  string
	auth    string
}

func newFakeProm(t *testing.T, fams ...*dto.MetricFamily) *fakeProm {
	p := &fakeProm{fams: fams}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/federate" {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.matches = append(p.matches, r.URL.Query()["match[]"])
		p.accept, p.auth = r.Header.Get("Accept"), r.Header.Get("Authorization")
		if p.text {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			WriteText(w, p.fams)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		for _, f := range p.fams {
			protodelim.MarshalTo(w, f)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

type upload struct {
	at   time.Time
	body []byte
	hdr  http.Header
}

// fakeGateway answers /authorize and hands /upload to respond.
type fakeGateway struct {
	*httptest.Server
	mu         sync.Mutex
	authorized int
	uploads    []upload
	respond    func(n int, w http.ResponseWriter) // n: 0-based upload number
	matches    []string
}

func newFakeGateway(t *testing.T, respond func(n int, w http.ResponseWriter)) *fakeGateway {
	g := &fakeGateway{respond: respond}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		switch r.URL.Path {
		case "/authorize":
			if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer pull-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			g.authorized++
			fmt.Fprintf(w, `{"version":1,"token":"jwt-%d","expiresInSeconds":3600,"labels":{"_id":%q}}`, g.authorized, r.URL.Query().Get("id"))
		case "/allowlist":
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer jwt-") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			fmt.Fprintf(w, `{"version":1,"hash":"h1","matches":[%s]}`, quoteAll(g.matches))
		case "/upload":
			b, _ := io.ReadAll(r.Body)
			g.uploads = append(g.uploads, upload{time.Now(), b, r.Header.Clone()})
			if g.respond != nil {
				g.respond(len(g.uploads)-1, w)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func quoteAll(l []string) string {
	var q []string
	for _, s := range l {
		q = append(q, fmt.Sprintf("%q", s))
	}
	return strings.Join(q, ",")
}

func (g *fakeGateway) snapshot() (int, []upload) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.authorized, append([]upload(nil), g.uploads...)
}

func testConfig(prom, gw string) *Config {
	c := &Config{From: prom, To: gw, ID: "cluster-1", ToToken: "pull-secret", Match: []string{`{__name__="up"}`},
		Interval: Duration(10 * time.Second), MinBackoff: Duration(50 * time.Millisecond), MaxBackoff: Duration(200 * time.Millisecond)}
	c.SetDefaults()
	return c
}

func startClient(t *testing.T, cfg *Config) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, reg
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.Metric {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func TestRunUploadsSnapshotWithTokenLabels(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, time.Now().UnixMilli(), "job", "x", "_id", "forged", "prometheus_replica", "a"))
	gw := newFakeGateway(t, nil)
	cfg := testConfig(prom.URL, gw.URL)
	cfg.Interval = Duration(time.Second)
	cfg.FromTimeout, cfg.ToTimeout = Duration(500*time.Millisecond), Duration(500*time.Millisecond)
	cfg.StagingDir = t.TempDir()
	cfg.StagingKeep = 1
	cfg.FromToken = "prom-token"
	c, reg := startClient(t, cfg)
	waitFor(t, "two uploads", 5*time.Second, func() bool { _, u := gw.snapshot(); return len(u) >= 2 })
	authorized, ups := gw.snapshot()
	if authorized != 1 {
		t.Errorf("authorized %d times; the JWT must be cached", authorized)
	}
	u := ups[0]
	if u.hdr.Get("Authorization") != "Bearer jwt-1" || u.hdr.Get("Content-Type") != UploadContentType || u.hdr.Get("Content-Encoding") != "snappy" {
		t.Errorf("headers %v", u.hdr)
	}
	if gap := ups[1].at.Sub(ups[0].at); gap < 900*time.Millisecond {
		t.Errorf("uploads %s apart, interval 1s", gap)
	}
	fams, err := DecodePayload(u.body)
	if err != nil {
		t.Fatal(err)
	}
	want := `up{_id="cluster-1",job="x"} 1`
	if got := text(t, fams); !strings.Contains(got, want) {
		t.Fatalf("payload %s, want %s", got, want)
	}
	if prom.accept != FederateAccept || prom.auth != "Bearer prom-token" || len(prom.matches[0]) != 1 || prom.matches[0][0] != `{__name__="up"}` {
		t.Errorf("federate request: accept=%q auth=%q matches=%v", prom.accept, prom.auth, prom.matches)
	}
	// What was sent is visible: last payload and the staging dir.
	last, _ := c.LastPayload()
	if !strings.Contains(text(t, last), want) {
		t.Errorf("last payload %v", last)
	}
	files, _ := StagedPayloads(cfg.StagingDir)
	if len(files) != 1 {
		t.Fatalf("staged %v, keep 1", files)
	}
	if v := counter(t, reg, "telegate_client_samples_sent_total"); v < 2 {
		t.Errorf("samples sent %v", v)
	}
	if v := counter(t, reg, "telegate_client_upload_attempts_total", "result", "success"); v < 2 {
		t.Errorf("successful attempts %v", v)
	}
	if v := counter(t, reg, "telegate_client_last_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success %v", v)
	}
}

func TestRetriesSameSnapshotWithBackoff(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, func(n int, w http.ResponseWriter) {
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"long-term storage unavailable","reason":"downstream_unavailable"}`)
		}
	})
	_, reg := startClient(t, testConfig(prom.URL, gw.URL))
	waitFor(t, "four uploads", 5*time.Second, func() bool { _, u := gw.snapshot(); return len(u) >= 4 })
	_, ups := gw.snapshot()
	for i := 1; i < 4; i++ {
		if !bytes.Equal(ups[i].body, ups[0].body) {
			t.Fatalf("upload %d differs: the same snapshot must be retried", i)
		}
		if gap := ups[i].at.Sub(ups[i-1].at); gap < 25*time.Millisecond {
			t.Errorf("retry %d after %s: no backoff", i, gap)
		}
	}
	if len(prom.matches) != 1 {
		t.Errorf("federated %d times; retries must not federate again", len(prom.matches))
	}
	waitFor(t, "sent", time.Second, func() bool {
		return counter(t, reg, "telegate_client_snapshots_total", "result", SnapshotSent) == 1
	})
	if v := counter(t, reg, "telegate_client_retries_total"); v != 3 {
		t.Errorf("retries %v", v)
	}
	if v := counter(t, reg, "telegate_client_upload_attempts_total", "result", ResultServerError); v != 3 {
		t.Errorf("server_error attempts %v", v)
	}
	if v := counter(t, reg, "telegate_client_backoff_seconds_total"); v <= 0 {
		t.Errorf("backoff seconds %v", v)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	startClient(t, testConfig(prom.URL, gw.URL))
	waitFor(t, "two uploads", 5*time.Second, func() bool { _, u := gw.snapshot(); return len(u) >= 2 })
	_, ups := gw.snapshot()
	if gap := ups[1].at.Sub(ups[0].at); gap < time.Second {
		t.Fatalf("retried after %s despite Retry-After: 1 (max_backoff 200ms)", gap)
	}
}

func TestRejectedIsNotRetried(t *testing.T) {
	for _, code := range []int{400, 403, 413, 415} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			prom := newFakeProm(t, gauge("up", 1, 0))
			gw := newFakeGateway(t, func(n int, w http.ResponseWriter) { w.WriteHeader(code) })
			_, reg := startClient(t, testConfig(prom.URL, gw.URL))
			waitFor(t, "rejected", 3*time.Second, func() bool {
				return counter(t, reg, "telegate_client_snapshots_total", "result", SnapshotRejected) == 1
			})
			time.Sleep(500 * time.Millisecond) // > max_backoff: a retry would have happened
			if _, ups := gw.snapshot(); len(ups) != 1 {
				t.Fatalf("%d uploads", len(ups))
			}
			if v := counter(t, reg, "telegate_client_retries_total"); v != 0 {
				t.Fatalf("retries %v", v)
			}
		})
	}
}

func TestUnauthorizedReauthorizesOnce(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	_, reg := startClient(t, testConfig(prom.URL, gw.URL))
	waitFor(t, "sent", 3*time.Second, func() bool {
		return counter(t, reg, "telegate_client_snapshots_total", "result", SnapshotSent) == 1
	})
	authorized, ups := gw.snapshot()
	if authorized != 2 || len(ups) != 2 || ups[1].hdr.Get("Authorization") != "Bearer jwt-2" {
		t.Fatalf("authorized %d, uploads %d", authorized, len(ups))
	}
	if v := counter(t, reg, "telegate_client_retries_total"); v != 0 {
		t.Fatalf("the re-authorization is part of the attempt, not a retry: %v", v)
	}
}

func TestMatchFromGateway(t *testing.T) {
	prom := newFakeProm(t, gauge("a", 1, 0))
	gw := newFakeGateway(t, nil)
	gw.matches = []string{`{__name__="a"}`, `{__name__=~"b_.*"}`}
	cfg := testConfig(prom.URL, gw.URL)
	cfg.Match = nil
	cfg.MatchFromGateway = true
	startClient(t, cfg)
	waitFor(t, "upload", 3*time.Second, func() bool { _, u := gw.snapshot(); return len(u) == 1 })
	prom.mu.Lock()
	defer prom.mu.Unlock()
	if strings.Join(prom.matches[0], " ") != `{__name__="a"} {__name__=~"b_.*"}` {
		t.Fatalf("federated %v", prom.matches)
	}
}

func TestDisabledSendsNothing(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, nil)
	cfg := testConfig(prom.URL, gw.URL)
	cfg.Interval = Duration(time.Second)
	cfg.FromTimeout, cfg.ToTimeout = Duration(500*time.Millisecond), Duration(500*time.Millisecond)
	cfg.Disabled = true
	c, reg := startClient(t, cfg)
	time.Sleep(1500 * time.Millisecond)
	if _, ups := gw.snapshot(); len(ups) != 0 || len(prom.matches) != 0 {
		t.Fatalf("disabled client federated %d times, uploaded %d", len(prom.matches), len(ups))
	}
	if v := counter(t, reg, "telegate_client_enabled"); v != 0 {
		t.Fatal("enabled gauge")
	}
	// Turning it on by reload takes effect within an interval.
	on := *cfg
	on.Disabled = false
	if err := c.Reload(&on); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "upload after enabling", 3*time.Second, func() bool { _, u := gw.snapshot(); return len(u) > 0 })
}

func TestReloadKeepsOldConfigOnError(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, nil)
	cfg := testConfig(prom.URL, gw.URL)
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	bad := *cfg
	bad.MatchFile = filepath.Join(t.TempDir(), "missing")
	if err := c.Reload(&bad); err == nil || !strings.Contains(err.Error(), "match_file") {
		t.Fatalf("reload err %v", err)
	}
	if counter(t, reg, "telegate_client_config_last_reload_successful") != 0 || c.settings.Load().cfg != cfg {
		t.Fatal("failed reload replaced the config or did not report")
	}
}

func TestDryRunPrintsPayload(t *testing.T) {
	prom := newFakeProm(t,
		gauge("ALERTS", 1, time.Now().UnixMilli(), "alertname", "Watchdog", "instance", "10.0.0.1:9090"),
		gauge("cluster_version", 1, time.Now().UnixMilli(), "version", "4.16.3", "node", "worker-1"))
	prom.text = true // the text fallback
	cfg := testConfig(prom.URL, "")
	cfg.To, cfg.ToToken, cfg.ID = "", "", ""
	cfg.Match = []string{`{__name__="ALERTS"}`, `{__name__="cluster_version"}`}
	cfg.ElideLabel = []string{"instance"}
	cfg.AnonymizeLabels, cfg.AnonymizeSalt = []string{"node"}, "pepper"
	cfg.Label = map[string]string{"region": "eu"}
	c, err := New(cfg, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.DryRun(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	// Timestamps vary; strip them.
	var lines []string
	for _, l := range strings.Split(got, "\n") {
		if !strings.HasPrefix(l, "#") && l != "" {
			l = l[:strings.LastIndexByte(l, ' ')]
		}
		lines = append(lines, l)
	}
	want := "# telegate client dry run: nothing was sent.\n" +
		"# from: " + prom.URL + "/federate\n" +
		"# to: the gateway adds its token labels (e.g. the cluster ID) from /authorize\n" +
		"# 2 families, 2 samples\n" +
		"# TYPE alerts gauge\n" +
		`alerts{alertname="Watchdog",region="eu"} 1` + "\n" +
		"# TYPE cluster_version gauge\n" +
		`cluster_version{node="` + Anonymize("pepper", "worker-1") + `",region="eu",version="4.16.3"} 1` + "\n"
	if strings.Join(lines, "\n") != want {
		t.Fatalf("dry run printed\n%s\nwant\n%s", strings.Join(lines, "\n"), want)
	}
}

func TestConfigValidation(t *testing.T) {
	base := func() *Config { return testConfig("http://prom:9090", "https://gw") }
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no from":         {func(c *Config) { c.From = "" }, "from:"},
		"bad scheme":      {func(c *Config) { c.To = "ftp://x" }, "scheme"},
		"from and scrape": {func(c *Config) { c.FromScrape = []string{"http://app/metrics"} }, "mutually exclusive"},
		"bad scrape url":  {func(c *Config) { c.From, c.FromScrape = "", []string{"app:9000/metrics"} }, "from_scrape"},
		"bad selector": {func(c *Config) {
			c.From, c.FromScrape, c.Match = "", []string{"http://app/metrics"}, []string{`{a="b"`}
		}, "match:"},
		"user no password": {func(c *Config) { c.FromBasicAuthUser = "u" }, "from_basic_auth_password_file"},
		"token and basic":  {func(c *Config) { c.FromToken, c.FromBasicAuthUser, c.FromBasicAuthPasswordFile = "t", "u", "p" }, "mutually exclusive"},
		"no token":         {func(c *Config) { c.ToToken = "" }, "to_token"},
		"no matches":       {func(c *Config) { c.Match = nil }, "no series"},
		"both match modes": {func(c *Config) { c.MatchFromGateway = true }, "match_from_gateway"},
		"timeout":          {func(c *Config) { c.FromTimeout = Duration(time.Hour) }, "from_timeout"},
		"salt":             {func(c *Config) { c.AnonymizeLabels = []string{"node"} }, "anonymize_salt"},
		"rename":           {func(c *Config) { c.Rename = map[string]string{"a": "b-c"} }, "rename"},
		"label":            {func(c *Config) { c.Label = map[string]string{"__x": "y"} }, "label"},
		"cert without key": {func(c *Config) { c.ToCertFile = "c.pem" }, "to_key_file"},
	} {
		c := base()
		tc.mod(c)
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
	if err := base().Validate(true); err != nil {
		t.Fatal(err)
	}
	c := base()
	c.Disabled, c.From = true, ""
	if err := c.Validate(true); err != nil {
		t.Fatalf("disabled config must not need anything: %v", err)
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "client.yaml")
	os.WriteFile(p, []byte("from: http://prom:9090\nto: https://gw\nid: c1\nto_token_file: token\nmatch_file: matches.txt\ninterval: 1m\nlimit_bytes: 1MiB\nrename: {}\nlabel: {env: prod}\n"), 0o600)
	c, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if c.Path(c.ToTokenFile) != filepath.Join(dir, "token") || c.LimitBytes != 1<<20 || time.Duration(c.Interval) != time.Minute ||
		len(c.Rename) != 0 || c.Label["env"] != "prod" || time.Duration(c.FromTimeout) != 30*time.Second {
		t.Fatalf("config %+v", c)
	}
	os.WriteFile(p, []byte("from: x\nfrom_tokn: y\n"), 0o600)
	if _, err := LoadConfigFile(p); err == nil || !strings.Contains(err.Error(), "from_tokn") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("unknown key: %v", err)
	}
	// KB is 1000 bytes, as in the gateway's configuration (bytesize).
	for in, want := range map[string]Bytes{"204800": 204800, "200KiB": 204800, "200KB": 200000, "1MiB": 1 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d %v", in, got, err)
		}
	}
	if _, err := ParseBytes("-1"); err == nil {
		t.Error("negative size accepted")
	}
	if got := ParseMatchFile([]byte("# c\n\n up \n{a=\"b\"}\n")); strings.Join(got, "|") != `up|{a="b"}` {
		t.Errorf("match file %q", got)
	}
}

func TestFederateTooLarge(t *testing.T) {
	var fams []*dto.MetricFamily
	for i := range 200 {
		fams = append(fams, gauge(fmt.Sprintf("metric_%d", i), 1, 0, "label", strings.Repeat("v", 50)))
	}
	prom := newFakeProm(t, fams...)
	f := &Federator{Client: http.DefaultClient, URL: prom.URL + "/federate", Limit: 1000}
	_, _, err := f.Federate(context.Background(), []string{"up"})
	tl, ok := err.(*TooLargeError)
	if !ok || tl.Limit != 1000 || tl.Seen < 10000 || !strings.Contains(err.Error(), "--limit-bytes=1000") || !strings.Contains(err.Error(), fmt.Sprint(tl.Seen)) {
		t.Fatalf("err %v", err)
	}
	f.Limit = 1 << 20
	got, size, err := f.Federate(context.Background(), []string{"up"})
	if err != nil || len(got) != 200 || size != tl.Seen {
		t.Fatalf("%d families, %d bytes, %v", len(got), size, err)
	}
	prom.text = true
	got, _, err = f.Federate(context.Background(), []string{"up"})
	if err != nil || len(got) != 200 || !proto.Equal(got[0], fams[0]) {
		t.Fatalf("text fallback: %d families %v", len(got), err)
	}
}

func TestFederateErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("match[]") == "bad" {
			http.Error(w, "parse error", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()
	f := &Federator{Client: http.DefaultClient, URL: srv.URL + "/federate", Limit: 1000}
	if _, _, err := f.Federate(context.Background(), []string{"bad"}); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "parse error") {
		t.Fatalf("400: %v", err)
	}
	if _, _, err := f.Federate(context.Background(), []string{"x"}); err == nil || !strings.Contains(err.Error(), "unsupported response format") {
		t.Fatalf("json: %v", err)
	}
	if _, _, err := f.Federate(context.Background(), nil); err == nil {
		t.Fatal("no matches")
	}
}

func TestRequestErrorClassification(t *testing.T) {
	for status, want := range map[int]string{400: ResultRejected, 403: ResultRejected, 404: ResultRejected, 413: ResultRejected,
		415: ResultRejected, 401: ResultUnauthorized, 429: ResultRateLimited, 500: ResultServerError, 503: ResultServerError, 408: ResultServerError} {
		e := requestError("upload", status, []byte(`{"error":"the message","reason":"why"}`), http.Header{})
		if e.Result != want || e.Message != "the message" || e.Reason != "why" {
			t.Errorf("%d: %+v", status, e)
		}
	}
	if e := requestError("authorize", 401, []byte("bad token\n"), http.Header{}); e.Result != ResultRejected || e.Message != "bad token" {
		t.Errorf("authorize 401: %+v", e)
	}
	e := requestError("upload", 429, []byte(`{"error":"x","retry_after_seconds":7}`), http.Header{})
	if e.RetryAfter != 7*time.Second {
		t.Errorf("retry_after_seconds: %v", e.RetryAfter)
	}
	now := time.Now()
	for in, want := range map[string]time.Duration{"": 0, "5": 5 * time.Second, "-1": 0, "junk": 0,
		now.Add(90 * time.Second).UTC().Format(http.TimeFormat): 89 * time.Second} {
		if got := parseRetryAfter(in, now); got < want || got > want+time.Second {
			t.Errorf("parseRetryAfter(%q) = %v, want ~%v", in, got, want)
		}
	}
}

func TestAuthorizeCachesUntilShortlyBeforeExpiry(t *testing.T) {
	gw := newFakeGateway(t, nil)
	now := time.Unix(1000, 0)
	g := &Gateway{Client: http.DefaultClient, AuthorizeURL: gw.URL + "/authorize", ClusterID: "c", Token: "pull-secret", Now: func() time.Time { return now }}
	jwt, labels, err := g.Authorize(context.Background())
	if err != nil || jwt != "jwt-1" || labels["_id"] != "c" {
		t.Fatalf("%q %v %v", jwt, labels, err)
	}
	now = now.Add(50 * time.Minute) // 3600s token, refreshed 6m before expiry
	if jwt, _, _ = g.Authorize(context.Background()); jwt != "jwt-1" {
		t.Fatalf("re-authorized too early: %s", jwt)
	}
	now = now.Add(5 * time.Minute)
	if jwt, _, _ = g.Authorize(context.Background()); jwt != "jwt-2" {
		t.Fatalf("not re-authorized near expiry: %s", jwt)
	}
	g.Token = "wrong"
	g.Invalidate()
	if _, _, err := g.Authorize(context.Background()); err == nil || err.(*RequestError).Retryable() {
		t.Fatalf("wrong pull secret: %v", err)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	for attempt, lim := range map[int][2]time.Duration{1: {50, 100}, 2: {100, 200}, 3: {200, 400}, 10: {500, 1000}, 100: {500, 1000}} {
		for range 20 {
			d := backoff(attempt, 100*time.Millisecond, time.Second)
			if d < lim[0]*time.Millisecond || d > lim[1]*time.Millisecond {
				t.Fatalf("attempt %d: %v", attempt, d)
			}
		}
	}
}

func TestStagingAndInspect(t *testing.T) {
	dir := t.TempDir()
	s := &Staging{Dir: dir, Keep: 2}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		body, err := EncodePayload([]*dto.MetricFamily{gauge("m", float64(i), 1700000000000, "_id", "c")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(body, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := StagedPayloads(dir)
	if len(files) != 2 || filepath.Base(files[1]) != "20250102T030407.000000000Z.payload" {
		t.Fatalf("files %v", files)
	}
	var b bytes.Buffer
	if err := Inspect(&b, dir, 0); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(files[1])
	want := fmt.Sprintf("# payload 20250102T030407.000000000Z.payload: %d bytes, 1 families, 1 samples\n# TYPE m gauge\nm{_id=\"c\"} 2 1700000000000\n", len(data))
	if b.String() != want {
		t.Fatalf("inspect:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := Inspect(&b, files[0], 0); err != nil || !strings.Contains(b.String(), `m{_id="c"} 1 `) {
		t.Fatalf("inspect file: %v %s", err, b.String())
	}
	if err := Inspect(&b, dir, 5); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("index: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk"+PayloadSuffix), []byte("not snappy"), 0o600)
	if err := Inspect(&b, filepath.Join(dir, "junk"+PayloadSuffix), 0); err == nil {
		t.Fatal("junk payload accepted")
	}
	if err := Inspect(&b, t.TempDir(), 0); err == nil || !strings.Contains(err.Error(), "no payloads") {
		t.Fatalf("empty dir: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	gw := newFakeGateway(t, nil)
	c, err := New(testConfig(prom.URL, gw.URL), Options{})
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	mux := http.NewServeMux()
	c.RegisterRoutes(mux, func() error { reloads++; return nil })
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("GET", "/-/healthy"); code != 200 {
		t.Error("healthy")
	}
	if code, _ := get("GET", "/-/ready"); code != 503 {
		t.Error("ready before Run")
	}
	if code, _ := get("GET", "/last-payload"); code != 404 {
		t.Error("last payload before any")
	}
	if code, _ := get("GET", "/-/reload"); code != 405 || reloads != 0 {
		t.Error("GET reload")
	}
	if code, _ := get("POST", "/-/reload"); code != 200 || reloads != 1 {
		t.Error("POST reload")
	}
	c.setLast([]*dto.MetricFamily{gauge("m", 1, 0, "_id", "c")}, time.Now())
	if code, body := get("GET", "/last-payload"); code != 200 || body != "# TYPE m gauge\nm{_id=\"c\"} 1\n" {
		t.Errorf("last payload %d %q", code, body)
	}
}

func TestReloadWithLoadError(t *testing.T) {
	prom := newFakeProm(t, gauge("up", 1, 0))
	reg := prometheus.NewRegistry()
	c, err := New(testConfig(prom.URL, "http://gw"), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReloadWith(func() (*Config, error) { return nil, fmt.Errorf("broken yaml") }); err == nil {
		t.Fatal("no error")
	}
	if counter(t, reg, "telegate_client_config_last_reload_successful") != 0 {
		t.Fatal("load failure not reported")
	}
	if err := c.ReloadWith(func() (*Config, error) { return testConfig(prom.URL, "http://gw"), nil }); err != nil {
		t.Fatal(err)
	}
	if counter(t, reg, "telegate_client_config_last_reload_successful") != 1 {
		t.Fatal("success not reported")
	}
}

// The federate body is decoded as it streams in: a body past the limit is
// too large even when it is malformed before the limit (no Content-Length
// to go by), and a connection cut mid-body is a read error, not a decode
// error.
func TestFederateStreamedLimitAndReadErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		switch r.URL.Query().Get("match[]") {
		case "garbage":
			for range 5 { // chunked: no Content-Length
				w.Write(bytes.Repeat([]byte{0xff}, 1000))
				w.(http.Flusher).Flush()
			}
		case "cut":
			w.Header().Set("Content-Length", "5000")
			w.Write(bytes.Repeat([]byte{0xff}, 100))
		}
	}))
	defer srv.Close()
	f := &Federator{Client: srv.Client(), URL: srv.URL + "/federate", Limit: 2000}
	_, size, err := f.Federate(context.Background(), []string{"garbage"})
	if tl, ok := err.(*TooLargeError); !ok || tl.Seen != 5000 || tl.AtLeast || size != 5000 {
		t.Errorf("over-limit garbage: size %d, %v", size, err)
	}
	f.Limit = 10000
	if _, _, err := f.Federate(context.Background(), []string{"garbage"}); err == nil || !strings.Contains(err.Error(), "decoding protobuf") {
		t.Errorf("garbage within the limit: %v, want a decode error", err)
	}
	if _, _, err := f.Federate(context.Background(), []string{"cut"}); err == nil || !strings.Contains(err.Error(), "reading response") {
		t.Errorf("cut body: %v, want a read error", err)
	}
}
