package load_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/load"
)

// sinkForwarder hands the gateway's output to a load.Sink, so the test sees
// what a real downstream would decode.
type sinkForwarder struct{ s *load.Sink }

func (f sinkForwarder) Send(ctx context.Context, _ string, body []byte) error {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/write", strings.NewReader(string(body)))
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		return &gatewayError{rec.Body.String()}
	}
	return nil
}

type gatewayError struct{ msg string }

func (e *gatewayError) Error() string { return e.msg }

func startGateway(t *testing.T, spec load.Spec, interval time.Duration) (target, metrics string, sink *load.Sink) {
	t.Helper()
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: dev-token\n  clusters: ['*']\n"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authn.NewEphemeralSigner(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	al, err := allowlist.Parse(spec.AllowlistYAML(), "allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sink = &load.Sink{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	gw := gateway.New(gateway.Options{
		Registerer:    reg,
		Authenticator: authn.Chain(tokens),
		Issuer:        signer,
		Allowlist:     al,
		Pipeline:      relabel.New(relabel.Options{DropLabels: []string{"instance", "pod"}, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute}),
		Forwarder:     sinkForwarder{sink},
		Limits:        gateway.Limits{MaxRequestBytes: 4 << 20, MaxDecodedBytes: 32 << 20, MaxSeriesPerRequest: 10000, UploadInterval: interval},
		MaxRetryTime:  5 * time.Second,
	})
	pub := httptest.NewServer(gw.Handler())
	t.Cleanup(pub.Close)
	internal := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(internal.Close)
	return pub.URL, internal.URL + "/metrics", sink
}

func TestFleetAgainstGateway(t *testing.T) {
	spec := load.Spec{Names: 4, SeriesPerName: 10, Seed: 3}
	for _, protocol := range []string{load.ProtocolUpload, load.ProtocolRemoteWrite} {
		t.Run(protocol, func(t *testing.T) {
			// 4m30s / 900 = 300ms per cluster; the gateway's interval is
			// divided likewise (a little less: the slack of a loaded machine), so
			// no upload meets a 429.
			target, metrics, sink := startGateway(t, spec, 250*time.Millisecond)
			res, err := load.Run(context.Background(), load.Config{
				Target: target, MetricsURL: metrics, Protocol: protocol,
				Clusters: 10, Speedup: 900, Duration: 1500 * time.Millisecond,
				Spec: spec, Templates: 3, Concurrency: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			res.WriteTo(&out)
			t.Log("\n" + out.String())
			okKey := "upload 200"
			if protocol == load.ProtocolRemoteWrite {
				okKey = "receive 204"
			}
			// 10 clusters every 300ms for 1.5s: about 50 writes.
			if ok := res.Codes[okKey]; ok < 25 || ok != res.Writes {
				t.Fatalf("%d of %d writes accepted, codes %v", ok, res.Writes, res.Codes)
			}
			if protocol == load.ProtocolUpload && res.Codes["authorize 200"] != 10 {
				t.Fatalf("authorizations %v", res.Codes)
			}
			if res.Expected < 33 || res.Expected > 34 || res.Achieved < res.Expected/2 {
				t.Fatalf("rate %.1f/s achieved, %.1f/s expected", res.Achieved, res.Expected)
			}
			if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
				t.Fatalf("latencies p50 %v p99 %v max %v", res.P50, res.P99, res.Max)
			}
			if res.GatewayCPU <= 0 || res.CPUPerWrite <= 0 || res.RSS <= 0 || res.PeakRSS < res.RSS {
				t.Fatalf("gateway figures cpu %v per write %v rss %v peak %v (%s)", res.GatewayCPU, res.CPUPerWrite, res.RSS, res.PeakRSS, res.GatewayMetricsError)
			}
			// Half the names are allowlisted: the sink sees half the samples.
			if got, want := sink.Samples(), int64(res.SamplesSent/2); got != want || sink.Rejected() != 0 {
				t.Fatalf("sink got %d samples (%d rejected), want %d", got, sink.Rejected(), want)
			}
		})
	}
}

func TestMaxRequestsBoundsTheRun(t *testing.T) {
	spec := load.Spec{Names: 2, SeriesPerName: 2, Seed: 1}
	target, _, _ := startGateway(t, spec, 0)
	start := time.Now()
	res, err := load.Run(context.Background(), load.Config{
		Target: target, Protocol: load.ProtocolRemoteWrite, Clusters: 50, Speedup: 10000,
		Duration: 30 * time.Second, MaxRequests: 40, Spec: spec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 40 || time.Since(start) > 10*time.Second {
		t.Fatalf("%d writes in %v, want 40 and an early stop", res.Writes, time.Since(start))
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:9003", "http://localhost:1", "http://[::1]:9003/x"} {
		if err := load.CheckLoopback(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:9003", "http://example.com", "http://0.0.0.0:9003", "ftp://127.0.0.1/", "http://127.0.0.1.example.com/"} {
		if err := load.CheckLoopback(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := load.Run(context.Background(), load.Config{Target: "http://192.0.2.1:9003"}); err == nil {
		t.Fatal("Run accepted a non-loopback target")
	}
}

// The two encodings carry the same series, and the payload has the
// issue's shape.
func TestPayloadShape(t *testing.T) {
	spec := load.DefaultSpec
	now := time.Now().UnixMilli()
	wr := spec.WriteRequest(now)
	if len(wr.Timeseries) != 1000 {
		t.Fatalf("%d series", len(wr.Timeseries))
	}
	seen := map[string]bool{}
	for _, ts := range wr.Timeseries {
		if len(ts.Labels) != 10 || len(ts.Samples) != 1 {
			t.Fatalf("series %v", ts)
		}
		var hasInstance, hasPod bool
		var key []string
		for i, l := range ts.Labels {
			if i > 0 && ts.Labels[i-1].Name >= l.Name {
				t.Fatalf("labels not sorted: %v", ts.Labels)
			}
			hasInstance = hasInstance || l.Name == "instance"
			hasPod = hasPod || l.Name == "pod"
			if l.Name != "instance" && l.Name != "pod" {
				key = append(key, l.Name+"="+l.Value)
			}
		}
		if !hasInstance || !hasPod {
			t.Fatalf("series without instance or pod: %v", ts.Labels)
		}
		k := strings.Join(key, ",")
		if seen[k] {
			t.Fatalf("series collide once instance and pod are stripped: %s", k)
		}
		seen[k] = true
	}
	body, err := load.EncodeRemoteWrite(wr)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) < 30_000 || len(body) > 48_000 {
		t.Fatalf("remote-write body is %d bytes, want about 39 KB", len(body))
	}
	up, err := load.EncodeUpload(spec.Families(now))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := snappyFramedDecode(up)
	if err != nil {
		t.Fatal(err)
	}
	got := &prompbCollector{}
	if err := got.collect(raw, now); err != nil {
		t.Fatal(err)
	}
	if len(got.series) != 1000 {
		t.Fatalf("upload carries %d series", len(got.series))
	}
	for i, ts := range wr.Timeseries {
		if got.series[i] != seriesString(ts) {
			t.Fatalf("series %d differs:\nupload %s\nrw     %s", i, got.series[i], seriesString(ts))
		}
	}
	if n := len(spec.AllowedNames()); n != 10 {
		t.Fatalf("%d allowed names", n)
	}
}

func seriesString(ts prompb.TimeSeries) string {
	var b strings.Builder
	for _, l := range ts.Labels {
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

type prompbCollector struct{ series []string }

// collect decodes an /upload body with the gateway's decoder.
func (c *prompbCollector) collect(raw []byte, now int64) error {
	b := &batchT{}
	if _, err := decode.UnmarshalMetricFamilies(raw, &b.Batch, now, false, decode.Limits{}); err != nil {
		return err
	}
	for _, s := range b.Series {
		var sb strings.Builder
		for _, l := range s.Labels {
			sb.WriteString(l.Name + "=" + l.Value + ",")
		}
		c.series = append(c.series, sb.String())
	}
	return nil
}

// The closed loop keeps exactly Senders writes in flight: one sender never
// has two requests outstanding, and more senders overlap theirs.
func TestClosedLoopSenders(t *testing.T) {
	spec := load.Spec{Names: 2, SeriesPerName: 5, Seed: 1}
	for _, tc := range []struct {
		protocol string
		senders  int
	}{{load.ProtocolRemoteWrite, 1}, {load.ProtocolRemoteWrite, 4}, {load.ProtocolUpload, 3}} {
		t.Run(fmt.Sprintf("%s/%d", tc.protocol, tc.senders), func(t *testing.T) {
			target, _, sink := startGateway(t, spec, 0)
			var inFlight, peak atomic.Int64
			slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(5 * time.Millisecond) // long enough for the senders to overlap
				proxyTo(t, target, w, r)
			})
			srv := httptest.NewServer(slow)
			defer srv.Close()
			res, err := load.Run(context.Background(), load.Config{
				Target: srv.URL, Protocol: tc.protocol, Clusters: 7, Senders: tc.senders,
				Duration: 400 * time.Millisecond, Spec: spec, Templates: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			okKey := map[string]string{load.ProtocolUpload: "upload 200", load.ProtocolRemoteWrite: "receive 204"}[tc.protocol]
			if res.Writes < 10 || res.Codes[okKey] != res.Writes || res.Expected != 0 || res.Senders != tc.senders {
				t.Fatalf("%d writes, codes %v, expected %v, senders %d", res.Writes, res.Codes, res.Expected, res.Senders)
			}
			if got := peak.Load(); got != int64(tc.senders) {
				t.Fatalf("at most %d requests in flight, want %d", got, tc.senders)
			}
			if tc.protocol == load.ProtocolUpload && res.Authorizes != 7 {
				t.Fatalf("%d authorizations, want one per cluster (7)", res.Authorizes)
			}
			if got, want := sink.Samples(), int64(res.SamplesSent/2); got != want {
				t.Fatalf("sink got %d samples, want %d", got, want)
			}
			if j := res.JSON(); j.Senders != tc.senders || j.ExpectedRate != 0 {
				t.Fatalf("JSON senders %d expected %v", j.Senders, j.ExpectedRate)
			}
		})
	}
}

// proxyTo forwards r to base and copies the answer back.
func proxyTo(t *testing.T, base string, w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		t.Error(err)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func TestSendersValidated(t *testing.T) {
	if _, err := load.Run(context.Background(), load.Config{Target: "http://127.0.0.1:1", Senders: -1}); err == nil || !strings.Contains(err.Error(), "senders") {
		t.Fatalf("negative senders: %v", err)
	}
}

// With IDLabel every /upload series carries its cluster's _id, as
// telemeter-client stamps it: each cluster sends its own body, and the
// gateway, which refuses an _id naming another cluster than the token's,
// accepts them all.
func TestIDLabel(t *testing.T) {
	spec := load.Spec{Names: 2, SeriesPerName: 5, Seed: 1}
	target, _, sink := startGateway(t, spec, 0)
	var mu sync.Mutex
	ids := map[string]int{}
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			body, _ := io.ReadAll(r.Body)
			raw, err := snappyFramedDecode(body)
			got := &prompbCollector{}
			if err == nil {
				err = got.collect(raw, time.Now().UnixMilli())
			}
			if err != nil || len(got.series) != spec.Series() {
				t.Errorf("upload body: %d series, %v", len(got.series), err)
			}
			id := ""
			for _, s := range got.series {
				_, rest, ok := strings.Cut(s, "_id=")
				v, _, _ := strings.Cut(rest, ",")
				if !ok || !strings.HasPrefix(v, "load-") || (id != "" && v != id) {
					bad.Add(1)
				}
				id = v
			}
			mu.Lock()
			ids[id]++
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxyTo(t, target, w, r)
	}))
	defer srv.Close()
	res, err := load.Run(context.Background(), load.Config{
		Target: srv.URL, Protocol: load.ProtocolUpload, Clusters: 5, Senders: 2,
		Duration: 300 * time.Millisecond, Spec: spec, Templates: 2, IDLabel: "_id",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes < 10 || res.Codes["upload 200"] != res.Writes {
		t.Fatalf("%d writes, codes %v", res.Writes, res.Codes)
	}
	if bad.Load() != 0 || len(ids) != 5 {
		t.Fatalf("%d series without their cluster's _id; bodies by _id %v", bad.Load(), ids)
	}
	if got, want := sink.Samples(), int64(res.SamplesSent/2); got != want {
		t.Fatalf("sink got %d samples, want %d", got, want)
	}
	for _, c := range []load.Config{
		{Target: "http://127.0.0.1:1", Protocol: load.ProtocolRemoteWrite, IDLabel: "_id"},
		{Target: "http://127.0.0.1:1", IDLabel: "0x"},
		{Target: "http://127.0.0.1:1", IDLabel: "_id", Clusters: 20_000},
	} {
		if _, err := load.Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "id label") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
