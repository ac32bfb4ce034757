package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/limits"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/e2e/harness"
)

// blockingForwarder holds every Send until release is closed.
type blockingForwarder struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingForwarder) Send(ctx context.Context, _ string, _ []byte) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil
}

// TestConcurrencyLimit: with the limit reached, the next request gets 503
// at once (not queued); health probes still answer.
func TestConcurrencyLimit(t *testing.T) {
	bf := &blockingForwarder{entered: make(chan struct{}, 4), release: make(chan struct{})}
	f := newFixture(t, func(o *Options) {
		o.Forwarder = bf
		o.MaxConcurrentRequests = 2
		o.MaxRetryTime = 10 * time.Second
	})
	ms := f.now.UnixMilli()
	tok := harness.CompositeToken("dev", "c1")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.write(t, tok, ts(1, ms, "__name__", "cluster_version"))
		}()
	}
	<-bf.entered
	<-bf.entered
	start := time.Now()
	status, body, hdr := f.write(t, tok, ts(1, ms, "__name__", "cluster_version"))
	if status != 503 || !strings.Contains(body, `"reason":"overloaded"`) || hdr.Get("Retry-After") != "1" {
		t.Fatalf("third request: %d %s", status, body)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("503 took %v", el)
	}
	resp, err := http.Get(f.srv.URL + "/-/healthy")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health under load: %v", err)
	}
	resp.Body.Close()
	close(bf.release)
	wg.Wait()
	if status, body, _ := f.write(t, tok, ts(1, ms, "__name__", "cluster_version")); status != 204 {
		t.Fatalf("after the burst: %d %s", status, body)
	}
}

// TestFailedAuthRateLimit: a source guessing tokens gets 429 once its
// failures exceed the burst, even with a valid token, and recovers with
// time; another source is not affected.
func TestFailedAuthRateLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.FailedAuth = FailedAuthLimit{PerMinute: 6, Burst: 3, MaxSources: 10}
	})
	ms := f.now.UnixMilli()
	for i := 0; i < 3; i++ {
		if status, _, _ := f.write(t, harness.CompositeToken("guess", "c1"), ts(1, ms, "__name__", "cluster_version")); status != 401 {
			t.Fatalf("guess %d: %d", i, status)
		}
	}
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"))
	var eb errorBody
	json.Unmarshal([]byte(body), &eb)
	if status != 429 || eb.Reason != "auth_rate_limited" || hdr.Get("Retry-After") != "10" || eb.Limit != 3 {
		t.Fatalf("after 3 failures: %d %s %q", status, body, hdr.Get("Retry-After"))
	}
	// /authorize is covered by the same guard.
	if _, _, status, _ := harness.Authorize(context.Background(), f.srv.URL, "dev", "c1"); status != 429 {
		t.Fatalf("authorize from a blocked source: %d", status)
	}
	// Another source (IPv6 /64 differs) is unaffected.
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	r.RemoteAddr = "[2001:db8::1]:1234"
	if f.gw.authLimited(f.gw.protect.authSource(r)) != nil {
		t.Fatal("unrelated source limited")
	}
	f.now = f.now.Add(10 * time.Second)
	if status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version")); status != 204 {
		t.Fatalf("after refill: %d %s", status, body)
	}
}

func TestSourceOfGroupsIPv6(t *testing.T) {
	p := &protection{}
	a, _ := http.NewRequest(http.MethodGet, "/", nil)
	b, _ := http.NewRequest(http.MethodGet, "/", nil)
	a.RemoteAddr, b.RemoteAddr = "[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2"
	pa, _ := p.sourceOf(a)
	pb, _ := p.sourceOf(b)
	if pa != pb {
		t.Fatalf("same /64 differs: %v %v", pa, pb)
	}
	a.RemoteAddr = "[::ffff:10.0.0.1]:5"
	if p, _ := p.sourceOf(a); p.String() != "10.0.0.1/32" {
		t.Fatalf("v4-mapped: %v", p)
	}
	a.RemoteAddr = "garbage"
	if _, ok := p.sourceOf(a); ok {
		t.Fatal("garbage address accepted")
	}
}

// Behind a trusted proxy the source is the rightmost X-Forwarded-For hop
// that is not itself a trusted proxy; what the client wrote to the left of
// it, and X-Forwarded-For from an untrusted peer, are ignored. A trusted
// proxy that sends no usable header is the source itself (it used to be
// "not limited", which let an L4 balancer's traffic guess freely).
func TestSourceOfBehindTrustedProxies(t *testing.T) {
	p := newProtection(Options{Logger: log.NewNopLogger(), FailedAuth: FailedAuthLimit{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}}}, prometheus.NewRegistry())
	for _, c := range []struct {
		peer string
		xff  []string
		want string // "" = not limited
	}{
		{"10.1.2.3:40000", []string{"203.0.113.7"}, "203.0.113.7/32"},
		{"10.1.2.3:40000", []string{"198.51.100.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7/32"},  // spoofed left hop ignored
		{"10.1.2.3:40000", []string{"198.51.100.1", "203.0.113.7,10.9.9.9"}, "203.0.113.7/32"}, // several headers
		{"10.1.2.3:40000", []string{"2001:db8:1:2::5"}, "2001:db8:1:2::/64"},
		{"10.1.2.3:40000", []string{"[2001:db8:1:2::5]:443"}, "2001:db8:1:2::/64"},
		{"10.1.2.3:40000", []string{"203.0.113.7:5555"}, "203.0.113.7/32"},
		{"10.1.2.3:40000", []string{"10.7.7.7, 10.9.9.9"}, "10.7.7.7/32"}, // all hops trusted: the first
		{"[fd00::1]:40000", []string{"203.0.113.8"}, "203.0.113.8/32"},
		{"10.1.2.3:40000", nil, "10.1.2.3/32"},                           // proxy sent no header: the proxy is the source
		{"10.1.2.3:40000", []string{"203.0.113.7, junk"}, "10.1.2.3/32"}, // unparsable hop: likewise
		{"[fd00::1]:40000", nil, "fd00::/64"},
		{"203.0.113.9:1234", []string{"198.51.100.1"}, "203.0.113.9/32"}, // untrusted peer: header ignored
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		src, ok := p.sourceOf(r)
		got := ""
		if ok {
			got = src.String()
		}
		if got != c.want {
			t.Errorf("peer %s X-Forwarded-For %q: source %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
}

// The outage the trusted proxies prevent: clusters reach the gateway
// through one router. A cluster failing authentication is limited by its
// own address; the others behind the same router keep working.
func TestFailedAuthLimitBehindRouter(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.FailedAuth = FailedAuthLimit{PerMinute: 6, Burst: 3, MaxSources: 10,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	})
	ms := f.now.UnixMilli()
	send := func(tok, client string) int {
		t.Helper()
		raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(1, ms, "__name__", "cluster_version")}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body := snappy.Encode(nil, raw)
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/receive", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		if code := send(harness.CompositeToken("revoked", "c9"), "203.0.113.9"); code != 401 {
			t.Fatalf("bad cluster, attempt %d: %d", i, code)
		}
	}
	if code := send(harness.CompositeToken("dev", "c9"), "203.0.113.9"); code != 429 {
		t.Fatalf("bad cluster after its burst: %d, want 429", code)
	}
	if code := send(harness.CompositeToken("dev", "c1"), "198.51.100.1"); code != 204 {
		t.Fatalf("another cluster behind the same router: %d, want 204", code)
	}
}

func TestOffendersBounded(t *testing.T) {
	o := newOffenders(10)
	// Space-saving: an entry's count is over by at most total/capacity
	// (1500 here), so a heavy hitter of 5000 always stays on top.
	row := func(name string, samples int) []offenderRow {
		return []offenderRow{{key: offenderKey{"budget", name, true}, samples: samples}}
	}
	o.record(row("heavy", 5000))
	for i := 0; i < 10000; i++ {
		o.record(row(strings.Repeat("x", i%150), 1))
	}
	if len(o.entries) > 10 {
		t.Fatalf("%d entries", len(o.entries))
	}
	enf, _, _ := o.top(1)
	if enf["budget"][0].Metric != "heavy" {
		t.Fatalf("heavy hitter lost: %+v", enf)
	}
}

// TestHostileSeries answers every hostile remote-write payload from the
// status table; none is a 5xx and none reaches downstream half-checked.
func TestHostileSeries(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	tok := harness.CompositeToken("dev", "c1")
	many := []string{"__name__", "cluster_version"}
	for i := 0; i < 5000; i++ {
		many = append(many, "l"+strings.Repeat("a", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676%26)), "v")
	}
	for _, tc := range []struct {
		name   string
		series prompb.TimeSeries
		want   int
	}{
		{"huge label name", ts(1, ms, "__name__", "cluster_version", strings.Repeat("n", 10000), "v"), 400},
		{"huge label value", ts(1, ms, "__name__", "cluster_version", "type", strings.Repeat("v", 100000)), 400},
		{"thousands of labels", ts(1, ms, many...), 400},
		{"invalid utf-8 value", ts(1, ms, "__name__", "cluster_version", "type", "\xff\xfe"), 400},
		{"invalid metric name", ts(1, ms, "__name__", "rpc_duration_ bad"), 400},
		{"NaN", ts(math.NaN(), ms, "__name__", "cluster_version"), 204},
		{"+Inf", ts(math.Inf(1), ms, "__name__", "cluster_version"), 204},
		{"timestamp max int64", ts(1, math.MaxInt64, "__name__", "cluster_version"), 204},
		{"timestamp min int64", ts(1, math.MinInt64, "__name__", "cluster_version"), 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := f.write(t, tok, tc.series)
			if status != tc.want {
				t.Fatalf("got %d %s, want %d", status, body, tc.want)
			}
		})
	}
	// The int64-edge timestamps were dropped, not forwarded.
	for _, s := range f.fwd.series() {
		if !strings.Contains(s, "cluster_version") {
			t.Fatalf("forwarded %s", s)
		}
	}
}

// FuzzReceive feeds arbitrary decompressed bodies to the remote-write
// handler: the answer is 204 or a 4xx, never a 5xx or a panic.
func FuzzReceive(f *testing.F) {
	good, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(1, time.Now().UnixMilli(), "__name__", "cluster_version", "_id", "c1")}}).Marshal()
	f.Add(good)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})                   // absurd length
	f.Add(bytes.Repeat([]byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x01}, 50)) // nested lengths
	f.Add([]byte("garbage"))
	fx := newFixtureF(f)
	tok := harness.CompositeToken("dev", "c1")
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, _ := http.NewRequest(http.MethodPost, fx.srv.URL+"/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %x", resp.StatusCode, raw)
		}
	})
}

// newFixtureF is newFixture for a fuzz target.
func newFixtureF(f *testing.F) *fixture {
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: dev\n  clusters: ['*']\n"))
	if err != nil {
		f.Fatal(err)
	}
	signer, err := authn.NewEphemeralSigner(time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	al, err := allowlist.Parse([]byte(testAllowlist), "allowlist.yaml")
	if err != nil {
		f.Fatal(err)
	}
	fx := &fixture{fwd: &fakeForwarder{}, now: time.Now()}
	fx.gw = New(Options{
		Authenticator: authn.Chain(tokens),
		Issuer:        signer,
		Allowlist:     al,
		Pipeline: relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance"},
			MaxLabels: 30, MaxNameLength: 100, MaxValueLength: 1000, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute}),
		Forwarder:    fx.fwd,
		Limits:       Limits{MaxRequestBytes: 64 << 10, MaxDecodedBytes: 256 << 10, MaxSeriesPerRequest: 100},
		MaxRetryTime: 2 * time.Second,
		Budgets:      limits.New(limits.Options{Defaults: limits.Budget{ActiveSeries: limits.ActiveSeries{Max: 50, Enforce: true}}}),
	})
	fx.srv = httptest.NewServer(fx.gw.Handler())
	f.Cleanup(fx.srv.Close)
	return fx
}

// The per-request tally sums runs of one name, flushes when its rows are
// full and loses nothing across flushes.
func TestOffenderTallyFlushesEverything(t *testing.T) {
	o := newOffenders(1000)
	tally := offenderTally{o: o}
	for i := 0; i < 40; i++ {
		name := fmt.Sprintf("m%02d", i%20)
		tally.add("allowlist", name, 2, true)
		tally.add("allowlist", name, 1, true) // same run: summed
		tally.add("allowlist", name, 0, false)
	}
	tally.flush()
	enf, shadow, _ := o.top(100)
	if len(enf["allowlist"]) != 20 || len(shadow["allowlist"]) != 20 {
		t.Fatalf("rows: %d enforced, %d shadow", len(enf["allowlist"]), len(shadow["allowlist"]))
	}
	for _, r := range enf["allowlist"] {
		if r.Samples != 6 {
			t.Fatalf("enforced %s: %d samples, want 6", r.Metric, r.Samples)
		}
	}
	for _, r := range shadow["allowlist"] {
		if r.Samples != 2 {
			t.Fatalf("shadow %s: %d samples, want 2 (0 counts as 1)", r.Metric, r.Samples)
		}
	}
}

// Without trusted proxies, requests carrying X-Forwarded-For make the
// gateway warn once that everyone behind that proxy is one source.
func TestWarnsOnceAboutUntrustedProxy(t *testing.T) {
	var buf bytes.Buffer
	p := newProtection(Options{Logger: log.NewLogfmtLogger(&buf)}, prometheus.NewRegistry())
	for i := 0; i < 3; i++ {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.1.2.3:40000"
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
		if src, ok := p.sourceOf(r); !ok || src.String() != "10.1.2.3/32" {
			t.Fatalf("source %v %v, want the peer", src, ok)
		}
	}
	if n := strings.Count(buf.String(), "trusted_proxies is empty"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, buf.String())
	}
}
