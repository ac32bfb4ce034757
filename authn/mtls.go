package authn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CertField names the client-certificate field that carries a cluster ID.
type CertField string

const (
	// CertCommonName takes the cluster ID from the subject's Common Name.
	CertCommonName CertField = "common_name"
	// CertURISAN takes it from a URI Subject Alternative Name, after
	// CertOptions.URIPrefix (e.g. a SPIFFE ID
	// spiffe://telemetry.example.com/cluster/<ID>).
	CertURISAN CertField = "uri_san"
	// CertDNSSAN takes it from a DNS Subject Alternative Name, before
	// CertOptions.DNSSuffix (e.g. <ID>.clusters.example.com).
	CertDNSSAN CertField = "dns_san"
)

// maxCertClusterIDLength bounds a cluster ID read from a certificate, like
// the gateway bounds the id query parameter.
const maxCertClusterIDLength = 256

// CertOptions configure a CertAuthenticator.
type CertOptions struct {
	// Field holds the cluster ID. Required.
	Field CertField
	// URIPrefix (uri_san only): only URI SANs starting with it count, and
	// the rest of the URI is the cluster ID. Empty: the whole URI.
	URIPrefix string
	// DNSSuffix (dns_san only): only DNS SANs of the form <ID>.<suffix>
	// count, and <ID> is the cluster ID: a single DNS label, non-empty,
	// without a dot, not the wildcard "*". The suffix always matches on a
	// label boundary: a leading dot is implied ("clusters.example.com" and
	// ".clusters.example.com" are the same suffix, and neither matches
	// "evilclusters.example.com"). It must be a syntactically valid DNS
	// suffix (see CheckDNSSuffix). Empty: the whole name.
	DNSSuffix string
	// AccountID is reported as the identity's account (optional).
	AccountID string
}

// CertAuthenticator reads a cluster's identity from the verified client
// certificate of a TLS connection (mutual TLS). It is an alternative to
// bearer credentials: whoever holds a certificate the gateway's client CA
// signed for cluster X may send as X. Only certificates the TLS stack
// verified against the client CA count (client_auth_type
// RequireAndVerifyClientCert or VerifyClientCertIfGiven); a certificate
// that was merely presented (RequestClientCert, RequireAnyClientCert)
// identifies nobody.
type CertAuthenticator struct {
	opts CertOptions
}

// NewCertAuthenticator validates o and returns a CertAuthenticator.
func NewCertAuthenticator(o CertOptions) (*CertAuthenticator, error) {
	switch o.Field {
	case CertCommonName, CertURISAN, CertDNSSAN:
	case "":
		return nil, fmt.Errorf("client certificate identity: the field is required (%s, %s or %s)", CertCommonName, CertURISAN, CertDNSSAN)
	default:
		return nil, fmt.Errorf("client certificate identity: unknown field %q (want %s, %s or %s)", o.Field, CertCommonName, CertURISAN, CertDNSSAN)
	}
	if o.URIPrefix != "" && o.Field != CertURISAN {
		return nil, fmt.Errorf("client certificate identity: uri_prefix applies only to %s", CertURISAN)
	}
	if o.DNSSuffix != "" && o.Field != CertDNSSAN {
		return nil, fmt.Errorf("client certificate identity: dns_suffix applies only to %s", CertDNSSAN)
	}
	if o.DNSSuffix != "" {
		if err := CheckDNSSuffix(o.DNSSuffix); err != nil {
			return nil, fmt.Errorf("client certificate identity: %w", err)
		}
		if o.DNSSuffix[0] != '.' {
			o.DNSSuffix = "." + o.DNSSuffix
		}
	}
	return &CertAuthenticator{opts: o}, nil
}

// CheckDNSSuffix returns an error unless s is a syntactically valid DNS
// suffix: an optional leading dot, then dot-separated labels of 1 to 63
// letters, digits and hyphens that neither start nor end with a hyphen,
// at most 253 bytes in all, no trailing dot.
func CheckDNSSuffix(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("dns_suffix %q is not a DNS suffix (%s); want dot-separated labels of letters, digits and '-', e.g. .clusters.example.com", s, why)
	}
	name := strings.TrimPrefix(s, ".")
	switch {
	case name == "":
		return bad("no labels")
	case len(name) > 253:
		return bad("longer than 253 bytes")
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return bad("empty label")
		case len(label) > 63:
			return bad("a label longer than 63 bytes")
		case label[0] == '-' || label[len(label)-1] == '-':
			return bad("a label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
				return bad(fmt.Sprintf("character %q", c))
			}
		}
	}
	return nil
}

// Identify returns the identity carried by the connection's verified
// client certificate. ok is false when there is none to use: no TLS, no
// certificate, a certificate that was not verified against the client CA,
// or no value in the configured field (the caller then falls back to
// bearer credentials). A certificate naming several different cluster
// IDs, or an ID that is not valid UTF-8 of at most 256 bytes, is
// Forbidden: it is verified, so its holder is known, but it cannot be
// mapped to one cluster.
func (a *CertAuthenticator) Identify(cs *tls.ConnectionState) (id Identity, ok bool, err error) {
	if a == nil || cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false, nil
	}
	ids := a.clusterIDs(cs.VerifiedChains[0][0])
	switch {
	case len(ids) == 0:
		return Identity{}, false, nil
	case len(ids) > 1:
		return Identity{}, false, NewForbidden(fmt.Sprintf("the client certificate names %d different cluster IDs in its %s", len(ids), a.opts.Field))
	}
	clusterID := ids[0]
	if len(clusterID) > maxCertClusterIDLength || !utf8.ValidString(clusterID) {
		return Identity{}, false, NewForbidden("the client certificate's cluster ID must be valid UTF-8 of at most 256 bytes")
	}
	return NewIdentity(clusterID, a.opts.AccountID), true, nil
}

// clusterIDs returns the distinct non-empty cluster IDs the certificate's
// configured field holds.
func (a *CertAuthenticator) clusterIDs(cert *x509.Certificate) []string {
	var out []string
	add := func(v string) {
		if v == "" {
			return
		}
		for _, o := range out {
			if o == v {
				return
			}
		}
		out = append(out, v)
	}
	switch a.opts.Field {
	case CertCommonName:
		add(cert.Subject.CommonName)
	case CertURISAN:
		for _, u := range cert.URIs {
			if s := u.String(); strings.HasPrefix(s, a.opts.URIPrefix) {
				add(strings.TrimPrefix(s, a.opts.URIPrefix))
			}
		}
	case CertDNSSAN:
		for _, n := range cert.DNSNames {
			if a.opts.DNSSuffix == "" {
				add(n)
				continue
			}
			// The suffix starts with a dot (NewCertAuthenticator), so it
			// matches on a label boundary; the rest must be one label.
			if id, ok := strings.CutSuffix(n, a.opts.DNSSuffix); ok && id != "*" && !strings.Contains(id, ".") {
				add(id)
			}
		}
	}
	return out
}
