package main

import (
	"github.com/prometheus/exporter-toolkit/web"
)

// webFlags is the exporter-toolkit configuration of one listener: its
// --web.config.file (TLS, client certificates, basic auth, headers).
func webFlags(addr, configFile string) *web.FlagConfig {
	systemd := false
	return &web.FlagConfig{
		WebListenAddresses: &[]string{addr},
		WebSystemdSocket:   &systemd,
		WebConfigFile:      &configFile,
	}
}
