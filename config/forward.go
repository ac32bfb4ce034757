package config

import (
	"time"

	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/forward"
)

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
	// Coalesce sends the requests that queue behind a remote write in
	// flight as one remote write (group commit, forward.Coalescer), of
	// at most MaxRequestBytes and CoalesceMaxRequests requests. Remote
	// write 1.0 only: with protobuf_message 2.0 every request is sent on
	// its own.
	Coalesce bool `yaml:"coalesce"`
	// CoalesceMaxRequests caps the requests one coalesced remote write
	// carries.
	CoalesceMaxRequests int `yaml:"coalesce_max_requests"`
	// CoalesceMaxInFlight is how many remote writes may be in flight
	// before requests queue to be coalesced.
	CoalesceMaxInFlight int `yaml:"coalesce_max_in_flight"`
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
	f.HTTP1FastPath = new(true) // a fresh pointer: YAML decodes through it
	return f
}

// defaultForward returns the forward section's built-in defaults.
func defaultForward() Forward {
	return Forward{
		Sender:              defaultSender(),
		MaxRetryTime:        model.Duration(30 * time.Second),
		Spool:               defaultSpool(),
		MaxRequestBytes:     forward.DefaultMaxRequestBytes,
		Coalesce:            true,
		CoalesceMaxRequests: forward.DefaultCoalesceMaxRequests,
		CoalesceMaxInFlight: 1,
		SendExemplars:       true,
		SendMetadata:        true,
	}
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
	if c.Forward.CoalesceMaxRequests < 1 {
		add("forward.coalesce_max_requests", "must be at least 1")
	}
	if c.Forward.CoalesceMaxInFlight < 1 {
		add("forward.coalesce_max_in_flight", "must be at least 1")
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
