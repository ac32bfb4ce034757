package config

import (
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/authn"
)

// Authn configures who may send.
type Authn struct {
	ClusterIDLabel string     `yaml:"cluster_id_label"`
	TokensFile     string     `yaml:"tokens_file"`
	Authorizer     Authorizer `yaml:"authorizer"`
	JWT            JWT        `yaml:"jwt"`
	// ClientCertificate takes the cluster ID of remote-write requests
	// from a verified TLS client certificate (mTLS, --web.config.file).
	ClientCertificate ClientCertificate `yaml:"client_certificate"`
}

// ClientCertificate configures the mTLS identity (authn.CertAuthenticator).
type ClientCertificate struct {
	// ClusterIDFrom is common_name, uri_san or dns_san; "" = off.
	ClusterIDFrom string `yaml:"cluster_id_from"`
	URIPrefix     string `yaml:"uri_prefix"`
	// DNSSuffix (dns_san): the ID is the single label before it; it
	// matches on a label boundary (a leading dot is implied).
	DNSSuffix string `yaml:"dns_suffix"`
}

// Authorizer is the upstream authorizer (tollbooth protocol).
type Authorizer struct {
	URL              string         `yaml:"url"`
	CacheTTL         model.Duration `yaml:"cache_ttl"`
	NegativeCacheTTL model.Duration `yaml:"negative_cache_ttl"`
	CacheSize        int            `yaml:"cache_size"`
	Timeout          model.Duration `yaml:"timeout"`
	// MaxConcurrent bounds the calls to the authorizer in flight (cache
	// misses); more get 503 at once without calling it. 0 = unbounded.
	MaxConcurrent int `yaml:"max_concurrent"`
	// HTTPClientConfig holds the Prometheus HTTP client settings for
	// reaching the authorizer (tls_config, authorization, proxy_url, ...).
	HTTPClientConfig config_util.HTTPClientConfig `yaml:",inline"`
}

// JWT configures the tokens /authorize issues.
type JWT struct {
	SigningKeyFile       string         `yaml:"signing_key_file"`
	VerificationKeyFiles []string       `yaml:"verification_key_files"`
	Expiry               model.Duration `yaml:"expiry"`
	// TelemeterCompat makes the tokens interchangeable with those of a
	// telemeter-server holding the same key (its --shared-key).
	TelemeterCompat TelemeterCompat `yaml:"telemeter_compat"`
}

// TelemeterCompat is authn.TelemeterCompat in the config file; the
// partition label is authn.cluster_id_label.
type TelemeterCompat struct {
	// Accept: /upload (and /allowlist, /explain) also accept tokens
	// telemeter-server issued.
	Accept bool `yaml:"accept"`
	// Issue: /authorize issues tokens in telemeter-server's format, which
	// telemeter-server accepts too. Requires Accept.
	Issue bool `yaml:"issue"`
}

// defaultAuthn returns the authn section's built-in defaults.
func defaultAuthn() Authn {
	return Authn{
		ClusterIDLabel: "_id",
		TokensFile:     "tokens.yaml",
		Authorizer: Authorizer{
			CacheTTL:         model.Duration(10 * time.Minute),
			NegativeCacheTTL: model.Duration(30 * time.Second),
			CacheSize:        100000,
			Timeout:          model.Duration(5 * time.Second),
			MaxConcurrent:    64,
			HTTPClientConfig: config_util.DefaultHTTPClientConfig,
		},
		// Both on: a gateway replacing telemeter-server with its key keeps
		// the fleet's tokens valid, and so does a rollback.
		JWT: JWT{Expiry: model.Duration(24 * time.Hour), TelemeterCompat: TelemeterCompat{Accept: true, Issue: true}},
	}
}

// validateAuthn checks the authn section.
func (c *Config) validateAuthn(add addFunc) {
	if !labelNameRE.MatchString(c.Authn.ClusterIDLabel) {
		add("authn.cluster_id_label", "%q is not a valid label name", c.Authn.ClusterIDLabel)
	}
	switch cc := c.Authn.ClientCertificate; cc.ClusterIDFrom {
	case "", "common_name", "uri_san", "dns_san":
		if cc.URIPrefix != "" && cc.ClusterIDFrom != "uri_san" {
			add("authn.client_certificate.uri_prefix", "applies only to cluster_id_from: uri_san")
		}
		if cc.DNSSuffix != "" && cc.ClusterIDFrom != "dns_san" {
			add("authn.client_certificate.dns_suffix", "applies only to cluster_id_from: dns_san")
		} else if cc.DNSSuffix != "" {
			if err := authn.CheckDNSSuffix(cc.DNSSuffix); err != nil {
				add("authn.client_certificate.dns_suffix", "%v", err)
			}
		}
	default:
		add("authn.client_certificate.cluster_id_from", "%q: want common_name, uri_san, dns_san or empty (off)", cc.ClusterIDFrom)
	}
	if c.Authn.TokensFile == "" && c.Authn.Authorizer.URL == "" && c.Authn.ClientCertificate.ClusterIDFrom == "" {
		add("authn", "set tokens_file, authorizer.url or client_certificate.cluster_id_from: the gateway never runs without authentication")
	}
	if c.Authn.Authorizer.URL != "" && !strings.HasPrefix(c.Authn.Authorizer.URL, "http://") && !strings.HasPrefix(c.Authn.Authorizer.URL, "https://") {
		add("authn.authorizer.url", "%q must be an http(s) URL", c.Authn.Authorizer.URL)
	}
	if c.Authn.Authorizer.URL != "" {
		if err := c.Authn.Authorizer.HTTPClientConfig.Validate(); err != nil {
			add("authn.authorizer", "%v", err)
		}
	}
	if c.Authn.Authorizer.CacheSize <= 0 {
		add("authn.authorizer.cache_size", "must be positive")
	}
	if c.Authn.Authorizer.MaxConcurrent < 0 {
		add("authn.authorizer.max_concurrent", "must not be negative (0 = unbounded)")
	}
	if c.Authn.JWT.Expiry <= 0 {
		add("authn.jwt.expiry", "must be positive")
	}
	if tc := c.Authn.JWT.TelemeterCompat; tc.Issue && !tc.Accept {
		add("authn.jwt.telemeter_compat.issue", "requires accept: true (the gateway must accept the tokens it issues)")
	}
}
