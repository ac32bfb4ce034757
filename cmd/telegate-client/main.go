// Command telegate-client is the cluster-side client alone: the same
// flags, config file and behaviour as `telegate client` (client/cli wires
// both), without the gateway, so its binary holds no TSDB, PromQL,
// Kubernetes or cloud SDK code (deps_test.go checks). It ships as its own
// small image (the Dockerfile's client stage).
//
//	telegate-client --from=http://prometheus:9090 --to=https://gw --id=ID ...   (run, the default)
//	telegate-client --from-scrape=http://localhost:8080/metrics --to=https://gw --match-from-gateway [--once] ...
//	telegate-client --print-id | --rotate-id [--state-dir=DIR]
//	telegate-client inspect DIR [--index N]
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log/level"

	"github.com/telegate/telegate/client/cli"
	"github.com/telegate/telegate/internal/cmdutil"
)

// Set by the linker: -X main.version=... -X main.revision=...
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	app := kingpin.New("telegate-client", cli.Help)
	app.Version(fmt.Sprintf("telegate-client, version %s (revision %s, %s %s/%s)", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH))
	app.HelpFlag.Short('h')
	app.UsageTemplate(kingpin.CompactUsageTemplate)
	logLevel := app.Flag("log.level", "Only log messages at or above this level: debug, info, warn, error.").Default("info").Enum("debug", "info", "warn", "error")
	logFormat := app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").Enum("logfmt", "json")
	_, actions := cli.Register(app, version)

	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "telegate-client: %v (try --help)\n", err)
		os.Exit(2)
	}
	logger := cmdutil.NewLogger(*logLevel, *logFormat)
	for _, a := range actions {
		if a.Name == cmd {
			err = a.Run(logger)
		}
	}
	if err != nil {
		level.Error(logger).Log("msg", "exiting", "err", err)
		os.Exit(1)
	}
}
