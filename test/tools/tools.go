//go:build tools

// Package tools records the binaries the e2e tests build from the module
// proxy, so `go mod tidy` in this module keeps their requirements.
package tools

import (
	_ "github.com/thanos-io/thanos/cmd/thanos"
)
