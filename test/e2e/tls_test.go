package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/test/e2e/harness"
)

// testPKI is a certificate authority generated for one test.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return &testPKI{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testPKI) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a leaf certificate and key (PEM) with the given serial;
// server certificates are valid for 127.0.0.1 and localhost.
func (ca *testPKI) issue(t *testing.T, serial int64, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeFileAtomic replaces path in one rename, as a Kubernetes Secret
// volume update does.
func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	must(t, os.WriteFile(tmp, data, 0o600))
	must(t, os.Rename(tmp, path))
}

// httpsClient trusts ca and presents the certificate in certFile/keyFile
// (none when certFile is empty). Keep-alives are off so every request is
// a fresh handshake.
func httpsClient(t *testing.T, ca *testPKI, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool()}
	if certPEM != nil {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		must(t, err)
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// waitHTTPS polls url with c until it answers 200.
func waitHTTPS(t *testing.T, c *http.Client, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", url, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// servedSerial returns the serial number of the certificate the listener
// at addr presents on a fresh handshake.
func servedSerial(t *testing.T, addr string, ca *testPKI, certPEM, keyPEM []byte) int64 {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{c}})
	must(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSAndMutualTLS runs the cluster side (Prometheus + telegate client)
// against the gateway over HTTPS with mutual TLS required on the public
// listener (exporter-toolkit --web.config.file), TLS on the gateway's
// internal listener and on the client's --listen:
//
//   - the client verifies the gateway (--to-ca-file) and presents its own
//     certificate; its data reaches the downstream store;
//   - a connection without a client certificate, or with one from another
//     CA, is refused at the TLS handshake and gets no HTTP answer;
//   - a client that does not trust the gateway's CA sends nothing;
//   - the gateway's certificate is rotated on disk and the next handshake
//     presents the new one, with the same process (no restart), and data
//     keeps flowing.
func TestTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestPKI(t, "telegate test CA"), newTestPKI(t, "rogue CA")
	srvCert, srvKey := ca.issue(t, 100, "gateway", true)
	cliCert, cliKey := ca.issue(t, 200, "cluster-e2e", false)
	rogueCert, rogueKey := rogue.issue(t, 300, "cluster-e2e", false)
	files := map[string][]byte{
		"ca.pem": ca.pem, "rogue-ca.pem": rogue.pem,
		"server.pem": srvCert, "server-key.pem": srvKey,
		"client.pem": cliCert, "client-key.pem": cliKey,
		// The public listener requires a client certificate the CA signed.
		"web-public.yml": []byte(`tls_server_config:
  cert_file: server.pem
  key_file: server-key.pem
  client_ca_file: ca.pem
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12
`),
		// The internal listener and the client's --listen: TLS only.
		"web-internal.yml": []byte("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS13\n"),
	}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	p := func(name string) string { return filepath.Join(dir, name) }

	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	bin := harness.BuildBinary(t, "./cmd/telegate")
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(p("allowlist.yaml"), []byte(clientAllowlist), 0o600))
	must(t, os.WriteFile(p("tokens.yaml"), []byte(tokensYAML), 0o600))
	must(t, os.WriteFile(p("gateway.yaml"), []byte(fmt.Sprintf(`web: {listen_address: %s, internal_listen_address: %s}
authn: {tokens_file: tokens.yaml}
allowlist: {file: allowlist.yaml}
limits: {upload_interval: 1s}
forward: {url: %s, timeout: 5s, max_retry_time: 10s}
`, pub, internal, down.RemoteWriteURL())), 0o600))
	gw := harness.StartProcess(t, harness.ProcessOptions{
		Name:   "telegate-gateway",
		Binary: bin,
		Args: []string{"gateway", "--config.file=" + p("gateway.yaml"), "--log.level=debug",
			"--web.config.file=" + p("web-public.yml"), "--web.internal-config.file=" + p("web-internal.yml")},
		Dir: dir,
	})
	trusting := httpsClient(t, ca, nil, nil)
	waitHTTPS(t, trusting, "https://"+internal+"/-/ready", 30*time.Second)
	gwPid := gw.Pid()

	// Every listener speaks TLS only.
	resp, err := http.Get("http://" + internal + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "telegate_") {
			t.Errorf("internal listener answered plain HTTP: %d", resp.StatusCode)
		}
	}

	// mTLS is enforced: no certificate, or one from another CA, is
	// refused at the handshake; the gateway never answers.
	for name, c := range map[string]*http.Client{
		"no client certificate":     trusting,
		"certificate of another CA": httpsClient(t, ca, rogueCert, rogueKey),
	} {
		resp, err := c.Post("https://"+pub+"/authorize?id=cluster-e2e", "", nil)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: HTTP %d, want a refused handshake", name, resp.StatusCode)
			continue
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: %v, want a TLS certificate error", name, err)
		}
	}
	// With a certificate the request gets through TLS to authentication.
	withCert := httpsClient(t, ca, cliCert, cliKey)
	resp, err = withCert.Post("https://"+pub+"/authorize?id=cluster-e2e", "", nil)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("authorize without token over mTLS: %d, want 401", resp.StatusCode)
	}

	// The cluster: Prometheus + telegate client over mTLS, and a second
	// client that does not trust the gateway's CA.
	cluster := startCluster(t)
	cluster.QueryEventually(t, `cluster:node_info`, harness.Len(1), 30*time.Second)
	startTLSClient := func(name, id, caFile string) string {
		listen := harness.FreeAddr(t)
		harness.StartProcess(t, harness.ProcessOptions{
			Name:   name,
			Binary: bin,
			Args: []string{"client", "--listen=" + listen, "--log.level=debug", "--web.config.file=" + p("web-internal.yml"),
				"--from=" + cluster.URL(), "--to=https://" + pub, "--id=" + id, "--to-token=fleet-token",
				`--match={__name__="cluster:node_info"}`, "--interval=2s", "--min-backoff=200ms", "--max-backoff=1s",
				"--to-ca-file=" + caFile, "--to-cert-file=" + p("client.pem"), "--to-key-file=" + p("client-key.pem")},
		})
		waitHTTPS(t, trusting, "https://"+listen+"/-/ready", 30*time.Second)
		return "https://" + listen + "/metrics"
	}
	goodMetrics := startTLSClient("telegate-client", "cluster-e2e", p("ca.pem"))
	badMetrics := startTLSClient("telegate-client-untrusting", "cluster-untrusting", p("rogue-ca.pem"))

	down.QueryEventually(t, `cluster:node_info{_id="cluster-e2e"}`, harness.Len(1), 60*time.Second)
	if v := scrapeValue(t, trusting, goodMetrics, "telegate_client_snapshots_total", "result", "sent"); v < 1 {
		t.Errorf("client over mTLS: snapshots sent = %v", v)
	}

	// The untrusting client fails every attempt at the TLS layer.
	deadline := time.Now().Add(30 * time.Second)
	for scrapeValue(t, trusting, badMetrics, "telegate_client_authorize_requests_total", "result", "network_error") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the client that does not trust the gateway's CA did not fail to connect")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := scrapeValue(t, trusting, badMetrics, "telegate_client_snapshots_total", "result", "sent"); v != 0 {
		t.Errorf("untrusting client sent %v snapshots", v)
	}
	if v := down.Query(t, `count({_id="cluster-untrusting"})`); len(v) != 0 {
		t.Errorf("data from the untrusting client arrived: %v", v)
	}

	// Rotation: a new server certificate replaces the old files. The next
	// handshake presents it, on the same process.
	if s := servedSerial(t, pub, ca, cliCert, cliKey); s != 100 {
		t.Fatalf("served serial %d before rotation, want 100", s)
	}
	newCert, newKey := ca.issue(t, 101, "gateway", true)
	// Key first, then certificate: for a moment they mismatch and a
	// handshake fails, which the client retries.
	writeFileAtomic(t, p("server-key.pem"), newKey)
	writeFileAtomic(t, p("server.pem"), newCert)
	if s := servedSerial(t, pub, ca, cliCert, cliKey); s != 101 {
		t.Fatalf("served serial %d after rotation, want 101 (certificate not reloaded)", s)
	}
	if s := servedSerial(t, internal, ca, cliCert, cliKey); s != 101 {
		t.Errorf("internal listener serves serial %d after rotation, want 101", s)
	}
	if gw.Pid() != gwPid {
		t.Fatalf("gateway restarted during rotation")
	}
	// Data keeps flowing after the rotation: new samples arrive.
	before := scrapeValue(t, trusting, goodMetrics, "telegate_client_snapshots_total", "result", "sent")
	since := time.Now()
	down.QueryEventually(t, fmt.Sprintf(`timestamp(cluster:node_info{_id="cluster-e2e"}) > %d`, since.Unix()), harness.Len(1), 30*time.Second)
	// The client counts a snapshot once it has read the answer, a moment
	// after the gateway forwarded it.
	deadline = time.Now().Add(15 * time.Second)
	for after := before; after <= before; after = scrapeValue(t, trusting, goodMetrics, "telegate_client_snapshots_total", "result", "sent") {
		if time.Now().After(deadline) {
			t.Fatalf("snapshots sent %v -> %v after rotation", before, after)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The gateway's log never carries a token, even at debug level.
	if strings.Contains(gw.Stderr(), "fleet-token") {
		t.Errorf("the gateway logged a token")
	}
}
