package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/test/e2e/harness"
)

func TestActivityRecordsRequests(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	if status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"),
		ts(1, ms, "__name__", "cluster_version", "type", "a"),
		ts(2, ms, "__name__", "not_allowed"),
		ts(3, ms, "__name__", "rpc_duration_seconds", "job", "x"),
	); status != http.StatusNoContent {
		t.Fatalf("status %d: %s", status, body)
	}
	// An error answer: a series claiming another cluster.
	if status, _, _ := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version", "_id", "c2")); status != http.StatusBadRequest {
		t.Fatalf("status %d", status)
	}
	// Unauthenticated: not attributed to anyone.
	f.write(t, harness.CompositeToken("wrong", "c3"), ts(1, ms, "__name__", "cluster_version"))

	a, ok := f.gw.Installation("c1")
	if !ok {
		t.Fatal("c1 unknown")
	}
	if a.Requests != 2 || a.AcceptedSeries != 2 || a.AcceptedSamples != 2 || a.Dropped["allowlist"] != 1 || a.LastReceive.IsZero() || !a.LastUpload.IsZero() {
		t.Fatalf("activity %+v", a)
	}
	if len(a.Errors) != 1 || a.Errors[0].Status != 400 || a.Errors[0].Handler != "receive" || !strings.Contains(a.Errors[0].Message, "c2") {
		t.Fatalf("errors %+v", a.Errors)
	}
	if _, ok := f.gw.Installation("c3"); ok {
		t.Fatal("an unauthenticated request was attributed")
	}
	rules := f.gw.RuleActivity()
	if len(rules) != 3 {
		t.Fatalf("%d rules", len(rules))
	}
	if r := rules[0]; r.Series != 1 || r.Installations != 1 || len(r.RecentNames) != 1 || r.RecentNames[0] != "cluster_version" || r.LastSeen.IsZero() {
		t.Fatalf("rule 0 %+v", r)
	}
	if r := rules[2]; r.Series != 1 || r.RecentNames[0] != "rpc_duration_seconds" {
		t.Fatalf("rule 2 %+v", r)
	}
	if r := rules[1]; r.Series != 0 || r.Installations != 0 || len(r.RecentNames) != 0 {
		t.Fatalf("rule 1 %+v", r)
	}
	fl := f.gw.Fleet(10)
	if fl.Installations != 1 || fl.DroppedTotal["allowlist"] != 1 || fl.Allowlist.Hash == "" || fl.Allowlist.LoadedAt.IsZero() {
		t.Fatalf("fleet %+v", fl)
	}
	if fl.Offenders["allowlist"][0].Metric != "not_allowed" {
		t.Fatalf("offenders %+v", fl.Offenders)
	}
}

func TestActivityRatesAndDownstream(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	for range 3 {
		f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"), ts(1, ms, "__name__", "nope"))
		ms++
	}
	// A gateway 20s old: the rates are over those 20s.
	f.now = f.now.Add(20 * time.Second)
	fl := f.gw.Fleet(10)
	if fl.RateWindow != 20 || fl.AcceptedPerSecond != 3.0/20 || fl.DroppedPerSecond != 3.0/20 || fl.Downstream.Writes != 3 || fl.Downstream.Errors != 0 {
		t.Fatalf("fleet %+v", fl)
	}
	// Later, over the last minute (50 to 60 seconds).
	f.now = f.now.Add(20 * time.Second)
	if fl := f.gw.Fleet(10); fl.RateWindow < 40 || fl.RateWindow > 60 || fl.AcceptedPerSecond != 3/fl.RateWindow {
		t.Fatalf("fleet %+v", fl)
	}
	f.now = f.now.Add(2 * time.Minute) // out of the window
	if fl := f.gw.Fleet(10); fl.AcceptedPerSecond != 0 || fl.Downstream.Writes != 0 {
		t.Fatalf("fleet %+v", fl)
	}
}

func TestActivityBounded(t *testing.T) {
	a := newActivity(640, time.Now())
	now := time.Now()
	for i := range 5000 {
		a.record("receive", 200, &outcome{cluster: fmt.Sprintf("c%d", i)}, now.Add(time.Duration(i)))
	}
	n := 0
	for i := range a.shards {
		n += len(a.shards[i].m)
	}
	if n > 640 {
		t.Fatalf("%d installations kept, cap 640", n)
	}
	// The most recent ones survive.
	s := a.shard("c4999")
	if _, ok := s.m["c4999"]; !ok {
		t.Fatal("the newest installation was evicted")
	}
	// Error messages are bounded.
	a.record("receive", 400, &outcome{cluster: "x", errReason: "r", errMsg: strings.Repeat("é", 10000)}, now)
	for range 10 {
		a.record("upload", 429, &outcome{cluster: "x", errReason: "r", errMsg: "m"}, now)
	}
	r := a.shard("x").m["x"].snapshot("x", true)
	if len(r.Errors) != maxErrorAnswers || r.ErrorCount != 11 || r.Errors[0].Handler != "upload" {
		t.Fatalf("%+v", r)
	}
}

func TestActivityRuleNamesBounded(t *testing.T) {
	var r ruleStats
	for i := range 100 {
		r.addName(fmt.Sprintf("m%d", i), int64(i+1))
	}
	got := map[string]bool{}
	for _, n := range r.names {
		got[n.name] = true
	}
	if len(got) != maxRuleNames || !got["m99"] || got["m0"] {
		t.Fatalf("names %v", got)
	}
}

func TestHyperLogLogEstimate(t *testing.T) {
	var r ruleStats
	now := time.Now()
	period := now.UnixNano() / int64(sketchPeriod)
	for _, n := range []int{1, 10, 1000, 20000} {
		r = ruleStats{}
		for i := range n {
			r.addInstallation(hashOf(fmt.Sprintf("installation-%d", i)), period)
		}
		got := r.installations(now)
		if d := float64(got-n) / float64(n); d > 0.2 || d < -0.2 {
			t.Errorf("%d installations estimated %d", n, got)
		}
	}
	// Older than the hour: forgotten.
	if got := r.installations(now.Add(2 * time.Hour)); got != 0 {
		t.Errorf("estimate %d after two hours", got)
	}
}

func hashOf(s string) uint64 { return maphashString(s) }

func TestRuleStatsSurviveReload(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"))
	al, err := allowlist.Parse([]byte(testAllowlist+"# owners: (@x/y)\n- '{__name__=\"new_one\"}'\n"), "allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.gw.SetAllowlist(al)
	rules := f.gw.RuleActivity()
	if len(rules) != 4 || rules[0].Series != 1 || rules[3].Series != 0 {
		t.Fatalf("%+v", rules)
	}
	if v := f.gw.AllowlistVersion(); v.Hash != al.Hash() || v.Entries != 4 {
		t.Fatalf("%+v", v)
	}
}

func TestDiagnose(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"))
	d := f.gw.Diagnose("c1", [][]batch.Label{
		{{Name: "__name__", Value: "cluster_version"}, {Name: "instance", Value: "a"}},
		{{Name: "__name__", Value: "not_allowed"}},
		{{Name: "__name__", Value: "rpc_duration_seconds"}, {Name: "email", Value: "x"}},
	})
	if !d.Known || len(d.Metrics) != 3 {
		t.Fatalf("%+v", d)
	}
	verdict := func(m MetricDiagnosis, stage string) string {
		for _, s := range m.Stages {
			if s.Name == stage {
				return s.Verdict
			}
		}
		return "missing"
	}
	cv, na, rpc := d.Metrics[0], d.Metrics[1], d.Metrics[2]
	if cv.Name != "cluster_version" || cv.Verdict != VerdictPass || verdict(cv, "label stripping") != VerdictInfo || verdict(cv, "allowlist") != VerdictPass {
		t.Fatalf("%+v", cv)
	}
	if na.Verdict != VerdictDrop || verdict(na, "allowlist") != VerdictDrop || !strings.Contains(na.Summary, "allowlist") {
		t.Fatalf("%+v", na)
	}
	if rpc.Verdict != VerdictWarn || verdict(rpc, "personal data") != VerdictWarn {
		t.Fatalf("%+v", rpc)
	}
	// Unknown installation, invalid series.
	d = f.gw.Diagnose("nobody", [][]batch.Label{{{Name: "__name__", Value: "cluster_version"}, {Name: "x", Value: strings.Repeat("v", 2000)}}})
	m := d.Metrics[0]
	if d.Known || verdict(m, "authentication") != VerdictWarn || verdict(m, "validation and relabeling") != VerdictDrop {
		t.Fatalf("%+v", m)
	}
}

// BenchmarkActivityPerRequest is what the console's tracker adds to one
// request of 1,000 series over 10 allowlist entries: the rule tally per
// series, its flush, and the installation's record; with 10,000
// installations known, in parallel.
func BenchmarkActivityPerRequest(b *testing.B) {
	var src strings.Builder
	src.WriteString("matches:\n")
	for i := range 10 {
		fmt.Fprintf(&src, "- '{__name__=~\"m%d_.*\"}'\n", i)
	}
	al, err := allowlist.Parse([]byte(src.String()), "a.yaml")
	if err != nil {
		b.Fatal(err)
	}
	a := newActivity(0, time.Now())
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("m%d_metric_%d", i%10, i/100)
	}
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("installation-%d", i)
	}
	dropped := map[string]int{"allowlist": 3}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			now := time.Now()
			id := ids[i%len(ids)]
			i++
			t := getRuleTally(len(al.Entries))
			for k, n := range names {
				t.add(k/100, n, 1)
			}
			t.flush(a, al, id, now)
			o := outcome{cluster: id, acceptedSeries: 1000, acceptedSamples: 1000}
			o.setDropped(dropped)
			a.record("receive", 204, &o, now)
		}
	})
}

func TestActivityRecordsUploads(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, _, status, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil || status != 200 {
		t.Fatalf("authorize: %d %v", status, err)
	}
	if status, body, _, err := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1, "type", "current"), gauge("secret", 1)}); err != nil || status != 200 {
		t.Fatalf("upload: %d %q %v", status, body, err)
	}
	// Inside the interval: 429, recorded as an error answer of upload.
	f.now = f.now.Add(time.Minute)
	if status, _, _, _ := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1)}); status != http.StatusTooManyRequests {
		t.Fatalf("second upload: %d", status)
	}
	a, ok := f.gw.Installation("c1")
	if !ok || a.LastAuthorize.IsZero() || a.LastUpload.IsZero() || !a.LastReceive.IsZero() || a.Requests != 3 {
		t.Fatalf("%+v", a)
	}
	if a.AcceptedSamples != 1 || a.Dropped["allowlist"] != 1 || len(a.Errors) != 1 || a.Errors[0].Status != 429 || a.Errors[0].Reason != "upload_interval" || a.Errors[0].Handler != "upload" {
		t.Fatalf("%+v", a)
	}
	d := f.gw.Diagnose("c1", [][]batch.Label{{{Name: "__name__", Value: "cluster_version"}}})
	for _, s := range d.Metrics[0].Stages {
		if s.Name == "budgets" && (s.Verdict != VerdictWarn || !strings.Contains(s.Detail, "429")) {
			t.Fatalf("budget stage %+v", s)
		}
	}
}
