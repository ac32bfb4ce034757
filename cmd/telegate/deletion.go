package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/privacy/deletion"
	"github.com/telegate/telegate/store"
)

// deletions wires the deletion requests (package privacy/deletion) into
// the gateway: it records them (gateway.Deletions), carries them out
// (the embedded TSDB's series, the spooled objects), serves the admin API
// and exports the pending ones for Thanos' block rewrite.
type deletions struct {
	log    *deletion.Log
	label  string // the cluster ID label
	db     *store.Store
	spool  *forward.Spool
	logger log.Logger

	pending prometheus.GaugeFunc
	errors  prometheus.Counter
}

// openDeletions opens the deletion log on privacy.deletions_bucket (or its
// default: the spool's bucket, or <storage.path>/deletions).
func openDeletions(c *config.Config, down downstream, logger log.Logger, reg prometheus.Registerer) (*deletions, error) {
	bc := c.Privacy.DeletionsBucket
	var (
		bkt objstore.Bucket
		err error
	)
	switch {
	case bc.Type != "":
		bkt, err = bucket.New(bc)
	case c.EmbeddedStorage():
		bkt, err = bucket.NewFilesystem(filepath.Join(c.Storage.Path, "deletions"))
	default:
		bkt, err = bucket.New(c.Forward.Spool.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("privacy.deletions_bucket: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := deletion.Open(ctx, bkt, nil)
	if err != nil {
		return nil, err
	}
	d := &deletions{log: l, label: c.Authn.ClusterIDLabel, db: down.db, spool: down.spool, logger: log.With(logger, "component", "deletion")}
	f := promauto.With(reg)
	d.pending = f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "telegate_privacy_deletion_requests_pending",
		Help: "Deletion requests not carried out yet (with Thanos: until the block rewrite job marks them done).",
	}, func() float64 { return float64(len(l.Pending())) })
	d.errors = f.NewCounter(prometheus.CounterOpts{
		Name: "telegate_privacy_deletion_errors_total",
		Help: "Failures to refresh or carry out deletion requests (retried every minute).",
	})
	return d, nil
}

// Deleted implements gateway.Deletions.
func (d *deletions) Deleted(id string) bool { return d.log.Deleted(id) }

// RequestDeletion implements gateway.Deletions, and carries the request
// out at once where it can.
func (d *deletions) RequestDeletion(ctx context.Context, id string) (string, time.Time, bool, error) {
	r, created, err := d.log.Request(ctx, id, deletion.ByInstallation)
	if err != nil {
		return "", time.Time{}, false, err
	}
	if created {
		level.Info(d.logger).Log("msg", "deletion requested by the installation", "id", id)
		go d.execute(context.Background())
	}
	return r.State, r.RequestedAt, created, nil
}

// run refreshes the log from the bucket (requests made at other replicas)
// and carries out pending requests every interval until ctx ends.
func (d *deletions) run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.execute(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.log.Refresh(ctx); err != nil && ctx.Err() == nil {
			d.errors.Inc()
			level.Warn(d.logger).Log("msg", "reading deletion requests", "err", err)
		}
	}
}

// execute carries out every pending request: in single-binary mode the
// installation's series are deleted from the TSDB (and the request is
// done); when forwarding, its spooled objects are purged (the request
// stays pending until Thanos' block rewrite is applied and marked done).
func (d *deletions) execute(ctx context.Context) {
	for _, r := range d.log.List() {
		if r.State != deletion.Pending {
			continue
		}
		if d.db != nil {
			if err := d.db.DeleteSeries(ctx, d.label, r.ID); err != nil {
				d.errors.Inc()
				level.Error(d.logger).Log("msg", "deleting an installation's series", "id", r.ID, "err", err)
				continue
			}
			if err := d.log.Note(ctx, r.ID, "series deleted from the embedded storage", true); err != nil {
				d.errors.Inc()
			}
			level.Info(d.logger).Log("msg", "deletion done", "id", r.ID)
			continue
		}
		if d.spool != nil && !purged(r) {
			n, err := d.spool.Purge(ctx, r.ID)
			if err != nil {
				d.errors.Inc()
				level.Error(d.logger).Log("msg", "purging an installation's spooled data", "id", r.ID, "err", err)
				continue
			}
			if err := d.log.Note(ctx, r.ID, fmt.Sprintf("spool purged (%d objects); awaiting the block rewrite of long-term storage", n), false); err != nil {
				d.errors.Inc()
			}
		}
	}
}

func purged(r deletion.Request) bool {
	for _, e := range r.Audit {
		if strings.HasPrefix(e.What, "spool purged") {
			return true
		}
	}
	return false
}

// register serves the admin API on the internal listener:
//
//	GET  /api/v1/deletions                  every request, its state and audit trail
//	POST /api/v1/deletions?id=ID            file a request on an installation's behalf
//	POST /api/v1/deletions/done?id=ID       mark one done (after the block rewrite)
//	GET  /api/v1/deletions/rewrite-config   the pending ones as thanos tools bucket rewrite's deletion config
func (d *deletions) register(mux *http.ServeMux) {
	list := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"requests": d.log.List()})
	}
	id := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		v := strings.TrimSpace(r.URL.Query().Get("id"))
		if v == "" || len(v) > 256 || !utf8.ValidString(v) {
			http.Error(w, "the id parameter must be 1 to 256 bytes of UTF-8", http.StatusBadRequest)
			return "", false
		}
		return v, true
	}
	mux.HandleFunc("/api/v1/deletions", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			v, ok := id(w, r)
			if !ok {
				return
			}
			if _, created, err := d.log.Request(r.Context(), v, deletion.ByOperator); err != nil {
				http.Error(w, "recording the request: "+err.Error(), http.StatusServiceUnavailable)
				return
			} else if created {
				level.Info(d.logger).Log("msg", "deletion requested by an operator", "id", v)
				go d.execute(context.Background())
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		list(w)
	})
	mux.HandleFunc("/api/v1/deletions/done", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		v, ok := id(w, r)
		if !ok {
			return
		}
		if err := d.log.Note(r.Context(), v, "marked done by an operator (block rewrite applied)", true); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		list(w)
	})
	mux.HandleFunc("/api/v1/deletions/rewrite-config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(d.log.RewriteConfig(d.label))
	})
}
