// Package examples holds the example configuration `make run` uses. The
// same files are embedded in the binary as its defaults, so
// `telegate gateway` with no --config.file is a working dev gateway.
package examples

import "embed"

// FS holds gateway.yaml, tokens.yaml and allowlist.yaml.
//
//go:embed gateway.yaml tokens.yaml allowlist.yaml
var FS embed.FS

// GatewayConfig is the name of the gateway config inside FS.
const GatewayConfig = "gateway.yaml"
