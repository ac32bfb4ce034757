package allowlist

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// MetricState is how an allowlist treats one metric name.
type MetricState struct {
	// Restrictions are what the entries allowing the metric require
	// beyond its name (Entry.Restriction), sorted; "" means every series
	// of the metric is allowed, and is then the only element. For an entry
	// that matches names by pattern, the element is its whole selector.
	Restrictions []string `json:"restrictions"`
	// Owners of those entries, sorted.
	Owners []string `json:"owners"`
	// Lines of those entries, ascending.
	Lines []int `json:"lines"`
}

// MetricChange is one metric whose treatment differs between two
// allowlists. Old is nil for a newly allowed metric, New for a denied one.
type MetricChange struct {
	Name string       `json:"name"`
	Old  *MetricState `json:"old,omitempty"`
	New  *MetricState `json:"new,omitempty"`
}

// PatternChange is an entry matching names by pattern that only one side
// has (compared by its set of matchers).
type PatternChange struct {
	Selector string   `json:"selector"`
	Owners   []string `json:"owners"`
	Line     int      `json:"line"`
}

// DiffResult is what changes between two allowlists, per metric name.
type DiffResult struct {
	OldFile string `json:"old_file"`
	NewFile string `json:"new_file"`
	// Allowed are metrics the old allowlist denies and the new allows.
	Allowed []MetricChange `json:"allowed"`
	// Denied are metrics the old allowlist allows and the new denies.
	Denied []MetricChange `json:"denied"`
	// Changed are metrics both allow, with different restrictions.
	Changed []MetricChange `json:"changed"`
	// OwnersChanged are metrics both allow, with different owners.
	OwnersChanged []MetricChange `json:"owners_changed"`
	// PatternsAdded and PatternsRemoved are name-pattern entries.
	PatternsAdded   []PatternChange `json:"patterns_added"`
	PatternsRemoved []PatternChange `json:"patterns_removed"`
}

// Empty reports whether no metric is treated differently.
func (d *DiffResult) Empty() bool {
	return len(d.Allowed)+len(d.Denied)+len(d.Changed)+len(d.OwnersChanged)+len(d.PatternsAdded)+len(d.PatternsRemoved) == 0
}

// Diff compares two allowlists metric by metric. Every name either side
// lists exactly is looked up in both: a name one side lists and the other
// allows only through a name pattern counts as allowed by both, with the
// pattern as its restriction. Entries matching names by pattern are also
// compared as wholes. Lists are sorted by name or selector.
func Diff(old, new *Allowlist) *DiffResult {
	d := &DiffResult{OldFile: old.File(), NewFile: new.File()}
	names := map[string]bool{}
	for _, a := range []*Allowlist{old, new} {
		for i := range a.Entries {
			for _, n := range a.Entries[i].Names {
				names[n] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		o, nw := metricState(old, n), metricState(new, n)
		c := MetricChange{Name: n, Old: o, New: nw}
		switch {
		case o == nil && nw == nil:
		case o == nil:
			d.Allowed = append(d.Allowed, c)
		case nw == nil:
			d.Denied = append(d.Denied, c)
		default:
			if !equalStrings(o.Restrictions, nw.Restrictions) {
				d.Changed = append(d.Changed, c)
			}
			if !equalStrings(o.Owners, nw.Owners) {
				d.OwnersChanged = append(d.OwnersChanged, c)
			}
		}
	}
	d.PatternsAdded = patternDiff(new, old)
	d.PatternsRemoved = patternDiff(old, new)
	return d
}

// metricState collects the entries of a that may allow metric name, or
// nil if none does.
func metricState(a *Allowlist, name string) *MetricState {
	var st MetricState
	for i := range a.Entries {
		e := &a.Entries[i]
		var r string
		switch {
		case e.Names != nil:
			if !contains(e.Names, name) {
				continue
			}
			r = e.Restriction()
		default:
			ok := true
			for _, m := range e.Matchers {
				if m.Name == labels.MetricName && !m.Matches(name) {
					ok = false
				}
			}
			if !ok {
				continue
			}
			r = e.Selector
		}
		st.Restrictions = append(st.Restrictions, r)
		st.Owners = append(st.Owners, e.Owners...)
		st.Lines = append(st.Lines, e.Line)
	}
	if len(st.Lines) == 0 {
		return nil
	}
	sort.Strings(st.Restrictions)
	st.Restrictions = dedupSorted(st.Restrictions)
	if st.Restrictions[0] == "" {
		st.Restrictions = st.Restrictions[:1]
	}
	sort.Strings(st.Owners)
	st.Owners = dedupSorted(st.Owners)
	if st.Owners == nil {
		st.Owners = []string{}
	}
	return &st
}

// patternDiff returns the pattern entries of a that b lacks.
func patternDiff(a, b *Allowlist) []PatternChange {
	have := map[string]bool{}
	for i := range b.Entries {
		if b.Entries[i].Names == nil {
			have[matcherKey(&b.Entries[i])] = true
		}
	}
	var out []PatternChange
	for i := range a.Entries {
		e := &a.Entries[i]
		if e.Names == nil && !have[matcherKey(e)] {
			out = append(out, PatternChange{Selector: e.Selector, Owners: e.Owners, Line: e.Line})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Selector < out[j].Selector })
	return out
}

// matcherKey identifies an entry by its set of matchers.
func matcherKey(e *Entry) string {
	parts := make([]string, len(e.Matchers))
	for i, m := range e.Matchers {
		parts[i] = m.String()
	}
	sort.Strings(parts)
	return strings.Join(dedupSorted(parts), ",")
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DiffOptions configure WriteMarkdown.
type DiffOptions struct {
	// MaxNewMetricsPerOwner is the review guidance for how many metrics
	// one component adds at once; owners over it are flagged. 0 means 3.
	MaxNewMetricsPerOwner int
}

// WriteMarkdown writes the summary a reviewer reads first: counts, then
// tables of newly allowed, denied and changed metrics with their owners
// and lines, then per owner how many metrics the change allows and denies.
func (d *DiffResult) WriteMarkdown(w io.Writer, opts DiffOptions) error {
	if opts.MaxNewMetricsPerOwner <= 0 {
		opts.MaxNewMetricsPerOwner = 3
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "# Allowlist changes\n\n`%s` → `%s`: ", d.OldFile, d.NewFile)
	if d.Empty() {
		fmt.Fprintf(b, "no metric is allowed or denied differently.\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	var summary []string
	add := func(n int, s string) {
		if n > 0 {
			summary = append(summary, s)
		}
	}
	add(len(d.Allowed), plural(len(d.Allowed), "metric")+" newly allowed")
	add(len(d.Denied), plural(len(d.Denied), "metric")+" denied")
	add(len(d.Changed), plural(len(d.Changed), "metric")+" with changed matchers")
	add(len(d.OwnersChanged), plural(len(d.OwnersChanged), "metric")+" with changed owners")
	add(len(d.PatternsAdded), plural(len(d.PatternsAdded), "name pattern")+" added")
	add(len(d.PatternsRemoved), plural(len(d.PatternsRemoved), "name pattern")+" removed")
	fmt.Fprintf(b, "%s.\n", strings.Join(summary, ", "))

	if len(d.Allowed) > 0 {
		fmt.Fprintf(b, "\n## Newly allowed\n\n| Metric | Only series with | Owners | Line |\n| --- | --- | --- | --- |\n")
		for _, c := range d.Allowed {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", c.Name, restrictions(c.New), owners(c.New), lines(c.New))
		}
	}
	if len(d.Denied) > 0 {
		fmt.Fprintf(b, "\n## Denied\n\n| Metric | Was: only series with | Owners | Old line |\n| --- | --- | --- | --- |\n")
		for _, c := range d.Denied {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", c.Name, restrictions(c.Old), owners(c.Old), lines(c.Old))
		}
	}
	if len(d.Changed) > 0 {
		fmt.Fprintf(b, "\n## Matchers changed\n\n| Metric | Before: only series with | After: only series with | Owners | Line |\n| --- | --- | --- | --- | --- |\n")
		for _, c := range d.Changed {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", c.Name, restrictions(c.Old), restrictions(c.New), owners(c.New), lines(c.New))
		}
	}
	if len(d.OwnersChanged) > 0 {
		fmt.Fprintf(b, "\n## Owners changed\n\n| Metric | Before | After | Line |\n| --- | --- | --- | --- |\n")
		for _, c := range d.OwnersChanged {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", c.Name, owners(c.Old), owners(c.New), lines(c.New))
		}
	}
	for _, p := range []struct {
		title string
		list  []PatternChange
	}{{"Name patterns added", d.PatternsAdded}, {"Name patterns removed", d.PatternsRemoved}} {
		if len(p.list) == 0 {
			continue
		}
		fmt.Fprintf(b, "\n## %s\n\n| Selector | Owners | Line |\n| --- | --- | --- |\n", p.title)
		for _, c := range p.list {
			fmt.Fprintf(b, "| %s | %s | %d |\n", code(c.Selector), cell(strings.Join(c.Owners, ", ")), c.Line)
		}
	}

	type counts struct{ allowed, denied int }
	per := map[string]*counts{}
	get := func(o string) *counts {
		if per[o] == nil {
			per[o] = &counts{}
		}
		return per[o]
	}
	for _, c := range d.Allowed {
		for _, o := range ownersOrNone(c.New) {
			get(o).allowed++
		}
	}
	for _, c := range d.Denied {
		for _, o := range ownersOrNone(c.Old) {
			get(o).denied++
		}
	}
	if len(per) > 0 {
		names := make([]string, 0, len(per))
		for o := range per {
			names = append(names, o)
		}
		sort.Strings(names)
		fmt.Fprintf(b, "\n## Per owner\n\n| Owner | Newly allowed | Denied | |\n| --- | --- | --- | --- |\n")
		for _, o := range names {
			c := per[o]
			note := ""
			if c.allowed > opts.MaxNewMetricsPerOwner {
				note = fmt.Sprintf("over the guidance of 1 to %d new metrics per component", opts.MaxNewMetricsPerOwner)
			}
			fmt.Fprintf(b, "| %s | %d | %d | %s |\n", cell(o), c.allowed, c.denied, note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ownersOrNone(s *MetricState) []string {
	if len(s.Owners) == 0 {
		return []string{"(no owner)"}
	}
	return s.Owners
}

func restrictions(s *MetricState) string {
	if len(s.Restrictions) == 1 && s.Restrictions[0] == "" {
		return "(all series)"
	}
	parts := make([]string, len(s.Restrictions))
	for i, r := range s.Restrictions {
		parts[i] = code(r)
	}
	return strings.Join(parts, " or ")
}

func owners(s *MetricState) string {
	if len(s.Owners) == 0 {
		return "(none)"
	}
	return cell(strings.Join(s.Owners, ", "))
}

func lines(s *MetricState) string {
	parts := make([]string, len(s.Lines))
	for i, l := range s.Lines {
		parts[i] = fmt.Sprint(l)
	}
	return strings.Join(parts, ", ")
}
