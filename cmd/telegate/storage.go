package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/store"
)

// storageFlags override the config's storage section (single-binary
// mode), named like Prometheus' own --storage.tsdb.* flags.
type storageFlags struct {
	path          string
	retentionTime string
	retentionSize string
}

func (f *storageFlags) register(cmd *kingpin.CmdClause) {
	cmd.Flag("storage.path", "Directory of the embedded TSDB (single-binary mode: forward.url empty); overrides storage.path (default ./data).").StringVar(&f.path)
	cmd.Flag("storage.retention.time", "How long the embedded TSDB keeps data, e.g. 15d; 0 = no time limit; overrides storage.retention_time.").StringVar(&f.retentionTime)
	cmd.Flag("storage.retention.size", "Maximum bytes of the embedded TSDB (blocks, WAL, head chunks), e.g. 50GB; the oldest blocks go first; 0 = no limit; overrides storage.retention_size.").StringVar(&f.retentionSize)
}

// apply writes the flags given into c.
func (f *storageFlags) apply(c *config.Config, logger log.Logger) error {
	if !c.EmbeddedStorage() {
		if f.path != "" || f.retentionTime != "" || f.retentionSize != "" {
			level.Warn(logger).Log("msg", "--storage.* flags are ignored: forward.url is set, so the gateway forwards instead of storing")
		}
		return nil
	}
	if f.path != "" {
		c.Storage.Path = f.path
	}
	if f.retentionTime != "" {
		d, err := model.ParseDuration(f.retentionTime)
		if err != nil {
			return fmt.Errorf("--storage.retention.time: %w", err)
		}
		c.Storage.RetentionTime = d
	}
	if f.retentionSize != "" {
		b, err := config.ParseBytes(f.retentionSize)
		if err != nil {
			return fmt.Errorf("--storage.retention.size: %w", err)
		}
		c.Storage.RetentionSize = b
	}
	return nil
}

// openStorage opens the embedded TSDB (replaying its WAL) and builds the
// query API over it.
func openStorage(c *config.Config, logger log.Logger, reg prometheus.Registerer) (*store.Store, *store.API, error) {
	st := c.Storage
	s, err := store.Open(st.Path, store.Options{
		Retention:            time.Duration(st.RetentionTime),
		RetentionSize:        int64(st.RetentionSize),
		OutOfOrderTimeWindow: time.Duration(st.OutOfOrderTimeWindow),
		NoWALFsync:           !st.WALFsync,
		MaxExemplars:         maxExemplars(st.MaxExemplars),
		Logger:               logger,
		Registerer:           reg,
	})
	if err != nil {
		return nil, nil, err
	}
	q := st.Query
	api := store.NewAPI(s, store.APIOptions{
		Timeout:       time.Duration(q.Timeout),
		MaxSamples:    q.MaxSamples,
		MaxConcurrent: q.MaxConcurrent,
		LookbackDelta: time.Duration(q.LookbackDelta),
		Revision:      revision,
		Logger:        logger,
		Registerer:    reg,
	})
	return s, api, nil
}

// queryMux serves only the query API (storage.query.listen_address).
func queryMux(api *store.API) *http.ServeMux {
	mux := http.NewServeMux()
	api.Register(mux)
	return mux
}

// queryURL is the instant-query URL of the API served on addr; with a
// web config (TLS or not, it decides) without the scheme.
func queryURL(addr, webConfigFile string) string {
	if webConfigFile != "" {
		return addr + "/api/v1/query"
	}
	return "http://" + addr + "/api/v1/query"
}

// maxExemplars maps storage.max_exemplars (0 = off) to store.Options'
// (0 = its default, negative = off).
func maxExemplars(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}
