package gateway

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/privacy"
	"github.com/telegate/telegate/relabel"
)

// Stage verdicts of a Diagnosis.
const (
	VerdictPass = "pass" // the stage keeps the series as they are
	VerdictInfo = "info" // the stage changes them, as intended (e.g. strips labels)
	VerdictWarn = "warn" // kept, but something needs a look
	VerdictDrop = "drop" // the stage drops them (or refuses the request)
)

// Stage is one step of the data flow and what it does to a metric.
type Stage struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"`
	Detail  string `json:"detail"`
}

// MetricDiagnosis is what the gateway would do with one metric's series.
type MetricDiagnosis struct {
	Name    string  `json:"name"`
	Series  int     `json:"series"`
	Verdict string  `json:"verdict"` // the worst stage's
	Summary string  `json:"summary"`
	Stages  []Stage `json:"stages"`
}

// Diagnosis answers "why is my metric not arriving?" for an installation
// and a set of series, stage by stage (authentication, allowlist, label
// stripping, personal data, validation and relabeling, timestamps,
// budgets), from the gateway's live configuration: the allowlist's own
// explain report (allowlist.Explain) and the relabel pipeline itself run
// on a copy of the series, never a second implementation.
type Diagnosis struct {
	Installation string `json:"installation"`
	// Known is whether the gateway has seen an authenticated request of
	// the installation (since start, or since it was evicted).
	Known     bool                  `json:"known"`
	Activity  *InstallationActivity `json:"activity,omitempty"`
	Allowlist AllowlistVersion      `json:"allowlist"`
	Metrics   []MetricDiagnosis     `json:"metrics"`
	// Report is the allowlist's explain report of the series.
	Report *allowlist.Report `json:"report"`
}

// MaxDiagnoseSeries bounds the series Diagnose looks at.
const MaxDiagnoseSeries = 10000

// Diagnose reports what the gateway would do, stage by stage, with
// series sent by installation cluster (empty: unknown). Each series gets
// one sample at the gateway's current time. Series past
// MaxDiagnoseSeries are ignored. Diagnose does not modify series.
func (g *Gateway) Diagnose(cluster string, series [][]batch.Label) *Diagnosis {
	if len(series) > MaxDiagnoseSeries {
		series = series[:MaxDiagnoseSeries]
	}
	now := g.opts.Now()
	al := g.allowlist.Load()
	d := &Diagnosis{Installation: cluster, Allowlist: g.AllowlistVersion(), Metrics: []MetricDiagnosis{}}
	if cluster != "" {
		if a, ok := g.Installation(cluster); ok {
			d.Known, d.Activity = true, &a
		}
	}
	drop := g.opts.Pipeline.DropLabels()
	if al == nil {
		al, _ = allowlist.Parse([]byte("matches: []\n"), "(none)")
	}
	d.Report = allowlist.Explain(al, series, allowlist.ExplainOptions{DropLabels: drop})
	byName := map[string][][]batch.Label{}
	for _, ls := range series {
		n := labelValue(ls, batch.MetricName)
		byName[n] = append(byName[n], ls)
	}
	authn := g.authnStage(cluster, d)
	budgets := g.budgetStage(cluster, d, now)
	for i := range d.Report.Metrics {
		m := &d.Report.Metrics[i]
		md := MetricDiagnosis{Name: m.Name, Series: m.Series}
		md.Stages = append(md.Stages, authn, g.allowlistStage(m, d.Report.File))
		md.Stages = append(md.Stages, strippingStage(m, drop), personalStage(m), g.guardStage(byName[m.Name]))
		md.Stages = append(md.Stages, g.pipelineStages(cluster, byName[m.Name], al, now)...)
		md.Stages = append(md.Stages, budgets)
		md.Verdict, md.Summary = summarize(md.Stages)
		d.Metrics = append(d.Metrics, md)
	}
	return d
}

func labelValue(ls []batch.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func (g *Gateway) authnStage(cluster string, d *Diagnosis) Stage {
	st := Stage{Name: "authentication"}
	switch {
	case cluster == "":
		st.Verdict, st.Detail = VerdictInfo, "no installation given: only the installation-independent stages are checked"
	case checkClusterID(cluster) != nil:
		st.Verdict, st.Detail = VerdictDrop, checkClusterID(cluster).Error()
	case !d.Known:
		st.Verdict, st.Detail = VerdictWarn, "this gateway has not answered an authenticated request of this installation since it started (or forgot it): check the client's token and cluster ID; a wrong one is answered 401 or 403 before the installation is known"
	default:
		a := d.Activity
		st.Verdict = VerdictPass
		st.Detail = fmt.Sprintf("authenticated requests seen, the last at %s", a.LastSeen.Format(time.RFC3339))
		for _, e := range a.Errors {
			if e.Status == 401 || e.Status == 403 {
				st.Verdict = VerdictWarn
				st.Detail += fmt.Sprintf("; answered %d (%s) at %s: %s", e.Status, e.Reason, e.At.Format(time.RFC3339), e.Message)
				break
			}
		}
	}
	return st
}

func (g *Gateway) allowlistStage(m *allowlist.MetricReport, file string) Stage {
	st := Stage{Name: "allowlist"}
	var by []string
	for _, e := range m.AllowedBy {
		owners := strings.Join(e.Owners, ", ")
		if owners == "" {
			owners = "no owners"
		}
		by = append(by, fmt.Sprintf("%s:%d %s (%s)", file, e.Line, e.Selector, owners))
	}
	switch {
	case m.Denied == 0:
		st.Verdict, st.Detail = VerdictPass, "allowed by "+strings.Join(by, "; ")
	case g.opts.AllowlistShadow:
		st.Verdict, st.Detail = VerdictWarn, fmt.Sprintf("%d of %d series not allowlisted (%s), forwarded because the allowlist runs in shadow mode (allowlist.enforce: false)", m.Denied, m.Series, m.DenyReason)
	case m.Allowed > 0:
		st.Verdict, st.Detail = VerdictWarn, fmt.Sprintf("%d of %d series allowed by %s; %d dropped, e.g. %s: %s", m.Allowed, m.Series, strings.Join(by, "; "), m.Denied, m.DeniedExample, m.DenyReason)
	default:
		st.Verdict, st.Detail = VerdictDrop, m.DenyReason
	}
	return st
}

func strippingStage(m *allowlist.MetricReport, drop []string) Stage {
	st := Stage{Name: "label stripping", Verdict: VerdictPass, Detail: "carries none of the labels the gateway strips (" + strings.Join(drop, ", ") + ")"}
	if len(m.StrippedLabels) > 0 {
		st.Verdict, st.Detail = VerdictInfo, "strips "+strings.Join(m.StrippedLabels, ", ")+": they never leave the gateway"
	}
	if m.Collisions > 0 {
		st.Verdict = VerdictWarn
		st.Detail += fmt.Sprintf("; %d series become duplicates once stripped and are dropped: %s", m.Collisions, strings.Join(m.CollisionExamples, "; "))
	}
	return st
}

func personalStage(m *allowlist.MetricReport) Stage {
	if len(m.PersonalData) == 0 {
		return Stage{Name: "personal data", Verdict: VerdictPass, Detail: "no label name suggests personal data"}
	}
	return Stage{Name: "personal data", Verdict: VerdictWarn, Detail: "label names that suggest personal data: " + strings.Join(m.PersonalData, ", ")}
}

// guardStage says what the PII guard does to the metric's series: the
// values it finds, by label and detector, and its action (Guard.Inspect,
// the guard's own detectors). Stripped labels are not its business.
func (g *Gateway) guardStage(series [][]batch.Label) Stage {
	st := Stage{Name: "PII guard", Verdict: VerdictPass}
	if !g.opts.Privacy.Enabled() {
		st.Detail = "off"
		return st
	}
	seen := map[string]bool{}
	var found []string
	dropped := false
	for _, ls := range series {
		for _, f := range g.guardFindings(ls) {
			k := findingText(f)
			if !seen[k] {
				seen[k] = true
				found = append(found, k)
			}
			dropped = dropped || f.Action == privacy.Drop
		}
	}
	switch {
	case len(found) == 0:
		st.Detail = "no label value looks like personal data"
	case dropped:
		st.Verdict = VerdictDrop
		st.Detail = "series with personal data are dropped: " + strings.Join(found, "; ")
	default:
		st.Verdict = VerdictWarn
		st.Detail = "label values that look like personal data are replaced: " + strings.Join(found, "; ")
	}
	return st
}

// pipelineStages runs the relabel pipeline on a copy of the metric's
// series the allowlist keeps, one sample each at now.
func (g *Gateway) pipelineStages(cluster string, series [][]batch.Label, al *allowlist.Allowlist, now time.Time) []Stage {
	valid := Stage{Name: "validation and relabeling"}
	maxAge, maxSkew := g.opts.Pipeline.TimestampBounds()
	ts := Stage{Name: "timestamps", Verdict: VerdictPass, Detail: timestampPolicy(maxAge, maxSkew, g.opts.ClientTimestamps)}
	b := &batch.Batch{}
	for _, ls := range series {
		if _, ok := al.Match(ls); !ok && !g.opts.AllowlistShadow {
			continue
		}
		b.Series = append(b.Series, batch.Series{Labels: append([]batch.Label(nil), ls...), Samples: []batch.Sample{{Timestamp: now.UnixMilli(), Value: 1}}})
	}
	if len(b.Series) == 0 {
		valid.Verdict, valid.Detail = VerdictInfo, "not reached: the allowlist drops every series"
		return []Stage{valid, ts}
	}
	id := cluster
	if id == "" {
		id = "installation"
	}
	for i := range b.Series {
		if err := g.opts.Pipeline.CheckIdentity(&b.Series[i], id); err != nil && cluster != "" {
			valid.Verdict, valid.Detail = VerdictDrop, err.Error()+" (the whole request is refused with 400)"
			return []Stage{valid, ts}
		}
	}
	n := len(b.Series)
	st, err := g.opts.Pipeline.Process(b, id, now, true, &relabel.Scratch{})
	var parts []string
	valid.Verdict = VerdictPass
	if k := st.Series[relabel.ReasonRelabel]; k > 0 {
		parts = append(parts, fmt.Sprintf("relabel_configs drop %d of %d series", k, n))
		valid.Verdict = VerdictWarn
		if k == n {
			valid.Verdict = VerdictDrop
		}
	}
	if err != nil {
		parts = append(parts, fmt.Sprintf("%d series invalid (dropped, the request answered 400): %s", st.Series[relabel.ReasonInvalid], err))
		valid.Verdict = VerdictWarn
		if st.Series[relabel.ReasonInvalid] >= n {
			valid.Verdict = VerdictDrop
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d series valid (label count, name and value lengths, metric name)", len(b.Series)))
	}
	valid.Detail = strings.Join(parts, "; ")
	return []Stage{valid, ts}
}

func timestampPolicy(maxAge, maxSkew time.Duration, client bool) string {
	var parts []string
	if maxAge > 0 {
		parts = append(parts, "remote write samples older than "+maxAge.String()+" are dropped (too_old)")
	}
	if maxSkew > 0 {
		parts = append(parts, "more than "+maxSkew.String()+" in the future are dropped (too_new)")
	}
	if len(parts) == 0 {
		parts = append(parts, "remote write timestamps are not bounded")
	}
	if client {
		parts = append(parts, "/upload keeps the client's timestamps")
	} else {
		parts = append(parts, "/upload samples get the gateway's clock")
	}
	return strings.Join(parts, "; ")
}

func (g *Gateway) budgetStage(cluster string, d *Diagnosis, now time.Time) Stage {
	st := Stage{Name: "budgets", Verdict: VerdictPass}
	b := g.opts.Budgets.Budget(cluster, now)
	var parts []string
	if b.ActiveSeries.Max > 0 {
		parts = append(parts, fmt.Sprintf("at most %d active series per %s (%s)", b.ActiveSeries.Max, b.ActiveSeries.Window, enforced(b.ActiveSeries.Enforce)))
	}
	if b.SamplesRate.PerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%g samples/s, burst %d (%s)", b.SamplesRate.PerSecond, b.SamplesRate.Burst, enforced(b.SamplesRate.Enforce)))
	}
	if len(parts) == 0 {
		parts = append(parts, "no series or samples budget")
	}
	if a := d.Activity; a != nil {
		if n := a.Dropped[reasonBudget]; n > 0 {
			st.Verdict = VerdictWarn
			parts = append(parts, fmt.Sprintf("%d of its samples were dropped over the active-series budget", n))
		}
		for _, e := range a.Errors {
			if e.Status == 429 {
				st.Verdict = VerdictWarn
				parts = append(parts, fmt.Sprintf("answered 429 (%s) at %s: %s", e.Reason, e.At.Format(time.RFC3339), e.Message))
				break
			}
		}
	}
	st.Detail = strings.Join(parts, "; ")
	return st
}

func enforced(e bool) string {
	if e {
		return "enforced"
	}
	return "shadow mode"
}

var verdictRank = map[string]int{VerdictPass: 0, VerdictInfo: 1, VerdictWarn: 2, VerdictDrop: 3}

// summarize returns the worst verdict and a sentence saying it.
func summarize(stages []Stage) (string, string) {
	worst := 0
	for i := range stages {
		if verdictRank[stages[i].Verdict] > verdictRank[stages[worst].Verdict] {
			worst = i
		}
	}
	v := stages[worst].Verdict
	switch v {
	case VerdictDrop:
		return v, "not arriving: dropped at " + stages[worst].Name
	case VerdictWarn:
		var names []string
		for _, s := range stages {
			if s.Verdict == VerdictWarn {
				names = append(names, s.Name)
			}
		}
		sort.Strings(names)
		return v, "arriving, with warnings: " + strings.Join(names, ", ")
	}
	return VerdictPass, "arriving"
}
