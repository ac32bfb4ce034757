package config

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestClientCertificate(t *testing.T) {
	c, err := Parse([]byte(minimal), "gw.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Authn.ClientCertificate != (ClientCertificate{}) {
		t.Errorf("client certificate identity on by default: %+v", c.Authn.ClientCertificate)
	}
	// A certificate-only gateway needs no tokens file nor authorizer.
	c, err = Parse([]byte("authn:\n  tokens_file: ''\n  client_certificate:\n    cluster_id_from: uri_san\n    uri_prefix: spiffe://telemetry/cluster/\n"+minimal), "gw.yaml", fstest.MapFS{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.Authn.ClientCertificate; cc.ClusterIDFrom != "uri_san" || cc.URIPrefix != "spiffe://telemetry/cluster/" {
		t.Errorf("parsed %+v", cc)
	}
	// A DNS suffix with or without its leading dot is valid (the dot is
	// implied: the suffix always matches on a label boundary).
	for _, suffix := range []string{"clusters.example.com", ".clusters.example.com"} {
		if _, err := Parse([]byte("authn:\n  client_certificate: {cluster_id_from: dns_san, dns_suffix: "+suffix+"}\n"+minimal), "gw.yaml", fstest.MapFS{}, ""); err != nil {
			t.Errorf("dns_suffix %q: %v", suffix, err)
		}
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown field":       {"authn:\n  client_certificate: {cluster_id_from: subject}\n", "authn.client_certificate.cluster_id_from"},
		"prefix on cn":        {"authn:\n  client_certificate: {cluster_id_from: common_name, uri_prefix: x}\n", "authn.client_certificate.uri_prefix"},
		"suffix on uri":       {"authn:\n  client_certificate: {cluster_id_from: uri_san, dns_suffix: .x}\n", "authn.client_certificate.dns_suffix"},
		"unknown key":         {"authn:\n  client_certificate: {cluster_id_form: dns_san}\n", "cluster_id_form"},
		"no auth at all":      {"authn:\n  tokens_file: ''\n", "client_certificate.cluster_id_from"},
		"suffix empty label":  {"authn:\n  client_certificate: {cluster_id_from: dns_san, dns_suffix: clusters..example.com}\n", "authn.client_certificate.dns_suffix"},
		"suffix bad char":     {"authn:\n  client_certificate: {cluster_id_from: dns_san, dns_suffix: '*.example.com'}\n", "authn.client_certificate.dns_suffix"},
		"suffix only a dot":   {"authn:\n  client_certificate: {cluster_id_from: dns_san, dns_suffix: .}\n", "authn.client_certificate.dns_suffix"},
		"suffix trailing dot": {"authn:\n  client_certificate: {cluster_id_from: dns_san, dns_suffix: clusters.example.com.}\n", "authn.client_certificate.dns_suffix"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc+minimal), "gw.yaml", fstest.MapFS{}, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
