package limits

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Store holds the budgets' state: in memory for one replica
// (NewMemoryStore), in Redis for several (NewRedisStore).
type Store interface {
	// AdmitSeries marks each hash as seen at now and sets admitted[i] if
	// the series is active already or fits under max; it returns how many
	// were refused. Refused series are not recorded.
	AdmitSeries(ctx context.Context, cluster string, hashes []uint64, max int, window time.Duration, now time.Time, admitted []bool) (refused int, err error)
	// TakeSamples takes n tokens from cluster's bucket (rate per second,
	// burst capacity) if it holds that many; otherwise it takes nothing and
	// says how long until it will.
	TakeSamples(ctx context.Context, cluster string, n int, rate float64, burst int, now time.Time) (ok bool, wait time.Duration, err error)
	// ReserveUpload claims cluster's upload slot for the interval. On ok,
	// release(false) gives it back (the upload failed).
	ReserveUpload(ctx context.Context, cluster string, interval time.Duration, now time.Time) (release func(succeeded bool), wait time.Duration, ok bool, err error)
}

// ErrUnavailable is returned when the shared state cannot be reached and
// the limiter fails closed.
var ErrUnavailable = errors.New("budget state (Redis) unavailable")

// Options configure a Limiter.
type Options struct {
	// Defaults apply to every cluster without an override.
	Defaults Budget
	// UploadInterval is the global upload interval (0 = off); it also sets
	// the default active-series window (twice the interval) and sample
	// burst (PerSecond times the interval, at least a minute).
	UploadInterval time.Duration
	// Store holds the state; nil is a fresh in-memory store.
	Store Store
	// FailOpen admits everything when Store fails (counted); otherwise
	// requests get ErrUnavailable. Authentication never depends on it.
	FailOpen   bool
	Logger     log.Logger
	Registerer prometheus.Registerer
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Limiter decides, per cluster, which series and requests fit the budgets.
// It is safe for concurrent use.
type Limiter struct {
	opts      Options
	overrides atomic.Pointer[Overrides]
	logger    log.Logger

	storeErrors *prometheus.CounterVec
	failedOpen  *prometheus.CounterVec
}

// New returns a Limiter.
func New(o Options) *Limiter {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Store == nil {
		o.Store = NewMemoryStore()
	}
	if o.Defaults.ActiveSeries.Window <= 0 {
		o.Defaults.ActiveSeries.Window = DefaultWindow(o.UploadInterval)
	}
	f := promauto.With(o.Registerer)
	l := &Limiter{
		opts:   o,
		logger: o.Logger,
		storeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_limits_store_errors_total",
			Help: "Budget checks whose shared state (Redis) could not be reached, by budget (active_series, samples_rate, upload_interval).",
		}, []string{"budget"}),
		failedOpen: f.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_limits_failed_open_total",
			Help: "Budget checks admitted without checking because the state store failed and limits.redis.fail_open is true, by budget.",
		}, []string{"budget"}),
	}
	for _, b := range []string{"active_series", "samples_rate", "upload_interval"} {
		l.storeErrors.WithLabelValues(b)
		l.failedOpen.WithLabelValues(b)
	}
	return l
}

// DefaultWindow is the active-series window for an upload interval: two
// intervals, or 10m without one.
func DefaultWindow(uploadInterval time.Duration) time.Duration {
	if uploadInterval <= 0 {
		return 10 * time.Minute
	}
	return 2 * uploadInterval
}

// SetOverrides swaps the per-cluster overrides atomically (nil: none).
func (l *Limiter) SetOverrides(o *Overrides) { l.overrides.Store(o) }

// Overrides returns the active overrides (nil: none).
func (l *Limiter) Overrides() *Overrides { return l.overrides.Load() }

// Budget returns cluster's budget at now: the defaults with its override
// applied, unless the override expired.
func (l *Limiter) Budget(cluster string, now time.Time) Budget {
	b := l.overrides.Load().For(cluster, l.opts.Defaults, now)
	if b.ActiveSeries.Window <= 0 {
		b.ActiveSeries.Window = l.opts.Defaults.ActiveSeries.Window
	}
	if b.SamplesRate.PerSecond > 0 && b.SamplesRate.Burst <= 0 {
		b.SamplesRate.Burst = DefaultBurst(b.SamplesRate.PerSecond, l.opts.UploadInterval)
	}
	return b
}

// DefaultBurst is the sample bucket's capacity when none is set: one
// upload interval's worth (at least a minute's) at rate.
func DefaultBurst(rate float64, uploadInterval time.Duration) int {
	span := max(uploadInterval, time.Minute)
	return int(rate*span.Seconds() + 0.5)
}

// SeriesDecision is the outcome of AdmitSeries.
type SeriesDecision struct {
	// Refused is the number of series over the budget. With Enforce they
	// must be dropped; without, they are only counted (shadow mode).
	Refused int
	Enforce bool
	Limit   int
}

// AdmitSeries checks the series of one request (their SeriesHash values)
// against cluster's active-series budget, setting admitted[i] for those
// that fit. When the budget is off everything is admitted.
func (l *Limiter) AdmitSeries(ctx context.Context, cluster string, hashes []uint64, admitted []bool) (SeriesDecision, error) {
	now := l.opts.Now()
	b := l.Budget(cluster, now).ActiveSeries
	d := SeriesDecision{Enforce: b.Enforce, Limit: b.Max}
	if b.Max <= 0 || len(hashes) == 0 {
		for i := range hashes {
			admitted[i] = true
		}
		return d, nil
	}
	refused, err := l.opts.Store.AdmitSeries(ctx, cluster, hashes, b.Max, b.Window, now, admitted)
	if err != nil {
		if err := l.storeFailed("active_series", err); err != nil {
			return d, err
		}
		for i := range hashes {
			admitted[i] = true
		}
		return d, nil
	}
	d.Refused = refused
	return d, nil
}

// RateDecision is the outcome of TakeSamples.
type RateDecision struct {
	OK      bool
	Wait    time.Duration
	Enforce bool
	// Limit is the bucket's capacity (burst).
	Limit int
	// PerSecond is the refill rate.
	PerSecond float64
}

// TakeSamples charges n samples to cluster's samples-per-second budget.
func (l *Limiter) TakeSamples(ctx context.Context, cluster string, n int) (RateDecision, error) {
	now := l.opts.Now()
	b := l.Budget(cluster, now).SamplesRate
	d := RateDecision{OK: true, Enforce: b.Enforce, Limit: b.Burst, PerSecond: b.PerSecond}
	if b.PerSecond <= 0 || n <= 0 {
		return d, nil
	}
	ok, wait, err := l.opts.Store.TakeSamples(ctx, cluster, n, b.PerSecond, b.Burst, now)
	if err != nil {
		return d, l.storeFailed("samples_rate", err)
	}
	d.OK, d.Wait = ok, wait
	return d, nil
}

// UploadDecision is the outcome of ReserveUpload.
type UploadDecision struct {
	OK      bool
	Wait    time.Duration
	Enforce bool
	// Release gives the slot back when the upload failed; never nil.
	Release func(succeeded bool)
}

// ReserveUpload claims cluster's /upload slot for the upload interval.
func (l *Limiter) ReserveUpload(ctx context.Context, cluster string, now time.Time) (UploadDecision, error) {
	b := l.Budget(cluster, now).UploadInterval
	d := UploadDecision{OK: true, Enforce: b.Enforce, Release: func(bool) {}}
	if l.opts.UploadInterval <= 0 {
		return d, nil
	}
	release, wait, ok, err := l.opts.Store.ReserveUpload(ctx, cluster, l.opts.UploadInterval, now)
	if err != nil {
		return d, l.storeFailed("upload_interval", err)
	}
	d.OK, d.Wait = ok, wait
	if ok && release != nil {
		d.Release = release
	}
	return d, nil
}

// storeFailed counts a store error and returns nil (fail open) or
// ErrUnavailable.
func (l *Limiter) storeFailed(budget string, err error) error {
	l.storeErrors.WithLabelValues(budget).Inc()
	if l.opts.FailOpen {
		l.failedOpen.WithLabelValues(budget).Inc()
		level.Warn(l.logger).Log("msg", "budget state unavailable, admitting (fail open)", "budget", budget, "err", err)
		return nil
	}
	level.Warn(l.logger).Log("msg", "budget state unavailable, refusing (fail closed)", "budget", budget, "err", err)
	return errors.Join(ErrUnavailable, err)
}

// MemoryStore is the Store of a single replica.
type MemoryStore struct {
	Series *SeriesTracker

	mu        sync.Mutex
	buckets   map[string]*bucket
	intervals map[time.Duration]*IntervalLimiter
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
	full   time.Duration // time to refill from empty, for sweeping
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{Series: NewSeriesTracker(), buckets: map[string]*bucket{}, intervals: map[time.Duration]*IntervalLimiter{}}
}

// AdmitSeries implements Store.
func (m *MemoryStore) AdmitSeries(_ context.Context, cluster string, hashes []uint64, max int, window time.Duration, now time.Time, admitted []bool) (int, error) {
	return m.Series.Admit(cluster, hashes, max, window, now, admitted), nil
}

// TakeSamples implements Store.
func (m *MemoryStore) TakeSamples(_ context.Context, cluster string, n int, rate float64, burst int, now time.Time) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepBuckets(now)
	b := m.buckets[cluster]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		m.buckets[cluster] = b
	}
	b.full = time.Duration(float64(burst) / rate * float64(time.Second))
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(burst), b.tokens+el.Seconds()*rate)
		b.last = now
	}
	b.tokens = min(b.tokens, float64(burst))
	if fits(float64(n), b.tokens, float64(burst)) {
		b.tokens -= float64(n)
		return true, 0, nil
	}
	return false, tokenWait(float64(n), b.tokens, float64(burst), rate), nil
}

// fits reports whether a bucket holding tokens can pay need. A request
// larger than the whole bucket passes when the bucket is full and leaves
// it in debt, so the average rate holds and no request is refused forever.
func fits(need, tokens, burst float64) bool {
	return need <= tokens || tokens >= burst
}

// tokenWait is how long until a bucket holding tokens can pay need (or,
// for a request larger than the bucket, until the bucket is full).
func tokenWait(need, tokens, burst, rate float64) time.Duration {
	need = min(need, burst)
	return time.Duration((need - tokens) / rate * float64(time.Second))
}

// sweepBuckets forgets buckets that have refilled completely, once a
// minute, so memory follows the active fleet.
func (m *MemoryStore) sweepBuckets(now time.Time) {
	if now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for c, b := range m.buckets {
		if now.Sub(b.last) >= b.full {
			delete(m.buckets, c)
		}
	}
}

// ReserveUpload implements Store with an IntervalLimiter per interval.
func (m *MemoryStore) ReserveUpload(_ context.Context, cluster string, interval time.Duration, now time.Time) (func(bool), time.Duration, bool, error) {
	m.mu.Lock()
	il := m.intervals[interval]
	if il == nil {
		il = NewIntervalLimiter(interval)
		m.intervals[interval] = il
	}
	m.mu.Unlock()
	release, wait, ok := il.Reserve(cluster, now)
	return release, wait, ok, nil
}

// ActiveSeries returns the active series tracked for cluster when the
// state is in memory; ok is false with a shared store (Redis), whose
// count this replica does not hold.
func (l *Limiter) ActiveSeries(cluster string) (n int, ok bool) {
	m, ok := l.opts.Store.(*MemoryStore)
	if !ok {
		return 0, false
	}
	return m.Series.Active(cluster), true
}
