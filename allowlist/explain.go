package allowlist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/telegate/telegate/batch"
)

// Review guidance for cardinality: series a cluster sends per metric and
// per owning component (team), after the gateway strips labels.
const (
	DefaultMaxSeriesPerMetric = 10
	DefaultMaxSeriesPerOwner  = 10
)

// ExplainOptions configure Explain.
type ExplainOptions struct {
	// DropLabels are the labels the gateway strips; nil means
	// DefaultDropLabels.
	DropLabels []string
	// MaxSeriesPerMetric and MaxSeriesPerOwner are the guidance series
	// counts are checked against; 0 means the defaults.
	MaxSeriesPerMetric int
	MaxSeriesPerOwner  int
	// PII, when set, returns what the PII guard finds in a series'
	// labels ("label: detector (action)" each); the report lists them
	// per metric for the series the allowlist keeps.
	PII func(ls []batch.Label) []string
}

// EntryRef identifies an allowlist entry in a report.
type EntryRef struct {
	Line     int      `json:"line"`
	Selector string   `json:"selector"`
	Owners   []string `json:"owners"`
}

// MetricReport is what the gateway would do with the series of one metric
// name.
type MetricReport struct {
	Name string `json:"name"`
	// Series is the number of input series with this name; Allowed of them
	// pass the allowlist, Denied do not.
	Series  int `json:"series"`
	Allowed int `json:"allowed"`
	Denied  int `json:"denied"`
	// Stored is the number of distinct allowed series once the gateway has
	// stripped its labels: what long-term storage keeps per cluster.
	// Collisions = Allowed - Stored series are dropped as duplicates.
	Stored     int `json:"stored"`
	Collisions int `json:"collisions"`
	// AllowedBy are the entries that allow its series (the first matching
	// entry of each series, as the gateway decides), in file order.
	AllowedBy []EntryRef `json:"allowed_by,omitempty"`
	// DenyReason says why the first denied series (DeniedExample) is
	// denied: no entry names the metric, or which matcher of each entry
	// naming it rejects the series.
	DenyReason    string `json:"deny_reason,omitempty"`
	DeniedExample string `json:"denied_example,omitempty"`
	// StrippedLabels are the labels the gateway strips that some series of
	// the metric carry, sorted.
	StrippedLabels []string `json:"stripped_labels,omitempty"`
	// PersonalData are label names of its series that suggest personal
	// data (PersonalDataLabel), sorted.
	PersonalData []string `json:"personal_data,omitempty"`
	// PIIFindings are what the PII guard does to its allowed series'
	// label values ("label: detector (action)"), sorted; with
	// ExplainOptions.PII only.
	PIIFindings []string `json:"pii_findings,omitempty"`
	// CollisionExamples are up to three stored series that several input
	// series collapse into, each followed by how many.
	CollisionExamples []string `json:"collision_examples,omitempty"`
	// OverGuidance is set when Stored exceeds the series-per-metric
	// guidance.
	OverGuidance bool `json:"over_guidance"`
}

// EntryReport is the cardinality of one allowlist entry.
type EntryReport struct {
	EntryRef
	// Matched is the number of input series the selector matches, whether
	// or not an earlier entry allows them first.
	Matched int `json:"matched"`
	// Allowed is the number of series this entry allows (first match),
	// Stored how many distinct series remain after stripping, Metrics the
	// number of metric names among them.
	Allowed int `json:"allowed"`
	Stored  int `json:"stored"`
	Metrics int `json:"metrics"`
	// OverGuidance is set when Stored exceeds the series-per-metric
	// guidance times the number of metrics (at least one).
	OverGuidance bool `json:"over_guidance"`
}

// OwnerReport totals the series a component's entries allow.
type OwnerReport struct {
	Owner        string `json:"owner"`
	Metrics      int    `json:"metrics"`
	Stored       int    `json:"stored"`
	OverGuidance bool   `json:"over_guidance"`
}

// Report is the result of Explain.
type Report struct {
	File               string   `json:"file"`
	Hash               string   `json:"hash"`
	DropLabels         []string `json:"drop_labels"`
	MaxSeriesPerMetric int      `json:"max_series_per_metric"`
	MaxSeriesPerOwner  int      `json:"max_series_per_owner"`
	// Totals over all input series.
	Series     int `json:"series"`
	Allowed    int `json:"allowed"`
	Stored     int `json:"stored"`
	Collisions int `json:"collisions"`
	// Metrics are sorted by name, Entries in file order, Owners by name.
	Metrics []MetricReport `json:"metrics"`
	Entries []EntryReport  `json:"entries"`
	Owners  []OwnerReport  `json:"owners"`
}

// Metric returns the report of the named metric, or nil.
func (r *Report) Metric(name string) *MetricReport {
	i := sort.Search(len(r.Metrics), func(i int) bool { return r.Metrics[i].Name >= name })
	if i < len(r.Metrics) && r.Metrics[i].Name == name {
		return &r.Metrics[i]
	}
	return nil
}

// Explain reports what the gateway would do with the given series (for
// example a cluster's upload, or everything a Prometheus holds for the
// allowlisted selectors): per metric, whether and by which entry it is
// allowed or why not, which labels stripping removes and which series then
// collide, and how the series counts compare with the guidance per
// metric, per entry and per owner. Stripping follows the gateway: the
// DropLabels and every empty-valued label are removed. Labels need not be
// sorted. Explain does not modify series.
func Explain(a *Allowlist, series [][]batch.Label, opts ExplainOptions) *Report {
	if opts.DropLabels == nil {
		opts.DropLabels = DefaultDropLabels
	}
	if opts.MaxSeriesPerMetric <= 0 {
		opts.MaxSeriesPerMetric = DefaultMaxSeriesPerMetric
	}
	if opts.MaxSeriesPerOwner <= 0 {
		opts.MaxSeriesPerOwner = DefaultMaxSeriesPerOwner
	}
	r := &Report{
		File:               a.File(),
		Hash:               a.Hash(),
		DropLabels:         opts.DropLabels,
		MaxSeriesPerMetric: opts.MaxSeriesPerMetric,
		MaxSeriesPerOwner:  opts.MaxSeriesPerOwner,
		Series:             len(series),
	}
	type metricAcc struct {
		rep       MetricReport
		entries   map[int]bool
		stripped  map[string]bool
		personal  map[string]bool
		pii       map[string]bool
		storedCnt map[string]int // stored key -> input series
		order     []string       // stored keys in first-seen order
	}
	type entryAcc struct {
		stored  map[string]bool
		metrics map[string]bool
	}
	metrics := map[string]*metricAcc{}
	entries := make([]entryAcc, len(a.Entries))
	for i := range entries {
		entries[i] = entryAcc{stored: map[string]bool{}, metrics: map[string]bool{}}
	}
	r.Entries = make([]EntryReport, len(a.Entries))
	for i := range a.Entries {
		r.Entries[i].EntryRef = ref(&a.Entries[i])
	}
	drop := map[string]bool{}
	for _, d := range opts.DropLabels {
		drop[d] = true
	}
	allStored := map[string]bool{}

	for _, ls := range series {
		name := lookup(ls, labels.MetricName)
		m := metrics[name]
		if m == nil {
			m = &metricAcc{
				rep:       MetricReport{Name: name},
				entries:   map[int]bool{},
				stripped:  map[string]bool{},
				personal:  map[string]bool{},
				pii:       map[string]bool{},
				storedCnt: map[string]int{},
			}
			metrics[name] = m
		}
		m.rep.Series++
		for _, l := range ls {
			if drop[l.Name] && l.Value != "" {
				m.stripped[l.Name] = true
			}
			if l.Name != labels.MetricName && PersonalDataLabel(l.Name) {
				m.personal[l.Name] = true
			}
		}
		for i := range a.Entries {
			if a.matchEntry(i, name, ls) {
				r.Entries[i].Matched++
			}
		}
		i, ok := a.Match(ls)
		if !ok {
			m.rep.Denied++
			if m.rep.DeniedExample == "" {
				m.rep.DeniedExample = formatSeries(ls, nil)
				m.rep.DenyReason = a.denyReason(name, ls)
			}
			continue
		}
		r.Allowed++
		m.rep.Allowed++
		m.entries[i] = true
		if opts.PII != nil {
			for _, f := range opts.PII(ls) {
				m.pii[f] = true
			}
		}
		key := formatSeries(ls, drop)
		if m.storedCnt[key] == 0 {
			m.order = append(m.order, key)
		}
		m.storedCnt[key]++
		allStored[key] = true
		r.Entries[i].Allowed++
		entries[i].stored[key] = true
		entries[i].metrics[name] = true
	}
	r.Stored = len(allStored)
	r.Collisions = r.Allowed - r.Stored

	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := metrics[n]
		rep := m.rep
		rep.Stored = len(m.storedCnt)
		rep.Collisions = rep.Allowed - rep.Stored
		rep.OverGuidance = rep.Stored > opts.MaxSeriesPerMetric
		ids := make([]int, 0, len(m.entries))
		for i := range m.entries {
			ids = append(ids, i)
		}
		sort.Ints(ids)
		for _, i := range ids {
			rep.AllowedBy = append(rep.AllowedBy, ref(&a.Entries[i]))
		}
		rep.StrippedLabels = sortedKeys(m.stripped)
		rep.PersonalData = sortedKeys(m.personal)
		if len(m.pii) > 0 {
			rep.PIIFindings = sortedKeys(m.pii)
		}
		for _, k := range m.order {
			if c := m.storedCnt[k]; c > 1 && len(rep.CollisionExamples) < 3 {
				rep.CollisionExamples = append(rep.CollisionExamples, fmt.Sprintf("%s (from %d series)", k, c))
			}
		}
		r.Metrics = append(r.Metrics, rep)
	}

	type ownerAcc struct {
		metrics map[string]bool
		stored  int
	}
	owners := map[string]*ownerAcc{}
	for i := range r.Entries {
		e := &r.Entries[i]
		e.Stored = len(entries[i].stored)
		e.Metrics = len(entries[i].metrics)
		e.OverGuidance = e.Stored > opts.MaxSeriesPerMetric*max(1, e.Metrics)
		for _, o := range ownersOf(&a.Entries[i]) {
			acc := owners[o]
			if acc == nil {
				acc = &ownerAcc{metrics: map[string]bool{}}
				owners[o] = acc
			}
			acc.stored += e.Stored
			for n := range entries[i].metrics {
				acc.metrics[n] = true
			}
		}
	}
	for _, o := range sortedKeys(owners) {
		acc := owners[o]
		r.Owners = append(r.Owners, OwnerReport{Owner: o, Metrics: len(acc.metrics), Stored: acc.stored, OverGuidance: acc.stored > opts.MaxSeriesPerOwner})
	}
	return r
}

func ref(e *Entry) EntryRef {
	return EntryRef{Line: e.Line, Selector: e.Selector, Owners: e.Owners}
}

func ownersOf(e *Entry) []string {
	if len(e.Owners) == 0 {
		return []string{"(no owner)"}
	}
	return e.Owners
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// matchEntry reports whether entry i alone matches the series.
func (a *Allowlist) matchEntry(i int, name string, ls []batch.Label) bool {
	e := &a.Entries[i]
	if e.Names != nil && !contains(e.Names, name) {
		return false
	}
	return matchAll(a.rules[i].rest, ls)
}

// nameCandidates returns the entries whose __name__ matchers accept name.
func (a *Allowlist) nameCandidates(name string) []int {
	var out []int
	for i := range a.Entries {
		e := &a.Entries[i]
		if e.Names != nil {
			if contains(e.Names, name) {
				out = append(out, i)
			}
			continue
		}
		ok := true
		for _, m := range a.rules[i].name {
			if !m.Matches(name) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// denyReason explains why no entry allows a series named name.
func (a *Allowlist) denyReason(name string, ls []batch.Label) string {
	cand := a.nameCandidates(name)
	if len(cand) == 0 {
		return fmt.Sprintf("no entry allows the metric name %q", name)
	}
	var parts []string
	for _, i := range cand {
		for _, m := range a.rules[i].rest {
			v, present := lookupOK(ls, m.Name)
			if m.Matches(v) {
				continue
			}
			has := fmt.Sprintf("the series has %s=%q", m.Name, v)
			if !present {
				has = fmt.Sprintf("the series has no %s label", m.Name)
			}
			parts = append(parts, fmt.Sprintf("line %d %s needs %s, %s", a.Entries[i].Line, a.Entries[i].Selector, m, has))
			break
		}
	}
	return strings.Join(parts, "; ")
}

func lookupOK(ls []batch.Label, name string) (string, bool) {
	for i := range ls {
		if ls[i].Name == name {
			return ls[i].Value, true
		}
	}
	return "", false
}

// formatSeries formats labels as name{a="1", b="2"} with labels sorted,
// leaving out the labels in drop and empty-valued ones when drop is not
// nil (the gateway's stripping).
func formatSeries(ls []batch.Label, drop map[string]bool) string {
	name := ""
	rest := make([]batch.Label, 0, len(ls))
	seen := map[string]bool{}
	for _, l := range ls {
		if seen[l.Name] {
			continue
		}
		seen[l.Name] = true
		if l.Name == labels.MetricName {
			name = l.Value
			continue
		}
		if drop != nil && (drop[l.Name] || l.Value == "") {
			continue
		}
		rest = append(rest, l)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	b := &strings.Builder{}
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range rest {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people: a summary, one block per metric
// (allowed or not and by which entry, why not, stripped labels,
// collisions, personal data, guidance), then the series count of every
// entry and every owner against the guidance.
func (r *Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	metricsAllowed := 0
	for i := range r.Metrics {
		if r.Metrics[i].Allowed > 0 {
			metricsAllowed++
		}
	}
	fmt.Fprintf(b, "Allowlist %s (hash %s), %s.\n", r.File, r.Hash, plural(len(r.Entries), "entry"))
	fmt.Fprintf(b, "Input: %s of %s. Allowed: %s of %s. Stored: %s after stripping %s",
		plural(r.Series, "series"), plural(len(r.Metrics), "metric"), plural(r.Allowed, "series"), plural(metricsAllowed, "metric"),
		plural(r.Stored, "series"), strings.Join(r.DropLabels, ", "))
	if r.Collisions > 0 {
		fmt.Fprintf(b, " (%d lost to collisions)", r.Collisions)
	}
	fmt.Fprintf(b, ".\nGuidance: at most %d series per metric and %d per owner.\n", r.MaxSeriesPerMetric, r.MaxSeriesPerOwner)

	fmt.Fprintf(b, "\nMETRICS\n")
	for i := range r.Metrics {
		m := &r.Metrics[i]
		name := m.Name
		if name == "" {
			name = "(no __name__)"
		}
		switch {
		case m.Denied == 0:
			fmt.Fprintf(b, "%s: allowed, %s, %d stored\n", name, plural(m.Series, "series"), m.Stored)
		case m.Allowed > 0:
			fmt.Fprintf(b, "%s: partly allowed, %d of %s, %d stored\n", name, m.Allowed, plural(m.Series, "series"), m.Stored)
		default:
			fmt.Fprintf(b, "%s: denied, %s\n", name, plural(m.Series, "series"))
		}
		for _, e := range m.AllowedBy {
			fmt.Fprintf(b, "  allowed by %s:%d %s (%s)\n", r.File, e.Line, e.Selector, ownersText(e.Owners))
		}
		if m.Denied > 0 {
			if m.Allowed > 0 {
				fmt.Fprintf(b, "  %d denied, e.g. %s\n", m.Denied, m.DeniedExample)
			}
			fmt.Fprintf(b, "  why: %s\n", m.DenyReason)
		}
		if len(m.StrippedLabels) > 0 {
			fmt.Fprintf(b, "  strips: %s\n", strings.Join(m.StrippedLabels, ", "))
		}
		if m.Collisions > 0 {
			fmt.Fprintf(b, "  collisions: %d series dropped as duplicates once stripped: %s\n", m.Collisions, strings.Join(m.CollisionExamples, "; "))
		}
		if len(m.PersonalData) > 0 {
			fmt.Fprintf(b, "  personal data? labels %s\n", strings.Join(m.PersonalData, ", "))
		}
		if len(m.PIIFindings) > 0 {
			fmt.Fprintf(b, "  PII guard: %s\n", strings.Join(m.PIIFindings, "; "))
		}
		if m.OverGuidance {
			fmt.Fprintf(b, "  over guidance: %d stored series, guidance is at most %d per metric\n", m.Stored, r.MaxSeriesPerMetric)
		}
	}

	fmt.Fprintf(b, "\nENTRIES\n")
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "LINE\tMATCHED\tALLOWED\tSTORED\tGUIDANCE\tSELECTOR\tOWNERS\n")
	for i := range r.Entries {
		e := &r.Entries[i]
		g := "ok"
		switch {
		case e.Matched == 0:
			g = "no series"
		case e.Allowed == 0:
			g = "shadowed"
		case e.OverGuidance:
			g = fmt.Sprintf("OVER (%d)", r.MaxSeriesPerMetric*max(1, e.Metrics))
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%s\n", e.Line, e.Matched, e.Allowed, e.Stored, g, e.Selector, ownersText(e.Owners))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(b, "\nOWNERS\n")
	tw = tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "OWNER\tMETRICS\tSTORED\tGUIDANCE\n")
	for _, o := range r.Owners {
		g := "ok"
		if o.OverGuidance {
			g = fmt.Sprintf("OVER (%d)", r.MaxSeriesPerOwner)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", o.Owner, o.Metrics, o.Stored, g)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ownersText(o []string) string {
	if len(o) == 0 {
		return "no owners"
	}
	return strings.Join(o, ", ")
}

// SeriesFromText parses the Prometheus text exposition format (what
// /metrics and /federate serve) into one label set per sample line, in
// input order; histograms and summaries appear as the series their lines
// name (x_bucket{le=...}, x_sum, x_count, x{quantile=...}). Identical
// label sets are kept once.
func SeriesFromText(data []byte) ([][]batch.Label, error) {
	p := textparse.NewPromParser(data, labels.NewSymbolTable(), false)
	var out [][]batch.Label
	seen := map[string]bool{}
	var lset labels.Labels
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse text exposition format: %w", err)
		}
		if et != textparse.EntrySeries {
			continue
		}
		p.Labels(&lset)
		key := lset.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		ls := make([]batch.Label, 0, lset.Len())
		lset.Range(func(l labels.Label) {
			ls = append(ls, batch.Label{Name: l.Name, Value: l.Value})
		})
		out = append(out, ls)
	}
}
