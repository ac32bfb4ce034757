package main

import (
	"github.com/go-kit/log"
	"github.com/oklog/run"

	"github.com/telegate/telegate/internal/cmdutil"
)

// addSignalActor adds the actor every long-running subcommand has:
// SIGTERM and SIGINT end the run group (the other actors then drain),
// SIGHUP calls reload and carries on (cmdutil.AddSignalActor, shared with
// the client's command).
func addSignalActor(g *run.Group, logger log.Logger, reload func()) {
	cmdutil.AddSignalActor(g, logger, reload)
}
