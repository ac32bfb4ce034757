package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	config_util "github.com/prometheus/common/config"
)

// Options are the parts of a Client that do not come from the config.
type Options struct {
	Logger     log.Logger
	Registerer prometheus.Registerer
	// DryRun builds a client that never uploads: the gateway is contacted
	// only when match_from_gateway needs its allowlist.
	DryRun bool
}

// settings is everything built from one Config; a reload swaps it whole.
type settings struct {
	cfg         *Config
	interval    time.Duration
	federator   *Federator // nil in scrape mode
	scraper     *Scraper   // nil in federate mode
	gateway     *Gateway   // nil in a dry run without match_from_gateway
	matches     []string
	selectors   Selectors // matches parsed, in scrape mode
	id          string    // the ID sent to /authorize
	idFile      string    // where id is kept; empty when set by id
	transformer *Transformer
	staging     *Staging // nil without staging_dir
}

// Client is the cluster-side sidecar: every interval it federates a
// snapshot from Prometheus, transforms it, and uploads it to the gateway,
// retrying the same snapshot with backoff until it is sent or the next
// cycle replaces it.
type Client struct {
	logger  log.Logger
	metrics *metrics
	dryRun  bool

	settings atomic.Pointer[settings]
	wake     chan struct{}
	ready    atomic.Bool
	// optedOut is set when the gateway answered 403 opted_out: the
	// installation is on its opt-out list, so the client sends nothing
	// more until a reload or restart.
	optedOut atomic.Bool

	mu          sync.Mutex
	last        []*dto.MetricFamily // last payload built, with token labels
	lastAt      time.Time
	gwMatches   []string // last allowlist from the gateway
	gwMatchHash string
	gwSelKey    string    // the allowlist gwSel was parsed from
	gwSel       Selectors // gwMatches parsed, in scrape mode
}

// New validates cfg (after SetDefaults) and builds a client.
func New(cfg *Config, o Options) (*Client, error) {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	c := &Client{logger: o.Logger, metrics: newMetrics(o.Registerer), dryRun: o.DryRun, wake: make(chan struct{}, 1)}
	s, err := c.build(cfg)
	if err != nil {
		c.metrics.reloadOK.Set(0)
		return nil, err
	}
	c.apply(s)
	return c, nil
}

// Reload swaps in a new configuration (re-reading every file it names);
// on error the running one is kept. The listen address cannot change
// without a restart.
func (c *Client) Reload(cfg *Config) error {
	s, err := c.build(cfg)
	if err != nil {
		c.metrics.reloadOK.Set(0)
		return err
	}
	if old := c.settings.Load(); old != nil && old.cfg.Listen != s.cfg.Listen {
		level.Warn(c.logger).Log("msg", "listen cannot change on reload; restart to apply", "listen", old.cfg.Listen)
	}
	c.apply(s)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	level.Info(c.logger).Log("msg", "configuration reloaded", "disabled", s.cfg.Disabled, "matches", len(s.matches))
	return nil
}

// ReloadWith loads a configuration with load and swaps it in like Reload;
// a load error is reported like an invalid configuration.
func (c *Client) ReloadWith(load func() (*Config, error)) error {
	cfg, err := load()
	if err != nil {
		c.metrics.reloadOK.Set(0)
		return err
	}
	return c.Reload(cfg)
}

func (c *Client) apply(s *settings) {
	c.optedOut.Store(false)
	c.settings.Store(s)
	c.metrics.reloadOK.Set(1)
	c.metrics.reloadTime.SetToCurrentTime()
	if s.cfg.Disabled {
		c.metrics.enabled.Set(0)
	} else {
		c.metrics.enabled.Set(1)
	}
}

func (c *Client) build(cfg *Config) (*settings, error) {
	if err := cfg.Validate(!c.dryRun); err != nil {
		return nil, err
	}
	s := &settings{cfg: cfg, interval: time.Duration(cfg.Interval), id: cfg.ID}
	if cfg.Disabled {
		return s, nil
	}
	if s.id == "" {
		dir := cfg.StateDirPath()
		id, created, err := LoadOrCreateID(dir)
		if err != nil {
			return nil, fmt.Errorf("installation ID (no id given): %w", err)
		}
		s.id, s.idFile = id, filepath.Join(dir, IDFile)
		if created {
			level.Info(c.logger).Log("msg", "generated a new installation ID; it is kept across restarts and upgrades (delete the file or use --rotate-id to replace it)", "id", id, "file", s.idFile)
		}
	}
	readSecret := func(key, file string) (string, error) {
		b, err := os.ReadFile(cfg.Path(file))
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: %s is empty", key, cfg.Path(file))
		}
		return v, nil
	}

	fromHTTP := config_util.HTTPClientConfig{
		TLSConfig: config_util.TLSConfig{CAFile: cfg.Path(cfg.FromCAFile), CertFile: cfg.Path(cfg.FromCertFile), KeyFile: cfg.Path(cfg.FromKeyFile),
			ServerName: cfg.FromServerName, InsecureSkipVerify: cfg.FromInsecureSkipVerify},
		FollowRedirects: true,
		EnableHTTP2:     true,
		ProxyConfig:     config_util.ProxyConfig{ProxyFromEnvironment: true},
	}
	switch {
	case cfg.FromToken != "":
		fromHTTP.Authorization = &config_util.Authorization{Type: "Bearer", Credentials: config_util.Secret(cfg.FromToken)}
	case cfg.FromTokenFile != "":
		if _, err := readSecret("from_token_file", cfg.FromTokenFile); err != nil {
			return nil, err
		}
		// Re-read on every request: service-account tokens rotate.
		fromHTTP.Authorization = &config_util.Authorization{Type: "Bearer", CredentialsFile: cfg.Path(cfg.FromTokenFile)}
	case cfg.FromBasicAuthUser != "":
		if _, err := readSecret("from_basic_auth_password_file", cfg.FromBasicAuthPasswordFile); err != nil {
			return nil, err
		}
		// Re-read on every request, like the token file.
		fromHTTP.BasicAuth = &config_util.BasicAuth{Username: cfg.FromBasicAuthUser, PasswordFile: cfg.Path(cfg.FromBasicAuthPasswordFile)}
	}
	fromClient, err := newHTTPClient(fromHTTP, "from")
	if err != nil {
		return nil, err
	}
	fromClient.Timeout = time.Duration(cfg.FromTimeout)
	if len(cfg.FromScrape) > 0 {
		s.scraper = &Scraper{Client: fromClient, URLs: cfg.FromScrape, Limit: int64(cfg.LimitBytes)}
	} else {
		federateURL, err := joinURL(cfg.From, "/federate")
		if err != nil {
			return nil, err
		}
		s.federator = &Federator{Client: fromClient, URL: federateURL, Limit: int64(cfg.LimitBytes)}
	}

	s.matches = append(s.matches, cfg.Match...)
	if cfg.MatchFile != "" {
		data, err := os.ReadFile(cfg.Path(cfg.MatchFile))
		if err != nil {
			return nil, fmt.Errorf("match_file: %w", err)
		}
		m := ParseMatchFile(data)
		if len(m) == 0 {
			return nil, fmt.Errorf("match_file %s holds no selectors", cfg.Path(cfg.MatchFile))
		}
		s.matches = append(s.matches, m...)
	}
	if s.scraper != nil && !cfg.MatchFromGateway {
		if s.selectors, err = ParseSelectors(s.matches); err != nil {
			return nil, err
		}
	}

	salt := cfg.AnonymizeSalt
	if cfg.AnonymizeSaltFile != "" {
		if salt, err = readSecret("anonymize_salt_file", cfg.AnonymizeSaltFile); err != nil {
			return nil, err
		}
	}
	guard, err := c.piiGuard(cfg, salt)
	if err != nil {
		return nil, err
	}
	s.transformer = &Transformer{
		Rename:    cfg.Rename,
		Labels:    cfg.Label,
		Elide:     cfg.ElideLabel,
		Anonymize: cfg.AnonymizeLabels,
		Salt:      salt,
		Guard:     guard,
		MaxAge:    max(time.Hour, 2*s.interval),
	}

	if !c.dryRun || cfg.MatchFromGateway {
		token := cfg.ToToken
		if cfg.ToTokenFile != "" {
			if token, err = readSecret("to_token_file", cfg.ToTokenFile); err != nil {
				return nil, err
			}
		}
		toClient, err := newHTTPClient(config_util.HTTPClientConfig{
			TLSConfig:   config_util.TLSConfig{CAFile: cfg.Path(cfg.ToCAFile), CertFile: cfg.Path(cfg.ToCertFile), KeyFile: cfg.Path(cfg.ToKeyFile)},
			EnableHTTP2: true,
			ProxyConfig: config_util.ProxyConfig{ProxyFromEnvironment: true},
		}, "to")
		if err != nil {
			return nil, err
		}
		g := &Gateway{Client: toClient, ClusterID: s.id, Token: token, Timeout: time.Duration(cfg.ToTimeout),
			UploadURL: cfg.ToUpload, AuthorizeURL: cfg.ToAuthorize,
			OnAuthorize: func(r string) { c.metrics.authorize.WithLabelValues(r).Inc() }}
		if g.UploadURL == "" {
			g.UploadURL, _ = joinURL(cfg.To, "/upload")
		}
		if g.AuthorizeURL == "" {
			g.AuthorizeURL, _ = joinURL(cfg.To, "/authorize")
		}
		if cfg.To != "" {
			g.AllowlistURL, _ = joinURL(cfg.To, "/allowlist")
		} else {
			g.AllowlistURL = strings.TrimSuffix(strings.TrimRight(g.UploadURL, "/"), "/upload") + "/allowlist"
		}
		s.gateway = g
	}
	if cfg.StagingDir != "" {
		s.staging = &Staging{Dir: cfg.Path(cfg.StagingDir), Keep: cfg.StagingKeep}
		if err := os.MkdirAll(s.staging.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("staging_dir: %w", err)
		}
	}
	return s, nil
}

func newHTTPClient(cfg config_util.HTTPClientConfig, name string) (*http.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cl, err := config_util.NewClientFromConfig(cfg, "telegate-client-"+name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cl, nil
}

// snapshot is one cycle's transformed families, without token labels.
type snapshot struct {
	fams   []*dto.MetricFamily
	at     time.Time
	staged bool
	// sourceErr: in scrape mode, the endpoints that failed (the series of
	// the others are in fams).
	sourceErr error
}

// Run federates and uploads every interval until ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	c.ready.Store(true)
	defer c.ready.Store(false)
	s := c.settings.Load()
	c.logStartup(s, false)
	// A fleet restarted together must not arrive together: the first
	// cycle starts after a random part of a tenth of the interval (at most
	// 30s), and every cycle is stretched by up to a twentieth.
	next := time.Now().Add(randDuration(min(s.interval/10, 30*time.Second)))
	var (
		pending *snapshot
		collect bool
		retryAt time.Time
		attempt int
	)
	drop := func() {
		if pending != nil {
			c.metrics.snapshots.WithLabelValues(SnapshotDropped).Inc()
			pending = nil
		}
	}
	defer drop()
	schedule := func(err error, now time.Time) {
		attempt++
		wait := backoff(attempt, time.Duration(s.cfg.MinBackoff), time.Duration(s.cfg.MaxBackoff))
		var re *RequestError
		if errors.As(err, &re) && re.RetryAfter > wait {
			wait = re.RetryAfter
		}
		retryAt = now.Add(wait)
		c.metrics.retries.Inc()
		c.metrics.backoffSeconds.Add(min(wait, max(next.Sub(now), 0)).Seconds())
		msg := "retrying"
		if !retryAt.Before(next) {
			msg = "retrying with the next cycle's snapshot"
		}
		level.Warn(c.logger).Log("msg", msg, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
	}
	for {
		wake := next
		if (pending != nil || collect) && retryAt.Before(wake) {
			wake = retryAt
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.wake:
			t.Stop()
			s = c.settings.Load()
			if n := time.Now().Add(s.interval); n.Before(next) {
				next = n
			}
			continue
		case <-t.C:
		}
		now := time.Now()
		s = c.settings.Load()
		if !now.Before(next) {
			next = now.Add(s.interval + randDuration(s.interval/20))
			if s.cfg.Disabled {
				drop()
				collect = false
				continue
			}
			collect, attempt, retryAt = true, 0, now
		}
		if s.cfg.Disabled || c.optedOut.Load() {
			drop()
			collect = false
			continue
		}
		if collect {
			snap, err := c.collect(ctx, s, now)
			if ctx.Err() != nil {
				return nil
			}
			switch {
			case err == nil:
				if pending != nil {
					c.metrics.snapshots.WithLabelValues(SnapshotReplaced).Inc()
				}
				pending, attempt, collect = snap, 0, false
			case pending != nil:
				// Never lose the cycle: the previous snapshot is still
				// unsent and is the best data there is.
				level.Warn(c.logger).Log("msg", "collecting a new snapshot failed; sending the previous, unsent one", "err", err)
				collect = false
			case isPermanent(err):
				level.Error(c.logger).Log("msg", "collecting a snapshot failed; waiting for the next cycle", "err", err)
				collect = false
				continue
			default:
				schedule(err, now)
				continue
			}
		}
		if pending == nil {
			continue
		}
		err := c.send(ctx, s, pending)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			c.metrics.snapshots.WithLabelValues(SnapshotSent).Inc()
			if attempt > 0 {
				level.Info(c.logger).Log("msg", "snapshot sent after retries", "attempts", attempt+1)
			}
			pending = nil
			continue
		}
		if isOptedOut(err) {
			c.stopOptedOut(err)
			pending = nil
			continue
		}
		if isPermanent(err) {
			level.Error(c.logger).Log("msg", "the gateway refused the snapshot; not retrying it", "err", err)
			c.metrics.snapshots.WithLabelValues(SnapshotRejected).Inc()
			pending = nil
			continue
		}
		schedule(err, time.Now())
	}
}

// Once collects and sends one snapshot and returns, for cron-style
// senders (--once). A failure that may pass (a network error, 5xx, 429) is
// retried with backoff, honouring Retry-After, for at most one interval;
// a refusal (4xx) is not. It returns an error when the snapshot was not
// sent, or when it was but some metrics endpoint could not be read (scrape
// mode). A disabled client sends nothing and succeeds.
func (c *Client) Once(ctx context.Context) error {
	s := c.settings.Load()
	c.logStartup(s, true)
	if s.cfg.Disabled {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()
	deadline, _ := ctx.Deadline()
	attempt := 0
	// giveUp words an error met when the interval ran out (during an
	// attempt or a wait) like one the backoff gave up on; a cancelled
	// caller (a signal) gets its own error.
	giveUp := func(err error) error {
		if parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("giving up after %d attempts within the interval (%s): %w", attempt+1, s.interval, err)
		}
		return err
	}
	wait := func(err error) error {
		attempt++
		d := backoff(attempt, time.Duration(s.cfg.MinBackoff), time.Duration(s.cfg.MaxBackoff))
		var re *RequestError
		if errors.As(err, &re) && re.RetryAfter > d {
			d = re.RetryAfter
		}
		if time.Now().Add(d).After(deadline) {
			return fmt.Errorf("giving up after %d attempts within the interval (%s): %w", attempt, s.interval, err)
		}
		c.metrics.retries.Inc()
		c.metrics.backoffSeconds.Add(d.Seconds())
		level.Warn(c.logger).Log("msg", "retrying", "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return giveUp(err)
		case <-t.C:
			return nil
		}
	}
	var snap *snapshot
	for {
		var err error
		if snap, err = c.collect(ctx, s, time.Now()); err == nil {
			break
		}
		if isPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return giveUp(err)
		}
		if werr := wait(err); werr != nil {
			return werr
		}
	}
	attempt = 0
	for {
		err := c.send(ctx, s, snap)
		switch {
		case err == nil:
			c.metrics.snapshots.WithLabelValues(SnapshotSent).Inc()
			if snap.sourceErr != nil {
				return fmt.Errorf("sent, but some metrics endpoints could not be read: %w", snap.sourceErr)
			}
			return nil
		case isPermanent(err):
			c.metrics.snapshots.WithLabelValues(SnapshotRejected).Inc()
			return fmt.Errorf("the gateway refused the snapshot: %w", err)
		case ctx.Err() != nil:
			c.metrics.snapshots.WithLabelValues(SnapshotDropped).Inc()
			return giveUp(err)
		}
		if werr := wait(err); werr != nil {
			c.metrics.snapshots.WithLabelValues(SnapshotDropped).Inc()
			return werr
		}
	}
}

// isOptedOut reports whether the gateway refused err's request because
// this installation opted out (403 opted_out).
func isOptedOut(err error) bool {
	var re *RequestError
	return errors.As(err, &re) && re.Status == http.StatusForbidden && re.Reason == "opted_out"
}

// stopOptedOut stops sending after a 403 opted_out, and says so.
func (c *Client) stopOptedOut(err error) {
	if !c.optedOut.Swap(true) {
		level.Warn(c.logger).Log("msg", "the gateway says this installation has opted out of telemetry: sending nothing more (a reload or restart asks again)", "err", err)
	}
	c.metrics.enabled.Set(0)
}

func isPermanent(err error) bool {
	var re *RequestError
	var tl *TooLargeError
	return (errors.As(err, &re) && !re.Retryable()) || errors.As(err, &tl)
}

// maxLoggedSelectors bounds how many selectors the start-up line lists.
const maxLoggedSelectors = 20

func (c *Client) logStartup(s *settings, once bool) {
	if s.cfg.Disabled {
		level.Info(c.logger).Log("msg", "telemetry is disabled: nothing is collected or sent. Remove --disabled (disabled: false) and reload to turn it on.")
		return
	}
	listed := s.matches
	more := ""
	if len(listed) > maxLoggedSelectors {
		listed = listed[:maxLoggedSelectors]
		more = fmt.Sprintf(" and %d more", len(s.matches)-maxLoggedSelectors)
	}
	what := fmt.Sprintf("%d selectors (%s%s)", len(s.matches), strings.Join(listed, " "), more)
	if s.cfg.MatchFromGateway {
		what = "the selectors of the gateway's allowlist"
	}
	from, how := "", "read from Prometheus"
	if s.scraper != nil {
		how = fmt.Sprintf("read from %d metrics endpoints", len(s.scraper.URLs))
		from = redactAll(s.scraper.URLs)
	} else {
		from = redact(s.federator.URL)
	}
	to := ""
	if s.gateway != nil {
		to = redact(s.gateway.UploadURL)
	}
	idFrom := "id"
	if s.idFile != "" {
		idFrom = s.idFile
	}
	when := "every interval"
	if once {
		when = "once (--once)"
	}
	level.Info(c.logger).Log("msg", "telemetry is enabled: series matching "+what+" are "+how+" and sent to the gateway "+when+". "+
		"To turn it off set --disabled (or disabled: true) and reload, or remove this client; see what is sent at /last-payload on the listen address, or with --dry-run.",
		"from", from, "to", to, "id", s.id, "id_from", idFrom, "interval", s.interval,
		"anonymized_labels", strings.Join(s.cfg.AnonymizeLabels, ","), "staging_dir", s.cfg.StagingDir)
}

// source names where a snapshot is read from, for logs.
func (s *settings) source() string {
	if s.scraper != nil {
		return redactAll(s.scraper.URLs)
	}
	return redact(s.federator.URL)
}

func redactAll(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redact(u)
	}
	return strings.Join(out, ",")
}

// collect federates (or scrapes) and transforms one snapshot.
func (c *Client) collect(ctx context.Context, s *settings, now time.Time) (*snapshot, error) {
	matches := s.matches
	if s.cfg.MatchFromGateway {
		var err error
		if matches, err = c.gatewayMatches(ctx, s); err != nil {
			return nil, err
		}
	}
	if s.scraper != nil {
		return c.scrape(ctx, s, matches, now)
	}
	start := time.Now()
	fams, size, err := s.federator.Federate(ctx, matches)
	c.metrics.federateDuration.Observe(time.Since(start).Seconds())
	c.metrics.federatedBytes.Set(float64(size))
	var tl *TooLargeError
	switch {
	case errors.As(err, &tl):
		c.metrics.federateRequests.WithLabelValues("too_large").Inc()
		return nil, err
	case err != nil:
		c.metrics.federateRequests.WithLabelValues("error").Inc()
		return nil, err
	}
	c.metrics.federateRequests.WithLabelValues("success").Inc()
	out, st := s.transformer.Transform(fams, now)
	c.metrics.samplesFederated.Add(float64(st.In))
	for reason, n := range st.Filtered {
		c.metrics.samplesFiltered.WithLabelValues(reason).Add(float64(n))
	}
	level.Debug(c.logger).Log("msg", "federated", "bytes", size, "samples", st.In, "kept", st.Out, "families", len(out))
	return &snapshot{fams: out, at: now}, nil
}

// scrape reads the metrics endpoints, keeps what the selectors match and
// transforms it.
func (c *Client) scrape(ctx context.Context, s *settings, matches []string, now time.Time) (*snapshot, error) {
	sel := s.selectors
	if s.cfg.MatchFromGateway {
		sel = c.gatewaySelectors(matches)
		if len(sel) == 0 {
			return nil, &RequestError{Op: "allowlist", Status: http.StatusOK, Message: "no selector of the gateway's allowlist could be parsed: nothing to send", Result: ResultRejected}
		}
	}
	start := time.Now()
	res, err := s.scraper.Scrape(ctx, sel, now)
	c.metrics.federateDuration.Observe(time.Since(start).Seconds())
	if res != nil {
		c.metrics.federatedBytes.Set(float64(res.Bytes))
		c.metrics.federateRequests.WithLabelValues("success").Add(float64(len(s.scraper.URLs) - len(res.Errors)))
		for _, e := range res.Errors {
			var tl *TooLargeError
			if errors.As(e, &tl) {
				c.metrics.federateRequests.WithLabelValues("too_large").Inc()
			} else {
				c.metrics.federateRequests.WithLabelValues("error").Inc()
			}
		}
		c.metrics.samplesFederated.Add(float64(res.Unselected))
		c.metrics.samplesFiltered.WithLabelValues(FilterUnselected).Add(float64(res.Unselected))
	}
	if err != nil {
		return nil, err
	}
	snap := &snapshot{at: now}
	if len(res.Errors) > 0 {
		snap.sourceErr = errors.Join(res.Errors...)
		level.Warn(c.logger).Log("msg", "some metrics endpoints could not be read; sending the others' series", "failed", len(res.Errors), "of", len(s.scraper.URLs), "err", snap.sourceErr)
	}
	out, st := s.transformer.Transform(res.Families, now)
	c.metrics.samplesFederated.Add(float64(st.In))
	for reason, n := range st.Filtered {
		c.metrics.samplesFiltered.WithLabelValues(reason).Add(float64(n))
	}
	level.Debug(c.logger).Log("msg", "scraped", "bytes", res.Bytes, "samples", res.Samples, "selected", st.In, "kept", st.Out, "families", len(out))
	snap.fams = out
	return snap, nil
}

// gatewaySelectors parses the gateway's allowlist for scrape mode (cached
// while it does not change); a selector this client cannot parse is left
// out, which only ever sends less.
func (c *Client) gatewaySelectors(matches []string) Selectors {
	key := strings.Join(matches, "\x00")
	c.mu.Lock()
	defer c.mu.Unlock()
	if key == c.gwSelKey && c.gwSel != nil {
		return c.gwSel
	}
	var sel Selectors
	for _, m := range matches {
		p, err := ParseSelector(m)
		if err != nil {
			level.Warn(c.logger).Log("msg", "a selector of the gateway's allowlist cannot be parsed here; series it selects are not sent", "err", err)
			continue
		}
		sel = append(sel, p)
	}
	c.gwSelKey, c.gwSel = key, sel
	return sel
}

// gatewayMatches fetches the gateway's allowlist; when that fails, the last
// one fetched is used.
func (c *Client) gatewayMatches(ctx context.Context, s *settings) ([]string, error) {
	var matches []string
	var hash string
	err := s.gateway.WithToken(ctx, func(jwt string, _ map[string]string) error {
		var err error
		matches, hash, err = s.gateway.Allowlist(ctx, jwt)
		return err
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.gwMatches != nil {
			level.Warn(c.logger).Log("msg", "fetching the gateway's allowlist failed; using the last one", "hash", c.gwMatchHash, "err", err)
			return c.gwMatches, nil
		}
		return nil, err
	}
	if len(matches) == 0 {
		return nil, &RequestError{Op: "allowlist", Status: http.StatusOK, Message: "the gateway's allowlist is empty: nothing to send", Result: ResultRejected}
	}
	if hash != c.gwMatchHash {
		level.Info(c.logger).Log("msg", "federating the gateway's allowlist", "selectors", len(matches), "hash", hash)
	}
	c.gwMatches, c.gwMatchHash = matches, hash
	return matches, nil
}

// send makes one attempt to deliver snap (authorize if needed, upload; a
// 401 re-authorizes once).
func (c *Client) send(ctx context.Context, s *settings, snap *snapshot) error {
	err := s.gateway.WithToken(ctx, func(jwt string, labels map[string]string) error {
		fams := WithLabels(snap.fams, labels)
		body, err := EncodePayload(fams)
		if err != nil {
			return &RequestError{Op: "upload", Message: err.Error(), Result: ResultRejected}
		}
		c.metrics.payloadBytes.Set(float64(len(body)))
		if !snap.staged {
			snap.staged = true
			c.setLast(fams, snap.at)
			if s.staging != nil {
				if _, err := s.staging.Write(body, snap.at); err != nil {
					level.Warn(c.logger).Log("msg", "staging the payload failed", "err", err)
				}
			}
		}
		if err := s.gateway.Upload(ctx, jwt, body); err != nil {
			return err
		}
		c.metrics.samplesSent.Add(float64(CountSamples(fams)))
		c.metrics.sentBytes.Add(float64(len(body)))
		c.metrics.lastSuccess.SetToCurrentTime()
		level.Info(c.logger).Log("msg", "sent telemetry", "to", redact(s.gateway.UploadURL), "id", s.id, "series", CountSamples(fams),
			"families", len(fams), "bytes", len(body), "from", s.source())
		return nil
	})
	c.metrics.uploadAttempts.WithLabelValues(result(err)).Inc()
	return err
}

func (c *Client) setLast(fams []*dto.MetricFamily, at time.Time) {
	c.mu.Lock()
	c.last, c.lastAt = fams, at
	c.mu.Unlock()
}

// LastPayload returns the last payload built (with token labels) and when
// its snapshot was taken; nil before the first.
func (c *Client) LastPayload() ([]*dto.MetricFamily, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.lastAt
}

// DryRun federates and transforms once and writes what would be sent to w
// as Prometheus text, preceded by # comment lines saying where it comes
// from and goes. Nothing is uploaded. Token labels are known only when the
// gateway was contacted (match_from_gateway).
func (c *Client) DryRun(ctx context.Context, w io.Writer) error {
	s := c.settings.Load()
	if s.cfg.Disabled {
		fmt.Fprintln(w, "# telemetry is disabled: nothing would be sent")
		return nil
	}
	snap, err := c.collect(ctx, s, time.Now())
	if err != nil {
		return err
	}
	fams := snap.fams
	fmt.Fprintf(w, "# telegate client dry run: nothing was sent.\n# from: %s\n", s.source())
	if snap.sourceErr != nil {
		fmt.Fprintf(w, "# not read: %s\n", strings.ReplaceAll(snap.sourceErr.Error(), "\n", "\n# not read: "))
	}
	if s.gateway != nil {
		_, labels, err := s.gateway.Authorize(ctx)
		if err != nil {
			return err
		}
		fams = WithLabels(fams, labels)
		fmt.Fprintf(w, "# to: %s as cluster %q (token labels included)\n", redact(s.gateway.UploadURL), s.id)
	} else {
		fmt.Fprintf(w, "# to: the gateway adds its token labels (e.g. the cluster ID) from /authorize\n")
	}
	fmt.Fprintf(w, "# %d families, %d samples\n", len(fams), CountSamples(fams))
	return WriteText(w, fams)
}

// RegisterRoutes adds /-/healthy, /-/ready, /-/reload (POST, calls
// reload) and /last-payload to mux.
func (c *Client) RegisterRoutes(mux *http.ServeMux, reload func() error) {
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "telegate client is Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !c.ready.Load() {
			http.Error(w, "telegate client is not ready.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "telegate client is Ready.")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "configuration reloaded")
	})
	mux.HandleFunc("/last-payload", func(w http.ResponseWriter, r *http.Request) {
		fams, at := c.LastPayload()
		if fams == nil {
			http.Error(w, "no payload has been built yet", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("X-Telegate-Snapshot-Time", at.UTC().Format(time.RFC3339Nano))
		WriteText(w, fams)
	})
}

// backoff is the wait before retry number attempt (1-based): exponential
// from minB, capped at maxB, with jitter in [d/2, d].
func backoff(attempt int, minB, maxB time.Duration) time.Duration {
	d := maxB
	if attempt < 31 {
		if e := minB << (attempt - 1); e > 0 && e < maxB {
			d = e
		}
	}
	return d/2 + randDuration(d/2)
}

// randDuration is uniform in [0, d].
func randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// RequestDeletion asks the gateway to delete every series of this
// installation (--request-deletion) and returns its answer.
func (c *Client) RequestDeletion(ctx context.Context) ([]byte, error) {
	s := c.settings.Load()
	if s.gateway == nil {
		return nil, errors.New("no gateway to ask: set --to")
	}
	level.Info(c.logger).Log("msg", "asking the gateway to delete all data of this installation", "id", s.id, "to", redact(s.gateway.DeletionURL()))
	return s.gateway.RequestDeletion(ctx)
}
