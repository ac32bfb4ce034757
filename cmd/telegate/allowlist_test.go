package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
)

// runAllowlist parses args as main does, with only the allowlist
// subcommands registered, and runs the chosen one.
func runAllowlist(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &allowlistCmd{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin)}
	app := kingpin.New("telegate", "")
	app.Terminate(nil)
	runs := map[string]func(log.Logger) error{
		c.registerLint(app).FullCommand():    c.runLint,
		c.registerDocs(app).FullCommand():    c.runDocs,
		c.registerDiff(app).FullCommand():    c.runDiff,
		c.registerExplain(app).FullCommand(): c.runExplain,
	}
	cmd, perr := app.Parse(args)
	if perr != nil {
		return "", "", perr
	}
	err = runs[cmd](log.NewNopLogger())
	return out.String(), errb.String(), err
}

const td = "../../allowlist/testdata/"

func TestAllowlistLintExitStatus(t *testing.T) {
	out, summary, err := runAllowlist(t, "", "allowlist", "lint", td+"lint/clean.yaml")
	if err != nil || out != "" || !strings.Contains(summary, "0 errors, 0 warnings in 1 file") {
		t.Errorf("clean: err %v out %q summary %q", err, out, summary)
	}
	out, _, err = runAllowlist(t, "", "allowlist", "lint", td+"lint/broken.yaml")
	if err == nil || !strings.Contains(out, td+"lint/broken.yaml:10: error: ") {
		t.Errorf("broken: err %v out %q", err, out)
	}
	// Warnings alone pass, unless --strict.
	dir := t.TempDir()
	warn := filepath.Join(dir, "warn.yaml")
	if err := os.WriteFile(warn, []byte("matches:\n# owners: (@o/t)\n# Nodes by role.\n- '{__name__=\"cluster:nodes_roles\"}'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runAllowlist(t, "", "allowlist", "lint", warn); err != nil || !strings.Contains(out, warn+":4: warning: ") {
		t.Errorf("warnings: err %v out %q", err, out)
	}
	if _, _, err := runAllowlist(t, "", "allowlist", "lint", "--strict", warn); err == nil {
		t.Error("--strict passed with warnings")
	}
}

func TestAllowlistLintDropLabelAndGithubFormat(t *testing.T) {
	// --drop-label replaces the default list: pod is no longer stripped,
	// job is.
	out, _, err := runAllowlist(t, "", "allowlist", "lint", "--drop-label=job", "--format=github", td+"lint/configmap.yaml")
	if err == nil {
		t.Fatal("missing description passed")
	}
	if strings.Contains(out, "stripped-label") {
		t.Errorf("pod reported although only job is stripped:\n%s", out)
	}
	want := "::error file=" + td + "lint/configmap.yaml,line=14,title=allowlist missing-description::"
	if !strings.HasPrefix(out, want) {
		t.Errorf("github format:\n%s\nwant prefix %s", out, want)
	}
}

func TestAllowlistDocsCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.md")
	if _, _, err := runAllowlist(t, "", "allowlist", "docs", "-o", p, td+"allowlist.yaml"); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(td + "golden/docs-allowlist.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The heading names the file as given on the command line.
	if !bytes.Equal(got, bytes.Replace(want, []byte("from allowlist.yaml"), []byte("from "+td+"allowlist.yaml"), 1)) {
		t.Errorf("docs output differs from the golden file:\n%s", got)
	}
	if _, _, err := runAllowlist(t, "", "allowlist", "docs", "--check", "-o", p, td+"allowlist.yaml"); err != nil {
		t.Errorf("--check on fresh docs: %v", err)
	}
	if err := os.WriteFile(p, append(got, "edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAllowlist(t, "", "allowlist", "docs", "--check", "-o", p, td+"allowlist.yaml"); err == nil || !strings.Contains(err.Error(), "out of date") {
		t.Errorf("--check on stale docs: %v", err)
	}
}

func TestAllowlistDiff(t *testing.T) {
	out, _, err := runAllowlist(t, "", "allowlist", "diff", td+"allowlist.yaml", td+"diff/new.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 metrics newly allowed, 1 metric denied", "| `cluster_master_schedulable` |", "over the guidance of 1 to 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runAllowlist(t, "", "allowlist", "diff", "--max-new-metrics-per-owner=4", "--format=json", td+"allowlist.yaml", td+"diff/new.yaml")
	if err != nil || !strings.Contains(out, `"name": "hypershift_nodepools"`) {
		t.Errorf("json: err %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("matches: ['x{']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAllowlist(t, "", "allowlist", "diff", td+"allowlist.yaml", bad); err == nil || !strings.Contains(err.Error(), bad+":1: invalid selector") {
		t.Errorf("invalid new file: %v", err)
	}
}

func TestAllowlistExplainFile(t *testing.T) {
	prom, err := os.ReadFile(td + "explain/cluster.prom")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(td + "golden/explain.txt")
	if err != nil {
		t.Fatal(err)
	}
	want = bytes.ReplaceAll(want, []byte("allowlist.yaml"), []byte(td+"allowlist.yaml"))
	for _, args := range [][]string{
		{"allowlist", "explain", "--file", td + "explain/cluster.prom", td + "allowlist.yaml"},
		{"allowlist", "explain", "--file=-", td + "allowlist.yaml"},
	} {
		out, _, err := runAllowlist(t, string(prom), args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out != string(want) {
			t.Errorf("%v: output differs from the golden file:\n%s", args, out)
		}
	}
	for _, args := range [][]string{
		{"allowlist", "explain", td + "allowlist.yaml"},
		{"allowlist", "explain", "--file=x", "--from=http://127.0.0.1:9", td + "allowlist.yaml"},
		{"allowlist", "explain", "--file=" + td + "explain/cluster.prom", "--match=up", td + "allowlist.yaml"},
	} {
		if _, _, err := runAllowlist(t, "", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, _, err := runAllowlist(t, "not a metric {{{\n", "allowlist", "explain", "--file=-", td+"allowlist.yaml"); err == nil || !strings.Contains(err.Error(), "text exposition") {
		t.Errorf("bad exposition: %v", err)
	}
}

func TestQuerySeries(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prom/api/v1/query" || r.Method != http.MethodPost {
			http.Error(w, "wrong path or method", http.StatusNotFound)
			return
		}
		q := r.FormValue("query")
		queries = append(queries, q)
		switch q {
		case "a":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"__name__":"a","job":"x","instance":"i1"},"value":[1,"1"]},
				{"metric":{"__name__":"a","job":"x","instance":"i2"},"value":[1,"1"]}]}}`)
		case `{__name__=~"a|b"}`:
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"instance":"i1","job":"x","__name__":"a"},"value":[1,"1"]},
				{"metric":{"__name__":"b"},"value":[1,"1"]}]}}`)
		case "bad":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		default:
			fmt.Fprint(w, `<html>proxy login</html>`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	got, err := querySeries(ctx, srv.Client(), srv.URL+"/prom/", []string{"a", `{__name__=~"a|b"}`})
	if err != nil {
		t.Fatal(err)
	}
	// Series found by several selectors count once; output is sorted.
	var lines []string
	for _, ls := range got {
		var parts []string
		for _, l := range ls {
			parts = append(parts, l.Name+"="+l.Value)
		}
		lines = append(lines, strings.Join(parts, ","))
	}
	if want := "__name__=a,instance=i1,job=x|__name__=a,instance=i2,job=x|__name__=b"; strings.Join(lines, "|") != want {
		t.Errorf("series = %q, want %q", strings.Join(lines, "|"), want)
	}

	for _, tc := range []struct {
		base, sel, want string
	}{
		{srv.URL + "/prom", "bad", "bad_data: parse error"},
		{srv.URL + "/prom", "other", "not the Prometheus API's JSON"},
		{srv.URL + "/prom", "x{", "selector \"x{\""},
		{"ftp://example", "a", "want an http(s) URL"},
		{"http://127.0.0.1:1", "a", "connection refused"},
	} {
		if _, err := querySeries(ctx, srv.Client(), tc.base, []string{tc.sel}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("querySeries(%s, %s) error %v, want it to contain %q", tc.base, tc.sel, err, tc.want)
		}
	}
}
