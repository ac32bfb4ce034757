// Command telegate is the one binary of telegate: the gateway that
// authenticates clusters and forwards their allowlisted telemetry to
// long-term storage, the cluster-side client (`telegate client`, also
// built alone as the lean cmd/telegate-client) and the allowlist tooling.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/telegate/telegate/internal/cmdutil"
)

// Set by the linker: -X main.version=... -X main.revision=...
var (
	version  = "dev"
	revision = "unknown"
)

func versionString() string {
	return fmt.Sprintf("telegate, version %s (revision %s, %s %s/%s)", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func main() {
	app := kingpin.New("telegate", "A telemetry gateway for fleets of Prometheus-monitored clusters.\n\n"+
		"Clusters authenticate with a pull-secret token and a cluster ID, upload allowlisted series "+
		"(telemeter /upload or Prometheus remote write), and the gateway forwards them, stripped of "+
		"instance/pod labels and stamped with the cluster ID, to long-term storage by remote write.")
	app.Version(versionString())
	app.HelpFlag.Short('h')
	app.UsageTemplate(kingpin.CompactUsageTemplate)

	logLevel := app.Flag("log.level", "Only log messages at or above this level: debug, info, warn, error.").Default("info").Enum("debug", "info", "warn", "error")
	logFormat := app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").Enum("logfmt", "json")

	runs := map[string]func(log.Logger) error{}
	for _, register := range subcommands {
		name, run := register(app)
		runs[name] = run
	}

	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "telegate: %v (try --help)\n", err)
		os.Exit(2)
	}
	logger := newLogger(*logLevel, *logFormat)
	err = runs[cmd](logger)
	if err != nil {
		level.Error(logger).Log("msg", "exiting", "err", err)
		os.Exit(1)
	}
}

// subcommands register themselves from their own files (init), so adding
// one touches no other file. Each returns its full command name and run
// function.
var subcommands []func(app *kingpin.Application) (name string, run func(log.Logger) error)

func newLogger(lvl, format string) log.Logger { return cmdutil.NewLogger(lvl, format) }
