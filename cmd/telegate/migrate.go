package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/migrate"
)

// migrateCmd is `telegate migrate telemeter-server`: the translation
// lives in internal/migrate; this wires its flags and checks the result
// with the gateway's own loader.
type migrateCmd struct {
	stdout io.Writer

	out          string
	overwrite    bool
	workDir      string
	oidcTokenURL string
	args         []string
}

func init() {
	c := &migrateCmd{stdout: os.Stdout}
	subcommands = append(subcommands, func(app *kingpin.Application) (string, func(log.Logger) error) {
		return c.register(app).FullCommand(), c.run
	})
}

func (c *migrateCmd) register(app *kingpin.Application) *kingpin.CmdClause {
	group := app.Command("migrate", "Move to telegate from another gateway.")
	cmd := group.Command("telemeter-server", "Translate a telemeter-server command line into a telegate configuration: "+
		"telegate migrate telemeter-server --out=DIR -- <telemeter-server flags>. Writes DIR/gateway.yaml, DIR/allowlist.yaml "+
		"(and web configs, tokens.yaml, the OIDC client secret as needed) and prints every flag it could not translate and why. "+
		"See docs/migrating-from-telemeter.md.")
	cmd.Flag("out", "Directory to write the configuration into (created if needed).").Required().StringVar(&c.out)
	cmd.Flag("overwrite", "Overwrite files that exist in --out.").BoolVar(&c.overwrite)
	cmd.Flag("workdir", "telemeter-server's working directory: its relative paths (--shared-key, --whitelist-file, --tls-crt, ...) resolve against it. Default: the current directory.").StringVar(&c.workDir)
	cmd.Flag("oidc-token-url", "Token endpoint of --oidc-issuer; without it the issuer's discovery document is fetched, as telemeter-server does.").StringVar(&c.oidcTokenURL)
	cmd.Arg("telemeter-server-flags", "telemeter-server's flags, after --.").StringsVar(&c.args)
	return cmd
}

func (c *migrateCmd) run(log.Logger) error {
	res, err := migrate.Translate(context.Background(), c.args, migrate.Options{WorkDir: c.workDir, OIDCTokenURL: c.oidcTokenURL})
	if err != nil {
		return fmt.Errorf("telemeter-server flags: %w", err)
	}
	if err := res.Write(c.out, c.overwrite); err != nil {
		return err
	}
	// What was written must load as it is.
	if _, err := config.LoadFile(filepath.Join(c.out, migrate.GatewayFile)); err != nil {
		return fmt.Errorf("the written configuration does not load (a bug in telegate migrate): %w", err)
	}
	if _, err := allowlist.Parse(res.Files[migrate.AllowlistFile], filepath.Join(c.out, migrate.AllowlistFile)); err != nil {
		return fmt.Errorf("the written allowlist does not parse (a bug in telegate migrate): %w", err)
	}
	res.Report(c.stdout, c.out)
	return nil
}
