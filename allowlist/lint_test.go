package allowlist

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/telegate/telegate/batch"
)

// doc builds an allowlist document whose entries are all documented, so a
// test sees only the findings its selectors cause.
func doc(sels ...string) string {
	var b strings.Builder
	b.WriteString("matches:\n")
	for _, s := range sels {
		fmt.Fprintf(&b, "# owners: (@org/team)\n# What it is for.\n- '%s'\n", s)
	}
	return b.String()
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d:%s", f.Line, f.Rule))
	}
	return out
}

func TestLintRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		drop []string
		want []string // "line:rule"
	}{
		{"clean", doc(`{__name__="a"}`, `{__name__=~"b|c",job="j"}`, `{__name__="cluster:x:sum"}`), nil, nil},
		{"duplicate regardless of matcher order", doc(`{__name__="a",job="j"}`, `{job="j",__name__="a"}`), nil, []string{"7:duplicate"}},
		{"plain name duplicates brace form", doc(`a`, `{__name__="a"}`), nil, []string{"7:duplicate"}},
		{"name list covers name with matchers", doc(`{__name__="a",job="j"}`, `{__name__=~"a|b"}`), nil, []string{"4:overlap"}},
		{"negative matcher covers equality", doc(`{__name__="a",state!="x"}`, `{__name__="a",state="y"}`), nil, []string{"7:overlap"}},
		{"regex covers list of values", doc(`{__name__="a",pool=~"m.*"}`, `{__name__="a",pool=~"master|mcp"}`), nil, []string{"7:overlap"}},
		{"name pattern covers name", doc(`{__name__=~"a_.*"}`, `{__name__="a_b"}`), nil, []string{"4:name-regex", "7:overlap"}},
		{"disjoint values do not overlap", doc(`{__name__="a",job="x"}`, `{__name__="a",job="y"}`), nil, nil},
		{"regex values not provably covered", doc(`{__name__="a",job=~"x.*"}`, `{__name__="a",job=~"xy.*"}`), nil, nil},
		{"no name", doc(`{job="j"}`), nil, []string{"4:no-name"}},
		{"negative name only", doc(`{__name__!="a",job="j"}`), nil, []string{"4:no-name"}},
		{"name regex", doc(`{__name__=~"a.+"}`), nil, []string{"4:name-regex"}},
		{"name alternation with common prefix is a list", doc(`{__name__=~"x_(bucket|sum|count)"}`), nil, nil},
		{"stripped label", doc(`{__name__="a",instance="i"}`, `{__name__="b",pod!=""}`), nil, []string{"4:stripped-label", "7:stripped-label"}},
		{"absent stripped label is fine", doc(`{__name__="a",pod=""}`), nil, nil},
		{"custom drop labels", doc(`{__name__="a",instance="i",job="j"}`), []string{"job"}, []string{"4:stripped-label"}},
		{"recording rule names", doc(`{__name__=~"a:b|a:b:c:d|:b:c|a::c|a:b:c"}`), nil,
			[]string{"4:recording-rule-name", "4:recording-rule-name", "4:recording-rule-name", "4:recording-rule-name"}},
		{"aggregation level keeps a stripped label", doc(`{__name__=~"instance:x:sum|instance_path:y:rate5m|pod_namespace:z:sum|cluster:w:sum"}`), nil,
			[]string{"4:aggregation-level", "4:aggregation-level", "4:aggregation-level"}},
		{"personal data", doc(`{__name__="a",email!="",user_name="x",host=~"h.*",client_ip!="",job="j"}`), nil,
			[]string{"4:personal-data", "4:personal-data", "4:personal-data", "4:personal-data"}},
		{"empty", "matches: []\n", nil, []string{"0:empty"}},
		{"missing owners and description", "matches:\n- a\n# owners: (@o/t)\n- b\n# Only a description.\n- c\n", nil,
			[]string{"2:missing-owners", "2:missing-description", "4:missing-description", "6:missing-owners"}},
		{"section header is not documentation", "matches:\n# owners: (@o/t)\n# Section.\n\n- a\n", nil,
			[]string{"5:missing-owners", "5:missing-description"}},
		{"owner format", "matches:\n# owners: (@org/team, someone, @user, @a/b/c)\n# Doc.\n- a\n", nil,
			[]string{"4:owner-format", "4:owner-format"}},
		{"invalid entries do not stop the rest", "matches:\n- 'x{'\n- '{a=\"\"}'\n- b\n", nil,
			[]string{"2:invalid-selector", "3:invalid-selector", "4:missing-owners", "4:missing-description"}},
		{"syntax", "matches: [\n", nil, []string{"1:syntax"}},
		{"wrong shape", "matches: {a: b}\n", nil, []string{"1:syntax"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rules(Lint([]byte(tc.src), "f.yaml", LintOptions{DropLabels: tc.drop}))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings %q, want %q\n%s", got, tc.want, tc.src)
			}
		})
	}
}

func TestLintDirectives(t *testing.T) {
	src := `matches:
# owners: (@o/t)
# lint: allow-name-regex
# Deliberate pattern.
- '{__name__=~"x_.*"}'
# owners: (@o/t)
# lint: allow-personal-data, allow-recording-rule-name
# Logins by user, with a legacy name.
- '{__name__="logins:sum",user!=""}'
# owners: (@o/t)
# lint: allow-name-regex allow-everything
# A list of names does not need the directive.
- '{__name__=~"a|b"}'
`
	got := Lint([]byte(src), "f.yaml", LintOptions{})
	var lines []string
	for _, f := range got {
		lines = append(lines, f.String())
	}
	want := []string{
		`f.yaml:13: error: unknown lint directive "allow-everything": want allow-RULE with RULE one of name-regex, recording-rule-name, aggregation-level, personal-data (unknown-directive)`,
		`f.yaml:13: warning: "# lint: allow-name-regex" is not needed: the name-regex rule does not apply to {__name__=~"a|b"} (unused-directive)`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// The directive is parsed into Entry.Lint and kept out of Description.
	a, err := Parse([]byte(src), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := a.Entries[1]
	if !reflect.DeepEqual(e.Lint, []string{"allow-personal-data", "allow-recording-rule-name"}) || e.Description != "Logins by user, with a legacy name." {
		t.Errorf("entry = lint %q description %q", e.Lint, e.Description)
	}
}

func TestLintConfigMapLines(t *testing.T) {
	// A ConfigMap written without a literal block reports lines of the
	// embedded document, under file:key.
	src := "kind: ConfigMap\ndata:\n  metrics.yaml: \"matches:\\n- a\\n\"\n"
	got := Lint([]byte(src), "cm.yaml", LintOptions{})
	if len(got) == 0 || got[0].File != "cm.yaml:metrics.yaml" || got[0].Line != 2 {
		t.Errorf("findings %v", got)
	}
}

func TestPersonalDataLabel(t *testing.T) {
	for name, want := range map[string]bool{
		"email": true, "user_email": true, "Username": true, "remote_ip": true, "hostname": true,
		"host": true, "ip": true, "mac_address": true, "job": false, "namespace": false, "pipeline": false,
		"type": false, "version": false, "provider_type": false, "users_total": false,
		"url": true, "request_path": true, "repo_uri": true, "paths_total": false,
	} {
		if got := PersonalDataLabel(name); got != want {
			t.Errorf("PersonalDataLabel(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDocsStableOrder(t *testing.T) {
	// Entry order in the file does not change the order of the metrics.
	render := func(src string) []string {
		a, err := Parse([]byte(src), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := WriteDocs(&b, a, DocsOptions{}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "| `") {
				names = append(names, strings.SplitN(l, "|", 3)[1])
			}
		}
		return names
	}
	a := render(doc(`{__name__=~"zeta|alpha"}`, `{__name__="mid",job="x"}`, `{__name__="Beta"}`))
	b := render(doc(`{__name__="Beta"}`, `{__name__="mid",job="x"}`, `{__name__=~"alpha|zeta"}`))
	want := []string{" `Beta` ", " `alpha` ", " `mid` ", " `zeta` "}
	if !reflect.DeepEqual(a, want) || !reflect.DeepEqual(b, want) {
		t.Errorf("order %q and %q, want %q", a, b, want)
	}
}

func TestDiffSemantics(t *testing.T) {
	parse := func(src string) *Allowlist {
		a, err := Parse([]byte(src), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// A name that moves from its own entry to a pattern stays allowed: its
	// restriction changes, it is not denied.
	old := parse(doc(`{__name__="x_a"}`, `{__name__="y",job="j"}`, `{__name__="z"}`))
	new := parse(doc(`{__name__=~"x_.*"}`, `{__name__="y",job="j"}`, `{__name__="z",job="k"}`, `{__name__="z"}`))
	d := Diff(old, new)
	if len(d.Allowed) != 0 || len(d.Denied) != 0 {
		t.Errorf("allowed %v denied %v, want none", d.Allowed, d.Denied)
	}
	// z: an unrestricted entry makes the extra restricted one irrelevant.
	if len(d.Changed) != 1 || d.Changed[0].Name != "x_a" || d.Changed[0].New.Restrictions[0] != `{__name__=~"x_.*"}` {
		t.Errorf("changed %+v", d.Changed)
	}
	if len(d.PatternsAdded) != 1 || d.PatternsAdded[0].Selector != `{__name__=~"x_.*"}` {
		t.Errorf("patterns added %+v", d.PatternsAdded)
	}
	if !Diff(new, new).Empty() {
		t.Error("diff of identical allowlists not empty")
	}
}

// FuzzLint checks that Lint never panics and agrees with Parse: a document
// Parse rejects has an error finding, one it accepts has no syntax or
// invalid-selector finding; Explain and WriteDocs run on what parses.
func FuzzLint(f *testing.F) {
	for _, p := range []string{"allowlist.yaml", "configmap.yaml", "lint/broken.yaml", "lint/syntax.yaml", "lint/configmap.yaml", "lint/clean.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("matches:\n# owners: (@a/b)\n# lint: allow-name-regex\n- '{__name__=~\"a.*\",pod=\"\"}'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := Lint(data, "f.yaml", LintOptions{})
		parseErr := false
		for _, fd := range fs {
			if fd.Rule == "" || fd.Msg == "" {
				t.Fatalf("finding without rule or message: %+v", fd)
			}
			if fd.Rule == RuleSyntax || fd.Rule == RuleInvalidSelector {
				parseErr = true
			}
		}
		a, err := Parse(data, "f.yaml")
		if (err != nil) != parseErr {
			t.Fatalf("Parse error %v but lint parse findings %v", err, parseErr)
		}
		if err != nil {
			return
		}
		var b strings.Builder
		if err := WriteDocs(&b, a, DocsOptions{}); err != nil {
			t.Fatal(err)
		}
		Diff(a, a)
		r := Explain(a, [][]batch.Label{series("__name__", "up", "pod", "p"), series("__name__", "up")}, ExplainOptions{})
		if r.Series != 2 {
			t.Fatalf("series %d", r.Series)
		}
	})
}
