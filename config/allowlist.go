package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Allowlist points at the allowlist file.
type Allowlist struct {
	File string `yaml:"file"`
	// WatchInterval is how often the file is checked for changes; 0
	// disables watching (SIGHUP and POST /-/reload still work).
	WatchInterval model.Duration `yaml:"watch_interval"`
	// ExplainCacheBytes bounds the memory that keeps each cluster's last
	// /upload for GET /explain; 0 disables the endpoint.
	ExplainCacheBytes Bytes `yaml:"explain_cache_bytes"`
	// Enforce false is shadow mode: series the allowlist would drop are
	// counted but forwarded.
	Enforce bool `yaml:"enforce"`
}

// defaultAllowlist returns the allowlist section's built-in defaults.
func defaultAllowlist() Allowlist {
	return Allowlist{File: "allowlist.yaml", WatchInterval: model.Duration(10 * time.Second), Enforce: true, ExplainCacheBytes: 16 << 20}
}

// validateAllowlist checks the allowlist section.
func (c *Config) validateAllowlist(add addFunc) {
	if c.Allowlist.File == "" {
		add("allowlist.file", "must not be empty (an allowlist with an empty matches: list denies everything)")
	}
}
