package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue signs a leaf certificate shaped by edit.
func (ca *testCA) issue(t *testing.T, usage x509.ExtKeyUsage, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake runs a real TLS handshake over a pipe and returns the
// server's view of the connection.
func handshake(t *testing.T, ca *testCA, auth tls.ClientAuthType, clientCert *tls.Certificate) tls.ConnectionState {
	t.Helper()
	serverCert := ca.issue(t, x509.ExtKeyUsageServerAuth, func(c *x509.Certificate) { c.DNSNames = []string{"gateway"} })
	cConn, sConn := net.Pipe()
	srv := tls.Server(sConn, &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: auth, ClientCAs: ca.pool,
		// net.Pipe is unbuffered: no post-handshake tickets nobody reads.
		SessionTicketsDisabled: true})
	ccfg := &tls.Config{RootCAs: ca.pool, ServerName: "gateway"}
	if clientCert != nil {
		// Present the certificate even when the server's CA list does not
		// name its issuer (the forged-certificate case).
		ccfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return clientCert, nil }
	}
	cli := tls.Client(cConn, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	t.Cleanup(func() { cConn.Close(); sConn.Close() }) // no close_notify: nobody reads it
	return srv.ConnectionState()
}

func TestCertAuthenticatorFields(t *testing.T) {
	ca := newTestCA(t, "clusters CA")
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for name, tc := range map[string]struct {
		opts    CertOptions
		edit    func(*x509.Certificate)
		want    string // "" = no identity
		wantErr string
	}{
		"common name":    {CertOptions{Field: CertCommonName}, func(c *x509.Certificate) { c.Subject.CommonName = "cluster-a" }, "cluster-a", ""},
		"no common name": {CertOptions{Field: CertCommonName}, func(c *x509.Certificate) { c.DNSNames = []string{"x"} }, "", ""},
		"uri with prefix": {CertOptions{Field: CertURISAN, URIPrefix: "spiffe://telemetry/cluster/"}, func(c *x509.Certificate) {
			c.Subject.CommonName = "ignored"
			c.URIs = []*url.URL{mustURL("spiffe://other/x"), mustURL("spiffe://telemetry/cluster/cluster-b")}
		}, "cluster-b", ""},
		"uri other prefix only": {CertOptions{Field: CertURISAN, URIPrefix: "spiffe://telemetry/cluster/"}, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL("spiffe://other/cluster/x")}
		}, "", ""},
		"two uris two ids": {CertOptions{Field: CertURISAN, URIPrefix: "spiffe://telemetry/cluster/"}, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL("spiffe://telemetry/cluster/a"), mustURL("spiffe://telemetry/cluster/b")}
		}, "", "2 different cluster IDs"},
		"dns with suffix": {CertOptions{Field: CertDNSSAN, DNSSuffix: ".clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"www.example.com", "cluster-c.clusters.example.com", "cluster-c.clusters.example.com"}
		}, "cluster-c", ""},
		"dns suffix alone is no id": {CertOptions{Field: CertDNSSAN, DNSSuffix: ".clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{".clusters.example.com"}
		}, "", ""},
		// The suffix matches on a label boundary even when configured
		// without its leading dot: "evilclusters.example.com" is not a
		// name under "clusters.example.com".
		"dns suffix without dot, look-alike name": {CertOptions{Field: CertDNSSAN, DNSSuffix: "clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"evilclusters.example.com"}
		}, "", ""},
		"dns suffix without dot": {CertOptions{Field: CertDNSSAN, DNSSuffix: "clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"evilclusters.example.com", "cluster-e.clusters.example.com"}
		}, "cluster-e", ""},
		"dns suffix with dot, look-alike name": {CertOptions{Field: CertDNSSAN, DNSSuffix: ".clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"evilclusters.example.com", "clusters.example.com"}
		}, "", ""},
		// The ID is one label: deeper names and wildcards name no cluster.
		"dns nested name is no id": {CertOptions{Field: CertDNSSAN, DNSSuffix: ".clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"api.cluster-f.clusters.example.com"}
		}, "", ""},
		"dns wildcard is no id": {CertOptions{Field: CertDNSSAN, DNSSuffix: ".clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"*.clusters.example.com"}
		}, "", ""},
		"dns nested name next to an id": {CertOptions{Field: CertDNSSAN, DNSSuffix: "clusters.example.com"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"api.cluster-f.clusters.example.com", "cluster-g.clusters.example.com"}
		}, "cluster-g", ""},
		"dns whole name": {CertOptions{Field: CertDNSSAN}, func(c *x509.Certificate) { c.DNSNames = []string{"cluster-d"} }, "cluster-d", ""},
		"id too long": {CertOptions{Field: CertURISAN, URIPrefix: "urn:cluster:"}, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL("urn:cluster:" + strings.Repeat("x", 300))}
		}, "", "at most 256 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := NewCertAuthenticator(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			leaf := ca.issue(t, x509.ExtKeyUsageClientAuth, tc.edit)
			cs := handshake(t, ca, tls.RequireAndVerifyClientCert, &leaf)
			id, ok, err := a.Identify(&cs)
			if tc.wantErr != "" {
				if err == nil || KindOf(err) != Forbidden || !strings.Contains(err.Error(), tc.wantErr) || ok {
					t.Fatalf("Identify = %v, %v, %v; want Forbidden containing %q", id, ok, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if ok {
					t.Fatalf("identity %+v from a certificate without one", id)
				}
				return
			}
			if !ok || id.ClusterID != tc.want || id.Labels[ClusterIDLabel] != tc.want {
				t.Fatalf("Identify = %+v, %v; want cluster %q", id, ok, tc.want)
			}
		})
	}
}

// A certificate the TLS stack did not verify against the client CA
// identifies nobody, whatever it says.
func TestCertAuthenticatorNeedsVerifiedChain(t *testing.T) {
	ca, rogue := newTestCA(t, "clusters CA"), newTestCA(t, "rogue CA")
	a, err := NewCertAuthenticator(CertOptions{Field: CertCommonName, AccountID: "acct"})
	if err != nil {
		t.Fatal(err)
	}
	forged := rogue.issue(t, x509.ExtKeyUsageClientAuth, func(c *x509.Certificate) { c.Subject.CommonName = "cluster-a" })
	cs := handshake(t, ca, tls.RequireAnyClientCert, &forged)
	if len(cs.PeerCertificates) != 1 {
		t.Fatalf("the forged certificate was not presented: %d", len(cs.PeerCertificates))
	}
	if id, ok, err := a.Identify(&cs); ok || err != nil {
		t.Fatalf("unverified certificate: %+v, %v, %v", id, ok, err)
	}
	none := handshake(t, ca, tls.VerifyClientCertIfGiven, nil)
	if _, ok, err := a.Identify(&none); ok || err != nil {
		t.Fatalf("no certificate: %v, %v", ok, err)
	}
	if _, ok, _ := a.Identify(nil); ok {
		t.Fatal("plain HTTP gave an identity")
	}
	good := ca.issue(t, x509.ExtKeyUsageClientAuth, func(c *x509.Certificate) { c.Subject.CommonName = "cluster-a" })
	cs = handshake(t, ca, tls.VerifyClientCertIfGiven, &good)
	id, ok, err := a.Identify(&cs)
	if !ok || err != nil || id.ClusterID != "cluster-a" || id.AccountID != "acct" {
		t.Fatalf("verified certificate: %+v, %v, %v", id, ok, err)
	}
	var nilAuth *CertAuthenticator
	if _, ok, _ := nilAuth.Identify(&cs); ok {
		t.Fatal("a nil CertAuthenticator identified a cluster")
	}
}

func TestNewCertAuthenticatorValidates(t *testing.T) {
	for _, o := range []CertOptions{
		{},
		{Field: "subject"},
		{Field: CertCommonName, URIPrefix: "spiffe://x/"},
		{Field: CertURISAN, DNSSuffix: ".x"},
		{Field: CertDNSSAN, DNSSuffix: "."},
		{Field: CertDNSSAN, DNSSuffix: "clusters..example.com"},
		{Field: CertDNSSAN, DNSSuffix: "..example.com"},
		{Field: CertDNSSAN, DNSSuffix: "clusters.example.com."},
		{Field: CertDNSSAN, DNSSuffix: "-clusters.example.com"},
		{Field: CertDNSSAN, DNSSuffix: "clusters-.example.com"},
		{Field: CertDNSSAN, DNSSuffix: "clus_ters.example.com"},
		{Field: CertDNSSAN, DNSSuffix: "*.example.com"},
		{Field: CertDNSSAN, DNSSuffix: "clusters example.com"},
		{Field: CertDNSSAN, DNSSuffix: strings.Repeat("a", 64) + ".example.com"},
		{Field: CertDNSSAN, DNSSuffix: strings.Repeat("abcdefg.", 32) + "com"},
	} {
		if _, err := NewCertAuthenticator(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, s := range []string{"clusters.example.com", ".clusters.example.com", "com", "c-1.Example.COM", strings.Repeat("a", 63) + ".example.com"} {
		if _, err := NewCertAuthenticator(CertOptions{Field: CertDNSSAN, DNSSuffix: s}); err != nil {
			t.Errorf("dns_suffix %q refused: %v", s, err)
		}
	}
}
