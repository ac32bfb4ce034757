package forward

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"
)

// connServer is an httptest server that counts the connections it
// accepted and has closed.
type connServer struct {
	*httptest.Server
	rec    *recorder
	opened atomic.Int32
	closed atomic.Int32
}

func newConnServer(t *testing.T, tlsServer bool, answer func(n int, w http.ResponseWriter, r *http.Request)) *connServer {
	t.Helper()
	rec := &recorder{answer: answer}
	cs := startConnServer(t, rec, func(srv *httptest.Server) {
		if tlsServer {
			srv.StartTLS()
		} else {
			srv.Start()
		}
	})
	cs.rec = rec
	return cs
}

// startConnServer serves h, started by start (Start, StartTLS after
// setting TLS, ...).
func startConnServer(t *testing.T, h http.Handler, start func(*httptest.Server)) *connServer {
	t.Helper()
	cs := &connServer{}
	cs.Server = httptest.NewUnstartedServer(h)
	cs.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // expected TLS failures
	cs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			cs.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			cs.closed.Add(1)
		}
	}
	start(cs.Server)
	t.Cleanup(cs.Close)
	return cs
}

// newFastSender is newSender that insists on the synchronous transport.
func newFastSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s := newSender(t, cfg, nil, nil)
	if !s.fast {
		t.Fatalf("the sender does not use the HTTP/1.1 fast path: %s", fastPathUnsupported(&cfg))
	}
	return s
}

func sendN(t *testing.T, s *Sender, n int) {
	t.Helper()
	_, body := testBody(t)
	for i := range n {
		if err := s.Send(context.Background(), body); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

func TestFastPathKeepAlive(t *testing.T) {
	cs := newConnServer(t, false, nil)
	s := newFastSender(t, Config{URL: cs.URL + "/api/v1/receive"})
	sendN(t, s, 20)
	if n := cs.rec.attempts.Load(); n != 20 {
		t.Fatalf("%d requests arrived", n)
	}
	if n := cs.opened.Load(); n != 1 {
		t.Fatalf("20 sequential sends used %d connections, want 1", n)
	}
	_, body := testBody(t)
	for i, b := range cs.rec.bodies {
		if string(b) != string(body) {
			t.Fatalf("body %d differs", i)
		}
	}
	// Close releases the idle connection.
	s.Close()
	waitFor(t, func() bool { return cs.closed.Load() == 1 })
}

// Bodies larger than the write buffer arrive whole, in order.
func TestFastPathLargeBody(t *testing.T) {
	cs := newConnServer(t, false, nil)
	s := newFastSender(t, Config{URL: cs.URL})
	body := benchPayload()
	for len(body) < 1<<20+12345 {
		body = append(body, body...)
	}
	body = body[:1<<20+12345]
	for range 3 {
		if err := s.Send(context.Background(), body); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range cs.rec.bodies {
		if !bytes.Equal(b, body) {
			t.Fatalf("body %d: %d bytes differ from the %d sent", i, len(b), len(body))
		}
	}
	if n := cs.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// The 5xx retries reuse the connection: the answers are drained.
func TestFastPathRetriesKeepConnection(t *testing.T) {
	cs := newConnServer(t, false, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, strings.Repeat("busy ", 1000), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s := newFastSender(t, Config{URL: cs.URL})
	sendN(t, s, 1)
	if n := cs.rec.attempts.Load(); n != 3 {
		t.Fatalf("%d attempts", n)
	}
	if v := counter(t, s.m.retries); v != 2 {
		t.Fatalf("retries = %v", v)
	}
	if n := cs.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestFastPathConcurrent(t *testing.T) {
	cs := newConnServer(t, false, nil)
	s := newFastSender(t, Config{URL: cs.URL})
	_, body := testBody(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if err := s.Send(context.Background(), body); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cs.rec.attempts.Load(); n != workers*each {
		t.Fatalf("%d requests arrived", n)
	}
	if n := cs.opened.Load(); n > workers {
		t.Fatalf("%d connections for %d concurrent senders", n, workers)
	}
}

func TestFastPathConnectionClose(t *testing.T) {
	cs := newConnServer(t, false, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok")
	})
	s := newFastSender(t, Config{URL: cs.URL})
	for range 5 {
		sendN(t, s, 1)
		if n := findH1(t, s).idleCount(); n != 0 {
			t.Fatalf("%d idle connections after Connection: close", n)
		}
	}
	if n := cs.opened.Load(); n != 5 {
		t.Fatalf("%d connections for 5 answers with Connection: close", n)
	}
}

func TestFastPathChunkedAnswers(t *testing.T) {
	cs := newConnServer(t, false, func(n int, w http.ResponseWriter, _ *http.Request) {
		status := http.StatusOK
		if n == 1 {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		for i := range 5 {
			fmt.Fprintf(w, "part %d; ", i)
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	})
	s := newFastSender(t, Config{URL: cs.URL})
	_, body := testBody(t)
	e := asError(t, s.Send(context.Background(), body))
	if e.Status != 400 || e.Msg != "part 0; part 1; part 2; part 3; part 4;" {
		t.Fatalf("unexpected error %+v", e)
	}
	sendN(t, s, 3)
	if n := cs.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 (chunked answers read to the end)", n)
	}
}

// hijack answers with raw bytes and closes the connection.
func hijack(t *testing.T, w http.ResponseWriter, raw string) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	io.WriteString(conn, raw)
	conn.Close()
}

func TestFastPathServerClosesMidAnswer(t *testing.T) {
	cs := newConnServer(t, false, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			hijack(t, w, "HTTP/1.1 200 OK\r\nContent-Le")
		case 2:
			hijack(t, w, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1000\r\n\r\nshort")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	s := newFastSender(t, Config{URL: cs.URL})
	h1 := findH1(t, s)
	_, body := testBody(t)
	ctx := context.Background()
	// 1: the head breaks off: an error; the Sender retries on a new
	// connection (2: a 500 whose body breaks off), then 3 succeeds.
	if err := s.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
	if n := cs.rec.attempts.Load(); n != 3 {
		t.Fatalf("%d attempts", n)
	}
	if v := counter(t, s.m.requests.WithLabelValues("error")); v != 1 {
		t.Fatalf("requests{error} = %v", v)
	}
	if v := counter(t, s.m.requests.WithLabelValues("5xx")); v != 1 {
		t.Fatalf("requests{5xx} = %v", v)
	}
	if n := cs.opened.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (a broken one is never reused)", n)
	}
	if n := h1.idleCount(); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	sendN(t, s, 2)
	if n := cs.opened.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// A kept-alive connection the server closed while idle is replaced at
// once, without a failed attempt.
func TestFastPathIdleConnectionClosedByServer(t *testing.T) {
	cs := newConnServer(t, false, nil)
	s := newFastSender(t, Config{URL: cs.URL})
	sendN(t, s, 1)
	cs.CloseClientConnections()
	waitFor(t, func() bool { return cs.closed.Load() == 1 })
	sendN(t, s, 1)
	if v := counter(t, s.m.retries); v != 0 {
		t.Fatalf("retries = %v, want 0", v)
	}
	if v := counter(t, s.m.requests.WithLabelValues("error")); v != 0 {
		t.Fatalf("requests{error} = %v, want 0", v)
	}
	if n := cs.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestFastPathAttemptTimeout(t *testing.T) {
	for _, where := range []string{"head", "body"} {
		t.Run(where, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			cs := newConnServer(t, false, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					if where == "body" {
						w.Header().Set("Content-Length", "100")
						w.WriteHeader(http.StatusServiceUnavailable)
						io.WriteString(w, "overloaded")
						w.(http.Flusher).Flush()
					}
					select {
					case <-r.Context().Done():
					case <-release:
					}
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			const timeout = 150 * time.Millisecond
			s := newFastSender(t, Config{URL: cs.URL, Timeout: timeout})
			_, body := testBody(t)
			start := time.Now()
			e := s.attempt(context.Background(), body, MessageV1)
			el := time.Since(start)
			if e == nil || !e.Recoverable {
				t.Fatalf("attempt on a hung server: %+v", e)
			}
			if el < timeout || el > timeout+time.Second { // the hang is 5s+
				t.Fatalf("attempt took %v with a %v timeout", el, timeout)
			}
			if where == "head" && !errors.Is(e, context.DeadlineExceeded) {
				t.Fatalf("error %v is not DeadlineExceeded", e)
			}
			if where == "body" && (e.Status != 503 || e.Msg != "overloaded") {
				t.Fatalf("error %+v", e)
			}
			if err := s.Send(context.Background(), body); err != nil {
				t.Fatalf("send after the timeout: %v", err)
			}
			if n := cs.opened.Load(); n != 2 {
				t.Fatalf("%d connections, want 2 (the timed-out one is dropped)", n)
			}
		})
	}
}

func TestFastPathCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	cs := newConnServer(t, false, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s := newFastSender(t, Config{URL: cs.URL})
	_, body := testBody(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	err := s.Send(ctx, body)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Send took %v after cancel", el)
	}
	e := asError(t, err)
	if !e.Recoverable || e.Status != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected error %+v", e)
	}
	sendN(t, s, 1)
	if n := cs.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestFastPathRedirects(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprint("follow=", follow), func(t *testing.T) {
			cs := newConnServer(t, false, func(_ int, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/old" {
					http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			s := newFastSender(t, Config{URL: cs.URL + "/old", HTTPClientConfig: config_util.HTTPClientConfig{FollowRedirects: follow}})
			_, body := testBody(t)
			err := s.Send(context.Background(), body)
			if !follow {
				e := asError(t, err)
				if e.Status != http.StatusTemporaryRedirect || e.Recoverable {
					t.Fatalf("unexpected error %+v", e)
				}
				if n := cs.rec.attempts.Load(); n != 1 {
					t.Fatalf("%d requests: the redirect was followed", n)
				}
				return
			}
			// follow_redirects: true keeps net/http's behaviour: a 307
			// is sent again, body and all.
			if err != nil {
				t.Fatal(err)
			}
			if n := cs.rec.attempts.Load(); n != 2 || string(cs.rec.bodies[1]) != string(body) {
				t.Fatalf("%d requests; the redirected one had %d bytes", n, len(cs.rec.bodies[len(cs.rec.bodies)-1]))
			}
			if n := cs.opened.Load(); n != 1 {
				t.Fatalf("%d connections, want 1", n)
			}
		})
	}
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(f, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFastPathTLS(t *testing.T) {
	cs := newConnServer(t, true, nil)
	ca := writeCA(t, cs.Server)
	hc := config_util.HTTPClientConfig{TLSConfig: config_util.TLSConfig{CAFile: ca}}
	s := newFastSender(t, Config{URL: cs.URL})
	_, body := testBody(t)
	// Without the CA the server's certificate is unknown.
	if e := s.attempt(context.Background(), body, MessageV1); e == nil || !strings.Contains(e.Msg, "certificate") {
		t.Fatalf("attempt without the CA: %+v", e)
	}
	s = newFastSender(t, Config{URL: cs.URL, HTTPClientConfig: hc})
	before := cs.opened.Load()
	sendN(t, s, 5)
	if n := cs.opened.Load() - before; n != 1 {
		t.Fatalf("%d TLS connections for 5 sends, want 1", n)
	}
	// A wrong server_name fails verification: the TLS config is used.
	hc.TLSConfig.ServerName = "elsewhere.example"
	s = newFastSender(t, Config{URL: cs.URL, HTTPClientConfig: hc})
	if e := s.attempt(context.Background(), body, MessageV1); e == nil || !strings.Contains(e.Msg, "elsewhere.example") {
		t.Fatalf("attempt with a wrong server_name: %+v", e)
	}
}

// selfSigned returns a new self-signed certificate and its key, PEM.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tls_config's files are re-read as prometheus/common's client re-reads
// them: a changed CA or client certificate applies to new connections.
func TestFastPathTLSFilesReload(t *testing.T) {
	var mu sync.Mutex
	var peers []string
	cs := startConnServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		peers = append(peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}), func(srv *httptest.Server) {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.StartTLS()
	})
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(f string, b []byte) {
		t.Helper()
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wrongCA, _ := selfSigned(t, "wrong CA")
	write(caFile, wrongCA)
	cert, key := selfSigned(t, "client one")
	write(certFile, cert)
	write(keyFile, key)
	hc := config_util.HTTPClientConfig{TLSConfig: config_util.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}
	s := newFastSender(t, Config{URL: cs.URL, HTTPClientConfig: hc})
	_, body := testBody(t)
	if e := s.attempt(context.Background(), body, MessageV1); e == nil || !strings.Contains(e.Msg, "certificate") {
		t.Fatalf("attempt with the wrong CA: %+v", e)
	}
	write(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cs.Certificate().Raw}))
	sendN(t, s, 2)
	cert, key = selfSigned(t, "client two")
	write(certFile, cert)
	write(keyFile, key)
	sendN(t, s, 2)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"client one", "client one", "client two", "client two"}; fmt.Sprint(peers) != fmt.Sprint(want) {
		t.Fatalf("client certificates %q, want %q", peers, want)
	}
}

func TestFastPathAuthFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	tok := filepath.Join(dir, "token")
	write := func(f, v string) {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(pw, "pass")
	write(tok, "tok1")
	cases := map[string]struct {
		http       config_util.HTTPClientConfig
		file       string
		want, next string
	}{
		"basic_auth password_file": {
			http: config_util.HTTPClientConfig{BasicAuth: &config_util.BasicAuth{Username: "user", PasswordFile: pw}},
			file: pw, want: "Basic dXNlcjpwYXNz", next: "Basic dXNlcjpwYXNzMg==", // user:pass2
		},
		"authorization credentials_file": {
			http: config_util.HTTPClientConfig{Authorization: &config_util.Authorization{CredentialsFile: tok}},
			file: tok, want: "Bearer tok1", next: "Bearer pass2",
		},
		"bearer_token_file": {
			http: config_util.HTTPClientConfig{BearerTokenFile: tok},
			file: tok, want: "Bearer tok1", next: "Bearer pass2",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			write(pw, "pass")
			write(tok, "tok1")
			cs := newConnServer(t, false, nil)
			s := newFastSender(t, Config{URL: cs.URL, HTTPClientConfig: tc.http})
			sendN(t, s, 1)
			write(tc.file, "pass2") // re-read for every request
			sendN(t, s, 1)
			if got := cs.rec.headers[0].Get("Authorization"); got != tc.want {
				t.Fatalf("Authorization = %q, want %q", got, tc.want)
			}
			if got := cs.rec.headers[1].Get("Authorization"); got != tc.next {
				t.Fatalf("after the file changed: Authorization = %q, want %q", got, tc.next)
			}
		})
	}
}

func TestFastPathHTTPHeaders(t *testing.T) {
	cs := newConnServer(t, false, nil)
	hc := config_util.HTTPClientConfig{HTTPHeaders: &config_util.Headers{Headers: map[string]config_util.Header{
		"X-Extra": {Values: []string{"v"}},
	}}}
	s := newFastSender(t, Config{URL: cs.URL, HTTPClientConfig: hc})
	sendN(t, s, 1)
	if got := cs.rec.headers[0].Get("X-Extra"); got != "v" {
		t.Fatalf("X-Extra = %q", got)
	}
}

func TestFastPathChoice(t *testing.T) {
	off := false
	proxy, _ := newURL("http://proxy:3128")
	cases := []struct {
		name string
		cfg  Config
		fast bool
	}{
		{"http", Config{URL: "http://r/api"}, true},
		{"http with enable_http2", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{EnableHTTP2: true, FollowRedirects: true}}, true},
		{"https", Config{URL: "https://r/api"}, true},
		{"https with enable_http2", Config{URL: "https://r/api", HTTPClientConfig: config_util.HTTPClientConfig{EnableHTTP2: true}}, false},
		{"switched off", Config{URL: "http://r/api", HTTP1FastPath: &off}, false},
		{"proxy_url", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{ProxyConfig: config_util.ProxyConfig{ProxyURL: proxy}}}, false},
		{"proxy_from_environment", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{ProxyConfig: config_util.ProxyConfig{ProxyFromEnvironment: true}}}, false},
		{"oauth2", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{OAuth2: &config_util.OAuth2{ClientID: "c", TokenURL: "http://t/"}}}, false},
		{"http_headers", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{HTTPHeaders: &config_util.Headers{}}}, true},
		{"http_headers with follow_redirects", Config{URL: "http://r/api", HTTPClientConfig: config_util.HTTPClientConfig{FollowRedirects: true, HTTPHeaders: &config_util.Headers{}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.fast != tc.fast {
				t.Fatalf("fast = %v, want %v (%q)", s.fast, tc.fast, fastPathUnsupported(&tc.cfg))
			}
		})
	}

	var cfg Config
	if err := yaml.Unmarshal([]byte("url: http://r/api\nhttp1_fast_path: false\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if reason := fastPathUnsupported(&cfg); reason != "http1_fast_path is false" {
		t.Fatalf("http1_fast_path: false: %q", reason)
	}
	cfg = Config{}
	if err := yaml.Unmarshal([]byte("url: http://r/api\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if reason := fastPathUnsupported(&cfg); reason != "" {
		t.Fatalf("default http config: %q", reason)
	}
}

func newURL(s string) (config_util.URL, error) {
	var u config_util.URL
	err := yaml.Unmarshal([]byte(s), &u)
	return u, err
}

// The transport on its own: pool bound, idle expiry, body semantics.
func TestH1TransportPool(t *testing.T) {
	cs := newConnServer(t, false, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", fmt.Sprint(200<<10))
			io.WriteString(w, strings.Repeat("x", 200<<10))
			return
		}
		io.WriteString(w, "hello")
	})
	tr := newH1Transport(nil)
	tr.maxIdle = 2
	defer tr.CloseIdleConnections()
	get := func(path ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, cs.URL+strings.Join(path, ""), strings.NewReader("x"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Four answers open at once: four connections; two stay idle.
	var resps []*http.Response
	for range 4 {
		resps = append(resps, get())
	}
	for _, r := range resps {
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != "hello" {
			t.Fatalf("body %q, %v", b, err)
		}
		r.Body.Close()
		if _, err := r.Body.Read(make([]byte, 1)); err == nil {
			t.Fatal("read after Close succeeded")
		}
	}
	if n := tr.idleCount(); n != 2 {
		t.Fatalf("%d idle connections, want 2", n)
	}
	waitFor(t, func() bool { return cs.closed.Load() == 2 })

	// A body closed before its end drops the connection: a short one
	// still in the read buffer, and a long one read in part.
	r := get()
	r.Body.Close()
	if n := tr.idleCount(); n != 1 {
		t.Fatalf("%d idle connections after an unread body, want 1", n)
	}
	r = get("/big")
	if _, err := io.ReadFull(r.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if n := tr.idleCount(); n != 0 {
		t.Fatalf("%d idle connections after a partly read body, want 0", n)
	}
	if n := cs.opened.Load(); n != 4 {
		t.Fatalf("%d connections opened, want 4", n)
	}

	// Idle connections expire.
	tr = newH1Transport(nil)
	tr.idleTimeout = 100 * time.Millisecond
	defer tr.CloseIdleConnections()
	r = get()
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if n := tr.idleCount(); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	waitFor(t, func() bool { return tr.idleCount() == 0 && cs.closed.Load() == 5 })
	// One past its time is not used even before its timer closed it.
	r = get()
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	tr.mu.Lock()
	for _, c := range tr.idle {
		c[0].idleTimer.Stop()
		c[0].idleSince = time.Now().Add(-time.Hour)
	}
	tr.mu.Unlock()
	r = get()
	r.Body.Close()
	if n := cs.opened.Load(); n != 7 {
		t.Fatalf("%d connections opened, want 7", n)
	}
}

// A request that finds its context done sends nothing.
func TestH1TransportDoneContext(t *testing.T) {
	cs := newConnServer(t, false, nil)
	tr := newH1Transport(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cs.URL, strings.NewReader("x"))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip = %v", err)
	}
	req, _ = http.NewRequest(http.MethodPost, "ftp://x/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("ftp:// accepted")
	}
	if n := cs.opened.Load(); n != 0 {
		t.Fatalf("%d connections", n)
	}
}

// A 1xx before the answer is skipped.
func TestH1TransportInformational(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
		br.Peek(1) // until the client closes
	}()
	tr := newH1Transport(nil)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "http://"+l.Addr().String()+"/", strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if n := tr.idleCount(); n != 1 {
		t.Fatalf("%d idle connections", n)
	}
}

func (t *h1Transport) idleCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.idle {
		n += len(c)
	}
	return n
}

// findH1 digs the h1Transport out of s's round tripper chain (a test
// without auth or TLS files has it directly).
func findH1(t *testing.T, s *Sender) *h1Transport {
	t.Helper()
	tr, ok := s.client.Transport.(*h1Transport)
	if !ok {
		t.Fatalf("transport is %T", s.client.Transport)
	}
	return tr
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A server that answers before reading the whole request, and closes: the
// answer comes back, not the failed write.
func TestH1TransportEarlyAnswer(t *testing.T) {
	cs := startConnServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "too big", http.StatusRequestEntityTooLarge) // body unread
	}), (*httptest.Server).Start)
	tr := newH1Transport(nil)
	defer tr.CloseIdleConnections()
	body := strings.Repeat("x", 32<<20) // more than the socket buffers hold
	req, _ := http.NewRequest(http.MethodPost, cs.URL, strings.NewReader(body))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(msg) != "too big\n" {
		t.Fatalf("answer %d %q", resp.StatusCode, msg)
	}
	if n := tr.idleCount(); n != 0 {
		t.Fatalf("%d idle connections", n)
	}
}
