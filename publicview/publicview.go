package publicview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/time/rate"
)

// Aggregation is one published series family.
type Aggregation struct {
	// Name is the output metric name.
	Name string
	// Query is the PromQL aggregation, e.g. count by (version) (cluster_version).
	Query string
	// Help is the output's HELP text.
	Help string
}

// Querier evaluates an instant PromQL query.
type Querier interface {
	Query(ctx context.Context, promql string, ts time.Time) (model.Vector, error)
}

// Options configure a View.
type Options struct {
	Aggregations []Aggregation
	// InstallationLabel names installations (the gateway's cluster ID
	// label, "_id").
	InstallationLabel string
	// K is the fewest distinct installations a published group needs
	// (default 10).
	K int
	// CacheTTL is how long an answer is served again (default 30s).
	CacheTTL time.Duration
	// RequestsPerSecond and Burst bound the listener's requests (over:
	// 429); 0 = 1 per second, burst 10.
	RequestsPerSecond float64
	Burst             int
	// Timeout bounds one evaluation of every aggregation (default 10s).
	Timeout    time.Duration
	Querier    Querier
	Registerer prometheus.Registerer
	Now        func() time.Time
}

type compiled struct {
	Aggregation
	by      []string
	support string // count by (by) (count by (by, installation) (inner))
}

// View serves the aggregate view.
type View struct {
	o    Options
	aggs []compiled
	lim  *rate.Limiter

	mu       sync.Mutex
	body     []byte
	bodyAt   time.Time
	inflight chan struct{}

	suppressed *prometheus.GaugeVec
	published  *prometheus.GaugeVec
	errors     prometheus.Counter
	limited    prometheus.Counter
}

// allowedOps are the aggregations whose result describes a group, not
// one member of it (min, max, topk, quantile... would publish one
// installation's value).
var allowedOps = map[parser.ItemType]bool{parser.SUM: true, parser.COUNT: true, parser.AVG: true, parser.GROUP: true}

// Compile checks an aggregation: a sum, count, avg or group with "by"
// labels that do not name installations, and builds its support query.
func Compile(a Aggregation, installationLabel string) (by []string, support string, err error) {
	if !model.LegacyValidation.IsValidMetricName(a.Name) {
		return nil, "", fmt.Errorf("%q is not a valid metric name", a.Name)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(a.Query)
	if err != nil {
		return nil, "", err
	}
	for {
		p, ok := expr.(*parser.ParenExpr)
		if !ok {
			break
		}
		expr = p.Expr
	}
	agg, ok := expr.(*parser.AggregateExpr)
	if !ok || !allowedOps[agg.Op] {
		return nil, "", errors.New("must be a sum, count, avg or group aggregation (min, max, topk, quantile and the like publish single installations' values)")
	}
	if agg.Without {
		return nil, "", errors.New(`must aggregate "by" named labels, not "without": every other label, the installation label included, would stay`)
	}
	for _, l := range agg.Grouping {
		if l == installationLabel {
			return nil, "", fmt.Errorf("must not group by the installation label %q", installationLabel)
		}
	}
	inner := &parser.AggregateExpr{Op: parser.COUNT, Expr: agg.Expr, Grouping: append(slices.Clone(agg.Grouping), installationLabel)}
	outer := &parser.AggregateExpr{Op: parser.COUNT, Expr: inner, Grouping: slices.Clone(agg.Grouping)}
	return slices.Clone(agg.Grouping), outer.String(), nil
}

// New checks every aggregation and returns a View.
func New(o Options) (*View, error) {
	if o.InstallationLabel == "" {
		o.InstallationLabel = "_id"
	}
	if o.K <= 0 {
		o.K = 10
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 30 * time.Second
	}
	if o.RequestsPerSecond <= 0 {
		o.RequestsPerSecond = 1
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Querier == nil {
		return nil, errors.New("publicview: no querier")
	}
	v := &View{o: o, lim: rate.NewLimiter(rate.Limit(o.RequestsPerSecond), o.Burst), inflight: make(chan struct{}, 1)}
	names := map[string]bool{}
	for i, a := range o.Aggregations {
		by, support, err := Compile(a, o.InstallationLabel)
		if err != nil {
			return nil, fmt.Errorf("aggregations[%d] (%s): %w", i, a.Name, err)
		}
		if names[a.Name] {
			return nil, fmt.Errorf("aggregations[%d]: name %q used twice", i, a.Name)
		}
		names[a.Name] = true
		v.aggs = append(v.aggs, compiled{Aggregation: a, by: by, support: support})
	}
	v.suppressed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "telegate_public_view_suppressed_groups",
		Help: "Groups of the last evaluation of each public aggregation left out for having fewer than k installations.",
	}, []string{"aggregation"})
	v.published = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "telegate_public_view_published_groups",
		Help: "Groups of the last evaluation of each public aggregation that were published.",
	}, []string{"aggregation"})
	v.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "telegate_public_view_query_errors_total",
		Help: "Evaluations of the public view that failed (the previous answer is served while it is cached).",
	})
	v.limited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "telegate_public_view_rate_limited_total",
		Help: "Requests to the public view answered 429.",
	})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{v.suppressed, v.published, v.errors, v.limited} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// ServeHTTP answers GET / and /metrics with the view as OpenMetrics text.
func (v *View) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	if !v.lim.Allow() {
		v.limited.Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	body, err := v.Body(r.Context())
	if err != nil {
		http.Error(w, "the view is not available now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(v.o.CacheTTL/time.Second)))
	w.Write(body)
}

// Body returns the view, from the cache when it is younger than CacheTTL.
// One evaluation runs at a time; others wait for it.
func (v *View) Body(ctx context.Context) ([]byte, error) {
	select {
	case v.inflight <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-v.inflight }()
	v.mu.Lock()
	body, at := v.body, v.bodyAt
	v.mu.Unlock()
	now := v.o.Now()
	if body != nil && now.Sub(at) < v.o.CacheTTL {
		return body, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.o.Timeout)
	defer cancel()
	fresh, err := v.evaluate(ctx, now)
	if err != nil {
		v.errors.Inc()
		return nil, err
	}
	v.mu.Lock()
	v.body, v.bodyAt = fresh, now
	v.mu.Unlock()
	return fresh, nil
}

// groupKey is a group's "by" label values, joined.
func groupKey(by []string, m model.Metric) string {
	var b strings.Builder
	for _, l := range by {
		b.WriteString(string(m[model.LabelName(l)]))
		b.WriteByte(0xff)
	}
	return b.String()
}

func (v *View) evaluate(ctx context.Context, now time.Time) ([]byte, error) {
	var out bytes.Buffer
	for _, a := range v.aggs {
		support, err := v.o.Querier.Query(ctx, a.support, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		installations := make(map[string]float64, len(support))
		for _, s := range support {
			installations[groupKey(a.by, s.Metric)] = float64(s.Value)
		}
		res, err := v.o.Querier.Query(ctx, a.Query, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		sort.Slice(res, func(i, j int) bool { return res[i].Metric.String() < res[j].Metric.String() })
		help := a.Help
		if help == "" {
			help = "Aggregation " + a.Query + " over at least " + strconv.Itoa(v.o.K) + " installations per group."
		}
		fmt.Fprintf(&out, "# HELP %s %s\n# TYPE %s gauge\n", a.Name, escapeHelp(help), a.Name)
		published, suppressed := 0, 0
		for _, s := range res {
			if installations[groupKey(a.by, s.Metric)] < float64(v.o.K) {
				suppressed++
				continue
			}
			published++
			out.WriteString(a.Name)
			if len(a.by) > 0 {
				out.WriteByte('{')
				for i, l := range a.by {
					if i > 0 {
						out.WriteByte(',')
					}
					fmt.Fprintf(&out, "%s=\"%s\"", l, labelEscaper.Replace(string(s.Metric[model.LabelName(l)])))
				}
				out.WriteByte('}')
			}
			out.WriteByte(' ')
			out.WriteString(strconv.FormatFloat(float64(s.Value), 'g', -1, 64))
			out.WriteByte('\n')
		}
		v.suppressed.WithLabelValues(a.Name).Set(float64(suppressed))
		v.published.WithLabelValues(a.Name).Set(float64(published))
	}
	out.WriteString("# EOF\n")
	return out.Bytes(), nil
}

// labelEscaper escapes a label value as the exposition formats do.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
