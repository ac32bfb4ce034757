package main

import (
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/telegate/telegate/internal/cmdutil"
)

// webFlags is the exporter-toolkit configuration of one listener: its
// --web.config.file (TLS, client certificates, basic auth, headers).
func webFlags(addr, configFile string) *web.FlagConfig {
	return cmdutil.WebFlags(addr, configFile)
}
