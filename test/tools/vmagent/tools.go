//go:build tools

// Package tools records the vmagent binary `make compare` builds from the
// module proxy, so `go mod tidy` in this module keeps its requirements.
package tools

import (
	_ "github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent"
)
