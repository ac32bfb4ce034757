package allowlist

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Restriction returns the matchers of e other than the one on __name__
// that the name index uses, formatted and sorted ("" when the entry allows
// every series of its metrics): what an entry requires beyond the name.
func (e *Entry) Restriction() string {
	var parts []string
	dropped := false
	for _, m := range e.Matchers {
		if e.Names != nil && !dropped && m.Name == labels.MetricName && nameMatcherFor(e, m) {
			dropped = true
			continue
		}
		parts = append(parts, m.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// nameMatcherFor reports whether m is the __name__ matcher the entry's
// Names come from (an equality, or a regex listing exactly Names).
func nameMatcherFor(e *Entry, m *labels.Matcher) bool {
	switch m.Type {
	case labels.MatchEqual:
		return len(e.Names) == 1 && e.Names[0] == m.Value
	case labels.MatchRegexp:
		set := m.SetMatches()
		if len(set) != len(e.Names) {
			return false
		}
		for i := range set {
			if set[i] != e.Names[i] {
				return false
			}
		}
		return true
	}
	return false
}

// DocsOptions configure WriteDocs.
type DocsOptions struct {
	// Title is the document's heading; default "Telemetry allowlist".
	Title string
	// Source names the allowlist file in the generated-by note; default
	// the allowlist's File().
	Source string
}

// WriteDocs writes a Markdown reference of the allowlist: every allowed
// metric with what the entry requires beyond its name, its owners, its
// description and its line, sorted by metric name; then entries that match
// names by pattern, sorted by selector; then the metrics of each owner,
// sorted by owner. The output depends only on the file's content, so it
// can be committed and checked in CI.
func WriteDocs(w io.Writer, a *Allowlist, opts DocsOptions) error {
	if opts.Title == "" {
		opts.Title = "Telemetry allowlist"
	}
	if opts.Source == "" {
		opts.Source = a.File()
	}
	type row struct {
		name string
		e    *Entry
	}
	var rows, patterns []row
	names := map[string]bool{}
	byOwner := map[string][]string{}
	for i := range a.Entries {
		e := &a.Entries[i]
		if e.Names == nil {
			patterns = append(patterns, row{"", e})
		}
		for _, n := range e.Names {
			rows = append(rows, row{n, e})
			names[n] = true
		}
		owners := e.Owners
		if len(owners) == 0 {
			owners = []string{"(no owner)"}
		}
		for _, o := range owners {
			if e.Names == nil {
				byOwner[o] = append(byOwner[o], e.Selector)
			}
			byOwner[o] = append(byOwner[o], e.Names...)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].name != rows[j].name {
			return rows[i].name < rows[j].name
		}
		return rows[i].e.Line < rows[j].e.Line
	})
	sort.SliceStable(patterns, func(i, j int) bool { return patterns[i].e.Selector < patterns[j].e.Selector })

	b := &strings.Builder{}
	fmt.Fprintf(b, "# %s\n\n", opts.Title)
	fmt.Fprintf(b, "<!-- Generated from %s by `telegate allowlist docs`. Do not edit. -->\n\n", opts.Source)
	fmt.Fprintf(b, "%s allow %s by name", plural(len(a.Entries), "entry"), plural(len(names), "metric"))
	if len(patterns) > 0 {
		fmt.Fprintf(b, ", plus every metric matching %s", plural(len(patterns), "name pattern"))
	}
	fmt.Fprintf(b, ". The gateway drops every other series.\n")

	fmt.Fprintf(b, "\n## Metrics\n\n")
	if len(rows) == 0 {
		fmt.Fprintf(b, "None.\n")
	} else {
		fmt.Fprintf(b, "| Metric | Only series with | Owners | Description | Line |\n| --- | --- | --- | --- | --- |\n")
		for _, r := range rows {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %d |\n", r.name, code(r.e.Restriction()), cell(strings.Join(r.e.Owners, ", ")), cell(r.e.Description), r.e.Line)
		}
	}
	if len(patterns) > 0 {
		fmt.Fprintf(b, "\n## Name patterns\n\nThese entries allow every metric whose name matches.\n\n")
		fmt.Fprintf(b, "| Selector | Owners | Description | Line |\n| --- | --- | --- | --- |\n")
		for _, r := range patterns {
			fmt.Fprintf(b, "| %s | %s | %s | %d |\n", code(r.e.Selector), cell(strings.Join(r.e.Owners, ", ")), cell(r.e.Description), r.e.Line)
		}
	}
	if len(byOwner) > 0 {
		owners := make([]string, 0, len(byOwner))
		for o := range byOwner {
			owners = append(owners, o)
		}
		sort.Strings(owners)
		fmt.Fprintf(b, "\n## By owner\n\n| Owner | Metrics |\n| --- | --- |\n")
		for _, o := range owners {
			ms := byOwner[o]
			sort.Strings(ms)
			ms = dedupSorted(ms)
			for i := range ms {
				ms[i] = code(ms[i])
			}
			fmt.Fprintf(b, "| %s | %s |\n", cell(o), strings.Join(ms, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s safe inside a Markdown table cell: one line, pipes escaped.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// code formats s as inline code for a table cell, or "" when s is empty.
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	if strings.HasSuffix(word, "s") {
		return fmt.Sprintf("%d %s", n, word)
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(word, "y"))
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
