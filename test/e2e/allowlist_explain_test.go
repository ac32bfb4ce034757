package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/test/e2e/harness"
)

const explainAllowlist = `matches:
# owners: (@telegate/e2e)
# Scrape health of the self job.
- '{__name__="up",job="self"}'
# owners: (@telegate/e2e)
# Request latency buckets by handler: far more series than the guidance.
- '{__name__="prometheus_http_request_duration_seconds_bucket",job="self"}'
# owners: (@telegate/e2e)
# Build information.
- '{__name__="prometheus_build_info",job="self"}'
# owners: (@telegate/e2e-other)
# A job this Prometheus does not have.
- '{__name__="up",job="absent"}'
# owners: (@telegate/e2e-rules)
# A recording rule that kept the pod label: its series collide once stripped.
- '{__name__="cluster:e2e_collision:sum"}'
# owners: (@telegate/e2e-rules)
# A recording rule by user.
- '{__name__="cluster:e2e_logins:sum"}'
`

const explainRules = `groups:
- name: telemetry
  rules:
  - record: cluster:e2e_collision:sum
    expr: label_replace(vector(1), "pod", "a", "", "") or label_replace(vector(2), "pod", "b", "", "")
  - record: cluster:e2e_logins:sum
    expr: label_replace(vector(1), "user", "alice", "", "")
`

// TestAllowlistExplainFromPrometheus runs `telegate allowlist explain
// --from` against a real Prometheus that scrapes itself under two jobs and
// records two rules, and checks the report against PromQL answers from the
// same server.
func TestAllowlistExplainFromPrometheus(t *testing.T) {
	addr := harness.FreeAddr(t)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{
		ListenAddress: addr,
		SelfScrapeJob: "self",
		// A second job scraping the same server: its up series is denied.
		ScrapeConfigs: "- job_name: other\n  static_configs: [{targets: [\"" + addr + "\"]}]\n",
		RuleFiles:     []string{explainRules},
	})
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	list := filepath.Join(dir, "allowlist.yaml")
	if err := os.WriteFile(list, []byte(explainAllowlist), 0o644); err != nil {
		t.Fatal(err)
	}

	prom.QueryEventually(t, `up{job=~"self|other"} == 1`, harness.Len(2), 30*time.Second)
	prom.QueryEventually(t, `cluster:e2e_collision:sum`, harness.Len(2), 30*time.Second)
	prom.QueryEventually(t, `cluster:e2e_logins:sum`, harness.Len(1), 30*time.Second)
	// At least two handlers have served requests (readiness, queries), so
	// the bucket metric is over the guidance of 10 series.
	prom.QueryEventually(t, `count(prometheus_http_request_duration_seconds_bucket{job="self"}) > 10`, harness.Len(1), 30*time.Second)
	countBuckets := func() int {
		v := prom.Query(t, `count(prometheus_http_request_duration_seconds_bucket{job="self"})`)
		if len(v) != 1 {
			t.Fatalf("count = %v", v)
		}
		return int(v[0].Value)
	}
	before := countBuckets()

	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("telegate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	out := run("allowlist", "explain", "--from", prom.URL(), "--format=json",
		"--match", "prometheus_tsdb_head_series", "--match", `{__name__="up"}`, list)
	after := countBuckets()
	var r allowlist.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	up := r.Metric("up")
	if up == nil || up.Series != 2 || up.Allowed != 1 || up.Stored != 1 {
		t.Fatalf("up = %+v", up)
	}
	if !strings.HasPrefix(up.DenyReason, `line 4 {__name__="up",job="self"} needs job="self", the series has job="other"; line 13 `) {
		t.Errorf("up denied because %q", up.DenyReason)
	}
	if len(up.AllowedBy) != 1 || up.AllowedBy[0].Line != 4 || !explainHas(up.StrippedLabels, "instance") {
		t.Errorf("up allowed by %+v, strips %q", up.AllowedBy, up.StrippedLabels)
	}

	b := r.Metric("prometheus_http_request_duration_seconds_bucket")
	if b == nil || b.Series < before || b.Series > after || b.Allowed != b.Series || b.Stored != b.Series || !b.OverGuidance {
		t.Fatalf("buckets = %+v, PromQL counted %d then %d", b, before, after)
	}
	t.Logf("explain --from: %d series, %d allowed, %d stored; %d bucket series (PromQL counted %d, then %d)", r.Series, r.Allowed, r.Stored, b.Series, before, after)
	if e := r.Entries[1]; e.Matched != b.Series || e.Stored != b.Series || !e.OverGuidance {
		t.Errorf("bucket entry = %+v", e)
	}

	if e := r.Entries[3]; e.Line != 13 || e.Matched != 0 {
		t.Errorf("absent job entry = %+v", e)
	}

	coll := r.Metric("cluster:e2e_collision:sum")
	if coll == nil || coll.Allowed != 2 || coll.Stored != 1 || coll.Collisions != 1 || !explainHas(coll.StrippedLabels, "pod") {
		t.Errorf("collision metric = %+v", coll)
	}
	if r.Collisions != 1 {
		t.Errorf("collisions = %d, want 1", r.Collisions)
	}
	if l := r.Metric("cluster:e2e_logins:sum"); l == nil || !explainHas(l.PersonalData, "user") {
		t.Errorf("logins metric = %+v", l)
	}

	// --match explains a metric that is not in the allowlist.
	hs := r.Metric("prometheus_tsdb_head_series")
	if hs == nil || hs.Allowed != 0 || hs.DenyReason != `no entry allows the metric name "prometheus_tsdb_head_series"` {
		t.Errorf("head series = %+v", hs)
	}

	var owners []string
	for _, o := range r.Owners {
		owners = append(owners, o.Owner)
		if o.Owner == "@telegate/e2e" && (!o.OverGuidance || o.Stored != 1+b.Series+1) {
			t.Errorf("owner %+v, want %d stored and over guidance", o, 2+b.Series)
		}
	}
	if strings.Join(owners, ",") != "@telegate/e2e,@telegate/e2e-other,@telegate/e2e-rules" {
		t.Errorf("owners %q", owners)
	}

	// The text report says the same for people.
	txt := string(run("allowlist", "explain", "--from", prom.URL(), "--max-series-per-metric=1000", list))
	for _, want := range []string{
		`up: allowed, 1 series, 1 stored`, // without --match only the allowlist's selectors are queried
		"  allowed by " + list + `:4 {__name__="up",job="self"} (@telegate/e2e)`,
		`cluster:e2e_collision:sum: allowed, 2 series, 1 stored`,
		`  collisions: 1 series dropped as duplicates once stripped: cluster:e2e_collision:sum{} (from 2 series)`,
		`  personal data? labels user`,
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("text report lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "over guidance:") {
		t.Errorf("--max-series-per-metric=1000 still flags a metric:\n%s", txt)
	}

	// Against a server that is not Prometheus, explain fails with a reason.
	cmd := exec.Command(bin, "allowlist", "explain", "--from", "http://"+harness.FreeAddr(t), list)
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "connection refused") {
		t.Errorf("explain against nothing: %v\n%s", err, msg)
	}
}

func explainHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
