package cmdutil

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/exporter-toolkit/web"
)

// NewLogger is the logger of --log.level (debug, info, warn, error; info
// if unknown) and --log.format (json, else logfmt) on stderr.
func NewLogger(lvl, format string) log.Logger {
	w := log.NewSyncWriter(os.Stderr)
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(w)
	} else {
		l = log.NewLogfmtLogger(w)
	}
	l = level.NewFilter(l, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	return Logger{Logger: log.With(l, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller), debug: lvl == "debug"}
}

// Logger is NewLogger's logger: a go-kit logger that knows whether it
// writes debug lines. go-kit's level filter drops a line only once it
// is built (its caller and timestamp taken), so a hot path asks
// DebugEnabled before it builds one.
type Logger struct {
	log.Logger
	debug bool
}

// DebugEnabled reports whether l writes debug lines: false for a
// NewLogger logger above debug level, true for any other logger (which
// may).
func DebugEnabled(l log.Logger) bool {
	if kl, ok := l.(Logger); ok {
		return kl.debug
	}
	return true
}

// AddSignalActor adds the actor every long-running command has: SIGTERM
// and SIGINT end the run group (the other actors then drain), SIGHUP
// calls reload and carries on.
func AddSignalActor(g *run.Group, logger log.Logger, reload func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan struct{})
	g.Add(func() error {
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGHUP {
					reload()
					continue
				}
				level.Info(logger).Log("msg", "received signal, shutting down gracefully", "signal", s.String())
				return nil
			case <-done:
				return nil
			}
		}
	}, func(error) {
		signal.Stop(sig)
		close(done)
	})
}

// WebFlags is the exporter-toolkit configuration of one listener: its
// --web.config.file (TLS, client certificates, basic auth, headers).
func WebFlags(addr, configFile string) *web.FlagConfig {
	systemd := false
	return &web.FlagConfig{
		WebListenAddresses: &[]string{addr},
		WebSystemdSocket:   &systemd,
		WebConfigFile:      &configFile,
	}
}
