//go:build tools

// Package tools records the Prometheus 3 binary `make prometheus3` builds
// from the module proxy, so `go mod tidy` in this module keeps its
// requirements.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
