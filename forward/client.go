package forward

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"

	config_util "github.com/prometheus/common/config"
)

// newClient builds the Sender's HTTP client. Where fastPathUnsupported
// finds nothing against it, it is the synchronous HTTP/1.1 transport
// (h1Transport) under the same round trippers prometheus/common stacks on
// net/http's (authorization, basic_auth, http_headers; TLS files re-read
// per request and a changed CA, certificate or key taking effect on new
// connections) with the same redirect policy; otherwise it is
// prometheus/common's client. fast reports which.
func newClient(cfg *Config) (client *http.Client, fast bool, err error) {
	if fastPathUnsupported(cfg) != "" {
		client, err = config_util.NewClientFromConfig(cfg.HTTPClientConfig, "telegate_forward")
		return client, false, err
	}
	rt, err := newFastRoundTripper(cfg.HTTPClientConfig)
	if err != nil {
		return nil, false, err
	}
	client = &http.Client{Transport: rt}
	if !cfg.HTTPClientConfig.FollowRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return client, true, nil
}

// fastPathUnsupported says why cfg needs prometheus/common's client, ""
// when the synchronous HTTP/1.1 transport can serve it.
func fastPathUnsupported(cfg *Config) string {
	h := &cfg.HTTPClientConfig
	switch {
	case cfg.HTTP1FastPath != nil && !*cfg.HTTP1FastPath:
		return "http1_fast_path is false"
	case h.ProxyURL.URL != nil || h.ProxyFromEnvironment:
		return "a proxy is configured"
	case h.OAuth2 != nil:
		return "oauth2 is configured"
	case h.HTTPHeaders != nil && h.FollowRedirects:
		// prometheus/common strips http_headers' credentials from
		// cross-host redirects with an unexported round tripper.
		return "http_headers with follow_redirects"
	case h.TLSConfig.CARef != "" || h.TLSConfig.CertRef != "" || h.TLSConfig.KeyRef != "" ||
		h.BasicAuth != nil && (h.BasicAuth.UsernameRef != "" || h.BasicAuth.PasswordRef != "") ||
		h.Authorization != nil && h.Authorization.CredentialsRef != "":
		return "a secret reference is configured"
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return "invalid url"
	}
	switch u.Scheme {
	case "http":
		// net/http speaks HTTP/1.1 to http:// URLs whatever enable_http2
		// says (no h2c).
	case "https":
		if h.EnableHTTP2 {
			return "enable_http2 with an https url"
		}
	default:
		return "url scheme " + u.Scheme
	}
	return ""
}

// newFastRoundTripper composes h1Transport with prometheus/common's
// exported round trippers the way NewRoundTripperFromConfig composes
// net/http's Transport (fastPathUnsupported rules out what it cannot).
func newFastRoundTripper(h config_util.HTTPClientConfig) (http.RoundTripper, error) {
	newRT := func(tlsConfig *tls.Config) (http.RoundTripper, error) {
		var rt http.RoundTripper = newH1Transport(tlsConfig)
		if h.Authorization != nil {
			rt = config_util.NewAuthorizationCredentialsRoundTripper(h.Authorization.Type,
				secretReader(string(h.Authorization.Credentials), h.Authorization.CredentialsFile), rt)
		}
		if h.BearerToken != "" || h.BearerTokenFile != "" {
			// Validate turns these into Authorization; kept for a config
			// that was not validated, as prometheus/common does.
			rt = config_util.NewAuthorizationCredentialsRoundTripper("Bearer", secretReader(string(h.BearerToken), h.BearerTokenFile), rt)
		}
		if h.BasicAuth != nil {
			rt = config_util.NewBasicAuthRoundTripper(
				secretReader(h.BasicAuth.Username, h.BasicAuth.UsernameFile),
				secretReader(string(h.BasicAuth.Password), h.BasicAuth.PasswordFile), rt)
		}
		if h.HTTPHeaders != nil {
			rt = config_util.NewHeadersRoundTripper(h.HTTPHeaders, rt)
		}
		return rt, nil
	}
	tlsConfig, err := config_util.NewTLSConfig(&h.TLSConfig)
	if err != nil {
		return nil, err
	}
	settings := config_util.TLSRoundTripperSettings{
		CA:   secretReader(h.TLSConfig.CA, h.TLSConfig.CAFile),
		Cert: secretReader(h.TLSConfig.Cert, h.TLSConfig.CertFile),
		Key:  secretReader(string(h.TLSConfig.Key), h.TLSConfig.KeyFile),
	}
	if immutable(settings.CA) && immutable(settings.Cert) && immutable(settings.Key) {
		return newRT(tlsConfig)
	}
	rt, err := config_util.NewTLSRoundTripperWithContext(context.Background(), tlsConfig, settings, newRT)
	if err != nil {
		return nil, fmt.Errorf("tls_config: %w", err)
	}
	return rt, nil
}

// secretReader is prometheus/common's reader of an inline or file secret,
// nil when neither is set.
func secretReader(inline, file string) config_util.SecretReader {
	switch {
	case inline != "":
		return config_util.NewInlineSecret(inline)
	case file != "":
		return config_util.NewFileSecret(file)
	}
	return nil
}

func immutable(s config_util.SecretReader) bool { return s == nil || s.Immutable() }
