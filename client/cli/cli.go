package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/telegate/telegate/client"
	"github.com/telegate/telegate/internal/cmdutil"
	"github.com/telegate/telegate/internal/kitslog"
)

// Command is the client command: its flags, the config they override and
// its two actions (run and inspect).
type Command struct {
	cmd        flagCommander
	version    string
	configFile string
	dryRun     bool
	once       bool
	printID    bool
	deletion   bool
	rotateID   bool
	stdout     io.Writer // os.Stdout; tests replace it
	overlay    []func(*client.Config) error
	webConfig  string // --web.config.file: TLS of --listen

	inspectPath  string
	inspectIndex int
}

// flagCommander is what the flags and subcommands are registered on: a
// kingpin command (`telegate client`) or an application itself
// (telegate-client).
type flagCommander interface {
	Flag(name, help string) *kingpin.FlagClause
	Command(name, help string) *kingpin.CmdClause
}

// Help is the client command's description.
const Help = "Run the client: federate from Prometheus (or read plain metrics endpoints, --from-scrape) every interval and upload to a telemeter-compatible gateway. " +
	"Flags override the keys of --config.file of the same name (--from-token-file: from_token_file)."

// Action is one runnable command: its full kingpin name (what Parse
// returns) and what it runs.
type Action struct {
	Name string
	Run  func(log.Logger) error
}

// Register adds the client's flags to on, and its two subcommands: run
// (the default: federate, transform and upload every interval) and
// inspect. version goes into the User-Agent (telegate-client/VERSION).
func Register(on flagCommander, version string) (*Command, []Action) {
	c := registerFlags(on)
	c.version = version
	run := on.Command("run", "Federate, transform and upload every interval (the default).").Default()
	inspect := on.Command("inspect", "Print a staged payload (from --staging-dir) as Prometheus text.")
	inspect.Arg("path", "A staging directory (its newest payload is printed) or one payload file.").Required().StringVar(&c.inspectPath)
	inspect.Flag("index", "In a directory: which payload, 0 the newest, 1 the one before, ...").Default("0").IntVar(&c.inspectIndex)
	return c, []Action{{run.FullCommand(), c.run}, {inspect.FullCommand(), c.inspect}}
}

func registerFlags(on flagCommander) *Command {
	c := &Command{cmd: on, stdout: os.Stdout}
	cmd := on
	cmd.Flag("config.file", "Client configuration file (YAML); its keys are the flag names with _ for -. Flags given override it.").StringVar(&c.configFile)
	cmd.Flag("web.config.file", "Exporter-toolkit web configuration of --listen: TLS certificate and key, client CA and client_auth_type, basic auth; re-read on every TLS handshake. Empty: plain HTTP.").StringVar(&c.webConfig)
	cmd.Flag("dry-run", "Federate and transform once, print exactly what would be sent (Prometheus text) and exit. Nothing is uploaded.").BoolVar(&c.dryRun)
	cmd.Flag("once", "Collect and upload one snapshot, then exit: 0 when it was sent, 1 when not (retryable failures are retried for at most one interval), for cron-style senders. No listener.").BoolVar(&c.once)
	cmd.Flag("request-deletion", "Ask the gateway to delete all data of this installation (--id, or the one kept in --state-dir), print its answer and exit. The gateway refuses the installation's data from then on (403 deleted).").BoolVar(&c.deletion)
	cmd.Flag("print-id", "Print the installation ID (--id, or the one kept in --state-dir, generated if there is none yet) and exit.").BoolVar(&c.printID)
	cmd.Flag("rotate-id", "Replace the installation ID kept in --state-dir with a new random UUID, print it and exit (or delete the file: a new one is generated on the next start).").BoolVar(&c.rotateID)

	c.boolFlag("disabled", "Turn telemetry off: nothing is federated or sent; health and metrics still serve.", func(cfg *client.Config, v bool) { cfg.Disabled = v })
	c.strFlag("id", "The cluster (installation) ID, sent to /authorize. Default: a random UUID generated on first start and kept in --state-dir.", func(cfg *client.Config, v string) { cfg.ID = v })
	c.strFlag("state-dir", "Where the installation ID is kept (file installation-id) when --id is not given. Default: $STATE_DIRECTORY, else $XDG_STATE_HOME/telegate-client, else ~/.local/state/telegate-client, else /var/lib/telegate-client.", func(cfg *client.Config, v string) { cfg.StateDir = v })
	c.strFlag("from", "The Prometheus base URL to federate from; /federate is appended.", func(cfg *client.Config, v string) { cfg.From = v })
	c.listFlag("from-scrape", "Scrape mode: a plain metrics endpoint (OpenMetrics or Prometheus text) to read instead of --from; repeatable. The selectors are applied on the client.", false, func(cfg *client.Config, v []string) { cfg.FromScrape = v })
	c.strFlag("from-token", "A bearer token for the source (Prometheus or the endpoints).", func(cfg *client.Config, v string) { cfg.FromToken = v })
	c.strFlag("from-token-file", "A file holding the bearer token for the source (re-read on every request).", func(cfg *client.Config, v string) { cfg.FromTokenFile = v })
	c.strFlag("from-basic-auth-user", "Basic auth user for the source; needs --from-basic-auth-password-file.", func(cfg *client.Config, v string) { cfg.FromBasicAuthUser = v })
	c.strFlag("from-basic-auth-password-file", "A file holding the basic auth password for the source (re-read on every request).", func(cfg *client.Config, v string) { cfg.FromBasicAuthPasswordFile = v })
	c.strFlag("from-ca-file", "CA bundle to verify the source.", func(cfg *client.Config, v string) { cfg.FromCAFile = v })
	c.strFlag("from-cert-file", "Client certificate for the source.", func(cfg *client.Config, v string) { cfg.FromCertFile = v })
	c.strFlag("from-key-file", "Client key for the source.", func(cfg *client.Config, v string) { cfg.FromKeyFile = v })
	c.strFlag("from-server-name", "The server name the source's certificate is verified against (and sent as SNI), if not the URL's host.", func(cfg *client.Config, v string) { cfg.FromServerName = v })
	c.boolFlag("from-insecure-skip-verify", "Do not verify the source's TLS certificate (testing only).", func(cfg *client.Config, v bool) { cfg.FromInsecureSkipVerify = v })
	c.durFlag("from-timeout", "Timeout of one federate (or scrape) request; must be below the interval. Default: 30s or half the interval if shorter.", func(cfg *client.Config, v model.Duration) { cfg.FromTimeout = client.Duration(v) })
	c.strFlag("to", "The gateway base URL; /authorize, /upload and /allowlist are appended.", func(cfg *client.Config, v string) { cfg.To = v })
	c.strFlag("to-upload", "The upload URL, if not {to}/upload.", func(cfg *client.Config, v string) { cfg.ToUpload = v })
	c.strFlag("to-authorize", "The authorize URL, if not {to}/authorize.", func(cfg *client.Config, v string) { cfg.ToAuthorize = v })
	c.strFlag("to-token", "The pull-secret token sent to /authorize.", func(cfg *client.Config, v string) { cfg.ToToken = v })
	c.strFlag("to-token-file", "A file holding the pull-secret token (re-read on reload).", func(cfg *client.Config, v string) { cfg.ToTokenFile = v })
	c.strFlag("to-ca-file", "CA bundle to verify the gateway.", func(cfg *client.Config, v string) { cfg.ToCAFile = v })
	c.strFlag("to-cert-file", "Client certificate for the gateway (mutual TLS).", func(cfg *client.Config, v string) { cfg.ToCertFile = v })
	c.strFlag("to-key-file", "Client key for the gateway (mutual TLS).", func(cfg *client.Config, v string) { cfg.ToKeyFile = v })
	c.durFlag("to-timeout", "Timeout of one request to the gateway; must be below the interval. Default: 30s or half the interval if shorter.", func(cfg *client.Config, v model.Duration) { cfg.ToTimeout = client.Duration(v) })
	c.listFlag("match", "A series selector to federate (match[]); repeatable.", false, func(cfg *client.Config, v []string) { cfg.Match = v })
	c.strFlag("match-file", "A file of series selectors, one per line (# comments).", func(cfg *client.Config, v string) { cfg.MatchFile = v })
	c.boolFlag("match-from-gateway", "Federate exactly the selectors of the gateway's allowlist (GET {to}/allowlist), fetched every cycle.", func(cfg *client.Config, v bool) { cfg.MatchFromGateway = v })
	c.durFlag("interval", "How often to federate and upload. Default 4m30s.", func(cfg *client.Config, v model.Duration) { cfg.Interval = client.Duration(v) })
	c.bytesFlag("limit-bytes", "The maximum size of a federate response, or of each scraped response (e.g. 204800 or 200KiB). Default 200KiB; 10MiB in scrape mode.", func(cfg *client.Config, v client.Bytes) { cfg.LimitBytes = v })
	c.mapFlag("rename", "Rename a metric: OLD=NEW; repeatable or comma-separated. Default ALERTS=alerts.", true, func(cfg *client.Config, v map[string]string) { cfg.Rename = v })
	c.mapFlag("label", "Add a label to every series: NAME=VALUE; repeatable.", false, func(cfg *client.Config, v map[string]string) { cfg.Label = v })
	c.listFlag("elide-label", "Remove a label from every series; repeatable or comma-separated. Default prometheus_replica.", true, func(cfg *client.Config, v []string) { cfg.ElideLabel = v })
	c.listFlag("anonymize-labels", "Labels whose values are replaced by a salted hash; repeatable or comma-separated.", true, func(cfg *client.Config, v []string) { cfg.AnonymizeLabels = v })
	c.strFlag("anonymize-salt", "The secret, unguessable salt of the anonymizing hash.", func(cfg *client.Config, v string) { cfg.AnonymizeSalt = v })
	c.strFlag("anonymize-salt-file", "A file holding the salt (re-read on reload).", func(cfg *client.Config, v string) { cfg.AnonymizeSaltFile = v })
	c.strFlag("pii-guard", "What the PII guard does with label values that look like e-mail, IP or MAC addresses or URLs with credentials, before anything is sent: hash (default: a keyed hash, the key being the anonymize salt or a random key kept in --state-dir), redact, drop (the series), shadow (count in telegate_client_privacy_findings_total only) or off.", func(cfg *client.Config, v string) { cfg.PIIGuard = v })
	c.strFlag("staging-dir", "Keep the last --staging-keep payloads, exactly as uploaded, in this directory (see `telegate client inspect`).", func(cfg *client.Config, v string) { cfg.StagingDir = v })
	c.intFlag("staging-keep", "How many payloads --staging-dir keeps. Default 10.", func(cfg *client.Config, v int) { cfg.StagingKeep = v })
	c.durFlag("min-backoff", "First retry delay after a failure; doubles per retry. Default 2s.", func(cfg *client.Config, v model.Duration) { cfg.MinBackoff = client.Duration(v) })
	c.durFlag("max-backoff", "Longest retry delay (Retry-After may ask for more). Default 1m.", func(cfg *client.Config, v model.Duration) { cfg.MaxBackoff = client.Duration(v) })
	c.strFlag("listen", "Address for /metrics, /-/healthy, /-/ready, /-/reload and /last-payload. Default localhost:9002.", func(cfg *client.Config, v string) { cfg.Listen = v })
	return c
}

// The flag helpers record, for each flag the user gave, how it overrides
// the config file.

// parsedFlag registers a string flag whose value parse turns into the
// config field set stores, only when the user gave the flag.
func parsedFlag[T any](c *Command, name, help string, parse func(string) (T, error), set func(*client.Config, T)) {
	var v string
	var given bool
	c.cmd.Flag(name, help).IsSetByUser(&given).StringVar(&v)
	c.overlay = append(c.overlay, func(cfg *client.Config) error {
		if !given {
			return nil
		}
		x, err := parse(v)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		set(cfg, x)
		return nil
	})
}

func (c *Command) strFlag(name, help string, set func(*client.Config, string)) {
	parsedFlag(c, name, help, func(v string) (string, error) { return v, nil }, set)
}

func (c *Command) bytesFlag(name, help string, set func(*client.Config, client.Bytes)) {
	parsedFlag(c, name, help, client.ParseBytes, set)
}

func (c *Command) intFlag(name, help string, set func(*client.Config, int)) {
	parsedFlag(c, name, help, strconv.Atoi, set)
}

func (c *Command) durFlag(name, help string, set func(*client.Config, model.Duration)) {
	parsedFlag(c, name, help, model.ParseDuration, set)
}

// mapFlag is a repeatable NAME=VALUE flag.
func (c *Command) mapFlag(name, help string, split bool, set func(*client.Config, map[string]string)) {
	var list []string
	c.listFlag(name, help, split, func(cfg *client.Config, v []string) { list = v })
	c.overlay = append(c.overlay, func(cfg *client.Config) error {
		if list == nil {
			return nil
		}
		m := map[string]string{}
		for _, kv := range list {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("--%s %q: want NAME=VALUE", name, kv)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		set(cfg, m)
		return nil
	})
}

func (c *Command) boolFlag(name, help string, set func(*client.Config, bool)) {
	var v, given bool
	c.cmd.Flag(name, help).IsSetByUser(&given).BoolVar(&v)
	c.overlay = append(c.overlay, func(cfg *client.Config) error {
		if given {
			set(cfg, v)
		}
		return nil
	})
}

// listFlag is a repeatable flag; with split, values are also split on
// commas (telemeter-client's string slices).
func (c *Command) listFlag(name, help string, split bool, set func(*client.Config, []string)) {
	var v []string
	var given bool
	c.cmd.Flag(name, help).IsSetByUser(&given).StringsVar(&v)
	c.overlay = append(c.overlay, func(cfg *client.Config) error {
		if !given {
			return nil
		}
		var vals []string
		for _, s := range v {
			if split {
				for _, p := range strings.Split(s, ",") {
					if p = strings.TrimSpace(p); p != "" {
						vals = append(vals, p)
					}
				}
			} else {
				vals = append(vals, s)
			}
		}
		if vals == nil {
			vals = []string{}
		}
		set(cfg, vals)
		return nil
	})
}

// LoadConfig reads --config.file (if any), applies the flags given, and
// fills defaults. It runs at start and on every reload.
func (c *Command) LoadConfig() (*client.Config, error) {
	cfg := &client.Config{}
	if c.configFile != "" {
		var err error
		if cfg, err = client.LoadConfigFile(c.configFile); err != nil {
			return nil, err
		}
	}
	for _, apply := range c.overlay {
		if err := apply(cfg); err != nil {
			return nil, err
		}
	}
	cfg.SetDefaults()
	return cfg, nil
}

func (c *Command) inspect(logger log.Logger) error {
	return client.Inspect(os.Stdout, c.inspectPath, c.inspectIndex)
}

// identity runs --print-id and --rotate-id.
func (c *Command) identity(cfg *client.Config) error {
	if cfg.ID != "" {
		if c.rotateID {
			return errors.New("--rotate-id: the ID is set by --id (or id in the config file), not generated; change it there")
		}
		fmt.Fprintln(c.stdout, cfg.ID)
		return nil
	}
	dir := cfg.StateDirPath()
	var id string
	var err error
	if c.rotateID {
		id, err = client.RotateID(dir)
	} else {
		id, _, err = client.LoadOrCreateID(dir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func (c *Command) run(logger log.Logger) error {
	client.UserAgent = "telegate-client/" + c.version
	cfg, err := c.LoadConfig()
	if err != nil {
		return err
	}
	if c.printID || c.rotateID {
		return c.identity(cfg)
	}
	if c.once && c.dryRun {
		return errors.New("--once and --dry-run are mutually exclusive (a dry run already runs once)")
	}
	if err := web.Validate(c.webConfig); err != nil {
		return fmt.Errorf("--web.config.file %s: %w", c.webConfig, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cl, err := client.New(cfg, client.Options{Logger: logger, Registerer: reg, DryRun: c.dryRun})
	if err != nil {
		return err
	}
	if c.dryRun {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.FromTimeout)+2*time.Duration(cfg.ToTimeout))
		defer cancel()
		return cl.DryRun(ctx, c.stdout)
	}
	if c.once {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return cl.Once(ctx)
	}
	if c.deletion {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		answer, err := cl.RequestDeletion(ctx)
		if err != nil {
			return fmt.Errorf("requesting deletion: %w", err)
		}
		fmt.Fprintf(c.stdout, "%s", answer)
		return nil
	}

	reload := func() error {
		err := cl.ReloadWith(c.LoadConfig)
		if err != nil {
			level.Error(logger).Log("msg", "reload failed; keeping the running configuration", "err", err)
		}
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	cl.RegisterRoutes(mux, reload)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute}

	var g run.Group
	g.Add(func() error {
		level.Info(logger).Log("msg", "listening", "address", ln.Addr().String())
		if err := web.Serve(ln, srv, cmdutil.WebFlags(cfg.Listen, c.webConfig), kitslog.New(log.With(logger, "component", "web"))); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return cl.Run(ctx) }, func(error) { cancel() })
	}
	cmdutil.AddSignalActor(&g, logger, func() { reload() })
	err = g.Run()
	level.Info(logger).Log("msg", "stopped")
	return err
}
