package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/test/e2e/harness"
)

// mtlsPKI is a CA with a server certificate and client certificates.
type mtlsPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
}

func newMTLSPKI(t *testing.T) *mtlsPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := &mtlsPKI{caKey: key, pool: x509.NewCertPool()}
	p.ca, _ = x509.ParseCertificate(der)
	p.pool.AddCert(p.ca)
	p.server = p.issue(t, "", x509.ExtKeyUsageServerAuth)
	return p
}

func (p *mtlsPKI) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{"example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestReceiveClientCertificateIdentity: with ClientCertificates set, a
// remote write without Authorization is accepted as the cluster its
// verified certificate names (stamped _id), a token for another cluster
// than the certificate's is refused, and without a certificate the
// bearer token is still required.
func TestReceiveClientCertificateIdentity(t *testing.T) {
	pki := newMTLSPKI(t)
	certs, err := authn.NewCertAuthenticator(authn.CertOptions{Field: authn.CertCommonName})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.ClientCertificates = certs })
	srv := httptest.NewUnstartedServer(f.gw.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pki.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	clientFor := func(cn string) *http.Client {
		cfg := &tls.Config{RootCAs: pki.pool, ServerName: "example.com"}
		if cn != "" {
			cfg.Certificates = []tls.Certificate{pki.issue(t, cn, x509.ExtKeyUsageClientAuth)}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	body, err := harness.EncodeWriteRequest(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		ts(1, f.now.UnixMilli(), "__name__", "cluster_version", "type", "current", "instance", "i"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(c *http.Client, bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/receive", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := send(clientFor("cluster-a"), ""); code != http.StatusNoContent {
		t.Fatalf("certificate only: %d %s", code, body)
	}
	if got := f.fwd.series(); len(got) != 1 || got[0] != "__name__=cluster_version,_id=cluster-a,type=current 1" {
		t.Fatalf("forwarded %v", got)
	}
	// Token and certificate agree: fine. Disagree: 403.
	if code, body := send(clientFor("cluster-a"), harness.CompositeToken("a-token", "cluster-a")); code != http.StatusNoContent {
		t.Errorf("matching token: %d %s", code, body)
	}
	if code, body := send(clientFor("cluster-b"), harness.CompositeToken("dev", "cluster-c")); code != http.StatusForbidden {
		t.Errorf("token for another cluster than the certificate: %d %s", code, body)
	}
	// No certificate: the token is required, as before.
	if code, _ := send(clientFor(""), ""); code != http.StatusUnauthorized {
		t.Errorf("no certificate, no token: %d", code)
	}
	if code, body := send(clientFor(""), harness.CompositeToken("dev", "cluster-c")); code != http.StatusNoContent {
		t.Errorf("no certificate, token: %d %s", code, body)
	}
	// A certificate without a common name identifies nobody.
	noCN := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, ServerName: "example.com",
		Certificates: []tls.Certificate{pki.issue(t, "", x509.ExtKeyUsageClientAuth)}}}}
	if code, _ := send(noCN, ""); code != http.StatusUnauthorized {
		t.Errorf("certificate without CN: %d", code)
	}
	// A malformed Authorization header is not silently replaced by the certificate.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/receive", bytes.NewReader(body))
	req.Header.Set("Authorization", "Basic eDp5")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := clientFor("cluster-a").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Basic auth with a certificate: %d", resp.StatusCode)
	}
	// Without ClientCertificates the certificate is ignored.
	plain := newFixture(t, nil)
	srv2 := httptest.NewUnstartedServer(plain.gw.Handler())
	srv2.TLS = srv.TLS.Clone()
	srv2.StartTLS()
	t.Cleanup(srv2.Close)
	req, _ = http.NewRequest(http.MethodPost, srv2.URL+"/api/v1/receive", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err = clientFor("cluster-a").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("certificate identity used while off: %d", resp.StatusCode)
	}
}
