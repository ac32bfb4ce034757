package client

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The client's selector parser agrees with PromQL's (which the gateway's
// allowlist uses; only this test links it): what PromQL accepts as a
// selector that does not select everything, the client accepts with the
// same matchers, and the client accepts nothing PromQL refuses.
func FuzzSelectorAgreesWithPromQL(f *testing.F) {
	for _, s := range []string{`up`, `{__name__="up"}`, `up{job=~"a.*",x!="y"}`, `{"quoted", a='b\'c'}`, "{a=`raw`}", `{a=~"("}`,
		`up{`, `a:b_c{d!~"e|f",}`, `{a="\u00e9\x41"}`, `{__name__=~"foo_.+"}`, ` {a = "b" } `, `{"a.b"="c"}`} {
		f.Add(s)
	}
	p := parser.NewParser(parser.Options{})
	f.Fuzz(func(t *testing.T, s string) {
		mine, err := ParseSelector(s)
		theirs, perr := p.ParseMetricSelector(s)
		if perr == nil && !allMatchEmpty(theirs) {
			if err != nil {
				t.Fatalf("%q: PromQL accepts it (%v), the client refuses: %v", s, theirs, err)
			}
			if len(mine) != len(theirs) {
				t.Fatalf("%q: client %v, PromQL %v", s, mine, theirs)
			}
			if a, b := matcherStrings(mine), matcherStrings(theirs); !slices.Equal(a, b) {
				t.Fatalf("%q: client %q, PromQL %q", s, a, b)
			}
		}
		if err == nil && perr != nil {
			t.Fatalf("%q: the client accepts it (%v), PromQL refuses: %v", s, mine, perr)
		}
	})
}

// matcherStrings is the matchers in a canonical order (PromQL puts the
// name's last).
func matcherStrings(ms []*labels.Matcher) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	slices.Sort(out)
	return out
}

func allMatchEmpty(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return false
		}
	}
	return true
}
