package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	config_util "github.com/prometheus/common/config"
	promversion "github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/examples"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/internal/cmdutil"
	"github.com/telegate/telegate/internal/kitslog"
	"github.com/telegate/telegate/limits"
	"github.com/telegate/telegate/privacy"
	"github.com/telegate/telegate/publicview"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/store"
)

type gatewayCmd struct {
	cmd             *kingpin.CmdClause
	configFile      string
	listen          string
	internalListen  string
	printConfigOnly bool

	webConfigFile         string // --web.config.file: TLS of the public listener
	internalWebConfigFile string // --web.internal-config.file
	internalWebConfigSet  bool

	enableLifecycle bool // --web.enable-lifecycle: POST /-/reload
	enablePprof     bool // --web.enable-pprof: /debug/pprof/*

	storage storageFlags // --storage.*: single-binary mode
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) (string, func(log.Logger) error) {
		g := registerGateway(app)
		return g.cmd.FullCommand(), g.run
	})
}

func registerGateway(app *kingpin.Application) *gatewayCmd {
	g := &gatewayCmd{}
	g.cmd = app.Command("gateway", "Run the gateway: /authorize, /upload and /api/v1/receive on the public listener; /metrics, health, /debug/limits (and, when enabled, /-/reload and /debug/pprof) on the internal one.")
	g.cmd.Flag("config.file", "Gateway configuration file (YAML). Empty: the built-in development config (examples/gateway.yaml).").StringVar(&g.configFile)
	g.cmd.Flag("web.listen-address", "Public listen address; overrides web.listen_address.").StringVar(&g.listen)
	g.cmd.Flag("web.internal-listen-address", "Internal listen address (the web console at /, /metrics, health, /debug/limits, /-/reload, /debug/pprof); overrides web.internal_listen_address.").StringVar(&g.internalListen)
	g.cmd.Flag("config.check", "Load and validate the configuration and every file it references, then exit.").BoolVar(&g.printConfigOnly)
	g.cmd.Flag("web.config.file", "Exporter-toolkit web configuration of the public listener: TLS certificate and key, client CA and client_auth_type (mTLS), min_version, cipher_suites; re-read on every TLS handshake, so rotated certificates apply without a restart. Empty: plain HTTP.").StringVar(&g.webConfigFile)
	g.cmd.Flag("web.internal-config.file", "Web configuration of the internal listener (/metrics, pprof, health, reload). Default: the same as --web.config.file; set it to \"\" for plain HTTP there.").IsSetByUser(&g.internalWebConfigSet).StringVar(&g.internalWebConfigFile)
	g.cmd.Flag("web.enable-lifecycle", "Enable POST /-/reload on the internal listener (403 without). SIGHUP reloads either way.").BoolVar(&g.enableLifecycle)
	g.cmd.Flag("web.enable-pprof", "Serve the Go profiler at /debug/pprof/ on the internal listener (404 without).").BoolVar(&g.enablePprof)
	g.storage.register(g.cmd)
	return g
}

func (g *gatewayCmd) loadConfig() (*config.Config, error) {
	if g.configFile == "" {
		return config.LoadEmbedded(examples.FS, examples.GatewayConfig)
	}
	return config.LoadFile(g.configFile)
}

// components are the parts built from a config.
type components struct {
	authenticator authn.Authenticator
	issuer        *authn.Signer
	allowlist     *allowlist.Allowlist
	allowlistRaw  []byte
	guard         *privacy.Guard
	optOuts       *optOuts
	deletions     *deletions // opened with the downstream (its bucket)
	pipeline      *relabel.Pipeline
	sender        *forward.Sender
	limiter       *limits.Limiter
	overrides     *limits.OverridesReloader
	redis         *limits.RedisStore
	warnings      []string
	certs         *authn.CertAuthenticator // authn.client_certificate; nil = off
}

// build builds the components a config describes, in the order of the
// data flow (docs/design.md): authentication, allowlist, PII guard,
// relabel pipeline, forward sender (not in single-binary mode), budgets.
func build(c *config.Config, logger log.Logger, reg prometheus.Registerer) (*components, error) {
	out := &components{}
	if err := buildAuthn(c, out, reg); err != nil {
		return nil, err
	}
	if err := buildAllowlist(c, out); err != nil {
		return nil, err
	}
	if err := buildPrivacy(c, out, reg); err != nil {
		return nil, err
	}
	var err error
	if out.optOuts, err = newOptOuts(c, logger, reg); err != nil {
		return nil, err
	}
	out.pipeline = buildPipeline(c)
	if !c.EmbeddedStorage() {
		sender, err := forward.New(c.Forward.Sender, logger, reg)
		if err != nil {
			return nil, err
		}
		out.sender = sender
	}
	if err := buildLimits(c, out, logger, reg); err != nil {
		return nil, err
	}
	return out, nil
}

// buildAuthn builds who may send: the tokens file and the upstream
// authorizer (in that order), the client-certificate identity, and the
// signer of the tokens /authorize issues.
func buildAuthn(c *config.Config, out *components, reg prometheus.Registerer) error {
	var chain []authn.Authenticator
	if c.Authn.TokensFile != "" {
		data, err := c.ReadFile(c.Authn.TokensFile)
		if err != nil {
			return fmt.Errorf("authn.tokens_file: %w", err)
		}
		tokens, err := authn.ParseTokens(data)
		if err != nil {
			return fmt.Errorf("authn.tokens_file %s: %w", c.Path(c.Authn.TokensFile), err)
		}
		chain = append(chain, tokens)
		if c.Embedded() {
			out.warnings = append(out.warnings, "using the built-in development tokens (examples/tokens.yaml): anyone with the token \"dev-token\" can send data; pass --config.file in production")
		}
	}
	if a := c.Authn.Authorizer; a.URL != "" {
		client, err := config_util.NewClientFromConfig(a.HTTPClientConfig, "authorizer")
		if err != nil {
			return fmt.Errorf("authn.authorizer: %w", err)
		}
		up, err := authn.NewUpstream(a.URL, client, authn.UpstreamOptions{Timeout: time.Duration(a.Timeout), MaxConcurrent: a.MaxConcurrent})
		if err != nil {
			return fmt.Errorf("authn.authorizer: %w", err)
		}
		cached, err := authn.NewCachingAuthenticator(up, time.Duration(a.CacheTTL), time.Duration(a.NegativeCacheTTL), a.CacheSize, reg)
		if err != nil {
			return fmt.Errorf("authn.authorizer: %w", err)
		}
		chain = append(chain, cached)
	}
	out.authenticator = authn.WithLabels(authn.Chain(chain...), c.Authn.AuthorizeLabels)
	if cc := c.Authn.ClientCertificate; cc.ClusterIDFrom != "" {
		certs, err := authn.NewCertAuthenticator(authn.CertOptions{Field: authn.CertField(cc.ClusterIDFrom), URIPrefix: cc.URIPrefix, DNSSuffix: cc.DNSSuffix})
		if err != nil {
			return fmt.Errorf("authn.client_certificate: %w", err)
		}
		out.certs = certs
	}
	return buildIssuer(c, out)
}

// buildIssuer builds the signer of the tokens /authorize issues: from
// authn.jwt's key files, or an ephemeral key (with a warning), compatible
// with telemeter-server's tokens as authn.jwt.telemeter_compat says.
func buildIssuer(c *config.Config, out *components) error {
	opts := authn.SignerOptions{
		Expiry: time.Duration(c.Authn.JWT.Expiry),
		Telemeter: authn.TelemeterCompat{
			Accept:         c.Authn.JWT.TelemeterCompat.Accept,
			Issue:          c.Authn.JWT.TelemeterCompat.Issue,
			PartitionLabel: c.Authn.ClusterIDLabel,
		},
	}
	var keys []authn.Key
	if f := c.Authn.JWT.SigningKeyFile; f != "" {
		data, err := c.ReadFile(f)
		if err != nil {
			return fmt.Errorf("authn.jwt.signing_key_file: %w", err)
		}
		if keys, err = authn.ParseKeysPEM(data); err != nil {
			return fmt.Errorf("authn.jwt.signing_key_file %s: %w", c.Path(f), err)
		}
		for _, vf := range c.Authn.JWT.VerificationKeyFiles {
			data, err := c.ReadFile(vf)
			if err != nil {
				return fmt.Errorf("authn.jwt.verification_key_files: %w", err)
			}
			more, err := authn.ParseKeysPEM(data)
			if err != nil {
				return fmt.Errorf("authn.jwt.verification_key_files %s: %w", c.Path(vf), err)
			}
			keys = append(keys, more...)
		}
	} else {
		pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("authn.jwt: generating an ephemeral key: %w", err)
		}
		k, err := authn.NewKey(pk)
		if err != nil {
			return fmt.Errorf("authn.jwt: %w", err)
		}
		keys = []authn.Key{k}
		out.warnings = append(out.warnings, "authn.jwt.signing_key_file is empty: signing tokens with an ephemeral key; every client must re-authorize after a restart and replicas cannot verify each other's tokens")
	}
	var err error
	if out.issuer, err = authn.NewSignerWithOptions(keys, opts); err != nil {
		return fmt.Errorf("authn.jwt: %w", err)
	}
	return nil
}

// buildAllowlist reads and parses allowlist.file; the raw bytes let the
// reloader tell a changed file from an unchanged one.
func buildAllowlist(c *config.Config, out *components) error {
	data, err := c.ReadFile(c.Allowlist.File)
	if err != nil {
		return fmt.Errorf("allowlist.file: %w", err)
	}
	out.allowlistRaw = data
	out.allowlist, err = allowlist.Parse(data, c.Path(c.Allowlist.File))
	return err
}

// buildPrivacy builds the PII guard of the privacy section, keyed by
// privacy.hash_key_file (or a random key, with a warning, when it is empty
// and an action hashes).
func buildPrivacy(c *config.Config, out *components, reg prometheus.Registerer) error {
	o, err := c.Privacy.GuardOptions()
	if err != nil {
		return err
	}
	// The cluster ID label is stamped after the guard, and the stripped
	// labels never leave: inspecting them would only count noise.
	o.ExemptLabels = append(o.ExemptLabels, c.Authn.ClusterIDLabel)
	o.ExemptLabels = append(o.ExemptLabels, c.Relabel.DropLabels...)
	o.Registerer = reg
	if f := c.Privacy.HashKeyFile; f != "" {
		if o.Key, err = c.ReadFile(f); err != nil {
			return fmt.Errorf("privacy.hash_key_file: %w", err)
		}
		if len(bytes.TrimSpace(o.Key)) < 16 {
			return fmt.Errorf("privacy.hash_key_file %s: the key must be at least 16 bytes", c.Path(f))
		}
	} else {
		o.Key = make([]byte, 32)
		if _, err := rand.Read(o.Key); err != nil {
			return err
		}
		if !c.Privacy.Shadow && usesHash(c.Privacy) {
			out.warnings = append(out.warnings, "privacy.hash_key_file is empty: hashing personal data with a random key; the same value hashes differently after a restart and on each replica")
		}
	}
	out.guard, err = privacy.New(o)
	if err != nil {
		return fmt.Errorf("privacy: %w", err)
	}
	return nil
}

// usesHash reports whether any detector's action is hash.
func usesHash(p config.Privacy) bool {
	o, _ := p.GuardOptions()
	for _, a := range o.Actions {
		if a == privacy.Hash {
			return true
		}
	}
	for _, m := range o.Metrics {
		for _, a := range m {
			if a == privacy.Hash {
				return true
			}
		}
	}
	return false
}

// buildPublicView builds the public aggregate view (nil when
// public_view.listen_address is empty) over public_view.query_url, or the
// embedded store's query API in this process.
func buildPublicView(c *config.Config, queryAPI *store.API, reg prometheus.Registerer) (http.Handler, error) {
	p := c.PublicView
	if p.ListenAddress == "" {
		return nil, nil
	}
	var q publicview.Querier
	switch {
	case p.QueryURL != "":
		q = &publicview.HTTPQuerier{URL: p.QueryURL, Client: &http.Client{Timeout: 10 * time.Second}}
	case queryAPI != nil:
		q = publicview.HandlerQuerier{H: queryMux(queryAPI)}
	default:
		return nil, errors.New("public_view.query_url: required when forwarding")
	}
	o := publicview.Options{InstallationLabel: c.Authn.ClusterIDLabel, K: p.K, CacheTTL: time.Duration(p.CacheTTL),
		RequestsPerSecond: p.RequestsPerSecond, Burst: p.Burst, Querier: q, Registerer: reg}
	for _, a := range p.Aggregations {
		o.Aggregations = append(o.Aggregations, publicview.Aggregation{Name: a.Name, Query: a.Query, Help: a.Help})
	}
	v, err := publicview.New(o)
	if err != nil {
		return nil, fmt.Errorf("public_view: %w", err)
	}
	return v, nil
}

// buildPipeline builds the relabel stage: strip, stamp, validate, dedupe.
func buildPipeline(c *config.Config) *relabel.Pipeline {
	return relabel.New(relabel.Options{
		ClusterIDLabel: c.Authn.ClusterIDLabel,
		DropLabels:     c.Relabel.DropLabels,
		RelabelConfigs: c.Relabel.RelabelConfigs,
		MaxLabels:      c.Limits.MaxLabelsPerSeries,
		MaxNameLength:  c.Limits.MaxLabelNameLength,
		MaxValueLength: c.Limits.MaxLabelValueLength,
		MaxSampleAge:   time.Duration(c.Relabel.MaxSampleAge),
		MaxFutureSkew:  time.Duration(c.Relabel.MaxFutureSkew),
	})
}

// run assembles the gateway in the order of the data flow
// (docs/design.md) and runs it until a signal or a listener stops it.
func (g *gatewayCmd) run(logger log.Logger) error {
	c, err := g.config(logger)
	if err != nil {
		return err
	}
	reg := newRegistry()

	comp, err := build(c, logger, reg)
	if err != nil {
		return err
	}
	if g.printConfigOnly {
		fmt.Fprintf(os.Stdout, "%s: configuration OK (%d allowlist entries)\n", c.Origin, len(comp.allowlist.Entries))
		return nil
	}
	g.logWarnings(comp, logger)
	down, err := openDownstream(c, comp.sender, logger, reg)
	if err != nil {
		return err
	}
	if down.db != nil {
		defer down.db.Close()
	}
	if comp.deletions, err = openDeletions(c, down, logger, reg); err != nil {
		return err
	}
	gw, err := newGateway(c, comp, down.forwarder, logger, reg)
	if err != nil {
		return err
	}
	reloader := newAllowlistReloader(c, gw, comp.allowlistRaw, comp.allowlist, logger, reg)
	if comp.overrides != nil {
		reloader.alsoReload(comp.overrides.Reload)
	}
	reloader.alsoReload(comp.optOuts.Reload)
	con, err := g.newConsole(c, gw, down.spool, comp.redis)
	if err != nil {
		return err
	}
	pv, err := buildPublicView(c, down.queryAPI, reg)
	if err != nil {
		return err
	}
	admin := func(mux *http.ServeMux) {
		comp.optOuts.register(mux)
		comp.deletions.register(mux)
	}
	listeners := g.listeners(c, gw, reloader, down.queryAPI, con, admin, pv, logger, reg)

	var gr run.Group
	if err := addServers(&gr, c, listeners, gw, logger); err != nil {
		return err
	}
	// SIGTERM/SIGINT stop (draining in-flight requests); SIGHUP reloads
	// the allowlist and the budget overrides.
	addSignalActor(&gr, logger, func() { reloader.Reload("SIGHUP") })
	addAllowlistWatch(&gr, c, reloader)
	{
		ctx, cancel := context.WithCancel(context.Background())
		gr.Add(func() error { return comp.deletions.run(ctx, time.Minute) }, func(error) { cancel() })
	}
	if iv := time.Duration(c.Allowlist.WatchInterval); iv > 0 && comp.optOuts.path != "" {
		ctx, cancel := context.WithCancel(context.Background())
		gr.Add(func() error { return comp.optOuts.watch(ctx, iv) }, func(error) { cancel() })
	}
	addOverridesReload(&gr, c, comp)
	if comp.redis != nil {
		pingRedis(c, comp.redis, logger)
		defer comp.redis.Close()
		ctx, cancel := context.WithCancel(context.Background())
		name := replicaName(c)
		gr.Add(func() error { return heartbeat(ctx, comp.redis, name) }, func(error) { cancel() })
	}
	addReplay(&gr, c, down.spool, comp.sender)
	level.Info(logger).Log("msg", "starting telegate gateway", "version", version, "config", c.Origin,
		"allowlist_entries", len(comp.allowlist.Entries), "allowlist_hash", comp.allowlist.Hash(), "forward_url", c.Forward.Sender.URL)
	err = gr.Run()
	if comp.sender != nil {
		comp.sender.Close()
	}
	if down.db != nil {
		// Every listener has drained: flush the head and close the WAL.
		if cerr := down.db.Close(); cerr != nil {
			level.Error(logger).Log("msg", "closing the embedded storage", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}
	level.Info(logger).Log("msg", "stopped")
	return err
}

// config loads the configuration and applies the flags that override it
// (listen addresses, --storage.*), and checks the web config files.
func (g *gatewayCmd) config(logger log.Logger) (*config.Config, error) {
	c, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if g.listen != "" {
		c.Web.ListenAddress = g.listen
	}
	if g.internalListen != "" {
		c.Web.InternalListenAddress = g.internalListen
	}
	if err := g.storage.apply(c, logger); err != nil {
		return nil, err
	}
	if !g.internalWebConfigSet {
		g.internalWebConfigFile = g.webConfigFile
	}
	for _, f := range []struct{ flag, file string }{{"web.config.file", g.webConfigFile}, {"web.internal-config.file", g.internalWebConfigFile}} {
		if err := web.Validate(f.file); err != nil {
			return nil, fmt.Errorf("--%s %s: %w", f.flag, f.file, err)
		}
	}
	return c, nil
}

// newRegistry is the registry /metrics serves: Go, process and build
// information collectors, and every component's metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promversion.Version, promversion.Revision = version, revision
	reg.MustRegister(versioncollector.NewCollector("telegate"))
	forward.Version = version
	return reg
}

// logWarnings logs what build found risky, and client_certificate
// without TLS on the public listener.
func (g *gatewayCmd) logWarnings(comp *components, logger log.Logger) {
	if comp.certs != nil && g.webConfigFile == "" {
		comp.warnings = append(comp.warnings, "authn.client_certificate is set but --web.config.file is not: without TLS and a client_ca_file no request carries a verified client certificate")
	}
	for _, w := range comp.warnings {
		level.Warn(logger).Log("msg", w)
	}
}

// downstream is where admitted data goes: the sender (behind the spool
// when it is on), or the embedded TSDB and its query API.
type downstream struct {
	forwarder gateway.Forwarder
	spool     *forward.Spool // nil: spool off or single-binary mode
	db        *store.Store   // single-binary mode only
	queryAPI  *store.API     // single-binary mode only
}

// openDownstream opens the embedded TSDB when forward.url is empty, the
// spool in front of the sender otherwise.
func openDownstream(c *config.Config, sender *forward.Sender, logger log.Logger, reg prometheus.Registerer) (downstream, error) {
	var (
		d   downstream
		err error
	)
	if c.EmbeddedStorage() {
		// Single-binary mode: the embedded TSDB is the downstream (no
		// spool: a 2xx means the TSDB committed and fsynced the WAL).
		if d.db, d.queryAPI, err = openStorage(c, logger, reg); err != nil {
			return d, err
		}
		d.forwarder = d.db
		return d, nil
	}
	d.forwarder, d.spool, err = openSpool(c, sender, logger, reg)
	return d, err
}

// newGateway builds the gateway handler from the components and the
// downstream, and sets the Go memory limit from its memory bound.
func newGateway(c *config.Config, comp *components, forwarder gateway.Forwarder, logger log.Logger, reg prometheus.Registerer) (*gateway.Gateway, error) {
	trustedProxies, err := c.Limits.FailedAuth.TrustedProxyPrefixes()
	if err != nil { // config.Validate refused it already
		return nil, fmt.Errorf("limits.failed_auth.trusted_proxies: %w", err)
	}
	opts := gateway.Options{
		Logger:        logger,
		DebugRequests: cmdutil.DebugEnabled(logger),
		Registerer:    reg,
		Authenticator: comp.authenticator,
		Issuer:        comp.issuer,
		Allowlist:     comp.allowlist,
		Privacy:       comp.guard,
		OptOuts:       &comp.optOuts.set,
		Deletions:     comp.deletions,
		Pipeline:      comp.pipeline,
		Forwarder:     forwarder,
		// Split below the downstream's size limit (forward.max_request_bytes).
		MaxForwardBytes: int(c.Forward.MaxRequestBytes),
		ForwardMessage:  c.Forward.Sender.ProtobufMessage,
		Limits: gateway.Limits{
			MaxRequestBytes:     int64(c.Limits.MaxRequestBytes),
			MaxDecodedBytes:     int(c.Limits.MaxDecodedBytes),
			MaxSeriesPerRequest: c.Limits.MaxSeriesPerRequest,
			MaxLabelsPerSeries:  c.Limits.MaxLabelsPerSeries,
			UploadInterval:      time.Duration(c.Limits.UploadInterval),
		},
		ClientTimestamps:      c.Relabel.UploadTimestamps == "client",
		MaxRetryTime:          time.Duration(c.Forward.MaxRetryTime),
		DropExemplars:         !c.Forward.SendExemplars,
		DropMetadata:          !c.Forward.SendMetadata,
		Budgets:               comp.limiter,
		AllowlistShadow:       !c.Allowlist.Enforce,
		ExplainCacheBytes:     int64(c.Allowlist.ExplainCacheBytes),
		MaxConcurrentRequests: c.Limits.MaxConcurrentRequests,
		ClientCertificates:    comp.certs,
		FailedAuth: gateway.FailedAuthLimit{
			PerMinute:      c.Limits.FailedAuth.PerMinute,
			Burst:          c.Limits.FailedAuth.Burst,
			MaxSources:     c.Limits.FailedAuth.MaxSources,
			TrustedProxies: trustedProxies,
			// Bounds the authorizer calls of one source; the total bound
			// (authn.authorizer.max_concurrent) is in authn.Upstream.
			MaxConcurrentPerSource: c.Limits.FailedAuth.MaxConcurrentPerSource,
		},
		Fairness: gateway.Fairness{
			MaxConcurrentPerInstallation:    c.Limits.MaxConcurrentRequestsPerInstallation,
			MaxInflightBytes:                int64(c.Limits.MaxInflightBytes),
			MaxInflightBytesPerInstallation: int64(c.Limits.InstallationShare()),
			MinBodyRate:                     float64(c.Limits.BodyMinRate),
			BodyGrace:                       time.Duration(c.Limits.BodyGrace),
			MaxBodyTime:                     time.Duration(c.Web.ReadTimeout),
		},
	}
	limit, limitFrom := setMemoryLimit(logger, cgroupMemoryFiles, opts.MemoryBound())
	checkMemoryBound(logger, opts.MemoryBound(), limit, limitFrom)
	return gateway.New(opts), nil
}

// listener is one HTTP server to start.
type listener struct {
	name, addr string
	handler    http.Handler
	webConfig  string
}

// listeners are the web servers: public (the gateway), internal
// (metrics, health, debug, reload, the console at /) and, in single-binary mode with
// storage.query.listen_address, the query API's own.
func (g *gatewayCmd) listeners(c *config.Config, gw *gateway.Gateway, reloader *allowlistReloader, queryAPI *store.API, console, optOutAPI func(*http.ServeMux), publicView http.Handler, logger log.Logger, reg *prometheus.Registry) []listener {
	internal := newInternalMux(internalOptions{
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Reload:          reloader,
		Register:        []func(*http.ServeMux){gw.RegisterHealth, gw.RegisterDebug, optOutAPI, console},
		EnableLifecycle: g.enableLifecycle,
		EnablePprof:     g.enablePprof,
	})
	listeners := []listener{
		{"public", c.Web.ListenAddress, gw.Handler(), g.webConfigFile},
		{"internal", c.Web.InternalListenAddress, internal, g.internalWebConfigFile},
	}
	if publicView != nil {
		// The public aggregate view: its own address, the public web config.
		listeners = append(listeners, listener{"public-view", c.PublicView.ListenAddress, publicView, g.webConfigFile})
	}
	if queryAPI != nil {
		// The query API: on the internal listener, or on its own with
		// the internal listener's web config.
		queryAddr := c.Web.InternalListenAddress
		if addr := c.Storage.Query.ListenAddress; addr != "" {
			queryAddr = addr
			listeners = append(listeners, listeners[1])
			q := &listeners[len(listeners)-1]
			q.name, q.addr, q.handler = "query", addr, queryMux(queryAPI)
		} else {
			queryAPI.Register(internal)
		}
		level.Info(logger).Log("msg", "single-binary mode: forward.url is empty, storing data in the embedded TSDB and serving the Prometheus query API",
			"storage_path", c.Storage.Path, "query_url", queryURL(queryAddr, g.internalWebConfigFile))
	}
	return listeners
}

// addServers listens on every address (failing before anything runs if
// one is taken) and adds one actor per server; stopping any of them
// marks the gateway not ready and drains each server for up to
// web.shutdown_timeout.
func addServers(gr *run.Group, c *config.Config, listeners []listener, gw *gateway.Gateway, logger log.Logger) error {
	shutdown := time.Duration(c.Web.ShutdownTimeout)
	webLogger := kitslog.New(log.With(logger, "component", "web"))
	for _, srv := range listeners {
		ln, err := net.Listen("tcp", srv.addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", srv.name, err)
		}
		hs := &http.Server{
			Handler:           srv.handler,
			ReadHeaderTimeout: time.Duration(c.Web.ReadHeaderTimeout),
			ReadTimeout:       time.Duration(c.Web.ReadTimeout),
			WriteTimeout:      time.Duration(c.Web.WriteTimeout),
			IdleTimeout:       time.Duration(c.Web.IdleTimeout),
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          nil,
		}
		name, flags := srv.name, webFlags(srv.addr, srv.webConfig)
		gr.Add(func() error {
			level.Info(logger).Log("msg", "listening", "listener", name, "address", ln.Addr().String())
			// The exporter-toolkit serves TLS per --web.config.file and
			// re-reads it (and the certificates) on every handshake.
			if err := web.Serve(ln, hs, flags, webLogger.With("listener", name)); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) {
			gw.SetReady(false)
			ctx, cancel := context.WithTimeout(context.Background(), shutdown)
			defer cancel()
			if err := hs.Shutdown(ctx); err != nil {
				level.Warn(logger).Log("msg", "in-flight requests cut at shutdown_timeout", "listener", name, "err", err)
				hs.Close()
			}
		})
	}
	return nil
}

// addAllowlistWatch re-reads the allowlist every
// allowlist.watch_interval (not for the embedded config).
func addAllowlistWatch(gr *run.Group, c *config.Config, reloader *allowlistReloader) {
	if iv := time.Duration(c.Allowlist.WatchInterval); iv > 0 && !c.Embedded() {
		ctx, cancel := context.WithCancel(context.Background())
		gr.Add(func() error { return reloader.watch(ctx, iv) }, func(error) { cancel() })
	}
}

// addOverridesReload re-reads the budget overrides file every
// limits.budgets.overrides_reload_interval.
func addOverridesReload(gr *run.Group, c *config.Config, comp *components) {
	if iv := time.Duration(c.Limits.Budgets.OverridesReloadInterval); comp.overrides != nil && iv > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		gr.Add(func() error { return comp.overrides.Run(ctx, iv) }, func(error) { cancel() })
	}
}

// pingRedis warns at start when the Redis of the shared budgets is
// unreachable (the gateway starts anyway).
func pingRedis(c *config.Config, redis *limits.RedisStore, logger log.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := redis.Ping(ctx); err != nil {
		level.Warn(logger).Log("msg", "Redis for shared budgets is unreachable at start", "address", c.Limits.Redis.Address, "fail_open", c.Limits.Redis.FailOpen, "err", err)
	}
}

// addReplay drains the spool into the downstream until shutdown; an
// object in flight then stays for the next start. No spool: nothing.
func addReplay(gr *run.Group, c *config.Config, spool *forward.Spool, sender *forward.Sender) {
	if spool == nil {
		return
	}
	sp := c.Forward.Spool
	ctx, cancel := context.WithCancel(context.Background())
	gr.Add(func() error {
		return spool.Replay(ctx, sender, forward.ReplayOptions{
			Concurrency: sp.Replay.Concurrency,
			Timeout:     time.Duration(sp.Replay.Timeout),
			MinBackoff:  time.Duration(sp.Replay.MinBackoff),
			MaxBackoff:  time.Duration(sp.Replay.MaxBackoff),
			Interval:    time.Duration(sp.Replay.Interval),
		})
	}, func(error) { cancel() })
}

// buildLimits builds the per-cluster budgets: defaults from the config,
// the overrides file, and the state store (Redis when limits.redis.address
// is set, memory otherwise).
func buildLimits(c *config.Config, out *components, logger log.Logger, reg prometheus.Registerer) error {
	b := c.Limits.Budgets
	opts := limits.Options{
		Defaults: limits.Budget{
			ActiveSeries:   limits.ActiveSeries{Max: b.ActiveSeries.Max, Window: time.Duration(b.ActiveSeries.Window), Enforce: b.ActiveSeries.Enforce},
			SamplesRate:    limits.SamplesRate{PerSecond: b.SamplesRate.PerSecond, Burst: b.SamplesRate.Burst, Enforce: b.SamplesRate.Enforce},
			UploadInterval: limits.UploadInterval{Enforce: b.UploadInterval.Enforce},
		},
		UploadInterval: time.Duration(c.Limits.UploadInterval),
		FailOpen:       c.Limits.Redis.FailOpen,
		Logger:         logger,
		Registerer:     reg,
	}
	if r := c.Limits.Redis; r.Address != "" {
		ro := limits.RedisOptions{
			Address: r.Address, Username: r.Username, Password: string(r.Password), DB: r.DB,
			KeyPrefix: r.KeyPrefix, Timeout: time.Duration(r.Timeout), Logger: logger,
		}
		if r.PasswordFile != "" {
			data, err := c.ReadFile(r.PasswordFile)
			if err != nil {
				return fmt.Errorf("limits.redis.password_file: %w", err)
			}
			ro.Password = strings.TrimSpace(string(data))
		}
		if r.TLSConfig != nil {
			tc, err := config_util.NewTLSConfig(r.TLSConfig)
			if err != nil {
				return fmt.Errorf("limits.redis.tls_config: %w", err)
			}
			ro.TLS = tc
		}
		store, err := limits.NewRedisStore(ro)
		if err != nil {
			return fmt.Errorf("limits.redis: %w", err)
		}
		out.redis, opts.Store = store, store
	}
	out.limiter = limits.New(opts)
	if f := b.OverridesFile; f != "" {
		out.overrides = limits.NewOverridesReloader(out.limiter, c.Path(f), func() ([]byte, error) { return c.ReadFile(f) }, logger, reg)
		if err := out.overrides.Reload(); err != nil {
			return fmt.Errorf("limits.budgets.overrides_file: %w", err)
		}
	}
	return nil
}

// openSpool builds the forwarder the gateway uses: the sender, behind the
// group commit (forward.coalesce) for remote write 1.0, behind the durable
// spool (forward.spool), or without the spool when it is off. Replay
// sends through the bare sender.
func openSpool(c *config.Config, sender *forward.Sender, logger log.Logger, reg prometheus.Registerer) (gateway.Forwarder, *forward.Spool, error) {
	var down forward.BodySender = sender
	if c.Forward.Coalesce && sender.ProtobufMessage() != forward.MessageV2 {
		co, err := forward.NewCoalescer(sender, forward.CoalesceOptions{
			MaxBytes:    int(c.Forward.MaxRequestBytes),
			MaxRequests: c.Forward.CoalesceMaxRequests,
			MaxInFlight: c.Forward.CoalesceMaxInFlight,
			Registerer:  reg,
		})
		if err != nil {
			return nil, nil, err
		}
		down = co
	}
	sp := c.Forward.Spool
	if !sp.Enabled {
		level.Warn(logger).Log("msg", "forward.spool.enabled is false: a downstream outage is answered 503 and clients must retry")
		return forward.Direct(down), nil, nil
	}
	bkt, err := bucket.New(sp.Bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("forward.spool.bucket: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spool, err := forward.OpenSpool(ctx, bkt, forward.SpoolOptions{
		MaxBytes:      int64(sp.MaxBytes),
		MaxSampleAge:  time.Duration(sp.MaxSampleAge),
		DeadRetention: time.Duration(sp.DeadLetterRetention),
		Logger:        log.With(logger, "component", "spool"),
		Registerer:    reg,
	})
	if err != nil {
		return nil, nil, err
	}
	level.Info(logger).Log("msg", "durable spool ready", "bucket", bkt.Name(), "max_bytes", sp.MaxBytes, "dead_letter_retention", sp.DeadLetterRetention)
	return forward.NewDurable(down, spool, forward.DurableOptions{
		SendDeadline: time.Duration(sp.SendDeadline),
		Logger:       log.With(logger, "component", "spool"),
	}), spool, nil
}
