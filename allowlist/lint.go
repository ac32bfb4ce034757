package allowlist

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Severity of a lint finding.
type Severity int

const (
	// SeverityError findings make the file unacceptable (lint exits 1).
	SeverityError Severity = iota
	// SeverityWarning findings deserve a reviewer's look.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Lint rule identifiers, printed after each finding's message. The rules
// listed in SuppressibleRules can be turned off for one entry with a
// comment line "# lint: allow-RULE" in its comment block.
const (
	RuleSyntax            = "syntax"              // the document is not an allowlist (error)
	RuleInvalidSelector   = "invalid-selector"    // an entry does not parse (error)
	RuleDuplicate         = "duplicate"           // same matchers as an earlier entry (error)
	RuleOverlap           = "overlap"             // every series it allows, another entry allows too (error)
	RuleMissingOwners     = "missing-owners"      // no "# owners:" line (error)
	RuleMissingDesc       = "missing-description" // no description (error)
	RuleNoName            = "no-name"             // no positive __name__ matcher (error)
	RuleNameRegex         = "name-regex"          // __name__ regex that is not a list of names (error, suppressible)
	RuleStrippedLabel     = "stripped-label"      // matcher on a label the gateway strips (error)
	RuleUnknownDirective  = "unknown-directive"   // "# lint:" directive lint does not know (error)
	RuleRecordingRuleName = "recording-rule-name" // name with ':' not level:metric:operations (warning, suppressible)
	RuleAggregationLevel  = "aggregation-level"   // recording rule level keeps a stripped label (warning, suppressible)
	RulePersonalData      = "personal-data"       // label name suggests personal data (warning, suppressible)
	RuleOwnerFormat       = "owner-format"        // owner is not @org/team or @user (warning)
	RuleUnusedDirective   = "unused-directive"    // "# lint: allow-x" on an entry x does not fire on (warning)
	RuleEmpty             = "empty"               // the list is empty: every series is denied (warning)
)

// SuppressibleRules are the rules an entry can opt out of with
// "# lint: allow-RULE".
var SuppressibleRules = []string{RuleNameRegex, RuleRecordingRuleName, RuleAggregationLevel, RulePersonalData}

// DefaultDropLabels are the labels the gateway strips by default
// (relabel.drop_labels).
var DefaultDropLabels = []string{"instance", "pod", "prometheus_replica"}

// personalDataWords are label names, or "_"-separated words of label
// names, that suggest a label carries personal data.
var personalDataWords = map[string]bool{
	"email": true, "mail": true, "user": true, "username": true, "userid": true, "uid": true,
	"login": true, "ip": true, "ipv4": true, "ipv6": true, "ipaddr": true, "address": true,
	"addr": true, "host": true, "hostname": true, "fqdn": true, "mac": true, "phone": true,
	"firstname": true, "lastname": true, "fullname": true, "ssn": true,
	"url": true, "uri": true, "path": true,
}

// PersonalDataLabel reports whether a label name suggests personal data:
// the name, or one of its "_"-separated words, is one of email, mail, user,
// username, userid, uid, login, ip, ipv4, ipv6, ipaddr, address, addr,
// host, hostname, fqdn, mac, phone, firstname, lastname, fullname, ssn,
// url, uri, path (case-insensitive).
func PersonalDataLabel(name string) bool {
	name = strings.ToLower(name)
	if personalDataWords[name] {
		return true
	}
	for _, w := range strings.Split(name, "_") {
		if personalDataWords[w] {
			return true
		}
	}
	return false
}

// LintOptions configure Lint.
type LintOptions struct {
	// DropLabels are the labels the gateway strips; nil means
	// DefaultDropLabels.
	DropLabels []string
}

// Finding is one lint result.
type Finding struct {
	File     string
	Line     int // 1-based; 0 when the finding has no line
	Severity Severity
	Rule     string
	Msg      string
}

// String formats the finding as "FILE:LINE: error: msg (rule)", the shape
// CI systems turn into annotations.
func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s: %s: %s (%s)", loc, f.Severity, f.Msg, f.Rule)
}

// Lint checks an allowlist document the way a reviewer would and returns
// its findings ordered by line. Unlike Parse it reports every invalid entry
// and still checks the valid ones. The checks:
//
//   - invalid-selector (error): the entry does not parse, or matches every
//     series.
//   - duplicate (error): the entry has the same set of matchers as an
//     earlier one (matcher order does not matter).
//   - overlap (error): another entry allows every series this one allows,
//     so this one has no effect (or its label matchers have none). Entry A
//     is known to cover entry B when each matcher of A either appears in B
//     or accepts every value B allows for that label through an equality or
//     a list of alternatives ("a|b"), e.g. {__name__=~"x|y"} covers
//     {__name__="x",job="j"}, and {__name__="x",alertstate!="pending"}
//     covers {__name__="x",alertstate="firing"}. Overlaps this rule does
//     not prove (two unrelated regexes) are not reported.
//   - missing-owners, missing-description (error): the comment block above
//     the entry lacks an "owners:" line or a description.
//   - no-name (error): no = or =~ matcher on __name__, so the entry allows
//     metrics by other labels alone.
//   - name-regex (error): the __name__ matcher is a regex that is not a
//     plain list of names; allowed with "# lint: allow-name-regex".
//   - stripped-label (error): a matcher on a label the gateway strips
//     (LintOptions.DropLabels), which no stored series will carry; a
//     matcher requiring the label to be absent (pod="") is accepted.
//   - unknown-directive (error): a "# lint:" directive that is not
//     allow-RULE for a rule in SuppressibleRules.
//   - recording-rule-name (warning): a name with ':' that is not
//     level:metric:operations (three non-empty parts).
//   - aggregation-level (warning): a recording rule whose level keeps a
//     stripped label (instance:x:sum): its series collide once stripped.
//   - personal-data (warning): a matcher's label name suggests personal
//     data (see PersonalDataLabel).
//   - owner-format (warning): an owner that is not @org/team or @user.
//   - unused-directive (warning): "# lint: allow-RULE" on an entry RULE
//     does not fire on.
//   - empty (warning): the list is empty, every series is denied.
func Lint(data []byte, filename string, opts LintOptions) []Finding {
	if filename == "" {
		filename = "allowlist"
	}
	drop := opts.DropLabels
	if drop == nil {
		drop = DefaultDropLabels
	}
	doc, err := parseDocument(data, filename)
	if err != nil {
		return []Finding{errorFinding(err, filename, RuleSyntax)}
	}
	var out []Finding
	for _, e := range doc.errs {
		out = append(out, errorFinding(e, doc.name, RuleInvalidSelector))
	}
	a := newAllowlist(doc.entries, doc.hash)
	if len(a.Entries) == 0 && len(doc.errs) == 0 {
		out = append(out, Finding{doc.name, 0, SeverityWarning, RuleEmpty, "the allowlist is empty: every series is denied"})
	}
	l := linter{file: doc.name, drop: drop}
	for i := range a.Entries {
		l.entry(&a.Entries[i])
	}
	l.overlaps(a.Entries)
	out = append(out, l.out...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Severity < out[j].Severity
	})
	return out
}

// errorFinding turns a parse error into a finding.
func errorFinding(err error, file, rule string) Finding {
	var pe *Error
	if errors.As(err, &pe) {
		return Finding{pe.File, pe.Line, SeverityError, rule, pe.Msg}
	}
	return Finding{file, 0, SeverityError, rule, err.Error()}
}

type linter struct {
	file string
	drop []string
	out  []Finding
}

func (l *linter) add(e *Entry, sev Severity, rule, format string, args ...any) {
	l.out = append(l.out, Finding{l.file, e.Line, sev, rule, fmt.Sprintf(format, args...)})
}

// entry runs the per-entry checks.
func (l *linter) entry(e *Entry) {
	allowed := map[string]bool{}
	for _, d := range e.Lint {
		rule, ok := strings.CutPrefix(d, "allow-")
		if !ok || !contains(SuppressibleRules, rule) {
			l.add(e, SeverityError, RuleUnknownDirective, "unknown lint directive %q: want allow-RULE with RULE one of %s", d, strings.Join(SuppressibleRules, ", "))
			continue
		}
		allowed[rule] = true
	}
	fired := map[string]bool{}
	// check records that rule applies; it reports unless suppressed.
	check := func(sev Severity, rule, format string, args ...any) {
		fired[rule] = true
		if !allowed[rule] {
			l.add(e, sev, rule, format, args...)
		}
	}

	if len(e.Owners) == 0 {
		l.add(e, SeverityError, RuleMissingOwners, "%s has no owners: add a comment line \"# owners: (@org/team)\" directly above it", e.Selector)
	}
	for _, o := range e.Owners {
		if !validOwner(o) {
			l.add(e, SeverityWarning, RuleOwnerFormat, "owner %q is not a GitHub team or user (@org/team or @user)", o)
		}
	}
	if strings.TrimSpace(e.Description) == "" {
		l.add(e, SeverityError, RuleMissingDesc, "%s has no description: say what the metric is for in the comment block above it", e.Selector)
	}

	positiveName := false
	for _, m := range e.Matchers {
		if m.Name == labels.MetricName && (m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp) {
			positiveName = true
		}
	}
	switch {
	case !positiveName:
		l.add(e, SeverityError, RuleNoName, "%s does not select a metric name: add __name__=\"...\"", e.Selector)
	case e.Names == nil:
		check(SeverityError, RuleNameRegex, "%s matches metric names by a pattern, so it allows metrics nobody reviewed: list the names (\"a|b\") or, if the pattern is deliberate, add \"# lint: allow-name-regex\"", e.Selector)
	}

	seenLabel := map[string]bool{}
	for _, m := range e.Matchers {
		if m.Name == labels.MetricName {
			continue
		}
		if contains(l.drop, m.Name) && !(m.Type == labels.MatchEqual && m.Value == "") {
			l.add(e, SeverityError, RuleStrippedLabel, "matcher %s: the gateway strips %q, so stored series never carry it; aggregate it away in a recording rule instead", m, m.Name)
		}
		if PersonalDataLabel(m.Name) && !seenLabel[m.Name] {
			check(SeverityWarning, RulePersonalData, "label %q suggests personal data: make sure its values identify no person or host", m.Name)
		}
		seenLabel[m.Name] = true
	}

	for _, n := range e.Names {
		if !strings.Contains(n, ":") {
			continue
		}
		parts := strings.Split(n, ":")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			check(SeverityWarning, RuleRecordingRuleName, "recording rule %q does not follow level:metric:operations (e.g. cluster:node_cpu:sum)", n)
			continue
		}
		level := "_" + parts[0] + "_"
		for _, d := range l.drop {
			if strings.Contains(level, "_"+d+"_") {
				check(SeverityWarning, RuleAggregationLevel, "recording rule %q is aggregated by %q, which the gateway strips: its series collide once stripped; aggregate further (e.g. cluster:%s:%s)", n, d, parts[1], parts[2])
				break
			}
		}
	}

	for _, rule := range SuppressibleRules {
		if allowed[rule] && !fired[rule] {
			l.add(e, SeverityWarning, RuleUnusedDirective, "\"# lint: allow-%s\" is not needed: the %s rule does not apply to %s", rule, rule, e.Selector)
		}
	}
}

// overlaps reports duplicate and fully covered entries.
func (l *linter) overlaps(es []Entry) {
	for j := range es {
		for i := range es {
			if i == j || !covers(&es[i], &es[j]) {
				continue
			}
			if covers(&es[j], &es[i]) {
				if i < j {
					l.add(&es[j], SeverityError, RuleDuplicate, "%s duplicates line %d (%s): remove one", es[j].Selector, es[i].Line, es[i].Selector)
					break
				}
				continue
			}
			l.add(&es[j], SeverityError, RuleOverlap, "%s is fully covered by line %d (%s): every series it allows is already allowed; remove it or narrow the other entry", es[j].Selector, es[i].Line, es[i].Selector)
			break
		}
	}
}

// covers reports whether entry a provably allows every series entry b
// allows: each matcher of a appears in b or accepts every value b's
// equality or alternation matchers on the same label allow.
func covers(a, b *Entry) bool {
	for _, m := range a.Matchers {
		if !implied(m, b.Matchers) {
			return false
		}
	}
	return true
}

func implied(m *labels.Matcher, ms []*labels.Matcher) bool {
	for _, o := range ms {
		if o.Name != m.Name {
			continue
		}
		if o.Type == m.Type && o.Value == m.Value {
			return true
		}
		var vals []string
		switch o.Type {
		case labels.MatchEqual:
			vals = []string{o.Value}
		case labels.MatchRegexp:
			vals = o.SetMatches()
		}
		if len(vals) == 0 {
			continue
		}
		all := true
		for _, v := range vals {
			if !m.Matches(v) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// validOwner accepts @user and @org/team (GitHub handles).
func validOwner(o string) bool {
	rest, ok := strings.CutPrefix(o, "@")
	if !ok || rest == "" {
		return false
	}
	parts := strings.Split(rest, "/")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, r := range p {
			if !(r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
