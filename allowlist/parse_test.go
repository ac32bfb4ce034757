package allowlist

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// want describes one expected entry.
type want struct {
	sel    string
	line   int
	owners []string
	desc   string
}

func checkEntries(t *testing.T, a *Allowlist, wants []want) {
	t.Helper()
	if len(a.Entries) != len(wants) {
		t.Fatalf("got %d entries %q, want %d", len(a.Entries), a.Selectors(), len(wants))
	}
	for i, w := range wants {
		e := a.Entries[i]
		if e.Selector != w.sel || e.Line != w.line || !reflect.DeepEqual(e.Owners, w.owners) || e.Description != w.desc {
			t.Errorf("entry %d = {%q line %d owners %q desc %q}, want {%q line %d owners %q desc %q}",
				i, e.Selector, e.Line, e.Owners, e.Description, w.sel, w.line, w.owners, w.desc)
		}
		if len(e.Matchers) == 0 {
			t.Errorf("entry %d has no matchers", i)
		}
	}
}

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []want
	}{
		{
			name: "plain with comments",
			src: `# File header, separated by a blank line.

matches:
# owners: (@openshift/team-a, @openshift/team-b)
#
# cluster_version reports versions.
# Second line.
- '{__name__="cluster_version"}'
- 'cluster:usage:containers:sum'
# owners: (@openshift/team-c)
- '{__name__="up",job="foo"}' # only the telemeter job
`,
			want: []want{
				{`{__name__="cluster_version"}`, 8, []string{"@openshift/team-a", "@openshift/team-b"}, "cluster_version reports versions.\nSecond line."},
				{`cluster:usage:containers:sum`, 9, nil, ""},
				{`{__name__="up",job="foo"}`, 11, []string{"@openshift/team-c"}, "only the telemeter job"},
			},
		},
		{
			name: "indented list, section header detached by blank line",
			src: `matches:
  # Section: cluster operators.

  # owners: @team-x @team-y
  # Operators up.
  - '{__name__=~"cluster_operator_.*"}'
  # OWNERS: (@team-z)
  #
  #
  # desc after two empty lines
  #
  - "{__name__=\"cluster_installer\"}"
`,
			want: []want{
				{`{__name__=~"cluster_operator_.*"}`, 6, []string{"@team-x", "@team-y"}, "Operators up."},
				{`{__name__="cluster_installer"}`, 12, []string{"@team-z"}, "desc after two empty lines"},
			},
		},
		{
			name: "flow list",
			src:  "matches: ['a', \"b\",\n  c]\n",
			want: []want{{"a", 1, nil, ""}, {"b", 1, nil, ""}, {"c", 2, nil, ""}},
		},
		{
			name: "paragraphs in description",
			src: `matches:
# owners: (@t)
# first paragraph
#
# second paragraph
- a
`,
			want: []want{{"a", 6, []string{"@t"}, "first paragraph\n\nsecond paragraph"}},
		},
		{
			name: "empty list",
			src:  "matches: []\n",
		},
		{
			name: "null list",
			src:  "matches:\n# - '{__name__=\"all_commented_out\"}'\n",
		},
		{
			name: "document marker",
			src:  "---\nmatches:\n- a\n",
			want: []want{{"a", 3, nil, ""}},
		},
		{
			name: "configmap literal block, absolute lines",
			src: `apiVersion: v1
kind: ConfigMap
metadata:
  name: telemetry-config
data:
  metrics.yaml: |-
    matches:
    # owners: (@openshift/team-a)
    # Versions.
    - '{__name__="cluster_version"}'
    - '{__name__="cluster_installer"}'
`,
			want: []want{
				{`{__name__="cluster_version"}`, 10, []string{"@openshift/team-a"}, "Versions."},
				{`{__name__="cluster_installer"}`, 11, nil, ""},
			},
		},
		{
			name: "configmap with several keys picks allowlist.yaml",
			src: `kind: ConfigMap
data:
  README: see the docs
  allowlist.yaml: |
    matches:
    - a
`,
			want: []want{{"a", 6, nil, ""}},
		},
		{
			name: "configmap with a quoted value, relative lines",
			src:  "kind: ConfigMap\ndata:\n  telemetry: \"matches:\\n- a\\n- b\\n\"\n",
			want: []want{{"a", 2, nil, ""}, {"b", 3, nil, ""}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.src), "allowlist.yaml")
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, a, tc.want)
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want string // regexp matched against the whole error message
	}{
		{
			name: "invalid selector",
			src:  "matches:\n- '{__name__=\"a\"}'\n\n- '{__name__=\"a\"'\n",
			want: `^allowlist\.yaml:4: invalid selector "\{__name__=\\"a\\"": 1:14: parse error: .*$`,
		},
		{
			name: "all invalid selectors are reported",
			src:  "matches:\n- 'rate(x[5m])'\n- ok\n- 'a{b=~\"(\"}'\n",
			want: `^allowlist\.yaml:2: invalid selector "rate\(x\[5m\]\)": .*\nallowlist\.yaml:4: invalid selector "a\{b=~\\"\(\\"\}": .*regexp.*$`,
		},
		{
			name: "empty selector",
			src:  "matches:\n- ''\n",
			want: `^allowlist\.yaml:2: invalid selector "": .*$`,
		},
		{
			name: "selector matching everything",
			src:  "matches:\n- a\n- '{}'\n- '{job=~\".*\"}'\n",
			want: `^allowlist\.yaml:3: invalid selector "\{\}": need at least one matcher .*\nallowlist\.yaml:4: invalid selector .*every series$`,
		},
		{
			name: "unknown key",
			src:  "matches: []\nmatch:\n- a\n",
			want: `^allowlist\.yaml:2: unknown field "match": the only top-level field is "matches"$`,
		},
		{
			name: "duplicate matches",
			src:  "matches: [a]\nmatches: [b]\n",
			want: `^allowlist\.yaml:2: duplicate field "matches"$`,
		},
		{
			name: "missing matches",
			src:  "{}\n",
			want: `^allowlist\.yaml:1: missing top-level "matches" list$`,
		},
		{
			name: "empty file",
			src:  "# nothing here\n",
			want: `^allowlist\.yaml: empty document: want a top-level "matches" list$`,
		},
		{
			name: "matches not a list",
			src:  "\nmatches: '{__name__=\"a\"}'\n",
			want: `^allowlist\.yaml:2: "matches" must be a list of selector strings, got the string "\{__name__=\\"a\\"\}"$`,
		},
		{
			name: "matches a mapping",
			src:  "matches:\n  a: b\n",
			want: `^allowlist\.yaml:2: "matches" must be a list of selector strings, got a mapping$`,
		},
		{
			name: "entry not a string",
			src:  "matches:\n- a\n- {b: c}\n- [d]\n",
			want: `^allowlist\.yaml:3: entry must be a selector string, got a mapping\nallowlist\.yaml:4: entry must be a selector string, got a list$`,
		},
		{
			name: "empty entry",
			src:  "matches:\n- a\n-\n",
			want: `^allowlist\.yaml:3: empty entry$`,
		},
		{
			name: "top level is a list",
			src:  "- a\n- b\n",
			want: `^allowlist\.yaml:1: want a mapping with a top-level "matches" list, got a list$`,
		},
		{
			name: "yaml syntax error",
			src:  "matches:\n- a\n- b: [\n",
			want: `^allowlist\.yaml:3: did not find expected node content$`,
		},
		{
			name: "several documents",
			src:  "matches: [a]\n---\nmatches: [b]\n",
			want: `^allowlist\.yaml:2: more than one YAML document$`,
		},
		{
			name: "other kind",
			src:  "apiVersion: v1\nkind: Secret\ndata: {}\n",
			want: `^allowlist\.yaml:2: unsupported kind "Secret": .*$`,
		},
		{
			name: "configmap without data",
			src:  "kind: ConfigMap\nmetadata: {name: x}\n",
			want: `^allowlist\.yaml:1: ConfigMap has no "data"$`,
		},
		{
			name: "configmap with ambiguous keys",
			src:  "kind: ConfigMap\ndata:\n  a.yaml: 'matches: []'\n  b.yaml: 'matches: []'\n",
			want: `^allowlist\.yaml:3: ConfigMap data has several keys \("a\.yaml", "b\.yaml"\) and none is one of metrics\.yaml, .*$`,
		},
		{
			name: "configmap value not a string",
			src:  "kind: ConfigMap\ndata:\n  metrics.yaml:\n    matches: [a]\n",
			want: `^allowlist\.yaml:4: ConfigMap data "metrics\.yaml" must be a string holding the allowlist document, got a mapping$`,
		},
		{
			name: "configmap literal, invalid selector at ConfigMap line",
			src:  "kind: ConfigMap\ndata:\n  metrics.yaml: |\n    matches:\n    - a\n    - 'b{'\n",
			want: `^allowlist\.yaml:6: invalid selector "b\{": .*$`,
		},
		{
			name: "configmap literal, unknown key at ConfigMap line",
			src:  "kind: ConfigMap\ndata:\n  metrics.yaml: |\n    matches: []\n    extra: 1\n",
			want: `^allowlist\.yaml:5: unknown field "extra": .*$`,
		},
		{
			name: "configmap literal, yaml error at ConfigMap line",
			src:  "kind: ConfigMap\ndata:\n  metrics.yaml: |\n    matches:\n    - a\n    - b: [\n",
			want: `^allowlist\.yaml:6: did not find expected node content$`,
		},
		{
			name: "configmap quoted, error relative to embedded document",
			src:  "kind: ConfigMap\ndata:\n  telemetry: \"matches:\\n- a\\n- b{\\n\"\n",
			want: `^allowlist\.yaml:telemetry:3: invalid selector "b\{": .*$`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.src), "allowlist.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded with %d entries, want error matching %s", len(a.Entries), tc.want)
			}
			if !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("error:\n%s\nwant match for:\n%s", err, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T does not wrap *Error", err)
			}
		})
	}
}

func TestParseEmptyListDeniesEverything(t *testing.T) {
	for _, src := range []string{"matches: []\n", "matches:\n"} {
		a, err := Parse([]byte(src), "x")
		if err != nil {
			t.Fatal(err)
		}
		if i, ok := a.Match(series("__name__", "up")); ok || i != -1 {
			t.Errorf("%q: Match = %d, %v; want -1, false", src, i, ok)
		}
		if a.MatchName("up") || a.MatchName("") {
			t.Errorf("%q: MatchName = true", src)
		}
		if got := a.Selectors(); len(got) != 0 {
			t.Errorf("%q: Selectors = %q", src, got)
		}
	}
}

func TestParseDefaultFilename(t *testing.T) {
	_, err := Parse([]byte("matches: x\n"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "allowlist:1: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadFileTestdata(t *testing.T) {
	a, err := LoadFile("testdata/allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Entries) < 30 {
		t.Fatalf("only %d entries", len(a.Entries))
	}
	src, err := os.ReadFile("testdata/allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for i, e := range a.Entries {
		// Every example entry is documented, and Line points at it.
		if len(e.Owners) == 0 || e.Description == "" {
			t.Errorf("entry %d %s: owners %q description %q", i, e.Selector, e.Owners, e.Description)
		}
		if !strings.Contains(lines[e.Line-1], e.Selector) {
			t.Errorf("entry %d: line %d is %q, want it to hold %s", i, e.Line, lines[e.Line-1], e.Selector)
		}
		for _, o := range e.Owners {
			if !strings.HasPrefix(o, "@openshift/") || strings.ContainsAny(o, "(), ") {
				t.Errorf("entry %d: bad owner %q", i, o)
			}
		}
	}
	if a.Entries[0].Selector != `{__name__="cluster_version"}` || a.Entries[0].Description == "" ||
		strings.Contains(a.Entries[0].Description, "File header") || strings.Contains(a.Entries[0].Description, "Metrics that clusters") {
		t.Errorf("first entry = %+v", a.Entries[0])
	}

	cm, err := LoadFile("testdata/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, cm, []want{
		{`{__name__="cluster_version"}`, 12, []string{"@openshift/openshift-team-cvo"}, "cluster_version reports the installed and desired versions."},
		{`{__name__="cluster_installer"}`, 14, []string{"@openshift/openshift-team-installer"}, ""},
	})
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

func TestLoadFileErrorNamesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allowlist.yaml")
	if err := os.WriteFile(p, []byte("matches:\n- 'x{'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":2: invalid selector") {
		t.Fatalf("err = %v", err)
	}
}

func TestHash(t *testing.T) {
	parse := func(src string) *Allowlist {
		t.Helper()
		a, err := Parse([]byte(src), "x")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	h1 := parse("matches: [a]\n").Hash()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(h1) {
		t.Fatalf("hash %q is not 16 hex digits", h1)
	}
	// Stable: a fixed input always hashes the same (SHA-256 prefix).
	if h1 != parse("matches: [a]\n").Hash() || h1 != "ab202a5bf00e7e50" {
		t.Errorf("hash %q not stable", h1)
	}
	// Any change to the file changes the hash, even a comment.
	if h2 := parse("# c\nmatches: [a]\n").Hash(); h2 == h1 {
		t.Errorf("hash did not change with content")
	}
}

func TestSelectors(t *testing.T) {
	a, err := Parse([]byte("matches:\n- b\n- '{__name__=\"a\"}'\n- c\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	got := a.Selectors()
	if want := []string{"b", `{__name__="a"}`, "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Selectors = %q, want %q", got, want)
	}
	got[0] = "changed"
	if a.Selectors()[0] != "b" || a.Entries[0].Selector != "b" {
		t.Fatal("Selectors returned the allowlist's own storage")
	}
}
