package limits

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// OverridesReloader keeps a Limiter's overrides in step with a file.
type OverridesReloader struct {
	limiter *Limiter
	name    string
	read    func() ([]byte, error)
	logger  log.Logger
	now     func() time.Time

	mu          sync.Mutex
	lastExpired []string

	success prometheus.Gauge
	count   *prometheus.GaugeVec
}

// NewOverridesReloader returns a reloader reading the file name (for
// logs) through read.
func NewOverridesReloader(l *Limiter, name string, read func() ([]byte, error), logger log.Logger, reg prometheus.Registerer) *OverridesReloader {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return &OverridesReloader{
		limiter: l, name: name, read: read, logger: logger, now: l.opts.Now,
		success: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_limits_overrides_last_reload_successful",
			Help: "1 if the last load of limits.budgets.overrides_file succeeded.",
		}),
		count: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "telegate_limits_overrides",
			Help: "Per-cluster budget overrides by state (active, expired: past their expires date and ignored).",
		}, []string{"state"}),
	}
}

// Reload reads and parses the file; on success the new overrides apply
// at once, on failure the active ones stay and the error is returned.
func (r *OverridesReloader) Reload() error {
	data, err := r.read()
	if err == nil {
		cur := r.limiter.Overrides()
		if cur.sameContent(data) {
			r.success.Set(1)
			r.refresh()
			return nil
		}
		var o *Overrides
		if o, err = ParseOverrides(data); err == nil {
			r.limiter.SetOverrides(o)
			active, expired := o.Counts(r.now())
			level.Info(r.logger).Log("msg", "loaded budget overrides", "file", r.name, "hash", o.Hash(), "active", active, "expired", expired)
		}
	}
	if err != nil {
		r.success.Set(0)
		level.Error(r.logger).Log("msg", "budget overrides not reloaded, keeping the active ones", "file", r.name, "err", err)
		return fmt.Errorf("%s: %w", r.name, err)
	}
	r.success.Set(1)
	r.refresh()
	return nil
}

// refresh updates the gauges and warns once when overrides expire.
func (r *OverridesReloader) refresh() {
	o := r.limiter.Overrides()
	now := r.now()
	active, expired := o.Counts(now)
	r.count.WithLabelValues("active").Set(float64(active))
	r.count.WithLabelValues("expired").Set(float64(expired))
	names := o.Expired(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Equal(names, r.lastExpired) {
		r.lastExpired = names
		if len(names) > 0 {
			level.Warn(r.logger).Log("msg", "budget overrides expired and no longer apply; remove them from the file or extend expires", "file", r.name, "clusters", strings.Join(names, ","))
		}
	}
}

// Run reloads every interval until ctx ends; a failed reload is logged
// and retried at the next tick.
func (r *OverridesReloader) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Reload()
		}
	}
}
