package config

import (
	"fmt"

	"github.com/telegate/telegate/bucket"

	"github.com/telegate/telegate/privacy"
)

// Privacy configures the PII guard (package privacy): what it does with
// label values that look like personal data, in the series the allowlist
// kept, before stamping and budgets.
type Privacy struct {
	// Shadow only counts what the guard would do.
	Shadow bool `yaml:"shadow"`
	// HashKeyFile holds the key of the hash action (any bytes; the same
	// on every replica so equal values hash equal everywhere). Empty: a
	// random key per start, with a warning.
	HashKeyFile string `yaml:"hash_key_file"`
	// Detectors is the action per detector: off, shadow, hash, redact or
	// drop.
	Detectors PrivacyDetectors `yaml:"detectors"`
	// Metrics overrides Detectors per metric name:
	// {metric: {detector: action}}.
	Metrics map[string]map[string]string `yaml:"metrics"`
	// HostnameSuffixes are the domains whose host names the hostname
	// detector finds.
	HostnameSuffixes []string `yaml:"hostname_suffixes"`
	// TokenMinLength is the shortest run the token detector looks at.
	TokenMinLength int `yaml:"token_min_length"`
	// OptOutFile lists installations that opted out (privacy.ParseOptOuts'
	// format); their requests are 403 opted_out. Reloaded on SIGHUP, POST
	// /-/reload and when it changes (every allowlist.watch_interval).
	OptOutFile string `yaml:"opt_out_file"`
	// DeletionsBucket keeps the installations' deletion requests (every
	// replica must share it). Type "" = the spool's bucket when
	// forwarding, FILESYSTEM under storage.path in single-binary mode.
	DeletionsBucket bucket.Config `yaml:"deletions_bucket"`
	// ExemptLabels are never inspected (besides __name__, le, quantile
	// and the cluster ID label).
	ExemptLabels []string `yaml:"exempt_labels"`
}

// PrivacyDetectors is the action of each detector.
type PrivacyDetectors struct {
	Email          string `yaml:"email"`
	IP             string `yaml:"ip"`
	MAC            string `yaml:"mac"`
	URLCredentials string `yaml:"url_credentials"`
	Hostname       string `yaml:"hostname"`
	Token          string `yaml:"token"`
}

// defaultPrivacy: e-mail, IP, MAC and URL credentials hashed; host names
// (which need their domains) and tokens off.
func defaultPrivacy() Privacy {
	return Privacy{
		Detectors: PrivacyDetectors{
			Email: "hash", IP: "hash", MAC: "hash", URLCredentials: "hash",
			Hostname: "off", Token: "off",
		},
		TokenMinLength: 32,
	}
}

// byDetector returns the detectors' actions indexed by privacy.Detector.
func (d PrivacyDetectors) byDetector() map[privacy.Detector]string {
	return map[privacy.Detector]string{
		privacy.Email: d.Email, privacy.IP: d.IP, privacy.MAC: d.MAC,
		privacy.URLCredentials: d.URLCredentials, privacy.Hostname: d.Hostname, privacy.Token: d.Token,
	}
}

// GuardOptions returns the privacy.Options of the section (without Key,
// Registerer and ExemptLabels' cluster ID label, which the caller adds).
// Call it on a validated config.
func (p Privacy) GuardOptions() (privacy.Options, error) {
	o := privacy.Options{
		Shadow:           p.Shadow,
		HostnameSuffixes: p.HostnameSuffixes,
		TokenMinLength:   p.TokenMinLength,
		ExemptLabels:     append([]string(nil), p.ExemptLabels...),
	}
	for d, name := range p.Detectors.byDetector() {
		a, ok := privacy.ParseAction(name)
		if !ok {
			return o, fmt.Errorf("privacy.detectors.%s: %q must be off, shadow, hash, redact or drop", d, name)
		}
		o.Actions[d] = a
	}
	if len(p.Metrics) > 0 {
		o.Metrics = map[string]map[privacy.Detector]privacy.Action{}
		for metric, m := range p.Metrics {
			o.Metrics[metric] = map[privacy.Detector]privacy.Action{}
			for dn, an := range m {
				d, ok := privacy.ParseDetector(dn)
				if !ok {
					return o, fmt.Errorf("privacy.metrics.%s: unknown detector %q (email, ip, mac, url_credentials, hostname, token)", metric, dn)
				}
				a, ok := privacy.ParseAction(an)
				if !ok {
					return o, fmt.Errorf("privacy.metrics.%s.%s: %q must be off, shadow, hash, redact or drop", metric, dn, an)
				}
				o.Metrics[metric][d] = a
			}
		}
	}
	return o, nil
}

// validatePrivacy checks the privacy section: known detectors and actions,
// host name suffixes when the hostname detector is on.
func (c *Config) validatePrivacy(add addFunc) {
	o, err := c.Privacy.GuardOptions()
	if err != nil {
		add("privacy", "%v", err)
		return
	}
	if c.Privacy.TokenMinLength < 8 {
		add("privacy.token_min_length", "must be at least 8")
	}
	if b := c.Privacy.DeletionsBucket; b.Type != "" {
		if err := b.Validate(); err != nil {
			add("privacy.deletions_bucket", "%v", err)
		}
	}
	// A key so New can check everything else; the real one is read later.
	o.Key = []byte("validate")
	if _, err := privacy.New(o); err != nil {
		add("privacy", "%v", err)
	}
}
