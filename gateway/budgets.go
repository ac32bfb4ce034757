package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/limits"
)

// shadowHeader carries what shadow-mode rules (enforce: false) would have
// dropped, in the format of X-Telegate-Dropped-Samples.
const shadowHeader = "X-Telegate-Shadow-Dropped-Samples"

// Shadow and drop reasons of the budgets.
const (
	reasonBudget         = "budget"          // series over the active-series budget
	reasonSamplesRate    = "samples_rate"    // request over the samples-per-second budget
	reasonUploadInterval = "upload_interval" // second /upload inside the interval
	reasonAllowlist      = "allowlist"
	reasonPrivacy        = "privacy" // series the PII guard drops (action drop)
)

// budgetState is the gateway's side of limits: metrics, the offenders
// table behind /debug/limits, and pooled scratch for series hashes.
type budgetState struct {
	shadowSamples *prometheus.CounterVec
	refused       *prometheus.CounterVec
	offenders     *offenders
	scratch       sync.Pool
}

type budgetScratch struct {
	hashes   []uint64
	admitted []bool
}

func newBudgetState(reg prometheus.Registerer) *budgetState {
	f := promauto.With(reg)
	s := &budgetState{
		shadowSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_shadow_dropped_samples_total",
			Help: "Samples a rule in shadow mode (enforce: false) would have dropped or refused but forwarded, by reason (allowlist, budget, samples_rate, upload_interval).",
		}, []string{"reason"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_limits_refused_requests_total",
			Help: "Requests refused by an enforced per-cluster budget, by reason (samples_rate, upload_interval, budgets_unavailable).",
		}, []string{"reason"}),
		offenders: newOffenders(500),
		scratch:   sync.Pool{New: func() any { return new(budgetScratch) }},
	}
	for _, r := range []string{reasonAllowlist, reasonBudget, reasonSamplesRate, reasonUploadInterval} {
		s.shadowSamples.WithLabelValues(r)
	}
	for _, r := range []string{reasonSamplesRate, reasonUploadInterval, "budgets_unavailable"} {
		s.refused.WithLabelValues(r)
	}
	return s
}

// allowlistDenies is called for a series the allowlist does not match. It
// reports whether to drop it: always, unless the allowlist runs in shadow
// mode, where the series is counted and kept.
func (g *Gateway) allowlistDenies(s *batch.Series, shadow map[string]int, tally *offenderTally) bool {
	if !g.opts.AllowlistShadow {
		tally.add(reasonAllowlist, s.Name(), s.Points(), true)
		return true
	}
	shadow[reasonAllowlist] += s.Points()
	tally.add(reasonAllowlist, s.Name(), s.Points(), false)
	return false
}

// offenderTally sums consecutive drops of the same metric name (series of
// one metric arrive together) and hands them to the shared offenders table
// in one locked step per request (or per len(rows) metrics), not one per
// metric: with a lock per metric, concurrent requests queued on it.
type offenderTally struct {
	o    *offenders
	n    int
	rows [16]offenderRow
}

type offenderRow struct {
	key     offenderKey
	samples int
}

func (t *offenderTally) add(reason, name string, samples int, enforced bool) {
	samples = max(samples, 1)
	k := offenderKey{reason, name, enforced}
	if t.n > 0 && t.rows[t.n-1].key == k {
		t.rows[t.n-1].samples += samples
		return
	}
	if t.n == len(t.rows) {
		t.flush()
	}
	t.rows[t.n] = offenderRow{k, samples}
	t.n++
}

func (t *offenderTally) flush() {
	if t.n > 0 {
		t.o.record(t.rows[:t.n])
		t.n = 0
	}
}

// applyBudgets charges the batch (after relabeling, so series identities
// are final) to the cluster's budgets: a request over the samples rate is
// refused with 429; series over the active-series budget are dropped
// (counted in dropped["budget"]) while known series flow. Shadow-mode
// budgets only count, in shadow.
func (g *Gateway) applyBudgets(ctx context.Context, cluster string, b *batch.Batch, dropped, shadow map[string]int) error {
	l := g.opts.Budgets
	if len(b.Series) == 0 {
		return nil
	}
	st := g.budgets
	n := b.Points()
	rd, err := l.TakeSamples(ctx, cluster, n)
	if err != nil {
		return g.budgetsUnavailable(err)
	}
	if !rd.OK {
		if rd.Enforce {
			st.refused.WithLabelValues(reasonSamplesRate).Inc()
			e := newError(http.StatusTooManyRequests, reasonSamplesRate, fmt.Sprintf(
				"cluster over its samples budget (%s samples/s, burst %d): this request has %d samples",
				strconv.FormatFloat(rd.PerSecond, 'g', -1, 64), rd.Limit, n))
			e.limit = int64(rd.Limit)
			e.retryAfter = max(rd.Wait, time.Second)
			return e
		}
		shadow[reasonSamplesRate] += n
		st.shadowSamples.WithLabelValues(reasonSamplesRate).Add(float64(n))
	}

	// Hashing every series costs more than anything else here: skip it
	// when this cluster has no active-series budget.
	if l.Budget(cluster, time.Now()).ActiveSeries.Max <= 0 {
		return nil
	}
	sc := st.scratch.Get().(*budgetScratch)
	defer st.scratch.Put(sc)
	if cap(sc.hashes) < len(b.Series) {
		sc.hashes, sc.admitted = make([]uint64, len(b.Series)), make([]bool, len(b.Series))
	}
	hashes, admitted := sc.hashes[:len(b.Series)], sc.admitted[:len(b.Series)]
	for i := range b.Series {
		hashes[i] = limits.SeriesHash(b.Series[i].Labels)
	}
	sd, err := l.AdmitSeries(ctx, cluster, hashes, admitted)
	if err != nil {
		return g.budgetsUnavailable(err)
	}
	if sd.Refused == 0 {
		return nil
	}
	tally := offenderTally{o: st.offenders}
	defer tally.flush()
	if !sd.Enforce {
		for i := range b.Series {
			if !admitted[i] {
				s := &b.Series[i]
				shadow[reasonBudget] += s.Points()
				st.shadowSamples.WithLabelValues(reasonBudget).Add(float64(s.Points()))
				tally.add(reasonBudget, s.Name(), s.Points(), false)
			}
		}
		return nil
	}
	kept := b.Series[:0]
	for i := range b.Series {
		s := b.Series[i]
		if admitted[i] {
			kept = append(kept, s)
			continue
		}
		dropped[reasonBudget] += s.Points()
		tally.add(reasonBudget, s.Name(), s.Points(), true)
	}
	clear(b.Series[len(kept):])
	b.Series = kept
	return nil
}

func (g *Gateway) budgetsUnavailable(err error) error {
	if !errors.Is(err, limits.ErrUnavailable) {
		return err
	}
	g.budgets.refused.WithLabelValues("budgets_unavailable").Inc()
	e := newError(http.StatusServiceUnavailable, "budgets_unavailable", "per-cluster budget state (Redis) is unreachable and limits.redis.fail_open is false")
	e.retryAfter = 5 * time.Second
	return e
}

// reserveUpload claims the cluster's /upload slot, before its body is
// read. It returns the release func to call with the upload's outcome and
// whether the slot was taken in shadow mode (the caller counts the
// upload's samples as shadow-dropped), or the 429 to answer.
func (g *Gateway) reserveUpload(ctx context.Context, cluster string, now time.Time) (release func(bool), shadow bool, err error) {
	d, err := g.opts.Budgets.ReserveUpload(ctx, cluster, now)
	if err != nil {
		return nil, false, g.budgetsUnavailable(err)
	}
	if !d.OK {
		if d.Enforce {
			g.budgets.refused.WithLabelValues(reasonUploadInterval).Inc()
			e := newError(http.StatusTooManyRequests, reasonUploadInterval, "this cluster already uploaded within limits.upload_interval ("+g.opts.Limits.UploadInterval.String()+")")
			e.retryAfter = d.Wait
			e.limit = 1
			return nil, false, e
		}
		shadow = true
	}
	return d.Release, shadow, nil
}

func setShadowHeaders(h http.Header, shadow map[string]int) {
	if len(shadow) == 0 {
		return
	}
	parts := make([]string, 0, len(shadow))
	for _, reason := range []string{reasonAllowlist, reasonBudget, reasonSamplesRate} {
		if n := shadow[reason]; n > 0 {
			parts = append(parts, reason+"="+strconv.Itoa(n))
		}
	}
	h.Set(shadowHeader, strings.Join(parts, ", "))
}

// offenders keeps the metric names that lost (or, in shadow mode, would
// have lost) the most samples, per reason. It is bounded: when full, the
// smallest entry is replaced and the newcomer inherits its count (the
// space-saving algorithm), so heavy hitters are never missed. The entries
// form a min-heap by count, so finding the smallest is O(1) and every
// insertion or increment O(log max): a request with thousands of denied
// names no longer scans the whole table once per name under the lock.
type offenders struct {
	mu      sync.Mutex
	max     int
	entries map[offenderKey]*offenderEntry
	heap    []*offenderEntry // min-heap by count; heap[i].at == i
	since   time.Time
}

type offenderKey struct {
	reason, name string
	enforced     bool
}

type offenderEntry struct {
	key   offenderKey
	count int64
	at    int // index in offenders.heap
}

func newOffenders(max int) *offenders {
	return &offenders{max: max, entries: map[offenderKey]*offenderEntry{}, since: time.Now()}
}

// record adds rows (each at least one sample, see offenderTally.add) to the
// table. Metric names are copied on insertion: the caller's alias its
// request's pooled buffer.
func (o *offenders) record(rows []offenderRow) {
	if o.max <= 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range rows {
		k := r.key
		if len(k.name) > 200 {
			k.name = k.name[:200]
		}
		e, ok := o.entries[k]
		switch {
		case ok:
		case len(o.heap) < o.max:
			// A new leaf: it moves up past the bigger entries above it.
			k.name = strings.Clone(k.name)
			e = &offenderEntry{key: k, count: int64(r.samples), at: len(o.heap)}
			o.entries[k] = e
			o.heap = append(o.heap, e)
			o.up(e.at)
			continue
		default:
			// Full: the smallest entry (the heap's root) gives its place
			// and its count to the newcomer.
			k.name = strings.Clone(k.name)
			e = o.heap[0]
			delete(o.entries, e.key)
			e.key = k
			o.entries[k] = e
		}
		// Counts only grow: the entry can only move down the heap.
		e.count += int64(r.samples)
		o.down(e.at)
	}
}

// up restores the heap order above index i after heap[i] was appended.
func (o *offenders) up(i int) {
	h := o.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].count <= h[i].count {
			return
		}
		h[i], h[p] = h[p], h[i]
		h[i].at, h[p].at = i, p
		i = p
	}
}

// down restores the heap order below index i after heap[i]'s count grew.
func (o *offenders) down(i int) {
	h := o.heap
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].count < h[c].count {
			c = r
		}
		if h[i].count <= h[c].count {
			return
		}
		h[i], h[c] = h[c], h[i]
		h[i].at, h[c].at = i, c
		i = c
	}
}

// Offender is one row of /debug/limits.
type Offender struct {
	Metric  string `json:"metric"`
	Samples int64  `json:"samples"`
}

// top returns the n biggest offenders per reason, split by mode.
func (o *offenders) top(n int) (enforced, shadow map[string][]Offender, since time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	enforced, shadow = map[string][]Offender{}, map[string][]Offender{}
	for k, e := range o.entries {
		m := enforced
		if !k.enforced {
			m = shadow
		}
		m[k.reason] = append(m[k.reason], Offender{Metric: k.name, Samples: e.count})
	}
	for _, m := range []map[string][]Offender{enforced, shadow} {
		for r, rows := range m {
			sort.Slice(rows, func(i, j int) bool {
				if rows[i].Samples != rows[j].Samples {
					return rows[i].Samples > rows[j].Samples
				}
				return rows[i].Metric < rows[j].Metric
			})
			if len(rows) > n {
				rows = rows[:n]
			}
			m[r] = rows
		}
	}
	return enforced, shadow, o.since
}

// debugLimits is the JSON of GET /debug/limits.
type debugLimits struct {
	Since   time.Time             `json:"since"`
	Dropped map[string][]Offender `json:"dropped"`
	Shadow  map[string][]Offender `json:"shadow"`
	Cluster *debugCluster         `json:"cluster,omitempty"`
}

type debugCluster struct {
	ID                    string  `json:"id"`
	MaxActiveSeries       int     `json:"max_active_series"`
	ActiveSeriesWindow    string  `json:"active_series_window"`
	EnforceActiveSeries   bool    `json:"enforce_active_series"`
	SamplesPerSecond      float64 `json:"samples_per_second"`
	SamplesBurst          int     `json:"samples_burst"`
	EnforceSamplesRate    bool    `json:"enforce_samples_rate"`
	EnforceUploadInterval bool    `json:"enforce_upload_interval"`
}

// RegisterDebug adds GET /debug/limits to mux (the internal listener): the
// metric names that lost the most samples since start, per reason, for
// enforced rules ("dropped") and shadow-mode ones ("shadow"); ?n= bounds
// the rows per reason (default 20) and ?cluster=ID adds that cluster's
// effective budget (defaults plus its override).
func (g *Gateway) RegisterDebug(mux *http.ServeMux) {
	mux.HandleFunc("/debug/limits", func(w http.ResponseWriter, r *http.Request) {
		n := 20
		if v := r.URL.Query().Get("n"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p <= 0 {
				http.Error(w, "n must be a positive integer", http.StatusBadRequest)
				return
			}
			n = min(p, 1000)
		}
		var out debugLimits
		out.Dropped, out.Shadow, out.Since = g.budgets.offenders.top(n)
		if c := r.URL.Query().Get("cluster"); c != "" && g.opts.Budgets != nil {
			b := g.opts.Budgets.Budget(c, g.opts.Now())
			out.Cluster = &debugCluster{
				ID: c, MaxActiveSeries: b.ActiveSeries.Max, ActiveSeriesWindow: b.ActiveSeries.Window.String(),
				EnforceActiveSeries: b.ActiveSeries.Enforce, SamplesPerSecond: b.SamplesRate.PerSecond,
				SamplesBurst: b.SamplesRate.Burst, EnforceSamplesRate: b.SamplesRate.Enforce,
				EnforceUploadInterval: b.UploadInterval.Enforce,
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	})
}
