package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/telegate/telegate/bytesize"
)

// Defaults of the settings that have one.
const (
	DefaultInterval    = 4*time.Minute + 30*time.Second
	DefaultLimitBytes  = 200 * 1024 // telemeter-client's default
	DefaultListen      = "localhost:9002"
	DefaultStagingKeep = 10
	DefaultMinBackoff  = 2 * time.Second
	DefaultMaxBackoff  = time.Minute
	// DefaultTimeout bounds one HTTP request; it is lowered to half the
	// interval when the interval is shorter than a minute.
	DefaultTimeout = 30 * time.Second
)

// DefaultRename is telemeter-client's default --rename.
func DefaultRename() map[string]string { return map[string]string{"ALERTS": "alerts"} }

// DefaultElideLabels is telemeter-client's default --elide-label.
func DefaultElideLabels() []string { return []string{"prometheus_replica"} }

// Config is the client configuration. Every key has a command-line flag of
// the same name with '-' for '_' (e.g. from_token_file and
// --from-token-file). Relative file paths in a config file resolve against
// the file's directory.
type Config struct {
	// Disabled turns telemetry off: nothing is federated nor sent.
	Disabled bool `yaml:"disabled"`
	// ID is the cluster (installation) ID sent to /authorize. Empty: the
	// installation ID kept in StateDir (a random UUID generated on first
	// start).
	ID string `yaml:"id"`
	// StateDir keeps the installation ID (file installation-id); empty:
	// DefaultStateDir().
	StateDir string `yaml:"state_dir"`

	From string `yaml:"from"` // Prometheus base URL; /federate is appended
	// FromScrape are plain metrics endpoints read instead of /federate
	// (scrape mode); the selectors are applied on the client.
	FromScrape                []string `yaml:"from_scrape"`
	FromToken                 string   `yaml:"from_token"`
	FromTokenFile             string   `yaml:"from_token_file"`
	FromBasicAuthUser         string   `yaml:"from_basic_auth_user"`
	FromBasicAuthPasswordFile string   `yaml:"from_basic_auth_password_file"`
	FromCAFile                string   `yaml:"from_ca_file"`
	FromCertFile              string   `yaml:"from_cert_file"`
	FromKeyFile               string   `yaml:"from_key_file"`
	FromServerName            string   `yaml:"from_server_name"`
	FromInsecureSkipVerify    bool     `yaml:"from_insecure_skip_verify"`
	FromTimeout               Duration `yaml:"from_timeout"`

	To          string   `yaml:"to"`           // gateway base URL
	ToUpload    string   `yaml:"to_upload"`    // default {to}/upload
	ToAuthorize string   `yaml:"to_authorize"` // default {to}/authorize
	ToToken     string   `yaml:"to_token"`     // pull-secret token for /authorize
	ToTokenFile string   `yaml:"to_token_file"`
	ToCAFile    string   `yaml:"to_ca_file"`
	ToCertFile  string   `yaml:"to_cert_file"`
	ToKeyFile   string   `yaml:"to_key_file"`
	ToTimeout   Duration `yaml:"to_timeout"`

	Match            []string `yaml:"match"`
	MatchFile        string   `yaml:"match_file"`
	MatchFromGateway bool     `yaml:"match_from_gateway"`

	Interval   Duration          `yaml:"interval"`
	LimitBytes Bytes             `yaml:"limit_bytes"`
	Rename     map[string]string `yaml:"rename"`
	Label      map[string]string `yaml:"label"`
	ElideLabel []string          `yaml:"elide_label"`

	AnonymizeLabels   []string `yaml:"anonymize_labels"`
	AnonymizeSalt     string   `yaml:"anonymize_salt"`
	AnonymizeSaltFile string   `yaml:"anonymize_salt_file"`

	StagingDir  string `yaml:"staging_dir"`
	StagingKeep int    `yaml:"staging_keep"`

	MinBackoff Duration `yaml:"min_backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`

	Listen string `yaml:"listen"`

	// dir is the directory relative paths resolve against.
	dir string
}

// Duration is a time.Duration written in Prometheus syntax (4m30s, 1h, 1d).
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Bytes is a size: a plain number of bytes or a number with a unit, B,
// KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), as in the
// gateway's configuration (see bytesize).
type Bytes = bytesize.Size

// ParseBytes parses a size, e.g. "204800" or "200KiB".
func ParseBytes(s string) (Bytes, error) { return bytesize.Parse(s) }

// LoadConfigFile reads a YAML config file strictly: unknown keys are
// errors naming the key and line.
func LoadConfigFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(abs)
	return c, nil
}

// ParseConfig parses YAML config data; relative paths stay relative to the
// working directory.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return c, nil
}

// StateDirPath is the state directory: StateDir resolved against the
// config file's directory, or DefaultStateDir().
func (c *Config) StateDirPath() string {
	if c.StateDir == "" {
		return DefaultStateDir()
	}
	return c.Path(c.StateDir)
}

// Path resolves a file path of the config against the config file's
// directory (when it came from a file).
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// SetDefaults fills unset keys with their defaults. Nil maps and lists get
// the default; an explicitly empty one (rename: {}) stays empty.
func (c *Config) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.LimitBytes == 0 {
		c.LimitBytes = DefaultLimitBytes
		if len(c.FromScrape) > 0 {
			c.LimitBytes = DefaultScrapeLimitBytes
		}
	}
	if c.Rename == nil {
		c.Rename = DefaultRename()
	}
	if c.ElideLabel == nil {
		c.ElideLabel = DefaultElideLabels()
	}
	if c.StagingKeep == 0 {
		c.StagingKeep = DefaultStagingKeep
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = Duration(DefaultMinBackoff)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	def := DefaultTimeout
	if half := time.Duration(c.Interval) / 2; half < def {
		def = half
	}
	if c.FromTimeout == 0 {
		c.FromTimeout = Duration(def)
	}
	if c.ToTimeout == 0 {
		c.ToTimeout = Duration(def)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
}

// legacyName is the classic Prometheus metric/label name syntax, which
// every telemeter server accepts.
var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Validate checks a defaulted config. needGateway is false for a dry run
// that does not contact the gateway.
func (c *Config) Validate(needGateway bool) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Disabled {
		return nil
	}
	switch {
	case c.From == "" && len(c.FromScrape) == 0:
		bad("from: the Prometheus URL to federate from (or from_scrape: the metrics endpoints to read) is required")
	case c.From != "" && len(c.FromScrape) > 0:
		bad("from and from_scrape are mutually exclusive: federate from a Prometheus or read metrics endpoints")
	case c.From != "":
		if err := checkURL(c.From); err != nil {
			bad("from: %v", err)
		}
	}
	for _, u := range c.FromScrape {
		if err := checkURL(u); err != nil {
			bad("from_scrape: %v", err)
		}
	}
	if c.FromToken != "" && c.FromTokenFile != "" {
		bad("from_token and from_token_file are mutually exclusive")
	}
	if (c.FromToken != "" || c.FromTokenFile != "") && c.FromBasicAuthUser != "" {
		bad("from_basic_auth_user and a bearer token (from_token, from_token_file) are mutually exclusive")
	}
	if (c.FromBasicAuthUser == "") != (c.FromBasicAuthPasswordFile == "") {
		bad("from_basic_auth_user and from_basic_auth_password_file must be set together")
	}
	if (c.FromCertFile == "") != (c.FromKeyFile == "") {
		bad("from_cert_file and from_key_file must be set together")
	}
	if (c.ToCertFile == "") != (c.ToKeyFile == "") {
		bad("to_cert_file and to_key_file must be set together")
	}
	if needGateway || c.MatchFromGateway {
		if c.To == "" && (c.ToUpload == "" || c.ToAuthorize == "") {
			bad("to: the gateway URL is required (or both to_upload and to_authorize)")
		}
		for k, u := range map[string]string{"to": c.To, "to_upload": c.ToUpload, "to_authorize": c.ToAuthorize} {
			if u != "" {
				if err := checkURL(u); err != nil {
					bad("%s: %v", k, err)
				}
			}
		}
		if c.ToToken == "" && c.ToTokenFile == "" {
			bad("to_token or to_token_file is required (the pull-secret token for /authorize)")
		}
	}
	if c.ToToken != "" && c.ToTokenFile != "" {
		bad("to_token and to_token_file are mutually exclusive")
	}
	if c.MatchFromGateway && (len(c.Match) > 0 || c.MatchFile != "") {
		bad("match_from_gateway federates exactly the gateway's allowlist: do not also set match or match_file")
	}
	if !c.MatchFromGateway && len(c.Match) == 0 && c.MatchFile == "" {
		bad("no series to federate: set match, match_file or match_from_gateway")
	}
	if len(c.FromScrape) > 0 {
		// Scrape mode applies the selectors itself: they must parse.
		if _, err := ParseSelectors(c.Match); err != nil {
			bad("match: %v", err)
		}
	}
	for _, m := range c.Match {
		if strings.TrimSpace(m) == "" {
			bad("match: empty selector")
		}
	}
	interval := time.Duration(c.Interval)
	if interval < time.Second {
		bad("interval %s: must be at least 1s", interval)
	}
	if c.FromTimeout <= 0 || time.Duration(c.FromTimeout) >= interval {
		bad("from_timeout %s: must be positive and below the interval (%s), so reads never pile up", time.Duration(c.FromTimeout), interval)
	}
	if c.ToTimeout <= 0 || time.Duration(c.ToTimeout) >= interval {
		bad("to_timeout %s: must be positive and below the interval (%s)", time.Duration(c.ToTimeout), interval)
	}
	if c.LimitBytes <= 0 {
		bad("limit_bytes must be positive")
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		bad("min_backoff (%s) must be positive and at most max_backoff (%s)", time.Duration(c.MinBackoff), time.Duration(c.MaxBackoff))
	}
	if c.StagingKeep < 0 {
		bad("staging_keep must not be negative")
	}
	for from, to := range c.Rename {
		if !metricNameRE.MatchString(from) || !metricNameRE.MatchString(to) {
			bad("rename %s=%s: both sides must be valid metric names", from, to)
		}
	}
	for k, v := range c.Label {
		if !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__") {
			bad("label %s=%s: invalid label name", k, v)
		}
		if v == "" {
			bad("label %s: empty value", k)
		}
	}
	for _, l := range append(append([]string{}, c.ElideLabel...), c.AnonymizeLabels...) {
		if !labelNameRE.MatchString(l) {
			bad("invalid label name %q in elide_label or anonymize_labels", l)
		}
	}
	if len(c.AnonymizeLabels) > 0 && c.AnonymizeSalt == "" && c.AnonymizeSaltFile == "" {
		bad("anonymize_labels needs anonymize_salt or anonymize_salt_file (a secret, unguessable value)")
	}
	if c.AnonymizeSalt != "" && c.AnonymizeSaltFile != "" {
		bad("anonymize_salt and anonymize_salt_file are mutually exclusive")
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}

// ParseMatchFile reads selectors one per line; blank lines and lines
// starting with # are ignored.
func ParseMatchFile(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// joinURL appends p to base's path.
func joinURL(base, p string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), p) {
		return u.String(), nil
	}
	u.Path = strings.TrimRight(u.Path, "/") + p
	u.RawPath = ""
	return u.String(), nil
}
