package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/limits"
	"github.com/telegate/telegate/test/e2e/harness"
)

func withBudgets(b limits.Budget, shadowAllowlist bool) func(*Options) {
	return func(o *Options) {
		reg := prometheus.NewRegistry()
		o.Registerer = reg
		o.Budgets = limits.New(limits.Options{Defaults: b, UploadInterval: o.Limits.UploadInterval, Registerer: reg, Now: o.Now})
		o.AllowlistShadow = shadowAllowlist
	}
}

func versions(ms int64, from, n int) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for i := from; i < from+n; i++ {
		out = append(out, ts(1, ms, "__name__", "cluster_version", "version", fmt.Sprint(i)))
	}
	return out
}

// TestActiveSeriesBudget: series beyond the budget are dropped and
// reported; the cluster's known series keep flowing; other clusters are
// not affected.
func TestActiveSeriesBudget(t *testing.T) {
	f := newFixture(t, withBudgets(limits.Budget{ActiveSeries: limits.ActiveSeries{Max: 5, Enforce: true}}, false))
	ms := f.now.UnixMilli()
	tok := harness.CompositeToken("dev", "c1")
	status, body, hdr := f.write(t, tok, versions(ms, 0, 3)...)
	if status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "" {
		t.Fatalf("under budget: %d %q %q", status, body, hdr.Get("X-Telegate-Dropped-Samples"))
	}
	// 3 known + 4 new + 1 not allowlisted: 2 new fit, 2 are dropped.
	series := append(versions(ms, 0, 7), ts(1, ms, "__name__", "secret"))
	status, body, hdr = f.write(t, tok, series...)
	if status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "allowlist=1, budget=2" {
		t.Fatalf("over budget: %d %q %q", status, body, hdr.Get("X-Telegate-Dropped-Samples"))
	}
	if n := len(f.fwd.series()); n != 3+5 {
		t.Fatalf("forwarded %d samples, want 8", n)
	}
	// Known series keep flowing, new ones keep being refused.
	status, _, hdr = f.write(t, tok, versions(ms+1000, 0, 6)...)
	if status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "budget=1" {
		t.Fatalf("steady state: %d %q", status, hdr.Get("X-Telegate-Dropped-Samples"))
	}
	status, _, hdr = f.write(t, harness.CompositeToken("dev", "c2"), versions(ms, 0, 5)...)
	if status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "" {
		t.Fatalf("other cluster: %d %q", status, hdr.Get("X-Telegate-Dropped-Samples"))
	}
	// After the window the cluster's old series expire.
	f.now = f.now.Add(limits.DefaultWindow(f.gw.opts.Limits.UploadInterval) + time.Minute)
	status, _, hdr = f.write(t, tok, versions(f.now.UnixMilli(), 100, 5)...)
	if status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "" {
		t.Fatalf("after the window: %d %q", status, hdr.Get("X-Telegate-Dropped-Samples"))
	}
	top := debugJSON(t, f.gw, "")
	if rows := top.Dropped["budget"]; len(rows) != 1 || rows[0].Metric != "cluster_version" || rows[0].Samples != 3 {
		t.Fatalf("debug budget offenders: %+v", top.Dropped)
	}
}

func debugJSON(t *testing.T, g *Gateway, query string) debugLimits {
	t.Helper()
	mux := http.NewServeMux()
	g.RegisterDebug(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/limits"+query, nil))
	var out debugLimits
	if rec.Code != 200 {
		t.Fatalf("/debug/limits: %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShadowMode: with enforce: false neither the budget nor the
// allowlist drops anything; both are counted in the shadow header, the
// metric and the debug endpoint.
func TestShadowMode(t *testing.T) {
	f := newFixture(t, withBudgets(limits.Budget{ActiveSeries: limits.ActiveSeries{Max: 2, Enforce: false}}, true))
	ms := f.now.UnixMilli()
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"), append(versions(ms, 0, 4), ts(1, ms, "__name__", "secret_total", "job", "j"))...)
	if status != 204 {
		t.Fatalf("%d %s", status, body)
	}
	if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "" {
		t.Fatalf("shadow mode dropped: %q", d)
	}
	if s := hdr.Get(shadowHeader); s != "allowlist=1, budget=3" {
		t.Fatalf("shadow header %q", s)
	}
	if n := len(f.fwd.series()); n != 5 {
		t.Fatalf("forwarded %d, want all 5", n)
	}
	if s := f.fwd.series(); !slices.ContainsFunc(s, func(s string) bool { return strings.Contains(s, "secret_total") && strings.Contains(s, "job=j") }) {
		t.Fatalf("the denied series lost labels in shadow mode: %q", s)
	}
	top := debugJSON(t, f.gw, "?n=1&cluster=c1")
	if rows := top.Shadow["allowlist"]; len(rows) != 1 || rows[0].Metric != "secret_total" {
		t.Fatalf("shadow allowlist offenders: %+v", top.Shadow)
	}
	// Over the budget of 2: two cluster_version series and secret_total.
	if rows := top.Shadow["budget"]; len(rows) != 1 || rows[0].Metric != "cluster_version" || rows[0].Samples != 2 {
		t.Fatalf("shadow budget offenders: %+v", top.Shadow)
	}
	if top.Cluster == nil || top.Cluster.MaxActiveSeries != 2 || top.Cluster.EnforceActiveSeries {
		t.Fatalf("cluster budget: %+v", top.Cluster)
	}
	if v := counterValue(t, f.gw.budgets.shadowSamples.WithLabelValues("budget")); v != 3 {
		t.Fatalf("shadow metric %v", v)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatal(err)
	}
	return mfs[0].Metric[0].Counter.GetValue()
}

// TestSamplesRateBudget: a request over the bucket gets 429 with the JSON
// body naming the limit and Retry-After; in shadow mode it passes.
func TestSamplesRateBudget(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		f := newFixture(t, withBudgets(limits.Budget{SamplesRate: limits.SamplesRate{PerSecond: 1, Burst: 4, Enforce: enforce}}, false))
		ms := f.now.UnixMilli()
		tok := harness.CompositeToken("dev", "c1")
		if status, body, _ := f.write(t, tok, versions(ms, 0, 3)...); status != 204 {
			t.Fatalf("%d %s", status, body)
		}
		status, body, hdr := f.write(t, tok, versions(ms, 0, 3)...)
		if !enforce {
			if status != 204 || hdr.Get(shadowHeader) != "samples_rate=3" {
				t.Fatalf("shadow: %d %q", status, hdr.Get(shadowHeader))
			}
			continue
		}
		var eb errorBody
		json.Unmarshal([]byte(body), &eb)
		if status != 429 || eb.Reason != "samples_rate" || eb.Limit != 4 || eb.RetryAfter != 2 || hdr.Get("Retry-After") != "2" {
			t.Fatalf("over rate: %d %s %q", status, body, hdr.Get("Retry-After"))
		}
		f.now = f.now.Add(2 * time.Second)
		if status, body, _ := f.write(t, tok, versions(ms, 0, 3)...); status != 204 {
			t.Fatalf("after refill: %d %s", status, body)
		}
	}
}

// TestUploadIntervalShadowAndLimit: the upload interval goes through the
// budgets; its 429 carries limit 1; in shadow mode uploads pass.
func TestUploadIntervalShadowAndLimit(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		f := newFixture(t, withBudgets(limits.Budget{UploadInterval: limits.UploadInterval{Enforce: enforce}}, false))
		ctx := context.Background()
		jwt, _, _, _ := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
		fams := []*dto.MetricFamily{gauge("cluster_version", 1)}
		if status, body, _, _ := harness.Upload(ctx, f.srv.URL, jwt, fams); status != 200 {
			t.Fatalf("first: %d %s", status, body)
		}
		status, body, _, _ := harness.Upload(ctx, f.srv.URL, jwt, fams)
		want := 429
		if !enforce {
			want = 200
		}
		if status != want {
			t.Fatalf("enforce=%v second upload: %d %s", enforce, status, body)
		}
		if enforce && !strings.Contains(body, `"limit":1`) {
			t.Fatalf("429 body %s", body)
		}
	}
}

// TestBudgetsFailClosed: with fail_open false and the store down, writes
// get 503 budgets_unavailable; authentication errors stay 401.
func TestBudgetsFailClosed(t *testing.T) {
	r := harness.StartRedis(t)
	store, _ := limits.NewRedisStore(limits.RedisOptions{Address: r.Addr(), Timeout: 200 * time.Millisecond})
	defer store.Close()
	r.Process().Stop()
	f := newFixture(t, func(o *Options) {
		o.Budgets = limits.New(limits.Options{Defaults: limits.Budget{ActiveSeries: limits.ActiveSeries{Max: 10, Enforce: true}}, Store: store, FailOpen: false})
	})
	ms := f.now.UnixMilli()
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"), versions(ms, 0, 1)...)
	if status != 503 || !strings.Contains(body, "budgets_unavailable") || hdr.Get("Retry-After") == "" {
		t.Fatalf("fail closed: %d %s", status, body)
	}
	if status, _, _ := f.write(t, harness.CompositeToken("nope", "c1"), versions(ms, 0, 1)...); status != 401 {
		t.Fatalf("bad token with Redis down: %d", status)
	}
}

// The offenders table keeps its own copy of each metric name: the names in
// a request alias its pooled, decoded buffer, which the next request
// overwrites.
func TestOffenderNamesOutliveTheRequest(t *testing.T) {
	f := newFixture(t, withBudgets(limits.Budget{}, false))
	ms := f.now.UnixMilli()
	tok := harness.CompositeToken("dev", "c1")
	for _, name := range []string{"secret_aaaa", "other_bbbb", "third_cccc"} {
		if status, body, _ := f.write(t, tok, ts(1, ms, "__name__", name, "job", "j")); status != 204 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
	}
	var got []string
	for _, r := range debugJSON(t, f.gw, "").Dropped["allowlist"] {
		got = append(got, fmt.Sprintf("%s=%d", r.Metric, r.Samples))
	}
	slices.Sort(got)
	if want := []string{"other_bbbb=1", "secret_aaaa=1", "third_cccc=1"}; !slices.Equal(got, want) {
		t.Fatalf("allowlist offenders %q, want %q", got, want)
	}
}
