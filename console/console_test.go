package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/limits"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/e2e/harness"
)

const testAllowlist = `matches:
# owners: (@team-a/cvo)
# The cluster version.
- '{__name__="cluster_version"}'
# owners: (@team-b/rpc)
# RPC latency.
- '{__name__=~"rpc_duration_.*"}'
# owners: (@team-c/evil)
# A hostile description: <script>alert("d")</script>
- '{__name__="evil_total"}'
`

// hostile are client-controlled strings that must render as text.
var hostile = []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `'single' "double" & amp`, strings.Repeat("<b>long</b>", 1000)}

type fixture struct {
	gw      *gateway.Gateway
	public  *httptest.Server
	console *httptest.Server
	fwd     *sink
}

type sink struct{}

func (sink) Send(context.Context, string, []byte) error { return nil }

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: dev\n  clusters: ['*']\n"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authn.NewEphemeralSigner(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	al, err := allowlist.Parse([]byte(testAllowlist), "allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{fwd: &sink{}}
	f.gw = gateway.New(gateway.Options{
		Authenticator: authn.Chain(tokens),
		Issuer:        signer,
		Allowlist:     al,
		Pipeline: relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod"},
			MaxLabels: 30, MaxNameLength: 100, MaxValueLength: 20000, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute}),
		Forwarder: f.fwd,
		Limits: gateway.Limits{MaxRequestBytes: 1 << 20, MaxDecodedBytes: 4 << 20, MaxSeriesPerRequest: 1000,
			UploadInterval: 4*time.Minute + 30*time.Second},
		MaxRetryTime: 2 * time.Second,
	})
	f.public = httptest.NewServer(f.gw.Handler())
	t.Cleanup(f.public.Close)
	c, err := New(Options{Gateway: f.gw, Mode: "forwarding", Version: "test", Config: ConfigInfo{Origin: "test.yaml", Hash: "abc123", LoadedAt: time.Now()},
		Spool: func() SpoolStats { return SpoolStats{Objects: 2, Bytes: 2048, Oldest: time.Now().Add(-time.Minute)} }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics\n") })
	c.Register(mux)
	f.console = httptest.NewServer(mux)
	t.Cleanup(f.console.Close)
	return f
}

func series(name string, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}
}

func (f *fixture) write(t testing.TB, cluster string, ts ...prompb.TimeSeries) int {
	t.Helper()
	status, _, _, err := harness.RemoteWrite(context.Background(), f.public.URL+"/api/v1/receive", harness.CompositeToken("dev", cluster), &prompb.WriteRequest{Timeseries: ts})
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func (f *fixture) get(t testing.TB, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(f.console.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (f *fixture) traffic(t testing.TB) {
	if s := f.write(t, "cluster-a",
		series("cluster_version", "type", "current", "instance", "10.0.0.1:9090"),
		series("not_allowed_total", "job", "x"),
		series("rpc_duration_seconds", "pod", "p-1"),
	); s != http.StatusNoContent {
		t.Fatalf("status %d", s)
	}
	// Hostile strings: in an installation ID, a label value, a denied
	// metric name (invalid names are refused: a 400 with the name in it).
	for _, h := range hostile {
		id := h
		if len(id) > 256 {
			id = id[:256]
		}
		f.write(t, id, series("cluster_version", "type", h))
		f.write(t, "cluster-b", series("evil_total", "v", h), series(h))
		f.write(t, "cluster-b", series("denied_"+fmt.Sprint(len(h)), "x", h))
		// An error answer quoting the hostile value.
		f.write(t, "cluster-b", series("cluster_version", "_id", h))
	}
}

func checkInert(t *testing.T, page, body string) {
	t.Helper()
	for _, bad := range []string{"<script>alert", "<img src=x", "<b>long</b>"} {
		if strings.Contains(body, bad) {
			t.Errorf("%s renders %q unescaped", page, bad)
		}
	}
}

func TestPagesRenderAndEscape(t *testing.T) {
	f := newFixture(t)
	f.traffic(t)
	for _, tc := range []struct {
		path string
		code int
		want []string
	}{
		{"/", 200, []string{"Fleet", "abc123", "not_allowed_total", "cluster-a", "2.0 KiB", "&lt;script&gt;alert(1)&lt;/script&gt;", `name="viewport"`}},
		{"/allowlist", 200, []string{"cluster_version", "@team-a/cvo", "The cluster version.", "rpc_duration_seconds", "&lt;script&gt;alert(&#34;d&#34;)&lt;/script&gt;"}},
		{"/allowlist?owner=team-b", 200, []string{"rpc_duration_"}},
		{"/installations", 200, []string{"cluster-a", "cluster-b", "&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"}},
		{"/installations/cluster-a", 200, []string{"cluster-a", "allowlist", "Budget"}},
		{"/installations?id=cluster-b", 200, []string{"cluster-b", "invalid_series", `carries label _id=&#34;\&#34;&gt;&lt;img src=x onerror=alert(2)&gt;&#34;`}},
		{"/installations/" + url.PathEscape(`<script>alert(1)</script>`), 200, []string{"&lt;script&gt;alert(1)&lt;/script&gt;"}},
		{"/installations/nobody", 404, []string{"has not answered"}},
		{"/diagnose", 200, []string{"<form", "textarea"}},
		{"/diagnose?installation=cluster-a&metric=" + url.QueryEscape(`<script>alert(1)</script>`), 200, []string{"&lt;script&gt;alert(1)&lt;/script&gt;"}},
		{"/static/console.css", 200, []string{"@media"}},
		{"/metrics", 200, []string{"metrics"}},
		{"/nope", 404, nil},
	} {
		code, body, hdr := f.get(t, tc.path)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d: %.300s", tc.path, code, tc.code, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: no %q in\n%.3000s", tc.path, w, body)
			}
		}
		checkInert(t, tc.path, body)
		if strings.HasSuffix(hdr.Get("Content-Type"), "html; charset=utf-8") && !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: CSP %q", tc.path, hdr.Get("Content-Security-Policy"))
		}
	}
	// The rule stats: cluster_version seen from several installations.
	_, body, _ := f.get(t, "/api/console/allowlist")
	var al AllowlistPage
	if err := json.Unmarshal([]byte(body), &al); err != nil {
		t.Fatal(err)
	}
	if al.Total != 3 || al.Rules[0].Series < 2 || al.Rules[0].Installations < 4 || al.Rules[0].RecentNames[0] != "cluster_version" {
		t.Fatalf("%+v", al.Rules[0])
	}
}

func TestJSONTwins(t *testing.T) {
	f := newFixture(t)
	f.traffic(t)
	for _, tc := range []struct {
		paths []string
		into  any
		check func() error
	}{
		{[]string{"/?format=json", "/api/console/fleet"}, &FleetPage{}, nil},
		{[]string{"/allowlist?format=json&q=rpc", "/api/console/allowlist?q=rpc"}, &AllowlistPage{}, nil},
		{[]string{"/installations?format=json", "/api/console/installations"}, &InstallationsPage{}, nil},
		{[]string{"/installations/cluster-a?format=json", "/api/console/installations/cluster-a", "/installations?id=cluster-a&format=json"}, &InstallationPage{}, nil},
		{[]string{"/diagnose?format=json&installation=cluster-a&metric=cluster_version", "/api/console/diagnose?installation=cluster-a&metric=cluster_version"}, &DiagnosePage{}, nil},
	} {
		var first string
		for _, p := range tc.paths {
			code, body, hdr := f.get(t, p)
			if code != 200 || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %d %s", p, code, hdr.Get("Content-Type"))
			}
			if err := json.Unmarshal([]byte(body), tc.into); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if first == "" {
				first = body
			}
		}
	}
	_, body, _ := f.get(t, "/api/console/fleet")
	var fl FleetPage
	json.Unmarshal([]byte(body), &fl)
	if fl.Installations < 3 || fl.DroppedTotal["allowlist"] == 0 || fl.Spool == nil || fl.Spool.Objects != 2 || fl.Config.Hash != "abc123" || fl.Mode != "forwarding" || len(fl.RecentInstallations) == 0 {
		t.Fatalf("%s", body)
	}
	_, body, _ = f.get(t, "/api/console/allowlist?owner=team-b")
	var al AllowlistPage
	json.Unmarshal([]byte(body), &al)
	if len(al.Rules) != 1 || al.Rules[0].Selector != `{__name__=~"rpc_duration_.*"}` {
		t.Fatalf("%s", body)
	}
	_, body, _ = f.get(t, "/api/console/installations/cluster-a")
	var in InstallationPage
	json.Unmarshal([]byte(body), &in)
	if !in.Known || in.Activity.AcceptedSeries != 2 || in.Activity.Dropped["allowlist"] != 1 || in.Budget.ActiveSeries != 0 {
		t.Fatalf("%s", body)
	}
}

func verdicts(t *testing.T, body string) map[string]string {
	t.Helper()
	var p DiagnosePage
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Diagnosis == nil {
		t.Fatalf("no diagnosis: %s", body)
	}
	out := map[string]string{}
	for _, m := range p.Diagnosis.Metrics {
		out[m.Name] = m.Verdict
		for _, s := range m.Stages {
			out[m.Name+"/"+s.Name] = s.Verdict
		}
	}
	return out
}

func TestDiagnose(t *testing.T) {
	f := newFixture(t)
	f.traffic(t)
	// Metric names.
	_, body, _ := f.get(t, "/api/console/diagnose?installation=cluster-a&metric="+url.QueryEscape("cluster_version not_allowed_total"))
	v := verdicts(t, body)
	if v["cluster_version"] != "pass" || v["not_allowed_total"] != "drop" || v["not_allowed_total/allowlist"] != "drop" || v["cluster_version/authentication"] != "pass" {
		t.Fatalf("%v", v)
	}
	// A series with a stripped label, as the metric field.
	_, body, _ = f.get(t, "/api/console/diagnose?installation=cluster-a&metric="+url.QueryEscape(`rpc_duration_seconds{pod="p-1"}`))
	if v := verdicts(t, body); v["rpc_duration_seconds"] != "pass" || v["rpc_duration_seconds/label stripping"] != "info" {
		t.Fatalf("%v", v)
	}
	// Exposition text, POSTed as a form.
	form := url.Values{"installation": {"cluster-a"}, "text": {"# TYPE cluster_version gauge\ncluster_version{type=\"x\",instance=\"i\"} 1\nnope 2\n"}}
	resp, err := http.PostForm(f.console.URL+"/diagnose", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(b)
	for _, w := range []string{`data-metric="cluster_version" data-verdict="pass"`, `data-metric="nope" data-verdict="drop"`, "strips instance", "no entry allows the metric name"} {
		if !strings.Contains(html, w) {
			t.Errorf("no %q in %s", w, html)
		}
	}
	// The JSON twin takes the text as the body.
	resp, err = http.Post(f.console.URL+"/api/console/diagnose?installation=cluster-a", "text/plain", strings.NewReader("cluster_version 1\nnope 1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if v := verdicts(t, string(b)); v["cluster_version"] != "pass" || v["nope"] != "drop" {
		t.Fatalf("%v", v)
	}
	// Bad input: a 400 with the parser's reason, never a 500.
	code, body, _ := f.get(t, "/api/console/diagnose?metric="+url.QueryEscape(`broken{`))
	if code != http.StatusBadRequest || !strings.Contains(body, "error") {
		t.Fatalf("%d %s", code, body)
	}
	resp, err = http.Post(f.console.URL+"/api/console/diagnose", "text/plain", strings.NewReader(strings.Repeat("x", 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d for a 2 MiB body", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.console.URL+"/diagnose", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}

func TestSeriesOf(t *testing.T) {
	s, err := seriesOf("a, b\nc", "")
	if err != nil || len(s) != 3 || s[2][0] != (batch.Label{Name: "__name__", Value: "c"}) {
		t.Fatalf("%v %v", s, err)
	}
	s, err = seriesOf(`x{a="1"}`+"\n"+`y{b="2"}`, "z 1")
	if err != nil || len(s) != 3 {
		t.Fatalf("%v %v", s, err)
	}
	// A browser submits a textarea with CRLF line ends.
	s, err = seriesOf("", "# TYPE z gauge\r\nz 1\r\nw 2\r\n")
	if err != nil || len(s) != 2 {
		t.Fatalf("%v %v", s, err)
	}
}

// fill makes the gateway know n installations, with a few series each.
func fill(t testing.TB, f *fixture, n int) {
	h := f.gw.Handler()
	for i := range n {
		body, err := harness.EncodeWriteRequest(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("cluster_version", "type", "current"), series("dropped_total"), series("rpc_duration_seconds", "le", fmt.Sprint(i%10)),
		}})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/receive", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", harness.RemoteWriteContentType)
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Authorization", "Bearer "+harness.CompositeToken("dev", fmt.Sprintf("installation-%05d", i)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

var pages = []string{"/", "/allowlist", "/installations", "/installations?sort=dropped&limit=1000", "/installations/installation-05000", "/diagnose?installation=installation-00001&metric=cluster_version+dropped_total", "/api/console/fleet", "/api/console/installations?limit=10000"}

// TestPagesWithTenThousandInstallations checks every page answers in
// well under a second with 10,000 installations known.
func TestPagesWithTenThousandInstallations(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 10,000 installations")
	}
	f := newFixture(t)
	fill(t, f, 10000)
	if n := f.gw.InstallationCount(); n != 10000 {
		t.Fatalf("%d installations", n)
	}
	for _, p := range pages {
		start := time.Now()
		code, body, _ := f.get(t, p)
		took := time.Since(start)
		if code != 200 {
			t.Fatalf("%s: %d %.200s", p, code, body)
		}
		t.Logf("%s: %v (%d bytes)", p, took, len(body))
		if took > time.Second {
			t.Errorf("%s took %v with 10,000 installations", p, took)
		}
	}
}

// BenchmarkPages renders each page with 10,000 installations known.
func BenchmarkPages(b *testing.B) {
	f := newFixture(b)
	fill(b, f, 10000)
	for _, p := range pages {
		b.Run(strings.NewReplacer("/", "_", "?", "_").Replace(p), func(b *testing.B) {
			for b.Loop() {
				if code, _, _ := f.get(b, p); code != 200 {
					b.Fatal(code)
				}
			}
		})
	}
}

// With Redis, the fleet page lists the replicas seen by their heartbeats
// (names escaped), or says why they could not be read.
func TestFleetListsReplicas(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		replicas func(context.Context) ([]limits.ReplicaSeen, error)
		want     []string
	}{
		{func(context.Context) ([]limits.ReplicaSeen, error) {
			return []limits.ReplicaSeen{{Name: "gw-0/:9003", LastSeen: time.Now()}, {Name: "<b>gw-1</b>", LastSeen: time.Now()}}, nil
		}, []string{"replicas seen: 2", "gw-0/:9003", "&lt;b&gt;gw-1&lt;/b&gt;"}},
		{func(context.Context) ([]limits.ReplicaSeen, error) { return nil, errors.New("connection refused") },
			[]string{"replicas seen: unknown (connection refused)"}},
	} {
		c, err := New(Options{Gateway: f.gw, Mode: "forwarding", Version: "test", RedisAddress: "redis:6379", Replicas: tc.replicas})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		c.Register(mux)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		for _, w := range tc.want {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("fleet page lacks %q", w)
			}
		}
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?format=json", nil))
		if !strings.Contains(rec.Body.String(), `"redis"`) {
			t.Errorf("JSON twin: %s", rec.Body.String()[:200])
		}
	}
}
