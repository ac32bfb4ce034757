package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/privacy"
	"github.com/telegate/telegate/test/e2e/harness"
)

// The PII guard runs on what the allowlist kept, before stamping: values
// found are hashed (or the series dropped, counted as reason privacy),
// stripped labels and the cluster ID are not its business.
func TestPrivacyGuardOnIngest(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Privacy = ingestGuard(t) })
	ms := f.now.UnixMilli()
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"),
		ts(1, ms, "__name__", "cluster_version", "instance", "10.0.0.1:9090", "owner", "alice@example.com", "type", "current"),
		ts(2, ms, "__name__", "rpc_duration_seconds", "user", "bob@example.com"),
		ts(3, ms, "__name__", "rpc_duration_seconds", "user", "nobody"),
	)
	if status != http.StatusNoContent {
		t.Fatalf("status %d: %s", status, body)
	}
	got := strings.Join(f.fwd.series(), "\n")
	if strings.Contains(got, "@example.com") || !strings.Contains(got, "owner=pii:email:") {
		t.Fatalf("forwarded\n%s", got)
	}
	if !strings.Contains(got, "user=nobody") || strings.Count(got, "rpc_duration_seconds") != 1 {
		t.Fatalf("per-metric drop: forwarded\n%s", got)
	}
	if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "privacy=1" {
		t.Fatalf("dropped header %q", d)
	}
}

// BenchmarkReceivePrivacy is BenchmarkReceive with every PII detector on
// (hash), measured against the same gateway without the guard in the same
// run: blocks of requests alternate between the two. It reports the
// guard's share of the ingest path's CPU (target under 10%).
func BenchmarkReceivePrivacy(b *testing.B) {
	var all [privacy.NumDetectors]privacy.Action
	for d := range all {
		all[d] = privacy.Hash
	}
	guard, err := privacy.New(privacy.Options{Actions: all, Key: []byte("0123456789abcdef"),
		HostnameSuffixes: []string{"corp.example.com"}, ExemptLabels: []string{"_id", "instance", "pod", "prometheus_replica"}})
	if err != nil {
		b.Fatal(err)
	}
	p := benchPayload()
	if os.Getenv("PRIVACY_BASELINE") != "" {
		guard = nil // both sides without the guard: the method's own noise
	}
	on := newBenchGatewayWith(b, staticAuth(b), time.Now, p.allowlist, func(o *Options) { o.Privacy = guard })
	off := newBenchGatewayWith(b, staticAuth(b), time.Now, p.allowlist)
	rq := receiveRequest(p)
	w := &discardWriter{h: http.Header{}}
	wantDropped := "allowlist=" + itoa(p.spec.Series()/2)
	for range 10 {
		serveOnce(b, on.h, w, rq.rewind(), http.StatusNoContent, wantDropped)
		serveOnce(b, off.h, w, rq.rewind(), http.StatusNoContent, wantDropped)
	}
	const block = 16
	var cpuOn, cpuOff time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		h := on.h
		if (n/block)%2 == 1 {
			h = off.h
		}
		start := cpuTime()
		w.reset()
		h.ServeHTTP(w, rq.rewind())
		if (n/block)%2 == 1 {
			cpuOff += cpuTime() - start
		} else {
			cpuOn += cpuTime() - start
		}
		if w.code != http.StatusNoContent {
			b.Fatalf("status %d", w.code)
		}
		n++
	}
	if cpuOff <= 0 || cpuOn <= 0 {
		return
	}
	nOn := float64((n + block) / (2 * block) * block) // requests in "on" blocks, about
	nOff := float64(n) - nOn
	perOn, perOff := cpuOn.Seconds()/nOn, cpuOff.Seconds()/nOff
	b.ReportMetric(float64(p.spec.Series())/perOn, "samples/cpu-s")
	b.ReportMetric(100*(perOn-perOff)/perOn, "%privacy")
}

// An opted-out installation is refused with 403 opted_out on every path
// once its credentials are accepted (a token issued before the opt-out
// included); others are not affected, and a reload takes it back.
func TestOptedOutInstallation(t *testing.T) {
	var opt privacy.OptOuts
	f := newFixture(t, func(o *Options) { o.OptOuts = &opt })
	ctx := context.Background()
	jwt, _, status, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil || status != http.StatusOK {
		t.Fatalf("authorize: %d %v", status, err)
	}
	opt.Set([]privacy.OptOut{{ID: "c1"}}, time.Now())
	ms := f.now.UnixMilli()
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"))
	if status != http.StatusForbidden || !strings.Contains(body, `"reason":"opted_out"`) {
		t.Fatalf("remote write: %d %s", status, body)
	}
	if _, _, status, _ := harness.Authorize(ctx, f.srv.URL, "dev", "c1"); status != http.StatusForbidden {
		t.Fatalf("authorize: %d", status)
	}
	status, body, _, _ = harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1)})
	if status != http.StatusForbidden || !strings.Contains(body, "opted_out") {
		t.Fatalf("upload with an earlier token: %d %s", status, body)
	}
	// A wrong token is still a 401: the opt-out says nothing without
	// credentials.
	if status, _, _ := f.write(t, harness.CompositeToken("nope", "c1"), ts(1, ms, "__name__", "cluster_version")); status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", status)
	}
	if status, body, _ := f.write(t, harness.CompositeToken("dev", "c2"), ts(1, ms, "__name__", "cluster_version")); status != http.StatusNoContent {
		t.Fatalf("another installation: %d %s", status, body)
	}
	if n := len(f.fwd.series()); n != 1 {
		t.Fatalf("%d series forwarded, want c2's only", n)
	}
	opt.Set(nil, time.Now())
	if status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version")); status != http.StatusNoContent {
		t.Fatalf("after opting back in: %d %s", status, body)
	}
}

// The console's "why is my metric not arriving?" shows the PII guard's
// verdict with the guard's own detectors.
func TestDiagnoseShowsPIIGuard(t *testing.T) {
	guard, err := privacy.New(privacy.Options{Actions: privacy.Defaults(), Key: []byte("0123456789abcdef"),
		Metrics: map[string]map[privacy.Detector]privacy.Action{"rpc_duration_seconds": {privacy.Email: privacy.Drop}}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Privacy = guard })
	d := f.gw.Diagnose("c1", [][]batch.Label{
		{{Name: "__name__", Value: "cluster_version"}, {Name: "owner", Value: "alice@example.com"}, {Name: "instance", Value: "10.0.0.1:9090"}},
		{{Name: "__name__", Value: "rpc_duration_seconds"}, {Name: "user", Value: "bob@example.com"}},
	})
	verdicts := map[string]string{}
	for _, m := range d.Metrics {
		for _, st := range m.Stages {
			if st.Name == "PII guard" {
				verdicts[m.Name] = st.Verdict + ": " + st.Detail
			}
		}
	}
	if v := verdicts["cluster_version"]; !strings.HasPrefix(v, "warn") || !strings.Contains(v, "owner: email (hash)") || strings.Contains(v, "instance") {
		t.Errorf("cluster_version: %q", v)
	}
	if v := verdicts["rpc_duration_seconds"]; !strings.HasPrefix(v, "drop") || !strings.Contains(v, "user: email (drop)") {
		t.Errorf("rpc_duration_seconds: %q", v)
	}
}

type memDeletions struct{ ids map[string]time.Time }

func (m *memDeletions) Deleted(id string) bool { _, ok := m.ids[id]; return ok }
func (m *memDeletions) RequestDeletion(_ context.Context, id string) (string, time.Time, bool, error) {
	if at, ok := m.ids[id]; ok {
		return "pending", at, false, nil
	}
	m.ids[id] = time.Now()
	return "pending", m.ids[id], true, nil
}

// POST /deletion records an installation's request with its own
// credentials (composite token or JWT); from then on it is 403 deleted,
// asking again answers the same request, and without credentials nothing
// is recorded.
func TestDeletionRequest(t *testing.T) {
	del := &memDeletions{ids: map[string]time.Time{}}
	f := newFixture(t, func(o *Options) { o.Deletions = del })
	ctx := context.Background()
	post := func(bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/deletion", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		io.Copy(b, resp.Body)
		return resp.StatusCode, b.String()
	}
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c2")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(""); code != http.StatusUnauthorized || len(del.ids) != 0 {
		t.Fatalf("no credentials: %d %s", code, body)
	}
	if code, body := post(harness.CompositeToken("nope", "c1")); code != http.StatusUnauthorized || len(del.ids) != 0 {
		t.Fatalf("bad token: %d %s", code, body)
	}
	if code, body := post(harness.CompositeToken("dev", "c1")); code != http.StatusAccepted || !strings.Contains(body, `"created":true`) || !del.Deleted("c1") {
		t.Fatalf("composite token: %d %s", code, body)
	}
	if code, body := post(harness.CompositeToken("dev", "c1")); code != http.StatusAccepted || !strings.Contains(body, `"created":false`) {
		t.Fatalf("again: %d %s", code, body)
	}
	if code, body := post(jwt); code != http.StatusAccepted || !del.Deleted("c2") {
		t.Fatalf("JWT: %d %s", code, body)
	}
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, f.now.UnixMilli(), "__name__", "cluster_version"))
	if status != http.StatusForbidden || !strings.Contains(body, `"reason":"deleted"`) {
		t.Fatalf("write after deletion: %d %s", status, body)
	}
	if status, _, _ := f.write(t, harness.CompositeToken("dev", "c3"), ts(1, f.now.UnixMilli(), "__name__", "cluster_version")); status != http.StatusNoContent {
		t.Fatalf("another installation: %d", status)
	}
}

// GET /explain lists what the PII guard does to the cluster's last upload.
func TestExplainShowsPIIFindings(t *testing.T) {
	guard, err := privacy.New(privacy.Options{Actions: privacy.Defaults(), Key: []byte("0123456789abcdef"), ExemptLabels: []string{"_id"}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.ExplainCacheBytes = 1 << 20; o.Privacy = guard })
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	get := func() string {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/explain?format=text", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	get() // arms the cluster
	if status, body, _, _ := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{
		gauge("cluster_version", 1, "owner", "alice@example.com", "pod", "10.0.0.1")}); status != 200 {
		t.Fatalf("upload %d %s", status, body)
	}
	if out := get(); !strings.Contains(out, "PII guard: owner: email (hash)") || strings.Contains(out, "pod: ip") {
		t.Fatalf("explain:\n%s", out)
	}
}

// TestIdentityOnEveryPath: a series that claims another cluster refuses
// the whole request, with nothing forwarded, wherever it is: kept by the
// allowlist (the pipeline checks it as it strips), last of many kept
// ones, denied by the allowlist, dropped by the PII guard, or without a
// name; the own ID or an empty one passes.
func TestIdentityOnEveryPath(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Privacy = ingestGuard(t) })
	ms := f.now.UnixMilli()
	ok := ts(1, ms, "__name__", "cluster_version", "type", "current")
	for _, c := range []struct {
		name   string
		series []prompb.TimeSeries
		want   int
	}{
		{"kept", []prompb.TimeSeries{ts(1, ms, "__name__", "cluster_version", "_id", "c2")}, http.StatusBadRequest},
		{"kept, last", []prompb.TimeSeries{ok, ts(2, ms, "__name__", "cluster_version", "_id", "c2", "type", "other")}, http.StatusBadRequest},
		{"kept, behind an empty _id", []prompb.TimeSeries{ok, ts(2, ms, "__name__", "cluster_version", "_id", "", "_id", "c2")}, http.StatusBadRequest},
		{"denied", []prompb.TimeSeries{ok, ts(2, ms, "__name__", "not_allowed", "_id", "c2")}, http.StatusBadRequest},
		{"dropped by the guard", []prompb.TimeSeries{ok, ts(2, ms, "__name__", "rpc_duration_seconds", "_id", "c2", "user", "bob@example.com")}, http.StatusBadRequest},
		{"without a name", []prompb.TimeSeries{ok, ts(2, ms, "_id", "c2", "job", "x")}, http.StatusBadRequest},
		{"own", []prompb.TimeSeries{ok, ts(2, ms, "__name__", "cluster_version", "_id", "c1", "type", "other")}, http.StatusNoContent},
	} {
		f.fwd.reqs = nil
		status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), c.series...)
		if status != c.want {
			t.Fatalf("%s: status %d (%s), want %d", c.name, status, body, c.want)
		}
		if c.want != http.StatusNoContent {
			if !strings.Contains(body, `_id=\"c2\"`) {
				t.Errorf("%s: answer %q does not name the claim", c.name, body)
			}
			if got := f.fwd.series(); len(got) != 0 {
				t.Errorf("%s: forwarded %v", c.name, got)
			}
		}
	}
}

// A request is logged at debug level only with DebugRequests: a line the
// level filter would drop is not built.
func TestDebugRequests(t *testing.T) {
	for _, on := range []bool{false, true} {
		var buf syncBuffer
		f := newFixture(t, func(o *Options) {
			o.Logger = log.NewLogfmtLogger(&buf)
			o.DebugRequests = on
		})
		ms := f.now.UnixMilli()
		if status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version")); status != http.StatusNoContent {
			t.Fatalf("status %d: %s", status, body)
		}
		if logged := strings.Contains(buf.String(), "handler=receive"); logged != on {
			t.Fatalf("DebugRequests %v: request logged %v\n%s", on, logged, buf.String())
		}
	}
}

// ingestGuard is the guard of the ingest tests: the default actions, an
// e-mail address in rpc_duration_seconds drops the series, and the cluster
// ID and the stripped labels are exempt.
func ingestGuard(t *testing.T) *privacy.Guard {
	t.Helper()
	guard, err := privacy.New(privacy.Options{
		Actions:      privacy.Defaults(),
		Metrics:      map[string]map[privacy.Detector]privacy.Action{"rpc_duration_seconds": {privacy.Email: privacy.Drop}},
		Key:          []byte("0123456789abcdef"),
		ExemptLabels: []string{"_id", "instance", "pod"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return guard
}
