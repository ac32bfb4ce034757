package forward

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
)

// Defaults applied by SetDefaults (and by UnmarshalYAML) to zero fields.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMinBackoff = 30 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Config configures a Sender. In YAML it looks like one Prometheus
// remote_write entry: url, headers, timeout, min_backoff, max_backoff, and
// the HTTP client settings (basic_auth, authorization, oauth2, tls_config,
// proxy_url, ...) inline.
type Config struct {
	// URL of the remote write endpoint, e.g.
	// http://thanos-receive:19291/api/v1/receive.
	URL string `yaml:"url"`
	// Headers are added to every request, e.g. THANOS-TENANT. The headers
	// remote write itself sets cannot be overridden.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Timeout bounds one attempt; the caller's context bounds the whole
	// Send including retries.
	Timeout time.Duration `yaml:"timeout,omitempty"`

	HTTPClientConfig config_util.HTTPClientConfig `yaml:",inline"`

	// MinBackoff and MaxBackoff bound the wait between retries.
	MinBackoff time.Duration `yaml:"min_backoff,omitempty"`
	MaxBackoff time.Duration `yaml:"max_backoff,omitempty"`

	// ProtobufMessage is the remote write version spoken downstream, named
	// by its message as Prometheus' remote_write names it: MessageV1
	// (prometheus.WriteRequest, remote write 1.0, the default) or
	// MessageV2 (io.prometheus.write.v2.Request, remote write 2.0). The
	// bodies must be encoded to match (Buffers.EncodeSplitMessage).
	ProtobufMessage string `yaml:"protobuf_message,omitempty"`

	// HTTP1FastPath (nil means true) sends with a synchronous HTTP/1.1
	// client that writes each request and reads its answer on the sending
	// goroutine, over kept-alive connections, instead of net/http's
	// Transport with its two goroutines per connection: fewer thread
	// wake-ups per request. It is used only for http:// URLs and for
	// https:// ones with enable_http2 false, without proxy_url,
	// proxy_from_environment, oauth2, *_ref secrets, or http_headers
	// together with follow_redirects; otherwise, or when false, the
	// Sender uses prometheus/common's client.
	HTTP1FastPath *bool `yaml:"http1_fast_path,omitempty"`
}

// DefaultConfig is the starting point UnmarshalYAML fills in.
var DefaultConfig = Config{
	Timeout:          DefaultTimeout,
	HTTPClientConfig: config_util.DefaultHTTPClientConfig,
	MinBackoff:       DefaultMinBackoff,
	MaxBackoff:       DefaultMaxBackoff,
	ProtobufMessage:  MessageV1,
}

// UnmarshalYAML applies DefaultConfig, decodes, and validates.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultConfig
	type plain Config
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	return c.Validate()
}

// SetDefaults fills zero durations with their defaults. It leaves the HTTP
// client config alone: its zero value is meaningful (no redirects, no
// HTTP/2).
func (c *Config) SetDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.ProtobufMessage == "" {
		c.ProtobufMessage = MessageV1
	}
}

// reservedHeaders are set by the Sender (the remote write 1.0 headers) or by
// the HTTP transport; configuring them would break the protocol.
var reservedHeaders = map[string]struct{}{
	"Content-Encoding":                  {},
	"Content-Type":                      {},
	"User-Agent":                        {},
	"X-Prometheus-Remote-Write-Version": {},
	"Content-Length":                    {},
	"Transfer-Encoding":                 {},
	"Host":                              {},
	"Connection":                        {},
}

// Validate reports the first problem in c. It does not apply defaults, so a
// zero Timeout or backoff is an error here; New calls SetDefaults first.
// It may normalise HTTPClientConfig the way its own Validate does (a
// bearer_token becomes an authorization section).
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("forward: url is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("forward: invalid url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("forward: url %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("forward: url %q has no host", u.Redacted())
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("forward: timeout must be positive, got %s", c.Timeout)
	}
	if c.MinBackoff <= 0 {
		return fmt.Errorf("forward: min_backoff must be positive, got %s", c.MinBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("forward: max_backoff (%s) must not be below min_backoff (%s)", c.MaxBackoff, c.MinBackoff)
	}
	switch c.ProtobufMessage {
	case "", MessageV1, MessageV2: // "" is the default, MessageV1
	default:
		return fmt.Errorf("forward: protobuf_message %q: must be %s (remote write 1.0) or %s (2.0)", c.ProtobufMessage, MessageV1, MessageV2)
	}
	if err := c.HTTPClientConfig.Validate(); err != nil {
		return fmt.Errorf("forward: http client config: %w", err)
	}
	return c.validateHeaders()
}

func (c *Config) hasAuth() bool {
	h := &c.HTTPClientConfig
	return h.BasicAuth != nil || h.Authorization != nil || h.OAuth2 != nil ||
		h.BearerToken != "" || h.BearerTokenFile != ""
}

func (c *Config) validateHeaders() error {
	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic error messages
	seen := make(map[string]string, len(names))
	for _, name := range names {
		if !validHeaderName(name) {
			return fmt.Errorf("forward: header name %q is not a valid HTTP header name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if _, ok := reservedHeaders[canon]; ok {
			return fmt.Errorf("forward: header %q is reserved: remote write sets it itself", canon)
		}
		if canon == "Authorization" && c.hasAuth() {
			return errors.New(`forward: header "Authorization" conflicts with the configured basic_auth/authorization/oauth2; set credentials in one place only`)
		}
		if prev, ok := seen[canon]; ok {
			return fmt.Errorf("forward: headers %q and %q are the same header (names are case-insensitive)", prev, name)
		}
		seen[canon] = name
		if !validHeaderValue(c.Headers[name]) {
			return fmt.Errorf("forward: header %q: value contains control characters", name)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than horizontal tab
// (CR and LF would allow header injection; Go's client refuses them at send
// time, which would turn every Send into a retried failure).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
