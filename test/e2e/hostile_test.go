package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/test/e2e/harness"
)

// signingKey returns a fresh ES256 key as PEM and its telegate key ID.
func signingKey(t *testing.T) (*ecdsa.PrivateKey, string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalECPrivateKey(k)
	must(t, err)
	key, err := authn.NewKey(k)
	must(t, err)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), key.ID()
}

func signJWT(t *testing.T, key *ecdsa.PrivateKey, kid, cluster string, notBefore, expires time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer: authn.TokenIssuer, Subject: cluster, Audience: jwt.ClaimStrings{authn.TokenAudience},
		IssuedAt: jwt.NewNumericDate(notBefore), NotBefore: jwt.NewNumericDate(notBefore), ExpiresAt: jwt.NewNumericDate(expires),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	must(t, err)
	return s
}

// noneJWT is a token with alg "none" and no signature.
func noneJWT(kid, cluster string) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	now := time.Now().Unix()
	return enc(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." +
		enc(map[string]any{"iss": authn.TokenIssuer, "sub": cluster, "aud": authn.TokenAudience, "iat": now, "nbf": now, "exp": now + 3600}) + "."
}

func post(t *testing.T, url string, headers map[string]string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	must(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, string(b)
}

func rwHeaders(bearer string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + bearer, "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
}

// TestHostileInputE2E sends every kind of hostile request to the real
// binary and checks the status table: the right code, a JSON body with a
// reason for every 4xx the gateway answers itself, and nothing stored
// from another tenant.
func TestHostileInputE2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	key, keyPEM, kid := signingKey(t)
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream: down.RemoteWriteURL(),
		files:      map[string]string{"jwt.pem": keyPEM},
		authn:      "  jwt:\n    signing_key_file: jwt.pem",
		limits:     "  upload_interval: 0s\n  failed_auth: {per_minute: 0}",
	})
	rw := gw.url + "/api/v1/receive"
	good := harness.CompositeToken("fleet-token", "cluster-a")
	ms := time.Now().UnixMilli()
	valid, _ := (&prompb.WriteRequest{Timeseries: versionSeries(ms, 0, 3)}).Marshal()
	otherKey, _, _ := signingKey(t)

	var framedBomb bytes.Buffer
	zw := snappy.NewBufferedWriter(&framedBomb)
	zw.Write(make([]byte, 1<<20))
	zw.Close()

	nanInf, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}, {Name: "v", Value: "nan"}}, Samples: []prompb.Sample{{Value: math.NaN(), Timestamp: ms}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}, {Name: "v", Value: "inf"}}, Samples: []prompb.Sample{{Value: math.Inf(-1), Timestamp: ms}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}, {Name: "v", Value: "edge"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: math.MaxInt64}, {Value: 1, Timestamp: math.MinInt64}}},
	}}).Marshal()
	manyLabels := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ms}}}
	for i := 0; i < 3000; i++ {
		manyLabels.Labels = append(manyLabels.Labels, prompb.Label{Name: "l" + strconv.Itoa(i), Value: "v"})
	}
	manyLabelsBody, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{manyLabels}}).Marshal()
	hugeValue, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}, {Name: "x", Value: strings.Repeat("v", 100<<10)}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ms}}}}}).Marshal()
	badUTF8, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_untyped"}, {Name: "x", Value: "\xc3\x28"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ms}}}}}).Marshal()
	claimsB, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "cluster_version"}, {Name: "_id", Value: "cluster-b"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ms}}}}}).Marshal()
	nested := bytes.Repeat([]byte{0x0a, 0xfe, 0xff, 0x03}, 4000)
	uploadHeaders := func(bearer string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + bearer, "Content-Type": harness.UploadContentType, "Content-Encoding": "snappy"}
	}
	jwtA := signJWT(t, key, kid, "cluster-a", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	smallUpload, err := harness.EncodeFamilies(families("cluster-a"))
	must(t, err)

	for _, tc := range []struct {
		name    string
		url     string
		headers map[string]string
		body    []byte
		want    int
		reason  string
	}{
		{"snappy block bomb", rw, rwHeaders(good), snappy.Encode(nil, make([]byte, 1<<20)), 413, "too_large"},
		{"framed snappy bomb", gw.url + "/upload", uploadHeaders(jwtA), framedBomb.Bytes(), 413, "too_large"},
		{"body over the cap", rw, rwHeaders(good), make([]byte, 100<<10), 413, "max_request_bytes"},
		{"garbage, not snappy", rw, rwHeaders(good), []byte("\x05garbage"), 400, "malformed"},
		{"snappy declaring a huge length", rw, rwHeaders(good), []byte("\xff\xff\xff\xff\x0f"), 413, "too_large"},
		{"garbage protobuf", rw, rwHeaders(good), snappy.Encode(nil, []byte("\x0a\x05garbage-garbage")), 400, "malformed"},
		{"truncated protobuf", rw, rwHeaders(good), snappy.Encode(nil, valid[:len(valid)-7]), 400, "malformed"},
		{"absurd length", rw, rwHeaders(good), snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}), 400, "malformed"},
		{"deep nesting", rw, rwHeaders(good), snappy.Encode(nil, nested), 400, "malformed"},
		{"thousands of labels", rw, rwHeaders(good), snappy.Encode(nil, manyLabelsBody), 400, "invalid_series"},
		{"huge label value", rw, rwHeaders(good), snappy.Encode(nil, hugeValue), 400, "invalid_series"},
		{"invalid utf-8", rw, rwHeaders(good), snappy.Encode(nil, badUTF8), 400, "invalid_series"},
		{"series claiming another cluster", rw, rwHeaders(good), snappy.Encode(nil, claimsB), 400, "invalid_series"},
		{"NaN, Inf and int64-edge timestamps", rw, rwHeaders(good), snappy.Encode(nil, nanInf), 204, ""},
		{"jwt alg none", gw.url + "/upload", uploadHeaders(noneJWT(kid, "cluster-a")), smallUpload, 401, "unauthorized"},
		{"jwt wrong key", gw.url + "/upload", uploadHeaders(signJWT(t, otherKey, kid, "cluster-a", time.Now(), time.Now().Add(time.Hour))), smallUpload, 401, "unauthorized"},
		{"jwt expired", gw.url + "/upload", uploadHeaders(signJWT(t, key, kid, "cluster-a", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))), smallUpload, 401, "unauthorized"},
		{"jwt not yet valid", gw.url + "/upload", uploadHeaders(signJWT(t, key, kid, "cluster-a", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))), smallUpload, 401, "unauthorized"},
		{"jwt of cluster-a, upload for cluster-b", gw.url + "/upload", uploadHeaders(jwtA), mustEncode(t, "cluster-b"), 400, "invalid_series"},
		{"valid jwt", gw.url + "/upload", uploadHeaders(jwtA), smallUpload, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(t, tc.url, tc.headers, tc.body)
			if code != tc.want {
				t.Fatalf("got %d %s, want %d", code, body, tc.want)
			}
			if tc.reason == "" {
				return
			}
			var eb struct{ Error, Reason string }
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Reason != tc.reason || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("body %q (%v), want reason %q", body, err, tc.reason)
			}
		})
	}

	// Enormous headers are refused by the HTTP server (64KiB cap).
	code, _, _ := post(t, rw, map[string]string{"X-Junk": strings.Repeat("j", 100<<10)}, valid)
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100KiB header: %d", code)
	}
	// The edge timestamps were dropped; NaN and -Inf arrived; nothing
	// from cluster-b reached storage.
	down.QueryEventually(t, `count(cluster_untyped{_id="cluster-a",v!=""})`, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 2 }, 30*time.Second)
	if v := down.Query(t, `{_id="cluster-b"}`); len(v) != 0 {
		t.Fatalf("cluster-b data stored: %v", v)
	}
}

func mustEncode(t *testing.T, cluster string) []byte {
	t.Helper()
	b, err := harness.EncodeFamilies(families(cluster))
	must(t, err)
	return b
}

var heapInuseRE = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes ([0-9.e+]+)$`)

func heapInuse(t *testing.T, internal string) float64 {
	resp, err := http.Get(internal + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := heapInuseRE.FindSubmatch(b)
	if m == nil {
		t.Errorf("no go_memstats_heap_inuse_bytes in /metrics")
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestHeapBoundUnderBombs: 100 concurrent compression bombs (remote write
// 1.0 and 2.0, uploads) and oversized bodies (4 rounds) keep the gateway's heap under 64MiB: each request
// holds at most max_request_bytes (64KiB) + max_decoded_bytes (256KiB),
// about 32MiB for 100, plus the baseline. Every one gets its 413 (the
// per-installation shares are off: all 100 come from one installation, and
// this test is about the decode caps, not fairness).
func TestHeapBoundUnderBombs(t *testing.T) {
	const bound = 64 << 20
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: "  upload_interval: 0s\n  max_concurrent_requests: 200\n  max_concurrent_requests_per_installation: 0\n  max_inflight_bytes_per_installation: 0"})
	rw := gw.url + "/api/v1/receive"
	good := harness.CompositeToken("fleet-token", "cluster-a")
	upJWT, _, status, err := harness.Authorize(context.Background(), gw.url, "fleet-token", "cluster-a")
	if err != nil || status != 200 {
		t.Fatalf("authorize: %d %v", status, err)
	}
	// Bombs small enough to pass max_request_bytes (64KiB), so they are
	// read and inflated up to max_decoded_bytes (256KiB).
	bomb := snappy.Encode(nil, make([]byte, 1<<20))
	smallBomb := snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 512<<10))
	var framed bytes.Buffer
	zw := snappy.NewBufferedWriter(&framed)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	for _, b := range [][]byte{bomb, smallBomb, framed.Bytes()} {
		if len(b) > 64<<10 {
			t.Fatalf("bomb of %d bytes does not pass the request cap", len(b))
		}
	}
	// Oversized and without Content-Length (chunked): cut while reading.
	oversized := make([]byte, 1<<20)
	rand.Read(oversized)

	var peak float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if v := heapInuse(t, gw.internal); v > peak {
					peak = v
				}
			}
		}
	}()
	codes := map[int]int{}
	var mu sync.Mutex
	for round := 0; round < 4; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var body io.Reader
				url, hdr := rw, rwHeaders(good)
				switch i % 4 {
				case 0:
					body = bytes.NewReader(bomb)
					if round%2 == 1 { // as remote write 2.0
						hdr = map[string]string{"Authorization": "Bearer " + good, "Content-Type": decode.RemoteWriteV2ContentType, "Content-Encoding": "snappy"}
					}
				case 1:
					body = bytes.NewReader(smallBomb)
				case 2:
					body = io.MultiReader(bytes.NewReader(oversized)) // hides the length: chunked
				case 3:
					body = bytes.NewReader(framed.Bytes())
					url = gw.url + "/upload"
					hdr = map[string]string{"Authorization": "Bearer " + upJWT, "Content-Type": harness.UploadContentType, "Content-Encoding": "snappy"}
				}
				req, _ := http.NewRequest(http.MethodPost, url, body)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}(i)
		}
		wg.Wait()
	}
	close(stop)
	<-sampled
	t.Logf("status codes %v, peak heap in use %.1f MiB", codes, peak/(1<<20))
	if codes[413]+codes[400] != 400 {
		t.Fatalf("status codes %v: want only 413/400", codes)
	}
	if peak == 0 || peak > bound {
		t.Fatalf("peak heap in use %.1f MiB, bound %d MiB", peak/(1<<20), bound>>20)
	}
	// Still serving.
	if code, _, body := post(t, rw, rwHeaders(good), snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), 0, 2)))); code != 204 {
		t.Fatalf("after the bombs: %d %s", code, body)
	}
}

func mustMarshal(t *testing.T, series []prompb.TimeSeries) []byte {
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	must(t, err)
	return b
}

// TestSlowClientsAndConcurrencyE2E: a client trickling headers is cut at
// read_header_timeout, one trickling its body at read_timeout, an idle
// keep-alive connection at idle_timeout; with max_concurrent_requests
// reached by slow uploads, the next request gets 503 at once.
func TestSlowClientsAndConcurrencyE2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{
		downstream: down.RemoteWriteURL(),
		web:        "  read_header_timeout: 1s\n  read_timeout: 3s\n  idle_timeout: 2s",
		limits:     "  upload_interval: 0s\n  max_concurrent_requests: 2",
	})
	addr := strings.TrimPrefix(gw.url, "http://")
	good := harness.CompositeToken("fleet-token", "cluster-a")

	// closedWithin reports how long until the server closed c.
	closedAfter := func(c net.Conn, max time.Duration) time.Duration {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(max))
		io.Copy(io.Discard, c)
		return time.Since(start)
	}
	// Slow headers.
	c, err := net.Dial("tcp", addr)
	must(t, err)
	io.WriteString(c, "POST /api/v1/receive HTTP/1.1\r\nHost: x\r\n")
	if d := closedAfter(c, 5*time.Second); d > 2500*time.Millisecond {
		t.Fatalf("slow headers held the connection for %v (read_header_timeout 1s)", d)
	}
	c.Close()

	// Slow bodies: two authenticated uploads that never finish hold both
	// slots; the third request is refused at once.
	var slow []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		slow = append(slow, c)
		io.WriteString(c, "POST /api/v1/receive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+good+
			"\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\nabc")
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	code, hdr, body := post(t, gw.url+"/api/v1/receive", rwHeaders(good), snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), 0, 1))))
	if code != 503 || !strings.Contains(body, `"overloaded"`) || hdr.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %s", code, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("503 took %v", d)
	}
	// The slow bodies are cut at read_timeout (3s after their start).
	for _, c := range slow {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(6 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("slow body answered %d", resp.StatusCode)
			}
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("slow body held for %v (read_timeout 3s)", d)
		}
		c.Close()
	}
	// Slots are free again.
	if code, _, body := post(t, gw.url+"/api/v1/receive", rwHeaders(good), snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), 0, 1)))); code != 204 {
		t.Fatalf("after slow clients: %d %s", code, body)
	}
	// Idle keep-alive connections are closed at idle_timeout.
	c, err = net.Dial("tcp", addr)
	must(t, err)
	io.WriteString(c, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start = time.Now()
	c.SetReadDeadline(time.Now().Add(6 * time.Second))
	io.Copy(io.Discard, br)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Fatalf("idle connection kept %v (idle_timeout 2s)", d)
	}
	c.Close()
}

// TestFailedAuthRateLimitE2E: a source guessing tokens gets 429 after the
// burst, with the JSON body and Retry-After.
func TestFailedAuthRateLimitE2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), limits: "  upload_interval: 0s\n  failed_auth: {per_minute: 6, burst: 5}"})
	body := snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), 0, 1)))
	for i := 0; i < 5; i++ {
		if code, _, b := post(t, gw.url+"/api/v1/receive", rwHeaders(harness.CompositeToken("guess-"+strconv.Itoa(i), "cluster-a")), body); code != 401 {
			t.Fatalf("guess %d: %d %s", i, code, b)
		}
	}
	code, hdr, b := post(t, gw.url+"/api/v1/receive", rwHeaders(harness.CompositeToken("guess-6", "cluster-a")), body)
	if code != 429 || !strings.Contains(b, `"auth_rate_limited"`) || hdr.Get("Retry-After") == "" {
		t.Fatalf("6th guess: %d %s", code, b)
	}
	if _, _, status, _ := harness.Authorize(context.Background(), gw.url, "fleet-token", "cluster-a"); status != 429 {
		t.Fatalf("authorize from the guessing source: %d", status)
	}
	if m := httpGet(t, gw.internal+"/metrics"); !strings.Contains(m, "telegate_authn_failed_auth_limited_total 2") {
		t.Fatal("failed-auth metric missing")
	}
}
