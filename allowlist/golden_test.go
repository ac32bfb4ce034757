package allowlist

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name, or rewrites that file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./allowlist -run %s -update to create it)", err, t.Name())
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("%s differs at line %d (run with -update if the change is intended):\ngot:  %q\nwant: %q\n\nfull output:\n%s", p, i+1, g, w, got)
			return
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func loadTestdata(t *testing.T, name string) *Allowlist {
	t.Helper()
	a, err := Parse(readTestdata(t, name), name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func lintText(fs []Finding) []byte {
	var b bytes.Buffer
	for _, f := range fs {
		fmt.Fprintln(&b, f)
	}
	return b.Bytes()
}

func TestLintGolden(t *testing.T) {
	for _, tc := range []struct{ file, golden string }{
		{"allowlist.yaml", "lint-allowlist.txt"},
		{"lint/broken.yaml", "lint-broken.txt"},
		{"lint/syntax.yaml", "lint-syntax.txt"},
		{"lint/configmap.yaml", "lint-configmap.txt"},
		{"lint/empty.yaml", "lint-empty.txt"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := Lint(readTestdata(t, tc.file), tc.file, LintOptions{})
			if len(got) == 0 {
				t.Fatal("no findings")
			}
			golden(t, tc.golden, lintText(got))
		})
	}
}

func TestDocsGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDocs(&b, loadTestdata(t, "allowlist.yaml"), DocsOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "docs-allowlist.md", b.Bytes())
}

func TestDiffGolden(t *testing.T) {
	old, new := loadTestdata(t, "allowlist.yaml"), loadTestdata(t, "diff/new.yaml")
	for _, tc := range []struct {
		golden   string
		old, new *Allowlist
	}{
		{"diff.md", old, new},
		{"diff-reverse.md", new, old},
		{"diff-none.md", old, old},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := Diff(tc.old, tc.new).WriteMarkdown(&b, DiffOptions{}); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.Bytes())
		})
	}
}

func TestExplainGolden(t *testing.T) {
	a := loadTestdata(t, "allowlist.yaml")
	series, err := SeriesFromText(readTestdata(t, "explain/cluster.prom"))
	if err != nil {
		t.Fatal(err)
	}
	r := Explain(a, series, ExplainOptions{})
	var txt, js bytes.Buffer
	if err := r.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "explain.txt", txt.Bytes())
	golden(t, "explain.json", js.Bytes())
}
