package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
)

// addSignalActor adds the actor every long-running subcommand has:
// SIGTERM and SIGINT end the run group (the other actors then drain),
// SIGHUP calls reload and carries on.
func addSignalActor(g *run.Group, logger log.Logger, reload func()) {
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
