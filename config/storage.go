package config

import (
	"net"
	"time"

	"github.com/prometheus/common/model"
)

// Storage is the embedded TSDB used when forward.url is empty
// (single-binary mode).
type Storage struct {
	// Path is the TSDB directory (relative to the working directory).
	Path string `yaml:"path"`
	// RetentionTime deletes data older than this; 0 = no time limit.
	RetentionTime model.Duration `yaml:"retention_time"`
	// RetentionSize deletes the oldest blocks while the storage takes
	// more bytes than this; 0 = no size limit. Both 0: 15d.
	RetentionSize Bytes `yaml:"retention_size"`
	// OutOfOrderTimeWindow accepts samples up to this far behind a
	// series' newest one; 0 refuses them (400).
	OutOfOrderTimeWindow model.Duration `yaml:"out_of_order_time_window"`
	// WALFsync fsyncs the WAL before every acknowledgement, so a 2xx
	// survives power loss, not only a crash of the process.
	WALFsync bool `yaml:"wal_fsync"`
	// MaxExemplars is how many exemplars the TSDB keeps over all series
	// (a ring buffer, as Prometheus' storage.exemplars.max_exemplars);
	// 0 turns exemplar storage off.
	MaxExemplars int          `yaml:"max_exemplars"`
	Query        StorageQuery `yaml:"query"`
}

// StorageQuery configures the Prometheus query API over the embedded
// storage.
type StorageQuery struct {
	// ListenAddress serves the query API on its own listener; "" = on the
	// internal listener.
	ListenAddress string         `yaml:"listen_address"`
	Timeout       model.Duration `yaml:"timeout"`
	MaxSamples    int            `yaml:"max_samples"`
	MaxConcurrent int            `yaml:"max_concurrent"`
	LookbackDelta model.Duration `yaml:"lookback_delta"`
}

// EmbeddedStorage reports whether the gateway stores data itself
// (forward.url empty) instead of forwarding it.
func (c *Config) EmbeddedStorage() bool { return c.Forward.Sender.URL == "" }

// defaultStorage returns the storage section's built-in defaults.
func defaultStorage() Storage {
	return Storage{
		Path:          "./data",
		RetentionTime: model.Duration(15 * 24 * time.Hour),
		WALFsync:      true,
		MaxExemplars:  100000,
		Query: StorageQuery{
			Timeout:       model.Duration(2 * time.Minute),
			MaxSamples:    50000000,
			MaxConcurrent: 20,
			LookbackDelta: model.Duration(5 * time.Minute),
		},
	}
}

// validateStorage checks the storage section (single-binary mode only:
// with forward.url set it is not used).
func (c *Config) validateStorage(add addFunc) {
	st := c.Storage
	if st.Path == "" {
		add("storage.path", "must not be empty when forward.url is empty (single-binary mode stores data there)")
	}
	q := st.Query
	if q.ListenAddress != "" {
		if _, _, err := net.SplitHostPort(q.ListenAddress); err != nil {
			add("storage.query.listen_address", "%v", err)
		}
		if q.ListenAddress == c.Web.ListenAddress || q.ListenAddress == c.Web.InternalListenAddress {
			add("storage.query.listen_address", "%q is already a web listener; leave it empty to serve the query API on the internal listener", q.ListenAddress)
		}
	}
	if q.Timeout <= 0 {
		add("storage.query.timeout", "must be positive")
	}
	if q.MaxSamples <= 0 {
		add("storage.query.max_samples", "must be positive")
	}
	if q.MaxConcurrent <= 0 {
		add("storage.query.max_concurrent", "must be positive")
	}
	if q.LookbackDelta <= 0 {
		add("storage.query.lookback_delta", "must be positive")
	}
	if c.Storage.MaxExemplars < 0 {
		add("storage.max_exemplars", "must not be negative (0 = exemplar storage off)")
	}
}
