package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/test/e2e/harness"
)

func TestAdmissionShares(t *testing.T) {
	a := newAdmission(Fairness{MaxConcurrentPerInstallation: 2, MaxInflightBytes: 1000, MaxInflightBytesPerInstallation: 400}, prometheus.NewRegistry())
	status := func(err error) int {
		if err == nil {
			return 0
		}
		return toHTTP(err).status
	}
	a1, err := a.admit("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := a.admit("a")
	if _, err := a.admit("a"); status(err) != 429 {
		t.Fatalf("third request of a: %v", err)
	}
	if got := status(a1.reserve(401)); got != 413 {
		t.Fatalf("one request over the share: %d", got)
	}
	if err := a1.reserve(300); err != nil {
		t.Fatal(err)
	}
	if got := status(a2.add(101)); got != 429 {
		t.Fatalf("a over its share with two requests: %d", got)
	}
	if err := a2.add(100); err != nil {
		t.Fatal(err)
	}
	// b and c fill the rest of the total: 400 + 400 + 200.
	b, _ := a.admit("b")
	if err := b.reserve(400); err != nil {
		t.Fatal(err)
	}
	c, _ := a.admit("c")
	if err := c.reserve(200); err != nil {
		t.Fatal(err)
	}
	if got := status(c.add(1)); got != 503 {
		t.Fatalf("total full: %d", got)
	}
	a1.done()
	if err := c.add(1); err != nil {
		t.Fatalf("after a1 is done: %v", err)
	}
	if _, err := a.admit("a"); err != nil {
		t.Fatalf("a has a slot again: %v", err)
	}
	for _, tk := range []*ticket{a2, b, c} {
		tk.done()
	}
	if got := testutil.ToFloat64(a.bytes); got != 0 {
		t.Fatalf("inflight bytes after every request is done: %v", got)
	}
	if a.used != 0 || len(a.byInst) != 1 { // the "a" admitted last is still in flight
		t.Fatalf("used %d, installations %v", a.used, a.byInst)
	}
}

// holdSlowBody opens a remote write whose body never arrives past its first
// byte; it returns the connection and a func that reads the answer.
func holdSlowBody(t *testing.T, addr, bearer string) (net.Conn, func() (int, string)) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /api/v1/receive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\nx", bearer)
	return c, func() (int, string) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		sb.Write(buf[:n])
		return resp.StatusCode, sb.String()
	}
}

// TestSlowBodiesOfOneInstallationDoNotStarveAnother: one installation
// holds more slow bodies than the whole concurrency limit; its requests
// past its share get 429 at once, the held ones 408 once the minimum body
// rate's grace is over, and another installation writes meanwhile.
func TestSlowBodiesOfOneInstallationDoNotStarveAnother(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.MaxConcurrentRequests = 6
		o.Fairness = Fairness{MaxConcurrentPerInstallation: 3, MinBodyRate: 1000, BodyGrace: 1500 * time.Millisecond}
	})
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	bad := harness.CompositeToken("dev", "greedy")
	// Connections arrive one after another: each refused one is answered
	// before the next, so the global limit never sees them all at once.
	var held []func() (int, string)
	for i := 0; i < 8; i++ {
		_, read := holdSlowBody(t, addr, bad)
		if i < 3 {
			held = append(held, read)
			waitFor(t, func() bool { return f.gw.admission.requests("greedy") == i+1 })
			continue
		}
		if code, body := read(); code != 429 || !strings.Contains(body, reasonInstallationConcurrency) {
			t.Fatalf("slow body %d past the installation's share: %d %q", i, code, body)
		}
	}
	ms := f.now.UnixMilli()
	for i := 0; i < 3; i++ {
		if status, body, _ := f.write(t, harness.CompositeToken("dev", "polite"), ts(1, ms, "__name__", "cluster_version")); status != 204 {
			t.Fatalf("another installation while one holds slow bodies: %d %s", status, body)
		}
	}
	for i, read := range held {
		if code, body := read(); code != 408 || !strings.Contains(body, reasonBodyTooSlow) {
			t.Fatalf("held slow body %d: %d %q", i, code, body)
		}
	}
	if got := testutil.ToFloat64(f.gw.admission.refused.WithLabelValues(reasonInstallationConcurrency)); got != 5 {
		t.Fatalf("refused for installation concurrency: %v", got)
	}
}

// TestMinBodyRateCutsSlowBody: a body that stops arriving is answered
// 408 after the grace, not held until the read timeout.
func TestMinBodyRateCutsSlowBody(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Fairness = Fairness{MinBodyRate: 1000, BodyGrace: 300 * time.Millisecond, MaxBodyTime: time.Minute}
	})
	start := time.Now()
	_, read := holdSlowBody(t, strings.TrimPrefix(f.srv.URL, "http://"), harness.CompositeToken("dev", "c1"))
	code, body := read()
	if code != http.StatusRequestTimeout || !strings.Contains(body, "body_min_rate") {
		t.Fatalf("slow body: %d %q", code, body)
	}
	// 1 byte at 1000 B/s extends the grace by 1ms.
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Fatalf("cut after %v", el)
	}
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestUploadSlotTakenBeforeBody: while a cluster's upload is still
// sending its body, its second upload is refused (429) without being read.
func TestUploadSlotTakenBeforeBody(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\nx", jwt, harness.UploadContentType)
	waitFor(t, func() bool { return f.gw.admission.requests("c1") == 1 })
	status, body, _, err := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1)})
	if err != nil || status != http.StatusTooManyRequests || !strings.Contains(body, reasonUploadInterval) {
		t.Fatalf("second upload while the first is in flight: %d %q %v", status, body, err)
	}
}

// TestRequestMemoryReserved: a remote write whose decoded body and series
// need more than an installation's share of max_inflight_bytes is 413
// (request_memory); within the share it is accepted, and everything it
// reserved is released.
func TestRequestMemoryReserved(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.MaxDecodedBytes = 8 << 20
		o.Limits.MaxRequestBytes = 4 << 20
		o.Limits.MaxSeriesPerRequest = 100000
		o.Fairness = Fairness{MaxInflightBytes: 8 << 20, MaxInflightBytesPerInstallation: 2 << 20}
	})
	ms := f.now.UnixMilli()
	series := func(n int) []prompb.TimeSeries {
		var out []prompb.TimeSeries
		for i := 0; i < n; i++ {
			out = append(out, ts(1, ms, "__name__", "cluster_version", "version", strconv.Itoa(i)))
		}
		return out
	}
	// 30,000 series: about 1.8MB decoded, whose labels alone charge 1.9MB
	// (reserved twice).
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), series(30000)...)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, reasonRequestMemory) {
		t.Fatalf("request over the share: %d %s", status, body)
	}
	if status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"), series(100)...); status != http.StatusNoContent {
		t.Fatalf("small request: %d %s", status, body)
	}
	if got := testutil.ToFloat64(f.gw.admission.bytes); got != 0 {
		t.Fatalf("reserved after the requests: %v", got)
	}
}

// TestRemoteWrite2EncodingReserved: a 2.0 request is small on the wire
// (labels are references) but its forward encoding holds every label in
// full: 1500 series sharing one 900-byte label value decode from ~55KB and
// encode to ~1.4MB, which is reserved (2x) before encoding, so over an
// installation's 2MiB share it is 413, not encoded anyway.
func TestRemoteWrite2EncodingReserved(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.MaxSeriesPerRequest = 100000
		o.Fairness = Fairness{MaxInflightBytes: 8 << 20, MaxInflightBytesPerInstallation: 2 << 20}
	})
	ms := f.now.UnixMilli()
	st := writev2.NewSymbolTable()
	long := strings.Repeat("v", 900)
	req := &writev2.Request{}
	for i := range 1500 {
		req.Timeseries = append(req.Timeseries, v2Series(&st, 1, ms, "__name__", "cluster_version", "type", long, "version", strconv.Itoa(i)))
	}
	req.Symbols = st.Symbols()
	raw, _ := req.Marshal()
	if len(raw) > 64<<10 {
		t.Fatalf("request of %d bytes: want a small one", len(raw))
	}
	status, body, _ := f.postRaw(t, "/api/v1/receive", harness.CompositeToken("dev", "c1"), decode.RemoteWriteV2ContentType, raw)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, reasonRequestMemory) {
		t.Fatalf("2.0 request expanding past the share: %d %s", status, body)
	}
	if len(f.fwd.reqs) != 0 {
		t.Fatalf("forwarded %d requests", len(f.fwd.reqs))
	}
	if got := testutil.ToFloat64(f.gw.admission.bytes); got != 0 {
		t.Fatalf("reserved after the request: %v", got)
	}
}
