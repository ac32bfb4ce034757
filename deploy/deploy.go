package deploy

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// FS holds the manifests, dashboards and rules.
//
//go:embed kubernetes monitoring
var FS embed.FS

// Directories of FS.
const (
	DashboardsDir = "monitoring/dashboards"
	RulesDir      = "monitoring/rules"
)

// Query is one PromQL expression of a dashboard or rule file.
type Query struct {
	// Where names the file and the panel, variable or rule.
	Where string
	// Expr is the expression, with Grafana's variables replaced by
	// placeholders so it parses.
	Expr string
}

var (
	grafanaIntervals = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	grafanaVariables = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\[\[[A-Za-z_][A-Za-z0-9_]*\]\]`)
	labelValuesCall  = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
)

// grafanaExpr turns a Grafana query into PromQL: $__rate_interval and
// friends become 5m, other variables a placeholder label value, and
// label_values(SELECTOR, label) its selector. It returns "" for queries
// without a selector (label_values(label)).
func grafanaExpr(q string) string {
	q = grafanaIntervals.ReplaceAllString(q, "5m")
	q = grafanaVariables.ReplaceAllString(q, "placeholder")
	if m := labelValuesCall.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if strings.HasPrefix(strings.TrimSpace(q), "label_values(") {
		return ""
	}
	return q
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// Queries returns every PromQL expression in the dashboards
// (DashboardsDir/*.json: panel targets and query variables) and the rule
// files (RulesDir/*.rules.yaml) of fsys.
func Queries(fsys fs.FS) ([]Query, error) {
	var out []Query
	dashboards, err := fs.Glob(fsys, DashboardsDir+"/*.json")
	if err != nil {
		return nil, err
	}
	for _, name := range dashboards {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				for i, t := range p.Targets {
					if e := grafanaExpr(t.Expr); e != "" {
						out = append(out, Query{Where: fmt.Sprintf("%s: panel %q target %d", name, p.Title, i), Expr: e})
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				var s string
				if err := json.Unmarshal(v.Query, &s); err != nil {
					return nil, fmt.Errorf("%s: variable %s: query is neither a string nor an object", name, v.Name)
				}
				q.Query = s
			}
			if e := grafanaExpr(q.Query); e != "" {
				out = append(out, Query{Where: fmt.Sprintf("%s: variable %s", name, v.Name), Expr: e})
			}
		}
	}
	groups, err := RuleGroups(fsys)
	if err != nil {
		return nil, err
	}
	for name, rg := range groups {
		for _, g := range rg.Groups {
			for _, r := range g.Rules {
				what := "record " + r.Record
				if r.Alert != "" {
					what = "alert " + r.Alert
				}
				out = append(out, Query{Where: fmt.Sprintf("%s: %s", name, what), Expr: r.Expr})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out, nil
}

// RuleGroups parses and validates every rule file (RulesDir/*.rules.yaml)
// of fsys, by file name.
func RuleGroups(fsys fs.FS) (map[string]*rulefmt.RuleGroups, error) {
	files, err := fs.Glob(fsys, RulesDir+"/*.rules.yaml")
	if err != nil {
		return nil, err
	}
	out := map[string]*rulefmt.RuleGroups{}
	for _, name := range files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		rg, errs := rulefmt.Parse(data, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			return nil, fmt.Errorf("%s: %w", path.Base(name), errs[0])
		}
		out[name] = rg
	}
	return out, nil
}

// MetricNames returns the metric names the queries select, each with the
// places that use it. Names recorded by the rule files themselves are left
// out, and so are selectors without a metric name.
func MetricNames(fsys fs.FS, queries []Query) (map[string][]string, error) {
	recorded := map[string]bool{}
	groups, err := RuleGroups(fsys)
	if err != nil {
		return nil, err
	}
	for _, rg := range groups {
		for _, g := range rg.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
			}
		}
	}
	p := parser.NewParser(parser.Options{})
	out := map[string][]string{}
	for _, q := range queries {
		expr, err := p.ParseExpr(q.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.Where, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				name := vs.Name
				for _, m := range vs.LabelMatchers {
					if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual && name == "" {
						name = m.Value
					}
				}
				if name != "" && !recorded[name] {
					out[name] = append(out[name], q.Where)
				}
			}
			return nil
		})
	}
	return out, nil
}
