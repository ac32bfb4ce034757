package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/forward"
)

// Config is the gateway's whole configuration file.
type Config struct {
	Web       Web       `yaml:"web"`
	Authn     Authn     `yaml:"authn"`
	Allowlist Allowlist `yaml:"allowlist"`
	Relabel   Relabel   `yaml:"relabel"`
	Limits    Limits    `yaml:"limits"`
	Forward   Forward   `yaml:"forward"`
	Storage   Storage   `yaml:"storage"`

	// source reads the files the config points at: relative to the config
	// file's directory, or from the embedded example set.
	source fs.FS
	// dir is the directory relative paths are resolved against ("" for the
	// embedded set).
	dir string
	// Origin names where the config came from, for logs.
	Origin string `yaml:"-"`
}

// Forward is the remote-write destination.
type Forward struct {
	// Sender is a named field, not an embedded one, so forward.Config's
	// own UnmarshalYAML is not promoted and max_retry_time stays known.
	Sender forward.Config `yaml:",inline"`
	// MaxRetryTime bounds how long one request may spend retrying the
	// downstream before the client gets 503.
	MaxRetryTime model.Duration `yaml:"max_retry_time"`
	// MaxRequestBytes splits a request's series into several remote
	// writes of at most this many (uncompressed) bytes, below the
	// downstream's own limit.
	MaxRequestBytes Bytes `yaml:"max_request_bytes"`
	// Spool is the durable spool a request falls back to when the
	// downstream cannot take it.
	Spool Spool `yaml:"spool"`
	// SendExemplars passes the exemplars senders attach to their series
	// on (to the downstream or the embedded storage); false drops them.
	SendExemplars bool `yaml:"send_exemplars"`
	// SendMetadata passes metric metadata (type, help, unit) on; false
	// drops it.
	SendMetadata bool `yaml:"send_metadata"`
}

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

// Spool configures forward.spool: where bodies the downstream could not
// take wait for replay.
type Spool struct {
	// Enabled turns the spool on (default). Off, a downstream outage is
	// answered 503 after max_retry_time.
	Enabled bool `yaml:"enabled"`
	// Bucket is an objstore config as Thanos reads it (type, config,
	// prefix); default FILESYSTEM in ./data/spool (relative to the working
	// directory).
	Bucket bucket.Config `yaml:"bucket"`
	// MaxBytes caps the spool, pending and dead-lettered objects
	// together; when full the gateway answers 503 with Retry-After. 0 =
	// no cap.
	MaxBytes Bytes `yaml:"max_bytes"`
	// MaxSampleAge dead-letters spooled objects whose newest sample is
	// older than this (the downstream would refuse them). 0 = never.
	MaxSampleAge model.Duration `yaml:"max_sample_age"`
	// DeadLetterRetention deletes dead-lettered objects (dead/) this long
	// after they were dead-lettered. 0 = keep until removed by hand.
	DeadLetterRetention model.Duration `yaml:"dead_letter_retention"`
	// SendDeadline is how long a request tries the downstream before its
	// data is spooled instead (at most max_retry_time minus 2s, kept for
	// the spool write).
	SendDeadline model.Duration `yaml:"send_deadline"`
	Replay       SpoolReplay    `yaml:"replay"`
}

// SpoolReplay tunes the background replay.
type SpoolReplay struct {
	Concurrency int            `yaml:"concurrency"`
	Timeout     model.Duration `yaml:"timeout"`
	MinBackoff  model.Duration `yaml:"min_backoff"`
	MaxBackoff  model.Duration `yaml:"max_backoff"`
	Interval    model.Duration `yaml:"interval"`
}

// UnmarshalYAML keeps the default FILESYSTEM bucket only when no bucket
// is given (a given bucket replaces it whole, not key by key).
func (s *Spool) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Spool
	p := plain(*s)
	p.Bucket = bucket.Config{}
	if err := unmarshal(&p); err != nil {
		return err
	}
	if p.Bucket.Type == "" && p.Bucket.Config == nil && p.Bucket.Prefix == "" {
		p.Bucket = bucket.DefaultConfig()
	}
	*s = Spool(p)
	return nil
}

func defaultSpool() Spool {
	return Spool{
		Enabled:             true,
		Bucket:              bucket.DefaultConfig(),
		MaxBytes:            1 << 30,
		MaxSampleAge:        model.Duration(2 * time.Hour),
		DeadLetterRetention: model.Duration(7 * 24 * time.Hour),
		SendDeadline:        model.Duration(forward.DefaultSendDeadline),
		Replay: SpoolReplay{
			Concurrency: forward.DefaultReplayConcurrency,
			Timeout:     model.Duration(forward.DefaultReplayTimeout),
			MinBackoff:  model.Duration(forward.DefaultReplayMinBackoff),
			MaxBackoff:  model.Duration(forward.DefaultReplayMaxBackoff),
			Interval:    model.Duration(forward.DefaultReplayInterval),
		},
	}
}

func defaultSender() forward.Config {
	f := forward.DefaultConfig
	f.Timeout = 10 * time.Second
	return f
}

// Default returns the built-in defaults every file is layered over.
func Default() *Config {
	return &Config{
		Web:       defaultWeb(),
		Authn:     defaultAuthn(),
		Allowlist: defaultAllowlist(),
		Relabel:   defaultRelabel(),
		Limits:    defaultLimits(),
		Forward:   defaultForward(),
		Storage:   defaultStorage(),
	}
}

func defaultForward() Forward {
	return Forward{
		Sender:          defaultSender(),
		MaxRetryTime:    model.Duration(30 * time.Second),
		Spool:           defaultSpool(),
		MaxRequestBytes: forward.DefaultMaxRequestBytes,
		SendExemplars:   true,
		SendMetadata:    true,
	}
}

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

// Parse reads a config document over the defaults. name is used in errors;
// files it references are read from source, relative to dir.
func Parse(data []byte, name string, source fs.FS, dir string) (*Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	c.source, c.dir, c.Origin = source, dir, name
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadFile reads the config file at path. Relative file references resolve
// against the file's directory.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	c, err := Parse(data, path, osFS{}, dir)
	if err != nil {
		return nil, err
	}
	c.Forward.Sender.HTTPClientConfig.SetDirectory(dir)
	c.Authn.Authorizer.HTTPClientConfig.SetDirectory(dir)
	if c.Limits.Redis.TLSConfig != nil {
		c.Limits.Redis.TLSConfig.SetDirectory(dir)
	}
	return c, nil
}

// LoadEmbedded reads the config named name from an embedded file set
// (examples); its references resolve inside the same set.
func LoadEmbedded(fsys fs.FS, name string) (*Config, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return Parse(data, "embedded:"+name, fsys, "")
}

// ReadFile reads a file the config references (tokens, allowlist, keys).
func (c *Config) ReadFile(name string) ([]byte, error) {
	return fs.ReadFile(c.source, c.Path(name))
}

// Path resolves a referenced file name the way ReadFile will.
func (c *Config) Path(name string) string {
	if _, ok := c.source.(osFS); ok {
		if !filepath.IsAbs(name) {
			return filepath.Join(c.dir, name)
		}
		return name
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(name)), "./")
}

// Embedded reports whether the config and its files come from the binary.
func (c *Config) Embedded() bool {
	_, ok := c.source.(osFS)
	return c.source != nil && !ok
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// addFunc records one validation error for a key ("section.key: ...").
type addFunc func(key, format string, args ...any)

// Validate checks values that parse but cannot work. Each section checks
// its own keys; the order of the checks is the order of the errors.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	c.validateWeb(add)
	c.validateAuthn(add)
	c.validateAllowlist(add)
	c.validateRelabel(add)
	c.validateLimits(add)
	if c.Forward.Sender.URL != "" {
		if err := c.Forward.Sender.Validate(); err != nil {
			errs = append(errs, err)
		}
	} else {
		c.validateStorage(add)
	}
	c.validateRelabelConfigs(add)
	c.validateBudgets(add)
	c.validateForward(add)
	return errors.Join(errs...)
}

// validateForward checks the forward section but its sender
// (forward.Config.Validate, called only when forward.url is set).
func (c *Config) validateForward(add addFunc) {
	if c.Forward.MaxRetryTime <= 0 {
		add("forward.max_retry_time", "must be positive")
	}
	if c.Forward.MaxRequestBytes <= 0 {
		add("forward.max_request_bytes", "must be positive")
	}
	if sp := c.Forward.Spool; sp.Enabled {
		if err := sp.Bucket.Validate(); err != nil {
			add("forward.spool.bucket", "%v", err)
		}
		if sp.MaxSampleAge < 0 {
			add("forward.spool.max_sample_age", "must not be negative")
		}
		if sp.DeadLetterRetention < 0 {
			add("forward.spool.dead_letter_retention", "must not be negative")
		}
		if sp.SendDeadline <= 0 {
			add("forward.spool.send_deadline", "must be positive")
		}
		r := sp.Replay
		if r.Concurrency <= 0 || r.Timeout <= 0 || r.MinBackoff <= 0 || r.Interval <= 0 {
			add("forward.spool.replay", "concurrency, timeout, min_backoff and interval must be positive")
		}
		if r.MaxBackoff < r.MinBackoff {
			add("forward.spool.replay.max_backoff", "must not be below min_backoff")
		}
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

// cleanYAMLError drops the library's noise ("yaml: unmarshal errors:\n  ")
// and keeps the "line N: field X not found in type Y" lines.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if j := strings.Index(l, " not found in type "); j >= 0 {
			l = l[:j] + " is not a known key"
		}
		lines[i] = l
	}
	return errors.New(strings.Join(lines, "; "))
}

// osFS reads from the real filesystem with absolute or relative paths.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// ReadFile implements fs.ReadFileFS so paths need not be fs.ValidPath.
func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
