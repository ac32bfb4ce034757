package main

import (
	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"

	"github.com/telegate/telegate/client/cli"
)

// `telegate client` is the cluster-side client; its flags and wiring live
// in client/cli, shared with the lean telegate-client binary, whose
// top-level flags are the same as this subcommand's.
func init() {
	var actions []cli.Action
	subcommands = append(subcommands,
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			_, actions = cli.Register(app.Command("client", cli.Help), version)
			return actions[0].Name, actions[0].Run
		},
		func(app *kingpin.Application) (string, func(log.Logger) error) {
			return actions[1].Name, actions[1].Run
		})
}
