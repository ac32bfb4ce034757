package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/limits"
)

//go:embed templates/*.html static/*
var assets embed.FS

// SpoolStats is the durable spool's state.
type SpoolStats struct {
	Objects int       `json:"objects"`
	Bytes   int64     `json:"bytes"`
	Oldest  time.Time `json:"oldest,omitzero"`
	// DeadObjects and DeadBytes are the dead letters kept.
	DeadObjects int   `json:"dead_objects"`
	DeadBytes   int64 `json:"dead_bytes"`
}

// ConfigInfo names the configuration the gateway runs.
type ConfigInfo struct {
	Origin   string    `json:"origin"`
	Hash     string    `json:"hash"`
	LoadedAt time.Time `json:"loaded_at"`
}

// Options wire a Console.
type Options struct {
	Gateway *gateway.Gateway
	// Spool reports the durable spool; nil when there is none (spool off,
	// or single-binary mode).
	Spool func() SpoolStats
	// Mode is "forwarding" or "single-binary".
	Mode    string
	Config  ConfigInfo
	Version string
	// RedisAddress is the shared budgets' Redis ("" when budgets are kept
	// in memory).
	RedisAddress string
	// Replicas lists the gateway replicas sharing that Redis (their
	// heartbeats); nil when budgets are kept in memory.
	Replicas func(ctx context.Context) ([]limits.ReplicaSeen, error)
}

// Console serves the pages.
type Console struct {
	o     Options
	pages map[string]*template.Template
}

// maxFormBytes bounds a POSTed diagnose form or body.
const maxFormBytes = 1 << 20

var funcs = template.FuncMap{
	"ago":     ago,
	"stamp":   stamp,
	"rate":    rate,
	"bytes":   humanBytes,
	"num":     num,
	"short":   short,
	"join":    strings.Join,
	"instURL": func(id string) string { return "/installations/" + url.PathEscape(id) },
	"seconds": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Microsecond).String()
	},
	"verdict": func(v string) string { return "v-" + v },
	"keys":    sortKeys[int64],
	"reasons": sortKeys[[]gateway.Offender],
}

// New returns a Console.
func New(o Options) (*Console, error) {
	c := &Console{o: o, pages: map[string]*template.Template{}}
	for _, p := range []string{"home", "allowlist", "diagnose", "installations", "installation"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	return c, nil
}

// Register adds the console's pages, their JSON twins and its assets to
// mux (the internal listener).
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.home)
	mux.HandleFunc("GET /api/console/fleet", c.json(c.home))
	mux.HandleFunc("GET /allowlist", c.allowlist)
	mux.HandleFunc("GET /api/console/allowlist", c.json(c.allowlist))
	mux.HandleFunc("/diagnose", c.diagnose)
	mux.HandleFunc("/api/console/diagnose", c.json(c.diagnose))
	mux.HandleFunc("GET /installations", c.installations)
	mux.HandleFunc("GET /api/console/installations", c.json(c.installations))
	mux.HandleFunc("GET /installations/{id...}", c.installation)
	mux.HandleFunc("GET /api/console/installations/{id...}", c.json(c.installation))
	mux.Handle("GET /static/", http.FileServerFS(assets))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
}

// json serves h's JSON twin.
func (c *Console) json(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Set("format", "json")
		r.URL.RawQuery = q.Encode()
		h(w, r)
	}
}

func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }

// page is what every page's layout shows.
type page struct {
	Title   string
	Nav     string
	Mode    string
	Version string
	Now     time.Time
	JSON    string // this page's JSON twin
	Data    any
}

// render answers data as JSON (?format=json) or as the named page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(data)
		return
	}
	var buf bytes.Buffer
	q := r.URL.Query()
	q.Set("format", "json")
	p := page{Title: title, Nav: name, Mode: c.o.Mode, Version: c.o.Version, Now: c.now(), Data: data, JSON: r.URL.Path + "?" + q.Encode()}
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No script runs on these pages, whatever a client managed to send.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (c *Console) now() time.Time { return time.Now().UTC() }

// FleetPage is the JSON of / and /api/console/fleet.
type FleetPage struct {
	gateway.Fleet
	Mode    string      `json:"mode"`
	Version string      `json:"version"`
	Config  ConfigInfo  `json:"config"`
	Spool   *SpoolStats `json:"spool"`
	Redis   RedisInfo   `json:"redis"`
	// RecentInstallations, TopDropping and TopErrors are the ten
	// installations seen last, with the most dropped samples and with
	// the most error answers.
	RecentInstallations []gateway.InstallationActivity `json:"recent_installations"`
	TopDropping         []gateway.InstallationActivity `json:"top_dropping"`
	TopErrors           []gateway.InstallationActivity `json:"top_errors"`
}

// RedisInfo says whether budgets are shared through Redis.
type RedisInfo struct {
	Enabled bool   `json:"enabled"`
	Address string `json:"address,omitempty"`
	// Replicas are the gateway replicas whose heartbeat in Redis is
	// recent; ReplicasError says why they could not be read.
	Replicas      []limits.ReplicaSeen `json:"replicas,omitempty"`
	ReplicasError string               `json:"replicas_error,omitempty"`
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	g := c.o.Gateway
	p := FleetPage{Fleet: g.Fleet(10), Mode: c.o.Mode, Version: c.o.Version, Config: c.o.Config}
	if c.o.Spool != nil {
		s := c.o.Spool()
		p.Spool = &s
	}
	p.Redis = RedisInfo{Enabled: c.o.RedisAddress != "", Address: c.o.RedisAddress}
	if c.o.Replicas != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		seen, err := c.o.Replicas(ctx)
		cancel()
		if err != nil {
			p.Redis.ReplicasError = err.Error()
		}
		p.Redis.Replicas = seen
	}
	p.RecentInstallations, _ = g.Installations(gateway.InstallationQuery{Sort: "recent", Limit: 10})
	dropping, _ := g.Installations(gateway.InstallationQuery{Sort: "dropped", Limit: 10})
	p.TopDropping = nonZero(dropping, func(a *gateway.InstallationActivity) bool { return a.DroppedTotal > 0 })
	erring, _ := g.Installations(gateway.InstallationQuery{Sort: "errors", Limit: 10})
	p.TopErrors = nonZero(erring, func(a *gateway.InstallationActivity) bool { return a.ErrorCount > 0 })
	c.render(w, r, http.StatusOK, "home", "Fleet", p)
}

func nonZero(rows []gateway.InstallationActivity, keep func(*gateway.InstallationActivity) bool) []gateway.InstallationActivity {
	out := []gateway.InstallationActivity{}
	for i := range rows {
		if keep(&rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}

// AllowlistPage is the JSON of /allowlist and /api/console/allowlist.
type AllowlistPage struct {
	Allowlist gateway.AllowlistVersion `json:"allowlist"`
	Shadow    bool                     `json:"shadow_mode"`
	Query     string                   `json:"q"`
	Owner     string                   `json:"owner"`
	// Rules are the entries the query and owner filters keep, in file
	// order; Total is the number of entries.
	Rules  []gateway.RuleActivity `json:"rules"`
	Total  int                    `json:"total"`
	Owners []string               `json:"owners"`
}

func (c *Console) allowlist(w http.ResponseWriter, r *http.Request) {
	g := c.o.Gateway
	q := r.URL.Query()
	p := AllowlistPage{Allowlist: g.AllowlistVersion(), Shadow: g.Fleet(0).ShadowAllowlist, Query: q.Get("q"), Owner: q.Get("owner"), Rules: []gateway.RuleActivity{}}
	all := g.RuleActivity()
	p.Total = len(all)
	owners := map[string]bool{}
	query, owner := strings.ToLower(p.Query), strings.ToLower(p.Owner)
	for _, ra := range all {
		for _, o := range ra.Owners {
			owners[o] = true
		}
		if owner != "" && !anyContains(ra.Owners, owner) {
			continue
		}
		if query != "" && !strings.Contains(strings.ToLower(ra.Selector), query) && !strings.Contains(strings.ToLower(ra.Description), query) && !anyContains(ra.RecentNames, query) {
			continue
		}
		p.Rules = append(p.Rules, ra)
	}
	p.Owners = sortKeys(owners)
	c.render(w, r, http.StatusOK, "allowlist", "Allowlist", p)
}

func anyContains(list []string, lower string) bool {
	for _, s := range list {
		if strings.Contains(strings.ToLower(s), lower) {
			return true
		}
	}
	return false
}

// DiagnosePage is the JSON of /diagnose and /api/console/diagnose.
type DiagnosePage struct {
	Installation string             `json:"installation"`
	Metric       string             `json:"metric"`
	Text         string             `json:"text,omitempty"`
	Error        string             `json:"error,omitempty"`
	Diagnosis    *gateway.Diagnosis `json:"diagnosis,omitempty"`
	// Installations are a few known installation IDs to pick from.
	Installations []string `json:"-"`
}

func (c *Console) diagnose(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	p := DiagnosePage{}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") {
			// The JSON twin takes the exposition text as the body.
			data, err := io.ReadAll(r.Body)
			if err != nil {
				p.Error = "reading the body: " + err.Error()
				status = http.StatusRequestEntityTooLarge
			}
			p.Text = string(data)
		} else if err := r.ParseForm(); err != nil {
			p.Error = "reading the form: " + err.Error()
			status = http.StatusBadRequest
		} else {
			p.Text = r.PostForm.Get("text")
		}
	}
	// r.Form holds the query and, for a form POST, its fields.
	p.Installation = strings.TrimSpace(formValue(r, "installation"))
	p.Metric = strings.TrimSpace(formValue(r, "metric"))
	if p.Error == "" && (p.Metric != "" || strings.TrimSpace(p.Text) != "") {
		series, err := seriesOf(p.Metric, p.Text)
		if err != nil {
			p.Error, status = err.Error(), http.StatusBadRequest
		} else {
			p.Diagnosis = c.o.Gateway.Diagnose(p.Installation, series)
		}
	}
	recent, _ := c.o.Gateway.Installations(gateway.InstallationQuery{Sort: "recent", Limit: 20})
	for _, a := range recent {
		p.Installations = append(p.Installations, a.ID)
	}
	c.render(w, r, status, "diagnose", "Why is my metric not arriving?", p)
}

func formValue(r *http.Request, key string) string {
	if r.Form == nil {
		return r.URL.Query().Get(key)
	}
	return r.Form.Get(key)
}

// seriesOf is the series a diagnose asks about: the metric field's names
// (separated by spaces or commas) or series (name{label="value"}, one per
// line), then the exposition text's.
func seriesOf(metric, text string) ([][]batch.Label, error) {
	// Browsers submit a textarea's lines with CRLF.
	metric = strings.ReplaceAll(metric, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out [][]batch.Label
	if metric != "" {
		if strings.Contains(metric, "{") {
			var b strings.Builder
			for _, line := range strings.Split(metric, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					b.WriteString(line + " 1\n")
				}
			}
			s, err := allowlist.SeriesFromText([]byte(b.String()))
			if err != nil {
				return nil, fmt.Errorf("metric: %w", err)
			}
			out = append(out, s...)
		} else {
			for _, n := range strings.FieldsFunc(metric, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
				out = append(out, []batch.Label{{Name: batch.MetricName, Value: n}})
			}
		}
	}
	if strings.TrimSpace(text) != "" {
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		s, err := allowlist.SeriesFromText([]byte(text))
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	if len(out) > gateway.MaxDiagnoseSeries {
		return nil, fmt.Errorf("%d series: at most %d at once", len(out), gateway.MaxDiagnoseSeries)
	}
	return out, nil
}

// InstallationsPage is the JSON of /installations and
// /api/console/installations.
type InstallationsPage struct {
	Query   string                         `json:"q"`
	Sort    string                         `json:"sort"`
	Limit   int                            `json:"limit"`
	Matched int                            `json:"matched"`
	Known   int                            `json:"known"`
	Rows    []gateway.InstallationActivity `json:"installations"`
}

func (c *Console) installations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("id"); id != "" {
		c.showInstallation(w, r, id)
		return
	}
	p := InstallationsPage{Query: q.Get("q"), Sort: q.Get("sort"), Limit: 100}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		p.Limit = min(n, 10000)
	}
	switch p.Sort {
	case "recent", "dropped", "errors", "id":
	default:
		p.Sort = "recent"
	}
	g := c.o.Gateway
	p.Rows, p.Matched = g.Installations(gateway.InstallationQuery{Contains: p.Query, Sort: p.Sort, Limit: p.Limit})
	if p.Rows == nil {
		p.Rows = []gateway.InstallationActivity{}
	}
	p.Known = g.InstallationCount()
	c.render(w, r, http.StatusOK, "installations", "Installations", p)
}

// InstallationPage is the JSON of /installations/{id} and
// /api/console/installations/{id}.
type InstallationPage struct {
	ID       string                        `json:"id"`
	Known    bool                          `json:"known"`
	Activity *gateway.InstallationActivity `json:"activity"`
	Budget   gateway.InstallationBudget    `json:"budget"`
}

func (c *Console) installation(w http.ResponseWriter, r *http.Request) {
	c.showInstallation(w, r, r.PathValue("id"))
}

func (c *Console) showInstallation(w http.ResponseWriter, r *http.Request, id string) {
	g := c.o.Gateway
	p := InstallationPage{ID: id, Budget: g.Budget(id)}
	status := http.StatusOK
	if a, ok := g.Installation(id); ok {
		p.Known, p.Activity = true, &a
	} else {
		status = http.StatusNotFound
	}
	c.render(w, r, status, "installation", "Installation", p)
}

// Template helpers.

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d ago"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return num(int64(math.Round(v)))
}

func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// short cuts s to 120 characters for tables (the full text stays in the
// title attribute and the JSON).
func short(s string) string {
	if utf8.RuneCountInString(s) <= 120 {
		return s
	}
	r := []rune(s)
	return string(r[:120]) + "…"
}

func sortKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
