package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.yaml.in/yaml/v2"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/privacy"
)

// optOuts keeps privacy.opt_out_file loaded into the gateway's opt-out
// set: read at start (an invalid file stops the start), again on SIGHUP,
// POST /-/reload and when it changes; an invalid file keeps the previous
// set. It also serves the admin API on the internal listener.
type optOuts struct {
	set    privacy.OptOuts
	path   string // "" = no file: the set stays empty, the API lists nothing
	logger log.Logger

	mu      sync.Mutex
	current []byte
	count   prometheus.Gauge
	success prometheus.Gauge
}

func newOptOuts(c *config.Config, logger log.Logger, reg prometheus.Registerer) (*optOuts, error) {
	f := promauto.With(reg)
	o := &optOuts{logger: logger,
		count: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_privacy_opted_out_installations",
			Help: "Installations on the opt-out list (privacy.opt_out_file): their requests are answered 403 opted_out.",
		}),
		success: f.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_privacy_opt_out_last_reload_successful",
			Help: "Whether the last read of privacy.opt_out_file succeeded (1) or kept the previous list (0).",
		}),
	}
	o.success.Set(1)
	o.set.Set(nil, time.Now())
	if c.Privacy.OptOutFile == "" {
		return o, nil
	}
	o.path = c.Path(c.Privacy.OptOutFile)
	data, err := os.ReadFile(o.path)
	if err != nil {
		return nil, fmt.Errorf("privacy.opt_out_file: %w", err)
	}
	if err := o.load(data); err != nil {
		return nil, fmt.Errorf("privacy.opt_out_file %s: %w", o.path, err)
	}
	return o, nil
}

func (o *optOuts) load(data []byte) error {
	list, err := privacy.ParseOptOuts(data)
	if err != nil {
		return err
	}
	o.set.Set(list, time.Now())
	o.current = data
	o.count.Set(float64(len(list)))
	return nil
}

// Reload re-reads the file when it changed.
func (o *optOuts) Reload() error {
	if o.path == "" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	data, err := os.ReadFile(o.path)
	if err == nil && bytes.Equal(data, o.current) {
		return nil
	}
	if err == nil {
		err = o.load(data)
	}
	if err != nil {
		o.success.Set(0)
		level.Error(o.logger).Log("msg", "opt-out file not reloaded: keeping the previous list", "file", o.path, "err", err)
		return fmt.Errorf("privacy.opt_out_file: %w", err)
	}
	o.success.Set(1)
	list, hash, _ := o.set.List()
	level.Info(o.logger).Log("msg", "opt-out list loaded", "file", o.path, "installations", len(list), "hash", hash)
	return nil
}

// watch reloads every interval until ctx ends.
func (o *optOuts) watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			o.Reload()
		}
	}
}

// optOutsResponse is GET /api/v1/opt-outs.
type optOutsResponse struct {
	File          string           `json:"file,omitempty"`
	Hash          string           `json:"hash"`
	Loaded        time.Time        `json:"loaded"`
	Installations []privacy.OptOut `json:"installations"`
}

// register serves /api/v1/opt-outs on the internal listener: GET lists
// the opt-outs; POST ?id=ID[&reason=...] adds one and DELETE ?id=ID
// removes one by rewriting privacy.opt_out_file (atomically, so the
// change survives a restart), which answers 409 when there is no file or
// it cannot be written (a ConfigMap: edit it where it is managed).
func (o *optOuts) register(mux *http.ServeMux) {
	mux.HandleFunc("/api/v1/opt-outs", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost, http.MethodDelete:
			if err := o.change(r); err != nil {
				http.Error(w, err.msg, err.code)
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST, DELETE")
			http.Error(w, "use GET, POST or DELETE", http.StatusMethodNotAllowed)
			return
		}
		list, hash, loaded := o.set.List()
		if list == nil {
			list = []privacy.OptOut{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(optOutsResponse{File: o.path, Hash: hash, Loaded: loaded, Installations: list})
	})
}

type apiError struct {
	code int
	msg  string
}

// change applies POST or DELETE to the file and reloads it.
func (o *optOuts) change(r *http.Request) *apiError {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return &apiError{http.StatusBadRequest, "the id parameter must be 1 to 256 bytes of UTF-8"}
	}
	reason := r.URL.Query().Get("reason")
	if len(reason) > 1024 || !utf8.ValidString(reason) {
		return &apiError{http.StatusBadRequest, "the reason parameter must be at most 1024 bytes of UTF-8"}
	}
	if o.path == "" {
		return &apiError{http.StatusConflict, "privacy.opt_out_file is not set: nowhere to record the opt-out"}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	list, _, _ := o.set.List()
	out := list[:0:0]
	found := false
	for _, e := range list {
		if e.ID == id {
			found = true
			if r.Method == http.MethodDelete {
				continue
			}
		}
		out = append(out, e)
	}
	if r.Method == http.MethodPost && !found {
		out = append(out, privacy.OptOut{ID: id, Reason: reason, Since: time.Now().UTC().Format(time.RFC3339)})
	}
	if r.Method == http.MethodPost && found || r.Method == http.MethodDelete && !found {
		return nil // already so
	}
	data, err := yaml.Marshal(struct {
		Installations []privacy.OptOut `yaml:"installations"`
	}{out})
	if err != nil {
		return &apiError{http.StatusInternalServerError, err.Error()}
	}
	data = append([]byte("# Installations that opted out of telemetry (telegate privacy.opt_out_file).\n"), data...)
	if err := writeAtomic(o.path, data); err != nil {
		return &apiError{http.StatusConflict, fmt.Sprintf("cannot write %s (%v): change the list where it is managed (e.g. its ConfigMap)", o.path, err)}
	}
	if err := o.load(data); err != nil {
		return &apiError{http.StatusInternalServerError, err.Error()}
	}
	level.Info(o.logger).Log("msg", "opt-out list changed by the admin API", "method", r.Method, "id", id, "installations", len(out))
	return nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsynced, renamed over it.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".opt-outs-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
