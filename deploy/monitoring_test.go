package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardsParse(t *testing.T) {
	files, err := fs.Glob(FS, DashboardsDir+"/*.json")
	if err != nil || len(files) != 2 {
		t.Fatalf("dashboards %v, %v; want the gateway's and the client's", files, err)
	}
	uids := map[string]bool{}
	for _, name := range files {
		data, _ := fs.ReadFile(FS, name)
		var d struct {
			UID    string `json:"uid"`
			Title  string `json:"title"`
			Panels []struct {
				ID         int    `json:"id"`
				Type       string `json:"type"`
				Title      string `json:"title"`
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				GridPos struct{ X, Y, W, H int } `json:"gridPos"`
				Targets []struct {
					Expr  string `json:"expr"`
					RefID string `json:"refId"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.UID == "" || d.Title == "" || uids[d.UID] {
			t.Errorf("%s: uid %q title %q (uids must be set and unique)", name, d.UID, d.Title)
		}
		uids[d.UID] = true
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", name, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
				t.Errorf("%s: panel %q outside the grid: %+v", name, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use the datasource variable", name, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
					t.Errorf("%s: panel %q has an empty target", name, p.Title)
				}
			}
		}
	}
}

// TestQueriesParse: every dashboard and rule expression is valid PromQL,
// and both dashboards cover what the issue asks of them.
func TestQueriesParse(t *testing.T) {
	qs, err := Queries(FS)
	if err != nil {
		t.Fatal(err)
	}
	names, err := MetricNames(FS, qs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// gateway: requests by code, samples in/out/dropped, spool depth,
		// forward latency, budgets hit
		"telegate_http_requests_total", "telegate_samples_received_total", "telegate_samples_forwarded_total",
		"telegate_samples_dropped_total", "telegate_spool_objects", "telegate_spool_bytes",
		"telegate_forward_duration_seconds_bucket", "telegate_limits_refused_requests_total",
		// client: both halves
		"telegate_client_federate_requests_total", "telegate_client_upload_attempts_total",
		"telegate_client_last_success_timestamp_seconds",
	} {
		if len(names[want]) == 0 {
			t.Errorf("no dashboard or rule uses %s", want)
		}
	}
	for name, where := range names {
		if name != "up" && !strings.HasPrefix(name, "telegate_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "go_") {
			t.Errorf("%s (used in %v) is not a metric of the binaries", name, where)
		}
	}
	// The placeholders parse where Grafana puts variables.
	if got := grafanaExpr(`rate(x{job="$job",instance=~"${instance}"}[$__rate_interval])`); got != `rate(x{job="placeholder",instance=~"placeholder"}[5m])` {
		t.Errorf("grafanaExpr = %s", got)
	}
	if got := grafanaExpr(`label_values(telegate_client_enabled{job="$job"}, instance)`); got != `telegate_client_enabled{job="placeholder"}` {
		t.Errorf("label_values = %s", got)
	}
}

var runbookURL = regexp.MustCompile(`^https://github\.com/telegate/telegate/blob/main/(docs/runbooks/([A-Za-z]+)\.md)$`)

// TestAlertsHaveRunbooksAndTests: each alert has a severity, a summary, a
// runbook_url pointing at docs/runbooks/<alert>.md that exists, and a
// promtool test case expecting it to fire; every runbook belongs to an
// alert.
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	groups, err := RuleGroups(FS)
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	testFiles, _ := fs.Glob(FS, RulesDir+"/tests/*.test.yaml")
	for _, f := range testFiles {
		data, _ := fs.ReadFile(FS, f)
		tests.Write(data)
	}
	alerts := map[string]bool{}
	for file, rg := range groups {
		for _, g := range rg.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if alerts[r.Alert] {
					t.Errorf("%s: alert %s defined twice", file, r.Alert)
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("%s: %s severity %q", file, r.Alert, s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: %s lacks summary or description", file, r.Alert)
				}
				m := runbookURL.FindStringSubmatch(r.Annotations["runbook_url"])
				if m == nil || m[2] != r.Alert {
					t.Errorf("%s: %s runbook_url %q, want .../docs/runbooks/%s.md", file, r.Alert, r.Annotations["runbook_url"], r.Alert)
					continue
				}
				body, err := os.ReadFile(path.Join("..", m[1]))
				if err != nil {
					t.Errorf("%s: runbook of %s: %v", file, r.Alert, err)
				} else if !strings.HasPrefix(string(body), "# "+r.Alert+"\n") {
					t.Errorf("%s does not start with # %s", m[1], r.Alert)
				}
				if !regexp.MustCompile(`alertname: ` + r.Alert + `\n\s+exp_alerts:`).MatchString(tests.String()) {
					t.Errorf("no promtool test expects %s to fire", r.Alert)
				}
			}
		}
	}
	if len(alerts) < 10 {
		t.Fatalf("only %d alerts", len(alerts))
	}
	runbooks, _ := os.ReadDir("../docs/runbooks")
	for _, e := range runbooks {
		name := strings.TrimSuffix(e.Name(), ".md")
		if name != "README" && !alerts[name] {
			t.Errorf("docs/runbooks/%s has no alert", e.Name())
		}
	}
}
