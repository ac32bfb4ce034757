package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
)

// allowlistCmd holds the flags of the "allowlist" subcommands, the tooling
// for teams that edit the allowlist: lint, docs, diff and explain.
type allowlistCmd struct {
	group  *kingpin.CmdClause
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader

	lintFiles  []string
	lintDrop   []string
	lintStrict bool
	lintFormat string

	docsFile   string
	docsOutput string
	docsTitle  string
	docsCheck  bool

	diffOld, diffNew string
	diffFormat       string
	diffMaxNew       int

	explainList      string
	explainFrom      string
	explainFile      string
	explainMatch     []string
	explainDrop      []string
	explainMaxMetric int
	explainMaxOwner  int
	explainFormat    string
	explainTimeout   time.Duration
}

func init() {
	c := &allowlistCmd{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	subcommands = append(subcommands,
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			return c.registerLint(app).FullCommand(), c.runLint
		},
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			return c.registerDocs(app).FullCommand(), c.runDocs
		},
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			return c.registerDiff(app).FullCommand(), c.runDiff
		},
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			return c.registerExplain(app).FullCommand(), c.runExplain
		},
	)
}

// parent returns the "allowlist" command, creating it on first use.
func (c *allowlistCmd) parent(app *kingpin.Application) *kingpin.CmdClause {
	if c.group == nil {
		c.group = app.Command("allowlist", "Tooling for the metrics allowlist: lint, docs, diff, explain.")
	}
	return c.group
}

func (c *allowlistCmd) registerLint(app *kingpin.Application) *kingpin.CmdClause {
	cmd := c.parent(app).Command("lint", "Check allowlist files the way a reviewer would. Prints FILE:LINE: error|warning: message (rule); exits 1 if there are errors.")
	cmd.Flag("drop-label", "A label the gateway strips (relabel.drop_labels); repeatable.").Default(allowlist.DefaultDropLabels...).StringsVar(&c.lintDrop)
	cmd.Flag("strict", "Exit 1 on warnings too.").BoolVar(&c.lintStrict)
	cmd.Flag("format", "Output format: text (FILE:LINE: ...) or github (workflow commands that annotate the pull request).").Default("text").EnumVar(&c.lintFormat, "text", "github")
	cmd.Arg("file", "Allowlist files (a matches: document or a ConfigMap holding one).").Required().ExistingFilesVar(&c.lintFiles)
	return cmd
}

func (c *allowlistCmd) registerDocs(app *kingpin.Application) *kingpin.CmdClause {
	cmd := c.parent(app).Command("docs", "Write a Markdown reference of every allowed metric with its owners and description.")
	cmd.Flag("output", "Write to this file instead of standard output.").Short('o').StringVar(&c.docsOutput)
	cmd.Flag("check", "Do not write: exit 1 if --output differs from what would be written (for CI).").BoolVar(&c.docsCheck)
	cmd.Flag("title", "Heading of the document.").Default("Telemetry allowlist").StringVar(&c.docsTitle)
	cmd.Arg("file", "Allowlist file.").Required().ExistingFileVar(&c.docsFile)
	return cmd
}

func (c *allowlistCmd) registerDiff(app *kingpin.Application) *kingpin.CmdClause {
	cmd := c.parent(app).Command("diff", "Summarise which metrics become allowed or denied between two allowlist versions, and who owns them.")
	cmd.Flag("format", "Output format: markdown or json.").Default("markdown").EnumVar(&c.diffFormat, "markdown", "json")
	cmd.Flag("max-new-metrics-per-owner", "Review guidance: owners adding more metrics than this are flagged.").Default("3").IntVar(&c.diffMaxNew)
	cmd.Arg("old", "The allowlist before the change.").Required().ExistingFileVar(&c.diffOld)
	cmd.Arg("new", "The allowlist after the change.").Required().ExistingFileVar(&c.diffNew)
	return cmd
}

func (c *allowlistCmd) registerExplain(app *kingpin.Application) *kingpin.CmdClause {
	cmd := c.parent(app).Command("explain", "Explain what the gateway would do with a cluster's series: allowed or not and by which entry, stripped labels, collisions, series counts against the guidance.")
	cmd.Flag("from", "Prometheus base URL: every allowlist selector (and --match) is queried at /api/v1/query, giving a cardinality estimate per entry.").StringVar(&c.explainFrom)
	cmd.Flag("file", "File in the Prometheus text exposition format (a /metrics or /federate response); - for standard input.").StringVar(&c.explainFile)
	cmd.Flag("match", "With --from: also explain the series of this selector (e.g. a metric that does not show up); repeatable.").StringsVar(&c.explainMatch)
	cmd.Flag("drop-label", "A label the gateway strips (relabel.drop_labels); repeatable.").Default(allowlist.DefaultDropLabels...).StringsVar(&c.explainDrop)
	cmd.Flag("max-series-per-metric", "Guidance: stored series per metric.").Default(fmt.Sprint(allowlist.DefaultMaxSeriesPerMetric)).IntVar(&c.explainMaxMetric)
	cmd.Flag("max-series-per-owner", "Guidance: stored series per owner (component).").Default(fmt.Sprint(allowlist.DefaultMaxSeriesPerOwner)).IntVar(&c.explainMaxOwner)
	cmd.Flag("format", "Output format: text or json.").Default("text").EnumVar(&c.explainFormat, "text", "json")
	cmd.Flag("timeout", "With --from: time limit for all queries.").Default("1m").DurationVar(&c.explainTimeout)
	cmd.Arg("allowlist", "Allowlist file.").Required().ExistingFileVar(&c.explainList)
	return cmd
}

func (c *allowlistCmd) runLint(log.Logger) error {
	errs, warns := 0, 0
	for _, f := range c.lintFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, fd := range allowlist.Lint(data, f, allowlist.LintOptions{DropLabels: c.lintDrop}) {
			if fd.Severity == allowlist.SeverityError {
				errs++
			} else {
				warns++
			}
			if c.lintFormat == "github" {
				fmt.Fprintf(c.stdout, "::%s file=%s,line=%d,title=allowlist %s::%s\n", fd.Severity, fd.File, max(fd.Line, 1), fd.Rule, githubEscape(fd.Msg))
			} else {
				fmt.Fprintln(c.stdout, fd)
			}
		}
	}
	fmt.Fprintf(c.stderr, "%d %s, %d %s in %d %s\n", errs, noun(errs, "error"), warns, noun(warns, "warning"), len(c.lintFiles), noun(len(c.lintFiles), "file"))
	if errs > 0 || (c.lintStrict && warns > 0) {
		return fmt.Errorf("allowlist lint failed: %d %s, %d %s", errs, noun(errs, "error"), warns, noun(warns, "warning"))
	}
	return nil
}

// githubEscape escapes a workflow command's message.
func githubEscape(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func noun(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func (c *allowlistCmd) runDocs(log.Logger) error {
	a, err := allowlist.LoadFile(c.docsFile)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := allowlist.WriteDocs(&b, a, allowlist.DocsOptions{Title: c.docsTitle}); err != nil {
		return err
	}
	switch {
	case c.docsCheck:
		if c.docsOutput == "" {
			return errors.New("--check needs --output, the file to compare with")
		}
		have, err := os.ReadFile(c.docsOutput)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, b.Bytes()) {
			return fmt.Errorf("%s is out of date with %s: run telegate allowlist docs %s --output %s", c.docsOutput, c.docsFile, c.docsFile, c.docsOutput)
		}
		return nil
	case c.docsOutput != "":
		return os.WriteFile(c.docsOutput, b.Bytes(), 0o644)
	}
	_, err = c.stdout.Write(b.Bytes())
	return err
}

func (c *allowlistCmd) runDiff(log.Logger) error {
	old, err := allowlist.LoadFile(c.diffOld)
	if err != nil {
		return err
	}
	new, err := allowlist.LoadFile(c.diffNew)
	if err != nil {
		return err
	}
	d := allowlist.Diff(old, new)
	if c.diffFormat == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return d.WriteMarkdown(c.stdout, allowlist.DiffOptions{MaxNewMetricsPerOwner: c.diffMaxNew})
}

func (c *allowlistCmd) runExplain(log.Logger) error {
	if (c.explainFrom == "") == (c.explainFile == "") {
		return errors.New("explain needs exactly one of --from URL and --file PATH")
	}
	if len(c.explainMatch) > 0 && c.explainFrom == "" {
		return errors.New("--match needs --from (with --file, every series of the file is explained)")
	}
	a, err := allowlist.LoadFile(c.explainList)
	if err != nil {
		return err
	}
	var series [][]batch.Label
	if c.explainFile != "" {
		var data []byte
		if c.explainFile == "-" {
			data, err = io.ReadAll(c.stdin)
		} else {
			data, err = os.ReadFile(c.explainFile)
		}
		if err != nil {
			return err
		}
		if series, err = allowlist.SeriesFromText(data); err != nil {
			return fmt.Errorf("%s: %w", c.explainFile, err)
		}
	} else {
		sels := append(a.Selectors(), c.explainMatch...)
		ctx, cancel := context.WithTimeout(context.Background(), c.explainTimeout)
		defer cancel()
		if series, err = querySeries(ctx, http.DefaultClient, c.explainFrom, sels); err != nil {
			return err
		}
	}
	r := allowlist.Explain(a, series, allowlist.ExplainOptions{
		DropLabels:         c.explainDrop,
		MaxSeriesPerMetric: c.explainMaxMetric,
		MaxSeriesPerOwner:  c.explainMaxOwner,
	})
	if c.explainFormat == "json" {
		return r.WriteJSON(c.stdout)
	}
	return r.WriteText(c.stdout)
}

// promQueryResponse is the part of a Prometheus /api/v1/query answer we
// read.
type promQueryResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	} `json:"data"`
}

// querySeries asks the Prometheus at base for the current series of each
// selector (an instant query, so stale series are left out, as federation
// does) and returns every distinct label set found, sorted.
func querySeries(ctx context.Context, client *http.Client, base string, selectors []string) ([][]batch.Label, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--from %q: want an http(s) URL of a Prometheus server", base)
	}
	endpoint := strings.TrimSuffix(u.String(), "/") + "/api/v1/query"
	seen := map[string][]batch.Label{}
	p := parser.NewParser(parser.Options{})
	for _, sel := range selectors {
		if _, err := p.ParseMetricSelector(sel); err != nil {
			return nil, fmt.Errorf("selector %q: %w", sel, err)
		}
		body := url.Values{"query": {sel}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", sel, err)
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", sel, err)
		}
		var pr promQueryResponse
		if jerr := json.Unmarshal(raw, &pr); jerr != nil {
			return nil, fmt.Errorf("query %s: %s answered %s with a body that is not the Prometheus API's JSON: %.200q", sel, endpoint, resp.Status, raw)
		}
		if resp.StatusCode/100 != 2 || pr.Status != "success" {
			return nil, fmt.Errorf("query %s: %s answered %s: %s: %s", sel, endpoint, resp.Status, pr.ErrorType, pr.Error)
		}
		if pr.Data.ResultType != "vector" {
			return nil, fmt.Errorf("query %s: result type %q, want vector", sel, pr.Data.ResultType)
		}
		for _, s := range pr.Data.Result {
			ls := make([]batch.Label, 0, len(s.Metric))
			for k, v := range s.Metric {
				ls = append(ls, batch.Label{Name: k, Value: v})
			}
			sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
			var key strings.Builder
			for _, l := range ls {
				key.WriteString(l.Name)
				key.WriteByte(0xff)
				key.WriteString(l.Value)
				key.WriteByte(0xff)
			}
			seen[key.String()] = ls
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]batch.Label, len(keys))
	for i, k := range keys {
		out[i] = seen[k]
	}
	return out, nil
}
