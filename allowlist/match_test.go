package allowlist

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/telegate/telegate/batch"
)

// series builds labels from name/value pairs, in the order given.
func series(kv ...string) []batch.Label {
	ls := make([]batch.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, batch.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func mustParse(t testing.TB, sels ...string) *Allowlist {
	t.Helper()
	var b strings.Builder
	b.WriteString("matches:\n")
	for _, s := range sels {
		fmt.Fprintf(&b, "- '%s'\n", strings.ReplaceAll(s, "'", "''"))
	}
	a, err := Parse([]byte(b.String()), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMatch(t *testing.T) {
	a := mustParse(t,
		`{__name__="a"}`,                                 // 0
		`{__name__="b",job="x"}`,                         // 1
		`{__name__="b",job!="x",env=~"prod|stage"}`,      // 2
		`{__name__="c",env!~"dev.*"}`,                    // 3
		`{__name__="d",team=""}`,                         // 4
		`{__name__=~"e_.*"}`,                             // 5: fallback
		`{__name__="a",job="y"}`,                         // 6: shadowed by 0
		`{__name__=~"f|g"}`,                              // 7: indexed by set
		`{__name__=~"h.*",env="p"}`,                      // 8: fallback before 9
		`{__name__="hh"}`,                                // 9
		`{__name__="i",__name__!="i"}`,                   // 10: never matches
		`{__name__="j",job=~"a.*"}`,                      // 11
		`{__name__=~"j",job="b"}`,                        // 12: single-literal regex, indexed
		`{__name__=~"(?i)k|l"}`,                          // 13: case-insensitive, fallback
		`{__name__="m",job=""}`,                          // 14
		`{__name__="m",job=~".+"}`,                       // 15
		`{__name__="",job="nameless"}`,                   // 16: series without a name
		`{__name__="n",zone=~"",region!~"",env!="prod"}`, // 17
	)
	for _, tc := range []struct {
		name   string
		ls     []batch.Label
		want   int
		wantOK bool
	}{
		{"equal name", series("__name__", "a"), 0, true},
		{"equal name, extra labels", series("__name__", "a", "job", "z", "instance", "i"), 0, true},
		{"unknown name", series("__name__", "zz"), -1, false},
		{"no labels", nil, -1, false},
		{"= on label", series("__name__", "b", "job", "x"), 1, true},
		{"!= and =~ on labels", series("__name__", "b", "job", "w", "env", "stage"), 2, true},
		{"=~ is anchored", series("__name__", "b", "job", "w", "env", "preprod"), -1, false},
		{"!= fails, =~ absent", series("__name__", "b", "job", "w"), -1, false},
		{"!~ matches", series("__name__", "c", "env", "prod"), 3, true},
		{"!~ rejects", series("__name__", "c", "env", "dev1"), -1, false},
		{"!~ with absent label matches", series("__name__", "c"), 3, true},
		{`="" matches absent label`, series("__name__", "d"), 4, true},
		{`="" rejects present label`, series("__name__", "d", "team", "x"), -1, false},
		{"fallback regex name", series("__name__", "e_total"), 5, true},
		{"fallback regex is anchored", series("__name__", "xe_total"), -1, false},
		{"first entry in file order", series("__name__", "a", "job", "y"), 0, true},
		{"set regex first alternative", series("__name__", "f"), 7, true},
		{"set regex second alternative", series("__name__", "g"), 7, true},
		{"set regex is exact", series("__name__", "fg"), -1, false},
		{"fallback before later indexed entry", series("__name__", "hh", "env", "p"), 8, true},
		{"indexed entry after fallback miss", series("__name__", "hh", "env", "q"), 9, true},
		{"contradictory matchers", series("__name__", "i"), -1, false},
		{"indexed with label regex", series("__name__", "j", "job", "ab"), 11, true},
		{"single literal regex indexed", series("__name__", "j", "job", "b"), 12, true},
		{"case-insensitive name regex", series("__name__", "K"), 13, true},
		{"case-insensitive alternative", series("__name__", "L"), 13, true},
		{`job="" vs job=~".+" absent`, series("__name__", "m"), 14, true},
		{`job="" vs job=~".+" present`, series("__name__", "m", "job", "x"), 15, true},
		{"series without __name__", series("job", "nameless"), 16, true},
		{"empty-matching matchers with absent labels", series("__name__", "n"), -1, false},
		{"empty-matching matchers satisfied", series("__name__", "n", "region", "eu"), 17, true},
		{"unsorted labels", series("job", "x", "instance", "i", "__name__", "b"), 1, true},
		{"first of repeated label counts", series("__name__", "b", "job", "x", "job", "w", "env", "prod"), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := a.Match(tc.ls)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("Match(%v) = %d, %v; want %d, %v", tc.ls, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	a := mustParse(t,
		`{__name__="a"}`,            // 0: by name
		`{__name__=~"b.*"}`,         // 1: fallback
		`{__name__=~"c|d",job="x"}`, // 2: by set
		`a`,                         // 3: by name
		`{__name__=~"e|e"}`,         // 4: by set, once
		`{job="x"}`,                 // 5: fallback, any name
		`{__name__!="f",job="y"}`,   // 6: fallback
		`{__name__=~"g",__name__="h"}`,
	)
	wantByName := map[string][]int{"a": {0, 3}, "c": {2}, "d": {2}, "e": {4}, "h": {7}}
	if !reflect.DeepEqual(a.byName, wantByName) {
		t.Errorf("byName = %v, want %v", a.byName, wantByName)
	}
	if want := []int{1, 5, 6}; !reflect.DeepEqual(a.fallback, want) {
		t.Errorf("fallback = %v, want %v", a.fallback, want)
	}
	if !a.anyName {
		t.Error("anyName = false with a fallback entry that has no name matcher")
	}
	// Indexed entries do not re-check the matcher they were indexed by.
	if len(a.rules[0].rest) != 0 || len(a.rules[2].rest) != 1 || a.rules[2].rest[0].Name != "job" {
		t.Errorf("rest of entries 0/2 = %v / %v", a.rules[0].rest, a.rules[2].rest)
	}
	if len(a.rules[7].rest) != 1 || a.rules[7].rest[0].Value != "g" {
		t.Errorf("entry 7 should be indexed by its equality and keep its regex: %v", a.rules[7].rest)
	}
	for i, names := range [][]string{{"a"}, nil, {"c", "d"}, {"a"}, {"e", "e"}, nil, nil, {"h"}} {
		if got := a.Entries[i].Names; !reflect.DeepEqual(got, names) {
			t.Errorf("entry %d Names = %q, want %q", i, got, names)
		}
	}
}

func TestMatchName(t *testing.T) {
	a := mustParse(t,
		`{__name__="a",job="x"}`,
		`{__name__=~"b_.*",__name__!="b_no"}`,
		`{__name__=~"c|d"}`,
	)
	for name, want := range map[string]bool{
		"a":     true, // true even though labels decide later
		"b_yes": true,
		"b_no":  false, // every name matcher of the fallback entry counts
		"c":     true,
		"d":     true,
		"cd":    false,
		"zz":    false,
		"":      false,
	} {
		if got := a.MatchName(name); got != want {
			t.Errorf("MatchName(%q) = %v, want %v", name, got, want)
		}
	}

	anyName := mustParse(t, `{__name__="a"}`, `{job="telemeter"}`)
	if !anyName.MatchName("zz") || !anyName.MatchName("") {
		t.Error("MatchName must be true for every name when an entry has no name matcher")
	}
	if _, ok := anyName.Match(series("__name__", "zz", "job", "telemeter")); !ok {
		t.Error("entry without a name matcher did not match")
	}

	nameless := mustParse(t, `{__name__="",job="x"}`)
	if !nameless.MatchName("") || nameless.MatchName("a") {
		t.Error(`MatchName with a __name__="" entry`)
	}
}

// MatchName must never say false for a series Match would allow.
func TestMatchNameConsistentWithMatch(t *testing.T) {
	a, err := LoadFile("testdata/allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"", "up", "ALERTS", "cluster_version", "cluster:usage:ingress_frontend_bytes_in:rate5m:sum",
		"cluster:usage:ingress_", "cluster:usage:ingres", "vsphere_vcenter_info", "count:up1", "count:up2", "node_cpu_seconds_total"}
	for _, n := range names {
		for _, extra := range [][]string{nil, {"job", "telemeter-client"}, {"alertstate", "firing"}, {"pool", "master"}} {
			ls := append(series("__name__", n), series(extra...)...)
			if _, ok := a.Match(ls); ok && !a.MatchName(n) {
				t.Errorf("Match(%v) allowed but MatchName(%q) = false", ls, n)
			}
		}
	}
}

func TestMatchTestdata(t *testing.T) {
	a, err := LoadFile("testdata/allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ls   []batch.Label
		want string // selector of the allowing entry, "" for denied
	}{
		{series("__name__", "cluster_version", "type", "current", "version", "4.16.3"), `{__name__="cluster_version"}`},
		{series("__name__", "up", "job", "telemeter-client"), `{__name__="up",job="telemeter-client"}`},
		{series("__name__", "up", "job", "node-exporter"), ""},
		{series("__name__", "ALERTS", "alertname", "Watchdog", "alertstate", "firing"), `{__name__="ALERTS",alertstate="firing"}`},
		{series("__name__", "ALERTS", "alertname", "Watchdog", "alertstate", "pending"), ""},
		{series("__name__", "cluster:usage:containers:sum"), `cluster:usage:containers:sum`},
		{series("__name__", "count:up0", "job", "kubelet"), `{__name__=~"count:up0|count:up1"}`},
		{series("__name__", "cluster:usage:ingress_frontend_connections:sum"), `{__name__=~"cluster:usage:ingress_.*"}`},
		{series("__name__", "csv_succeeded", "namespace", "openshift-logging"), `{__name__="csv_succeeded",namespace=~"openshift-.*"}`},
		{series("__name__", "csv_succeeded", "namespace", "my-operators"), ""},
		{series("__name__", "subscription_sync_total"), ""},
		{series("__name__", "node_cpu_seconds_total", "cpu", "0"), ""},
	} {
		i, ok := a.Match(tc.ls)
		got := ""
		if ok {
			got = a.Entries[i].Selector
		}
		if got != tc.want {
			t.Errorf("Match(%v) allowed by %q, want %q", tc.ls, got, tc.want)
		}
	}
}

func TestZeroAllowlistDeniesEverything(t *testing.T) {
	var a Allowlist
	if i, ok := a.Match(series("__name__", "up")); ok || i != -1 {
		t.Errorf("Match = %d, %v", i, ok)
	}
	if a.MatchName("up") {
		t.Error("MatchName = true")
	}
}

// benchSetup builds an allowlist of 200 entries shaped like telemetry
// allowlists (mostly exact names, some with label matchers, a few name
// regexes) and 1000 series of which half are allowed.
func benchSetup(tb testing.TB) (*Allowlist, [][]batch.Label) {
	var sels []string
	for i := range 200 {
		switch {
		case i%40 == 7:
			sels = append(sels, fmt.Sprintf(`{__name__=~"cluster:usage:feature_%d_.*"}`, i))
		case i%20 == 3:
			sels = append(sels, fmt.Sprintf(`{__name__=~"openshift:metric_%d:sum|workload:metric_%d:sum"}`, i, i))
		case i%10 == 5:
			sels = append(sels, fmt.Sprintf(`{__name__="cluster_metric_%d",job="telemeter-client",namespace=~"openshift-.*"}`, i))
		case i%10 == 9:
			sels = append(sels, fmt.Sprintf(`{__name__="cluster_metric_%d",alertstate!="pending"}`, i))
		default:
			sels = append(sels, fmt.Sprintf(`{__name__="cluster_metric_%d"}`, i))
		}
	}
	a := mustParse(tb, sels...)

	common := []string{"container", "kube-rbac-proxy", "endpoint", "https", "instance", "10.0.0.12:9091",
		"job", "telemeter-client", "namespace", "openshift-monitoring", "pod", "telemeter-client-7d9c", "service", "telemeter-client"}
	all := make([][]batch.Label, 0, 1000)
	for i := range 1000 {
		var name string
		n := i % 200
		switch {
		case i%2 == 1:
			name = fmt.Sprintf("container_metric_%d", i) // not allowlisted
		case n%40 == 7:
			name = fmt.Sprintf("cluster:usage:feature_%d_total", n)
		case n%20 == 3:
			name = fmt.Sprintf("workload:metric_%d:sum", n)
		default:
			name = fmt.Sprintf("cluster_metric_%d", n)
		}
		all = append(all, append(series("__name__", name), series(common...)...))
	}
	allowed := 0
	for _, ls := range all {
		if _, ok := a.Match(ls); ok {
			allowed++
		}
	}
	if allowed != 500 {
		tb.Fatalf("%d of %d series allowed, want 500", allowed, len(all))
	}
	return a, all
}

func matchAllSeries(a *Allowlist, all [][]batch.Label) int {
	n := 0
	for _, ls := range all {
		if !a.MatchName(ls[0].Value) {
			continue
		}
		if _, ok := a.Match(ls); ok {
			n++
		}
	}
	return n
}

func TestMatchDoesNotAllocate(t *testing.T) {
	a, all := benchSetup(t)
	allocs := testing.AllocsPerRun(20, func() { matchAllSeries(a, all) })
	if allocs != 0 {
		t.Fatalf("%v allocations per 1000 series, want 0", allocs)
	}
}

// BenchmarkMatch measures one pass over 1000 series (half allowed) against
// 200 entries, with the MatchName pre-check as the gateway's hot path uses.
func BenchmarkMatch(b *testing.B) {
	a, all := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if matchAllSeries(a, all) != 500 {
			b.Fatal("wrong match count")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(all)), "ns/series")
}

// TestMatcherAgreesWithAllowlist: a Matcher answers what the Allowlist
// answers, whatever the order of the series (the same name again, a name
// that is a prefix of the last one, a series without a name), for indexed,
// fallback and name-less entries.
func TestMatcherAgreesWithAllowlist(t *testing.T) {
	lists := []*Allowlist{
		mustParse(t, `{__name__="a"}`, `{__name__="b",job="x"}`, `{__name__=~"e_.*"}`, `{__name__=~"(?i)k|l"}`,
			`{__name__="hh"}`, `{__name__=~"h.*",env="p"}`, `{__name__="",job="nameless"}`),
		mustParse(t, `{job="x"}`, `{__name__="a",env="p"}`), // an entry for any name
		mustParse(t),
	}
	all := [][]batch.Label{
		series("__name__", "a"), series("__name__", "a", "job", "z"), series("__name__", "b", "job", "x"),
		series("__name__", "b", "job", "w"), series("__name__", "b", "job", "x"), series("__name__", "bb", "job", "x"),
		series("__name__", "e_total"), series("__name__", "e_total"), series("__name__", "K"), series("__name__", "k"),
		series("__name__", "hh", "env", "p"), series("__name__", "hh", "env", "q"), series("__name__", "h", "env", "p"),
		series("job", "nameless"), series("__name__", "", "job", "nameless"), series("__name__", "zz", "job", "x"),
		series("__name__", "a", "env", "p"), series("job", "x"), nil,
	}
	name := func(ls []batch.Label) string { s := batch.Series{Labels: ls}; return s.Name() }
	for li, a := range lists {
		for _, order := range [][]int{forward(len(all)), backward(len(all)), twice(len(all))} {
			m := a.Matcher()
			for _, i := range order {
				ls := all[i]
				if got, want := m.MatchName(name(ls)), a.MatchName(name(ls)); got != want {
					t.Fatalf("list %d: Matcher.MatchName(%q) = %v, Allowlist says %v", li, name(ls), got, want)
				}
				ge, gok := m.Match(name(ls), ls)
				we, wok := a.Match(ls)
				if ge != we || gok != wok {
					t.Fatalf("list %d: Matcher.Match(%v) = %d, %v; Allowlist says %d, %v", li, ls, ge, gok, we, wok)
				}
			}
		}
	}
}

func forward(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func backward(n int) []int {
	out := forward(n)
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func twice(n int) []int {
	var out []int
	for i := range n {
		out = append(out, i, i)
	}
	return out
}
