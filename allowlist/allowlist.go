package allowlist

import (
	"github.com/prometheus/prometheus/model/labels"

	"github.com/telegate/telegate/batch"
)

// Entry is one selector of the allowlist file with what the file says
// about it.
type Entry struct {
	// Selector is the selector string as written in the file.
	Selector string
	// Line is the 1-based line of the entry in the file.
	Line int
	// Matchers are the parsed label matchers, AND'ed.
	Matchers []*labels.Matcher
	// Names are the metric names the entry is restricted to, when its
	// __name__ matcher is an equality or a regex that is a plain list of
	// alternatives ("a|b"). Nil when the entry may match other names.
	Names []string
	// Owners are the teams listed on the "owners:" comment line, in order.
	Owners []string
	// Description is the rest of the comment block above the entry plus any
	// comment on the entry's own line, without the leading '#'.
	Description string
	// Lint are the lint directives of the entry, from comment lines such
	// as "# lint: allow-name-regex" (not part of Description).
	Lint []string
}

// Allowlist is a parsed allowlist. Build it with Parse or LoadFile; it is
// read-only afterwards and safe for concurrent use. The zero value denies
// everything. Entries must not be modified: the match index refers to them.
type Allowlist struct {
	// Entries are the allowlist entries in file order.
	Entries []Entry

	rules    []rule           // parallel to Entries
	byName   map[string][]int // metric name -> entry indexes, ascending
	fallback []int            // entries not indexed by name, ascending
	anyName  bool             // some fallback entry does not constrain __name__
	hash     string
	file     string // name in messages, "" for the zero value
}

// rule is the compiled form of an entry.
type rule struct {
	// rest are the matchers left to check once the name index selected the
	// entry; for fallback entries, all matchers.
	rest []*labels.Matcher
	// name are the fallback entry's matchers on __name__ (for MatchName).
	name []*labels.Matcher
}

// newAllowlist indexes entries. Each entry must have Matchers set.
func newAllowlist(entries []Entry, hash string) *Allowlist {
	a := &Allowlist{
		Entries: entries,
		rules:   make([]rule, len(entries)),
		byName:  make(map[string][]int),
		hash:    hash,
	}
	for i := range entries {
		e := &entries[i]
		idx, names := indexMatcher(e.Matchers)
		if idx < 0 {
			r := rule{rest: e.Matchers}
			for _, m := range e.Matchers {
				if m.Name == labels.MetricName {
					r.name = append(r.name, m)
				}
			}
			if len(r.name) == 0 {
				a.anyName = true
			}
			a.rules[i] = r
			a.fallback = append(a.fallback, i)
			continue
		}
		e.Names = names
		rest := make([]*labels.Matcher, 0, len(e.Matchers)-1)
		rest = append(rest, e.Matchers[:idx]...)
		rest = append(rest, e.Matchers[idx+1:]...)
		a.rules[i] = rule{rest: rest}
		for _, n := range names {
			ids := a.byName[n]
			// An entry whose regex lists a name twice is indexed once.
			if len(ids) == 0 || ids[len(ids)-1] != i {
				a.byName[n] = append(ids, i)
			}
		}
	}
	return a
}

// indexMatcher picks the matcher that restricts __name__ to a finite set of
// names: preferably an equality, otherwise a regex that is a plain list of
// literal alternatives. It returns -1 if there is none.
func indexMatcher(ms []*labels.Matcher) (int, []string) {
	for i, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return i, []string{m.Value}
		}
	}
	for i, m := range ms {
		if m.Name != labels.MetricName || m.Type != labels.MatchRegexp {
			continue
		}
		// SetMatches is exact and complete when non-empty: Prometheus relies
		// on it to replace the regex by equality lookups in the TSDB index.
		if set := m.SetMatches(); len(set) > 0 {
			return i, set
		}
	}
	return -1, nil
}

// Match reports whether the series with labels ls is allowed, and the index
// in Entries of the first entry (in file order) that allows it. It returns
// -1, false if no entry matches. ls need not be sorted; if a label name
// repeats, the first occurrence counts. Match does not allocate.
func (a *Allowlist) Match(ls []batch.Label) (entry int, ok bool) {
	return a.matchCandidates(a.byName[lookup(ls, labels.MetricName)], ls)
}

// matchCandidates is Match for a series whose name's entries in byName are
// cand.
func (a *Allowlist) matchCandidates(cand []int, ls []batch.Label) (entry int, ok bool) {
	fb := a.fallback
	// Merge the two ascending lists so the first match is the first in file
	// order.
	for len(cand) > 0 || len(fb) > 0 {
		var i int
		if len(fb) == 0 || (len(cand) > 0 && cand[0] < fb[0]) {
			i, cand = cand[0], cand[1:]
		} else {
			i, fb = fb[0], fb[1:]
		}
		if matchAll(a.rules[i].rest, ls) {
			return i, true
		}
	}
	return -1, false
}

// Matcher matches the series of one request against an Allowlist one
// after the other, as MatchName and Match do, remembering what it found
// for the last metric name: a request's series come grouped by name
// (Prometheus sends a target's series in scrape order, federation and
// telemeter uploads family by family), and comparing a name with the last
// one costs less than looking it up again. The zero Matcher is not usable:
// get one from Allowlist.Matcher. A Matcher is not safe for concurrent use.
type Matcher struct {
	a        *Allowlist
	name     string
	known    bool
	mayMatch bool
	cand     []int
}

// Matcher returns a Matcher for a.
func (a *Allowlist) Matcher() Matcher { return Matcher{a: a} }

// MatchName is Allowlist.MatchName.
func (m *Matcher) MatchName(name string) bool {
	m.see(name)
	return m.mayMatch
}

// Match is Allowlist.Match for a series named name (the value of its
// first __name__ label, as Series.Name returns it).
func (m *Matcher) Match(name string, ls []batch.Label) (entry int, ok bool) {
	m.see(name)
	if !m.mayMatch {
		return -1, false
	}
	return m.a.matchCandidates(m.cand, ls)
}

func (m *Matcher) see(name string) {
	if m.known && len(name) == len(m.name) && name == m.name {
		return
	}
	m.name, m.known = name, true
	m.cand = m.a.byName[name]
	m.mayMatch = m.a.anyName || len(m.cand) > 0 || m.a.fallbackMayMatch(name)
}

// MatchName is a quick pre-check on the metric name alone: it returns false
// if no entry can match a series named name, whatever its other labels. A
// true result only means some entry might match; call Match to decide.
// A series without a __name__ label has the name "". MatchName does not
// allocate.
func (a *Allowlist) MatchName(name string) bool {
	return a.anyName || len(a.byName[name]) > 0 || a.fallbackMayMatch(name)
}

// fallbackMayMatch reports whether an entry not indexed by name may match a
// series named name.
func (a *Allowlist) fallbackMayMatch(name string) bool {
	for _, i := range a.fallback {
		ok := true
		for _, m := range a.rules[i].name {
			if !m.Matches(name) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Hash returns a short stable hash of the file content the allowlist was
// parsed from (16 hex digits of its SHA-256), to identify the version in
// use in logs, metrics and headers.
func (a *Allowlist) Hash() string { return a.hash }

// File returns the name the allowlist was parsed under (the filename given
// to Parse, "file:key" for a ConfigMap whose lines are not the file's), as
// used in "file:line" references.
func (a *Allowlist) File() string { return a.file }

// Selectors returns the selector strings in file order. The slice is a copy
// the caller may keep.
func (a *Allowlist) Selectors() []string {
	out := make([]string, len(a.Entries))
	for i := range a.Entries {
		out[i] = a.Entries[i].Selector
	}
	return out
}

func matchAll(ms []*labels.Matcher, ls []batch.Label) bool {
	for _, m := range ms {
		if !m.Matches(lookup(ls, m.Name)) {
			return false
		}
	}
	return true
}

// lookup returns the value of the named label, or "" if it is absent, which
// is how Prometheus matchers see absent labels.
func lookup(ls []batch.Label, name string) string {
	for i := range ls {
		if ls[i].Name == name {
			return ls[i].Value
		}
	}
	return ""
}
