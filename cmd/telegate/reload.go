package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
)

// allowlistReloader re-reads the allowlist file on SIGHUP, POST /-/reload
// and when the file changes, and swaps it into the gateway atomically. An
// invalid file keeps the previous allowlist.
type allowlistReloader struct {
	cfg    *config.Config
	gw     *gateway.Gateway
	logger log.Logger

	mu      sync.Mutex
	current []byte
	// also are other files reloaded on the same triggers (SIGHUP, POST
	// /-/reload), e.g. the budget overrides; they keep their own state and
	// metrics when they fail.
	also []func() error

	success     prometheus.Gauge
	successTime prometheus.Gauge
	info        *prometheus.GaugeVec
}

func newAllowlistReloader(cfg *config.Config, gw *gateway.Gateway, initial []byte, al *allowlist.Allowlist, logger log.Logger, reg prometheus.Registerer) *allowlistReloader {
	f := promauto.With(reg)
	r := &allowlistReloader{
		cfg: cfg, gw: gw, logger: logger, current: initial,
		success: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_config_last_reload_successful",
			Help: "Whether the last allowlist reload attempt succeeded (1) or kept the previous allowlist (0).",
		}),
		successTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful allowlist load.",
		}),
		info: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "telegate_allowlist_info",
			Help: "The active allowlist: its content hash (also sent as X-Telegate-Allowlist-Hash) and entry count as value.",
		}, []string{"hash"}),
	}
	r.success.Set(1)
	r.successTime.SetToCurrentTime()
	r.info.WithLabelValues(al.Hash()).Set(float64(len(al.Entries)))
	return r
}

// alsoReload adds a reload that runs on SIGHUP and POST /-/reload.
func (r *allowlistReloader) alsoReload(f func() error) { r.also = append(r.also, f) }

// Reload re-reads the allowlist (swapping it in if it changed and is
// valid) and, for explicit triggers, the other reloadable files.
func (r *allowlistReloader) Reload(trigger string) error {
	err := r.reloadAllowlist(trigger)
	if trigger == "file change" {
		return err
	}
	var errs []error
	for _, f := range r.also {
		if e := f(); e != nil {
			errs = append(errs, e)
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}

func (r *allowlistReloader) reloadAllowlist(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := r.cfg.ReadFile(r.cfg.Allowlist.File)
	if err != nil {
		return r.failed(trigger, err)
	}
	if bytes.Equal(data, r.current) {
		r.success.Set(1)
		return nil
	}
	al, err := allowlist.Parse(data, r.cfg.Path(r.cfg.Allowlist.File))
	if err != nil {
		return r.failed(trigger, err)
	}
	r.gw.SetAllowlist(al)
	r.current = data
	r.success.Set(1)
	r.successTime.SetToCurrentTime()
	r.info.Reset()
	r.info.WithLabelValues(al.Hash()).Set(float64(len(al.Entries)))
	level.Info(r.logger).Log("msg", "allowlist reloaded", "trigger", trigger, "entries", len(al.Entries), "hash", al.Hash())
	return nil
}

func (r *allowlistReloader) failed(trigger string, err error) error {
	r.success.Set(0)
	level.Error(r.logger).Log("msg", "allowlist reload failed; keeping the previous allowlist", "trigger", trigger, "err", err)
	return err
}

// watch polls the file every interval until ctx ends.
func (r *allowlistReloader) watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Reload("file change")
		}
	}
}

// ServeHTTP is POST /-/reload.
func (r *allowlistReloader) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := r.Reload("http"); err != nil {
		var msg = err.Error()
		if errors.Unwrap(err) == nil && len(msg) > 2048 {
			msg = msg[:2048]
		}
		http.Error(w, "reload failed, previous configuration kept: "+msg, http.StatusInternalServerError)
		return
	}
	w.Write([]byte("allowlist reloaded\n"))
}
