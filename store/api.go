package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/telegate/telegate/internal/kitslog"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// API defaults.
const (
	DefaultQueryTimeout       = 2 * time.Minute
	DefaultMaxSamples         = 50000000
	DefaultMaxConcurrent      = 20
	DefaultLookbackDelta      = 5 * time.Minute
	maxPointsPerSeries        = 11000
	resultsTruncatedByLimitAt = "results truncated due to limit"
)

// promParser parses match[] selectors and format_query input with the
// engine's default options.
var promParser = parser.NewParser(parser.Options{})

// Bounds of optional time ranges: the widest range RFC 3339 (4-digit
// years) can express, as Prometheus uses.
var (
	minTime          = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime          = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// APIOptions configure NewAPI.
type APIOptions struct {
	// Timeout bounds one query (a smaller timeout parameter wins).
	Timeout time.Duration
	// MaxSamples bounds the samples one query may hold in memory.
	MaxSamples int
	// MaxConcurrent bounds queries evaluated at once; more wait.
	MaxConcurrent int
	// LookbackDelta is how far back an instant selector looks.
	LookbackDelta time.Duration
	// Revision is reported by /api/v1/status/buildinfo.
	Revision   string
	Logger     log.Logger
	Registerer prometheus.Registerer
}

// API serves the Prometheus HTTP query API over a Store.
type API struct {
	s       *Store
	q       storage.Queryable
	engine  *promql.Engine
	o       APIOptions
	sem     chan struct{}
	logger  log.Logger
	version string

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPI returns the query API of s.
func NewAPI(s *Store, o APIOptions) *API {
	if o.Timeout <= 0 {
		o.Timeout = DefaultQueryTimeout
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.LookbackDelta <= 0 {
		o.LookbackDelta = DefaultLookbackDelta
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	a := &API{
		s: s, q: s.Queryable(), o: o, logger: o.Logger,
		sem:     make(chan struct{}, o.MaxConcurrent),
		version: prometheusVersion(),
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:               kitslog.New(log.With(o.Logger, "component", "query engine")),
			Reg:                  o.Registerer,
			MaxSamples:           o.MaxSamples,
			Timeout:              o.Timeout,
			LookbackDelta:        o.LookbackDelta,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			Parser:               promParser,
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_store_api_requests_total",
			Help: "Query API requests by handler and HTTP status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "telegate_store_api_request_duration_seconds",
			Help:    "Query API request duration by handler.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 120},
		}, []string{"handler"}),
	}
	o.Registerer.MustRegister(a.requests, a.duration)
	return a
}

// Register adds the query API routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	for path, h := range map[string]apiFunc{
		"/api/v1/query":               a.query,
		"/api/v1/query_range":         a.queryRange,
		"/api/v1/series":              a.series,
		"/api/v1/labels":              a.labelNames,
		"/api/v1/label/{name}/values": a.labelValues,
		"/api/v1/status/buildinfo":    a.buildinfo,
		"/api/v1/metadata":            a.emptyObject,
		"/api/v1/query_exemplars":     a.queryExemplars,
		"/api/v1/rules":               a.rules,
		"/api/v1/alerts":              a.alerts,
		"/api/v1/format_query":        a.formatQuery,
	} {
		name := strings.TrimPrefix(path, "/api/v1/")
		if i := strings.Index(name, "/{"); i >= 0 {
			name = name[:i]
		}
		mux.Handle(path, a.wrap(name, h))
	}
}

// apiError is a failure with Prometheus' error type.
type apiError struct {
	typ string
	err error
}

func (e *apiError) Error() string { return e.err.Error() }

const (
	errBadData  = "bad_data"
	errExec     = "execution"
	errTimeout  = "timeout"
	errCanceled = "canceled"
	errInternal = "internal"
	errNotFound = "not_found"
)

var errorStatus = map[string]int{
	errBadData:  http.StatusBadRequest,
	errExec:     http.StatusUnprocessableEntity,
	errTimeout:  http.StatusServiceUnavailable,
	errCanceled: 499, // client closed request
	errInternal: http.StatusInternalServerError,
	errNotFound: http.StatusNotFound,
}

type result struct {
	data     any
	warnings annotations.Annotations
}

type apiFunc func(r *http.Request) (result, *apiError)

type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

func (a *API) wrap(name string, f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := a.serve(w, r, f)
		a.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		a.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, f apiFunc) int {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return writeJSON(w, http.StatusMethodNotAllowed, response{Status: "error", ErrorType: errBadData, Error: "method not allowed: use GET or POST"})
	}
	if err := r.ParseForm(); err != nil {
		return writeJSON(w, http.StatusBadRequest, response{Status: "error", ErrorType: errBadData, Error: fmt.Sprintf("error parsing form values: %v", err)})
	}
	res, aerr := f(r)
	warns, infos := res.warnings.AsStrings("", 10, 10)
	if aerr != nil {
		status := errorStatus[aerr.typ]
		if status >= 500 && status != http.StatusServiceUnavailable {
			level.Error(a.logger).Log("msg", "query API error", "path", r.URL.Path, "err", aerr.err)
		}
		return writeJSON(w, status, response{Status: "error", ErrorType: aerr.typ, Error: aerr.err.Error(), Data: res.data, Warnings: warns, Infos: infos})
	}
	return writeJSON(w, http.StatusOK, response{Status: "success", Data: res.data, Warnings: warns, Infos: infos})
}

func writeJSON(w http.ResponseWriter, code int, resp response) int {
	b, err := json.Marshal(resp)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(response{Status: "error", ErrorType: errInternal, Error: "encoding the response: " + err.Error()})
	}
	w.WriteHeader(code)
	w.Write(b)
	return code
}

// context returns the request's context, also cancelled when the store
// closes.
func (a *API) context(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		select {
		case <-a.s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// acquire takes a query slot, waiting while MaxConcurrent are running.
func (a *API) acquire(ctx context.Context) (func(), *apiError) {
	select {
	case a.sem <- struct{}{}:
		return func() { <-a.sem }, nil
	case <-ctx.Done():
		return nil, contextError(ctx.Err())
	}
}

func contextError(err error) *apiError {
	if errors.Is(err, context.DeadlineExceeded) {
		return &apiError{errTimeout, err}
	}
	return &apiError{errCanceled, err}
}

func invalidParam(err error, param string) *apiError {
	return &apiError{errBadData, fmt.Errorf("invalid parameter %q: %w", param, err)}
}

func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, *apiError) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, invalidParam(err, name)
	}
	return t, nil
}

func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// queryOpts reads timeout and lookback_delta.
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, promql.QueryOpts, *apiError) {
	ctx, cancel := a.context(r)
	if to := r.FormValue("timeout"); to != "" {
		d, err := parseDuration(to)
		if err != nil {
			cancel()
			return nil, nil, nil, invalidParam(err, "timeout")
		}
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, d)
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	var lookback time.Duration
	if lb := r.FormValue("lookback_delta"); lb != "" {
		d, err := parseDuration(lb)
		if err != nil {
			cancel()
			return nil, nil, nil, invalidParam(err, "lookback_delta")
		}
		lookback = d
	}
	return ctx, cancel, promql.NewPrometheusQueryOpts(false, lookback), nil
}

func (a *API) query(r *http.Request) (result, *apiError) {
	ts, aerr := parseTimeParam(r, "time", time.Now())
	if aerr != nil {
		return result{}, aerr
	}
	ctx, cancel, opts, aerr := a.queryContext(r)
	if aerr != nil {
		return result{}, aerr
	}
	defer cancel()
	qry, err := a.engine.NewInstantQuery(ctx, a.q, opts, r.FormValue("query"), ts)
	if err != nil {
		return result{}, invalidParam(err, "query")
	}
	return a.exec(ctx, qry)
}

func (a *API) queryRange(r *http.Request) (result, *apiError) {
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return result{}, invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return result{}, invalidParam(err, "end")
	}
	if end.Before(start) {
		return result{}, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return result{}, invalidParam(err, "step")
	}
	if step <= 0 {
		return result{}, invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		return result{}, &apiError{errBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")}
	}
	ctx, cancel, opts, aerr := a.queryContext(r)
	if aerr != nil {
		return result{}, aerr
	}
	defer cancel()
	qry, err := a.engine.NewRangeQuery(ctx, a.q, opts, r.FormValue("query"), start, end, step)
	if err != nil {
		return result{}, invalidParam(err, "query")
	}
	return a.exec(ctx, qry)
}

func (a *API) exec(ctx context.Context, qry promql.Query) (result, *apiError) {
	defer qry.Close()
	release, aerr := a.acquire(ctx)
	if aerr != nil {
		return result{}, aerr
	}
	defer release()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return result{warnings: res.Warnings}, engineError(res.Err)
	}
	return result{data: queryData{ResultType: res.Value.Type(), Result: jsonValue{res.Value}}, warnings: res.Warnings}, nil
}

func engineError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc):
		return &apiError{errCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{errTimeout, err}
	case errors.As(err, &es):
		return &apiError{errInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{errCanceled, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{errTimeout, err}
	}
	return &apiError{errExec, err}
}

type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     jsonValue        `json:"result"`
}

// matcherSets parses match[]; required says whether at least one is
// needed.
func matcherSets(r *http.Request, required bool) ([][]*labels.Matcher, *apiError) {
	raw := r.Form["match[]"]
	if required && len(raw) == 0 {
		return nil, &apiError{errBadData, errors.New("no match[] parameter provided")}
	}
	var sets [][]*labels.Matcher
	for _, s := range raw {
		ms, err := promParser.ParseMetricSelector(s)
		if err != nil {
			return nil, &apiError{errBadData, err}
		}
		empty := true
		for _, m := range ms {
			if !m.Matches("") {
				empty = false
				break
			}
		}
		if empty {
			return nil, &apiError{errBadData, errors.New("match[] must contain at least one non-empty matcher")}
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

func parseLimit(r *http.Request) (int, *apiError) {
	s := r.FormValue("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, &apiError{errBadData, errors.New("limit must be a non-negative number")}
	}
	return n, nil
}

// rangeQuerier opens a querier over start..end (default: everything).
func (a *API) rangeQuerier(r *http.Request) (storage.Querier, time.Time, time.Time, *apiError) {
	start, aerr := parseTimeParam(r, "start", minTime)
	if aerr != nil {
		return nil, start, start, aerr
	}
	end, aerr := parseTimeParam(r, "end", maxTime)
	if aerr != nil {
		return nil, start, end, aerr
	}
	if end.Before(start) {
		return nil, start, end, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	q, err := a.q.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return nil, start, end, &apiError{errExec, err}
	}
	return q, start, end, nil
}

// selection is what /series, /labels and /label/NAME/values share: the
// match[] sets, ?limit and a querier over ?start..?end.
type selection struct {
	sets       [][]*labels.Matcher
	limit      int
	q          storage.Querier // the caller closes it
	start, end time.Time
}

func (a *API) selection(r *http.Request, matchRequired bool) (selection, *apiError) {
	sets, aerr := matcherSets(r, matchRequired)
	if aerr != nil {
		return selection{}, aerr
	}
	limit, aerr := parseLimit(r)
	if aerr != nil {
		return selection{}, aerr
	}
	q, start, end, aerr := a.rangeQuerier(r)
	if aerr != nil {
		return selection{}, aerr
	}
	return selection{sets: sets, limit: limit, q: q, start: start, end: end}, nil
}

func (a *API) series(r *http.Request) (result, *apiError) {
	sel, aerr := a.selection(r, true)
	if aerr != nil {
		return result{}, aerr
	}
	defer sel.q.Close()
	ctx, cancel := a.context(r)
	defer cancel()
	sets, limit, q := sel.sets, sel.limit, sel.q
	hints := &storage.SelectHints{Start: timestamp.FromTime(sel.start), End: timestamp.FromTime(sel.end), Func: "series", Limit: limit}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = q.Select(ctx, true, hints, sets[0]...)
	} else {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	}
	out := []labels.Labels{}
	var warnings annotations.Annotations
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return result{}, contextError(err)
		}
		out = append(out, set.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			warnings.Add(errors.New(resultsTruncatedByLimitAt))
			break
		}
	}
	warnings.Merge(set.Warnings())
	if err := set.Err(); err != nil {
		return result{warnings: warnings}, &apiError{errExec, err}
	}
	return result{data: out, warnings: warnings}, nil
}

func (a *API) labelNames(r *http.Request) (result, *apiError) {
	return a.labelQuery(r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	})
}

// labelQuery answers /labels and /label/NAME/values: fetch runs once
// without matchers, or once per match[] set and the union is returned,
// sorted and cut at ?limit.
func (a *API) labelQuery(r *http.Request, fetch func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error)) (result, *apiError) {
	sel, aerr := a.selection(r, false)
	if aerr != nil {
		return result{}, aerr
	}
	defer sel.q.Close()
	ctx, cancel := a.context(r)
	defer cancel()
	sets, limit, q := sel.sets, sel.limit, sel.q
	hints := &storage.LabelHints{Limit: limit}
	var warnings annotations.Annotations
	var vals []string
	if len(sets) == 0 {
		v, w, err := fetch(ctx, q, hints)
		warnings.Merge(w)
		if err != nil {
			return result{warnings: warnings}, &apiError{errExec, err}
		}
		vals = v
	} else {
		seen := map[string]struct{}{}
		for _, ms := range sets {
			v, w, err := fetch(ctx, q, hints, ms...)
			warnings.Merge(w)
			if err != nil {
				return result{warnings: warnings}, &apiError{errExec, err}
			}
			for _, s := range v {
				seen[s] = struct{}{}
			}
		}
		for s := range seen {
			vals = append(vals, s)
		}
	}
	slices.Sort(vals)
	return limited(vals, limit, warnings), nil
}

func limited(vals []string, limit int, warnings annotations.Annotations) result {
	if vals == nil {
		vals = []string{}
	}
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings.Add(errors.New(resultsTruncatedByLimitAt))
	}
	return result{data: vals, warnings: warnings}
}

func (a *API) labelValues(r *http.Request) (result, *apiError) {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.LegacyValidation.IsValidLabelName(name) && !model.UTF8Validation.IsValidLabelName(name) {
		return result{}, &apiError{errBadData, fmt.Errorf("invalid label name: %q", name)}
	}
	return a.labelQuery(r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	})
}

// prometheusVersion is the Prometheus release whose TSDB and engine this
// binary embeds (module v0.3MM.P is release 3.MM.P). Grafana reads it
// from buildinfo to choose the PromQL features it offers.
func prometheusVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path != "github.com/prometheus/prometheus" {
				continue
			}
			var minor, patch int
			if _, err := fmt.Sscanf(d.Version, "v0.%d.%d", &minor, &patch); err == nil && minor >= 300 {
				return fmt.Sprintf("3.%d.%d", minor-300, patch)
			}
		}
	}
	return "3.0.0"
}

type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

func (a *API) buildinfo(*http.Request) (result, *apiError) {
	return result{data: buildInfo{Version: a.version, Revision: a.o.Revision, Branch: "telegate", GoVersion: runtime.Version()}}, nil
}

func (a *API) formatQuery(r *http.Request) (result, *apiError) {
	expr, err := promParser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return result{}, invalidParam(err, "query")
	}
	return result{data: expr.Pretty(0)}, nil
}

// queryExemplars answers /api/v1/query_exemplars: the exemplars between
// ?start and ?end (default: all) of the series the selectors of ?query
// select, grouped by series, as Prometheus does. A query without
// selectors (e.g. a number) has no exemplars: [] (Prometheus leaves data
// out).
func (a *API) queryExemplars(r *http.Request) (result, *apiError) {
	start, aerr := parseTimeParam(r, "start", minTime)
	if aerr != nil {
		return result{}, aerr
	}
	end, aerr := parseTimeParam(r, "end", maxTime)
	if aerr != nil {
		return result{}, aerr
	}
	if end.Before(start) {
		return result{}, &apiError{errBadData, errors.New("end timestamp must not be before start timestamp")}
	}
	expr, err := promParser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return result{}, &apiError{errBadData, err}
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) == 0 {
		return result{data: jsonExemplars{}}, nil
	}
	ctx, cancel := a.context(r)
	defer cancel()
	eq, err := a.s.db.ExemplarQuerier(ctx)
	if err != nil {
		return result{}, &apiError{errExec, err}
	}
	res, err := eq.Select(timestamp.FromTime(start), timestamp.FromTime(end), selectors...)
	if err != nil {
		return result{}, &apiError{errExec, err}
	}
	return result{data: jsonExemplars(res)}, nil
}

func (a *API) emptyObject(*http.Request) (result, *apiError) {
	return result{data: map[string]any{}}, nil
}

func (a *API) emptyList(*http.Request) (result, *apiError) {
	return result{data: []any{}}, nil
}

func (a *API) rules(*http.Request) (result, *apiError) {
	return result{data: map[string]any{"groups": []any{}}}, nil
}

func (a *API) alerts(*http.Request) (result, *apiError) {
	return result{data: map[string]any{"alerts": []any{}}}, nil
}
