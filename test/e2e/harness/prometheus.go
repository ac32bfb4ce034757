package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// PrometheusOptions configures StartPrometheus. The zero value starts an
// empty Prometheus with a 1s global scrape and evaluation interval.
type PrometheusOptions struct {
	// Name labels the process in logs (default "prometheus"); useful when a
	// test runs several.
	Name string
	// Binary is the prometheus executable; default PrometheusBinary (the
	// Debian package's 2.42). Prometheus3Binary for Prometheus 3 features.
	Binary string
	// ListenAddress is host:port to serve on; default FreeAddr. Set it when
	// a config elsewhere must know the address before start.
	ListenAddress string
	// EnableRemoteWriteReceiver adds --web.enable-remote-write-receiver, so
	// the server accepts remote write at RemoteWriteURL() (1.0; Prometheus 3
	// also accepts 2.0).
	EnableRemoteWriteReceiver bool
	// ScrapeNativeHistograms sets global scrape_native_histograms: true, so
	// every scrape job negotiates the protobuf exposition format and
	// ingests native histograms (targets exposing both keep only the
	// native one). Prometheus 3 only: 2.42 refuses the key (its
	// equivalent was --enable-feature=native-histograms).
	ScrapeNativeHistograms bool
	// ScrapeInterval and EvaluationInterval are the global intervals;
	// default 1s each.
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	// ExternalLabels are global external_labels (added to remote writes).
	ExternalLabels map[string]string
	// SelfScrapeJob, if set, adds a scrape job of that name scraping this
	// Prometheus's own /metrics (whose address is only known at start).
	SelfScrapeJob string
	// ScrapeConfigs is raw YAML: a sequence of scrape_config entries, e.g.
	//   - job_name: gw
	//     static_configs: [{targets: ["127.0.0.1:8080"]}]
	ScrapeConfigs string
	// RemoteWrite lists remote_write destinations.
	RemoteWrite []RemoteWriteTarget
	// RuleFiles holds the contents of rule files (YAML with "groups:").
	RuleFiles []string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// StartTimeout bounds the wait for /-/ready; default 30s.
	StartTimeout time.Duration
}

// RemoteWriteTarget is one remote_write entry. Zero durations take the
// harness defaults, tuned for fast tests rather than Prometheus's own.
type RemoteWriteTarget struct {
	// URL of the remote write endpoint. Required.
	URL string
	// Name is the queue name (shows in Prometheus logs and metrics).
	Name string
	// BearerToken is sent as "Authorization: Bearer TOKEN". Mutually
	// exclusive with AuthorizationType/Credentials.
	BearerToken string
	// AuthorizationType and Credentials set the authorization block for
	// other schemes; AuthorizationType defaults to "Bearer".
	AuthorizationType string
	Credentials       string
	// Headers are extra HTTP headers (Prometheus refuses reserved ones such
	// as Authorization or Content-Type). Beware: Debian's Prometheus 2.42
	// build accepts this setting but does not send the headers (its header
	// round tripper is patched out); upstream builds send them.
	Headers map[string]string
	// RemoteTimeout per request; default 5s.
	RemoteTimeout time.Duration
	// BatchSendDeadline is queue_config.batch_send_deadline; default 1s.
	BatchSendDeadline time.Duration
	// MinBackoff and MaxBackoff bound retry backoff; default 50ms and 1s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// RetryOnRateLimit sets queue_config.retry_on_http_429 (off by default
	// in Prometheus 2.42: a 429 would drop the batch).
	RetryOnRateLimit bool
	// DisableMetadata turns off the periodic metadata-only requests.
	DisableMetadata bool
	// WriteRelabelConfigs is raw YAML: a sequence of relabel_config entries.
	WriteRelabelConfigs string
	// ProtobufMessage is protobuf_message: RemoteWrite1 (the default when
	// empty) or RemoteWrite2. Prometheus 3 only.
	ProtobufMessage string
	// SendNativeHistograms sets send_native_histograms: true (otherwise
	// Prometheus leaves native histogram samples out of remote write).
	SendNativeHistograms bool
}

// Values of RemoteWriteTarget.ProtobufMessage.
const (
	RemoteWrite1 = "prometheus.WriteRequest"
	RemoteWrite2 = "io.prometheus.write.v2.Request"
)

// Prometheus is a running Prometheus server. Its query methods come from
// the embedded PromAPI.
type Prometheus struct {
	*PromAPI
	t          testing.TB
	addr       string
	dir        string
	configPath string
	timeout    time.Duration
	proc       *Process
}

// StartPrometheus writes prometheus.yml from opts, starts the prometheus
// binary (see PrometheusBinary) with its TSDB in a temporary directory and
// waits until /-/ready answers 200. It is stopped when the test ends.
//
// A freshly started Prometheus sends its first remote write only after its
// WAL watcher finishes the initial replay, about 5-6s after start: allow
// for that in timeouts (20s is comfortable).
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = PrometheusBinary(t)
	}
	if opts.Name == "" {
		opts.Name = "prometheus"
	}
	if opts.ListenAddress == "" {
		opts.ListenAddress = FreeAddr(t)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	dir := t.TempDir()
	var ruleFiles []string
	for i, content := range opts.RuleFiles {
		p := filepath.Join(dir, fmt.Sprintf("rules-%d.yml", i))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("harness: writing %s: %v", p, err)
		}
		ruleFiles = append(ruleFiles, p)
	}
	cfg, err := renderPrometheusConfig(opts, ruleFiles)
	if err != nil {
		t.Fatalf("harness: %s config: %v", opts.Name, err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, cfg, 0o644); err != nil {
		t.Fatalf("harness: writing %s: %v", configPath, err)
	}
	args := []string{
		"--config.file=" + configPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + opts.ListenAddress,
		"--web.enable-lifecycle",
	}
	if opts.EnableRemoteWriteReceiver {
		args = append(args, "--web.enable-remote-write-receiver")
	}
	args = append(args, opts.ExtraArgs...)
	p := &Prometheus{
		PromAPI:    NewPromAPI("http://" + opts.ListenAddress),
		t:          t,
		addr:       opts.ListenAddress,
		dir:        dir,
		configPath: configPath,
		timeout:    opts.StartTimeout,
	}
	p.proc = StartProcess(t, ProcessOptions{Name: opts.Name, Binary: bin, Args: args, Dir: dir})
	p.proc.WaitHTTP(p.URL()+"/-/ready", opts.StartTimeout)
	return p
}

// URL returns the base URL, e.g. "http://127.0.0.1:41234".
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Addr returns host:port.
func (p *Prometheus) Addr() string { return p.addr }

// RemoteWriteURL returns URL()+"/api/v1/write" (needs
// EnableRemoteWriteReceiver).
func (p *Prometheus) RemoteWriteURL() string { return p.URL() + "/api/v1/write" }

// ConfigPath returns the path of the generated prometheus.yml.
func (p *Prometheus) ConfigPath() string { return p.configPath }

// Process returns the underlying process (Kill, Stop, logs).
func (p *Prometheus) Process() *Process { return p.proc }

// Restart stops Prometheus (SIGTERM), starts it again on the same address
// with the same TSDB directory, and waits until it is ready.
func (p *Prometheus) Restart() {
	p.t.Helper()
	p.proc.Restart()
	p.proc.WaitHTTP(p.URL()+"/-/ready", p.timeout)
}

// promConfig is the subset of prometheus.yml the harness writes.
type promConfig struct {
	Global        promGlobal       `yaml:"global"`
	RuleFiles     []string         `yaml:"rule_files,omitempty"`
	ScrapeConfigs []any            `yaml:"scrape_configs,omitempty"`
	RemoteWrite   []map[string]any `yaml:"remote_write,omitempty"`
}

type promGlobal struct {
	ScrapeInterval         string            `yaml:"scrape_interval"`
	EvaluationInterval     string            `yaml:"evaluation_interval"`
	ExternalLabels         map[string]string `yaml:"external_labels,omitempty"`
	ScrapeNativeHistograms bool              `yaml:"scrape_native_histograms,omitempty"`
}

func durationOr(d, def time.Duration) string {
	if d <= 0 {
		d = def
	}
	return model.Duration(d).String()
}

// parseYAMLSequence parses raw YAML that must be a sequence (or empty).
func parseYAMLSequence(what, raw string) ([]any, error) {
	var seq []any
	if err := yaml.Unmarshal([]byte(raw), &seq); err != nil {
		return nil, fmt.Errorf("%s must be a YAML sequence: %w", what, err)
	}
	return seq, nil
}

// renderPrometheusConfig builds prometheus.yml; ruleFiles are the paths
// the rule file contents were written to.
func renderPrometheusConfig(opts PrometheusOptions, ruleFiles []string) ([]byte, error) {
	cfg := promConfig{
		Global: promGlobal{
			ScrapeInterval:     durationOr(opts.ScrapeInterval, time.Second),
			EvaluationInterval: durationOr(opts.EvaluationInterval, time.Second),
			ExternalLabels:     opts.ExternalLabels,
			// Only written when set: Prometheus 2.42 refuses the key.
			ScrapeNativeHistograms: opts.ScrapeNativeHistograms,
		},
		RuleFiles: ruleFiles,
	}
	if opts.SelfScrapeJob != "" {
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, map[string]any{
			"job_name":       opts.SelfScrapeJob,
			"static_configs": []any{map[string]any{"targets": []string{opts.ListenAddress}}},
		})
	}
	scrapes, err := parseYAMLSequence("ScrapeConfigs", opts.ScrapeConfigs)
	if err != nil {
		return nil, err
	}
	cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, scrapes...)
	for i, rw := range opts.RemoteWrite {
		entry, err := remoteWriteEntry(rw)
		if err != nil {
			return nil, fmt.Errorf("RemoteWrite[%d]: %w", i, err)
		}
		cfg.RemoteWrite = append(cfg.RemoteWrite, entry)
	}
	return yaml.Marshal(cfg)
}

func remoteWriteEntry(rw RemoteWriteTarget) (map[string]any, error) {
	if rw.URL == "" {
		return nil, errors.New("URL is empty")
	}
	e := map[string]any{
		"url":            rw.URL,
		"remote_timeout": durationOr(rw.RemoteTimeout, 5*time.Second),
		"queue_config": map[string]any{
			"batch_send_deadline": durationOr(rw.BatchSendDeadline, time.Second),
			"min_backoff":         durationOr(rw.MinBackoff, 50*time.Millisecond),
			"max_backoff":         durationOr(rw.MaxBackoff, time.Second),
			"retry_on_http_429":   rw.RetryOnRateLimit,
		},
	}
	if rw.Name != "" {
		e["name"] = rw.Name
	}
	switch {
	case rw.BearerToken != "" && (rw.Credentials != "" || rw.AuthorizationType != ""):
		return nil, errors.New("BearerToken and AuthorizationType/Credentials are mutually exclusive")
	case rw.BearerToken != "":
		e["authorization"] = map[string]any{"type": "Bearer", "credentials": rw.BearerToken}
	case rw.Credentials != "":
		typ := rw.AuthorizationType
		if typ == "" {
			typ = "Bearer"
		}
		e["authorization"] = map[string]any{"type": typ, "credentials": rw.Credentials}
	case rw.AuthorizationType != "":
		return nil, errors.New("AuthorizationType is set without Credentials")
	}
	if len(rw.Headers) > 0 {
		e["headers"] = rw.Headers
	}
	switch rw.ProtobufMessage {
	case "":
	case RemoteWrite1, RemoteWrite2:
		e["protobuf_message"] = rw.ProtobufMessage
	default:
		return nil, fmt.Errorf("ProtobufMessage %q: want %q or %q", rw.ProtobufMessage, RemoteWrite1, RemoteWrite2)
	}
	if rw.SendNativeHistograms {
		e["send_native_histograms"] = true
	}
	if rw.DisableMetadata {
		e["metadata_config"] = map[string]any{"send": false}
	}
	relabels, err := parseYAMLSequence("WriteRelabelConfigs", rw.WriteRelabelConfigs)
	if err != nil {
		return nil, err
	}
	if len(relabels) > 0 {
		e["write_relabel_configs"] = relabels
	}
	return e, nil
}
