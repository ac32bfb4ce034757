package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/relabel"
	"github.com/telegate/telegate/test/e2e/harness"
)

const testAllowlist = `matches:
# owners: (@t/t)
# Test.
- '{__name__="cluster_version"}'
# owners: (@t/t)
# Test.
- '{__name__=~"http_latency_(bucket|sum|count)"}'
# owners: (@t/t)
# Test.
- '{__name__=~"rpc_duration_.*"}'
`

// fakeForwarder records what the gateway forwards, decoded with the
// reference gogo decoder.
type fakeForwarder struct {
	mu       sync.Mutex
	reqs     []prompb.WriteRequest
	clusters []string // the cluster ID of each request
	sizes    []int    // uncompressed size of each request
	err      error
}

func (f *fakeForwarder) Send(_ context.Context, clusterID string, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return err
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return err
	}
	f.reqs = append(f.reqs, wr)
	f.clusters = append(f.clusters, clusterID)
	f.sizes = append(f.sizes, len(raw))
	return nil
}

// series returns every forwarded series as "name{l=v,...} value".
func (f *fakeForwarder) series() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		for _, ts := range r.Timeseries {
			var parts []string
			for _, l := range ts.Labels {
				parts = append(parts, l.Name+"="+l.Value)
			}
			for _, s := range ts.Samples {
				out = append(out, strings.Join(parts, ",")+" "+strings.TrimRight(strings.TrimRight(json.Number(jsonFloat(s.Value)).String(), "0"), "."))
			}
			for _, h := range ts.Histograms {
				count := float64(h.GetCountInt())
				if h.IsFloatHistogram() {
					count = h.GetCountFloat()
				}
				out = append(out, fmt.Sprintf("%s histogram count=%g", strings.Join(parts, ","), count))
			}
			for _, e := range ts.Exemplars {
				out = append(out, fmt.Sprintf("%s exemplar %g", strings.Join(parts, ","), e.Value))
			}
		}
	}
	sort.Strings(out)
	return out
}

func jsonFloat(v float64) string { b, _ := json.Marshal(v); return string(b) }

type fixture struct {
	gw  *Gateway
	srv *httptest.Server
	fwd *fakeForwarder
	now time.Time
}

func newFixture(t *testing.T, mutate func(*Options)) *fixture {
	t.Helper()
	tokens, err := authn.ParseTokens([]byte("tokens:\n- token: dev\n  clusters: ['*']\n- token: a-token\n  clusters: [cluster-a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := authn.NewEphemeralSigner(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	al, err := allowlist.Parse([]byte(testAllowlist), "allowlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{fwd: &fakeForwarder{}, now: time.Now()}
	o := Options{
		Authenticator: authn.Chain(tokens),
		Issuer:        signer,
		Allowlist:     al,
		Pipeline: relabel.New(relabel.Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod"},
			MaxLabels: 30, MaxNameLength: 100, MaxValueLength: 1000, MaxSampleAge: time.Hour, MaxFutureSkew: 10 * time.Minute}),
		Forwarder: f.fwd,
		Limits: Limits{MaxRequestBytes: 64 << 10, MaxDecodedBytes: 256 << 10, MaxSeriesPerRequest: 100,
			UploadInterval: 4*time.Minute + 30*time.Second},
		MaxRetryTime: 2 * time.Second,
		Now:          func() time.Time { return f.now },
	}
	if mutate != nil {
		mutate(&o)
	}
	f.gw = New(o)
	f.srv = httptest.NewServer(f.gw.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

func lbls(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func (f *fixture) write(t *testing.T, bearer string, series ...prompb.TimeSeries) (int, string, http.Header) {
	t.Helper()
	status, body, hdr, err := harness.RemoteWrite(context.Background(), f.srv.URL+"/api/v1/receive", bearer, &prompb.WriteRequest{Timeseries: series})
	if err != nil {
		t.Fatal(err)
	}
	return status, body, hdr
}

func ts(v float64, ms int64, kv ...string) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: lbls(kv...), Samples: []prompb.Sample{{Value: v, Timestamp: ms}}}
}

func TestRemoteWritePipeline(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"),
		ts(1, ms, "__name__", "cluster_version", "instance", "10.0.0.1:9090", "pod", "p", "type", "current"),
		ts(2, ms, "__name__", "not_allowed", "job", "x"),
		ts(3, ms, "__name__", "rpc_duration_seconds", "instance", "a", "_id", "c1"),
		// Identical to the first once instance and pod are stripped.
		ts(4, ms, "__name__", "cluster_version", "instance", "10.0.0.2:9090", "type", "current"),
	)
	if status != http.StatusNoContent {
		t.Fatalf("status %d: %s", status, body)
	}
	got := f.fwd.series()
	want := []string{"__name__=cluster_version,_id=c1,type=current 1", "__name__=rpc_duration_seconds,_id=c1 3"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("forwarded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "allowlist=1, collision=1" {
		t.Fatalf("dropped header %q", d)
	}
}

func TestRemoteWriteTimestampPolicy(t *testing.T) {
	f := newFixture(t, nil)
	old := f.now.Add(-2 * time.Hour).UnixMilli()
	status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, old, "__name__", "cluster_version"))
	if status != http.StatusNoContent || len(f.fwd.series()) != 0 || hdr.Get("X-Telegate-Dropped-Samples") != "too_old=1" {
		t.Fatalf("status %d body %q forwarded %v header %q", status, body, f.fwd.series(), hdr.Get("X-Telegate-Dropped-Samples"))
	}
}

func TestStatusCodes(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	good := ts(1, ms, "__name__", "cluster_version")
	wr, _ := harness.EncodeWriteRequest(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good}})
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good}}).Marshal()
	// A small body that inflates past max_decoded_bytes.
	bomb := snappy.Encode(nil, make([]byte, 1<<20))
	post := func(path, bearer, ct, enc string, body []byte) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header, b.String()
	}
	rw := "application/x-protobuf"
	for _, tc := range []struct {
		name           string
		path, bearer   string
		ct, enc        string
		body           []byte
		want           int
		wantBodySubstr string
	}{
		{"no credentials", "/api/v1/receive", "", rw, "snappy", wr, 401, "Authorization"},
		{"garbage bearer", "/api/v1/receive", "not-base64!", rw, "snappy", wr, 401, ""},
		{"wrong token", "/api/v1/receive", harness.CompositeToken("nope", "c1"), rw, "snappy", wr, 401, ""},
		{"token of A, id B", "/api/v1/receive", harness.CompositeToken("a-token", "cluster-b"), rw, "snappy", wr, 403, ""},
		{"bad content type", "/api/v1/receive", harness.CompositeToken("dev", "c1"), "text/plain", "snappy", wr, 415, "Content-Type"},
		{"unknown remote write message", "/api/v1/receive", harness.CompositeToken("dev", "c1"), "application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy", wr, 415,
			`unsupported remote write message \"io.prometheus.write.v3.Request\"; accepted: prometheus.WriteRequest, io.prometheus.write.v2.Request`},
		{"no snappy", "/api/v1/receive", harness.CompositeToken("dev", "c1"), rw, "", raw, 415, "snappy"},
		{"garbage body", "/api/v1/receive", harness.CompositeToken("dev", "c1"), rw, "snappy", []byte("garbage"), 400, ""},
		{"body over cap", "/api/v1/receive", harness.CompositeToken("dev", "c1"), rw, "snappy", make([]byte, 65<<10), 413, "max_request_bytes"},
		{"decoded over cap", "/api/v1/receive", harness.CompositeToken("dev", "c1"), rw, "snappy", bomb, 413, "max_decoded_bytes"},
		{"upload without token", "/upload", "", harness.UploadContentType, "snappy", nil, 401, "/authorize"},
		{"upload with bad jwt", "/upload", "x.y.z", harness.UploadContentType, "snappy", nil, 401, ""},
		{"authorize without id", "/authorize", "dev", "", "", nil, 400, "id"},
		{"authorize wrong token", "/authorize?id=c1", "nope", "", "", nil, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(tc.path, tc.bearer, tc.ct, tc.enc, tc.body)
			if code != tc.want || !strings.Contains(body, tc.wantBodySubstr) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.want, tc.wantBodySubstr)
			}
			if hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("error body is not JSON: %q", hdr.Get("Content-Type"))
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" || eb.Reason == "" {
				t.Fatalf("error body %q: %v", body, err)
			}
		})
	}
	resp, err := http.Get(f.srv.URL + "/upload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /upload: %d", resp.StatusCode)
	}
}

func TestSeriesClaimingAnotherCluster(t *testing.T) {
	f := newFixture(t, nil)
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c1"),
		ts(1, f.now.UnixMilli(), "__name__", "cluster_version", "_id", "c2"))
	if status != http.StatusBadRequest || !strings.Contains(body, "_id") {
		t.Fatalf("status %d body %q", status, body)
	}
	if len(f.fwd.series()) != 0 {
		t.Fatal("forwarded a request with a foreign _id")
	}
	// Also on a series the allowlist drops (the decoder skims its labels
	// but keeps _id for this check).
	status, body, _ = f.write(t, harness.CompositeToken("dev", "c1"),
		ts(1, f.now.UnixMilli(), "__name__", "cluster_version"),
		ts(1, f.now.UnixMilli(), "__name__", "secret_total", "a", "b", "_id", "c2", "zone", "z"))
	if status != http.StatusBadRequest || !strings.Contains(body, "_id") {
		t.Fatalf("foreign _id on a denied series: status %d body %q", status, body)
	}
}

func TestForwardErrors(t *testing.T) {
	for _, tc := range []struct {
		err        error
		want       int
		retryAfter bool
	}{
		{&forward.Error{Status: 503, Msg: "down", Recoverable: true}, 503, true},
		{&forward.Error{Status: 409, Msg: "out of order"}, 400, false},
		{&forward.Error{Status: 401, Msg: "bad creds"}, 503, true},
		{context.DeadlineExceeded, 503, true},
	} {
		f := newFixture(t, nil)
		f.fwd.err = tc.err
		status, body, hdr := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, f.now.UnixMilli(), "__name__", "cluster_version"))
		if status != tc.want || (hdr.Get("Retry-After") != "") != tc.retryAfter {
			t.Errorf("%v: status %d retry-after %q body %q", tc.err, status, hdr.Get("Retry-After"), body)
		}
	}
	// Nothing unexpected becomes anything but a 500 that is logged.
	if he := toHTTP(errors.New("boom")); he.status != 500 {
		t.Fatal(he.status)
	}
}

func gauge(name string, v float64, kv ...string) *dto.MetricFamily {
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	for i := 0; i < len(kv); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}}
}

func TestAuthorizeAndUpload(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, labels, status, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil || status != 200 {
		t.Fatalf("authorize: %d %v", status, err)
	}
	if labels["_id"] != "c1" || len(labels) != 1 {
		t.Fatalf("labels %v", labels)
	}
	hist := &dto.MetricFamily{Name: proto.String("http_latency"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
		Label: []*dto.LabelPair{{Name: proto.String("pod"), Value: proto.String("p1")}, {Name: proto.String("_id"), Value: proto.String("c1")}},
		Histogram: &dto.Histogram{SampleCount: proto.Uint64(3), SampleSum: proto.Float64(1.5), Bucket: []*dto.Bucket{
			{UpperBound: proto.Float64(0.1), CumulativeCount: proto.Uint64(1)},
			{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(2)},
		}},
		TimestampMs: proto.Int64(12345), // ignored: server time by default
	}}}
	status, body, _, err := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1, "type", "current"), hist, gauge("secret", 1)})
	if err != nil || status != 200 {
		t.Fatalf("upload: %d %q %v", status, body, err)
	}
	want := []string{
		"__name__=cluster_version,_id=c1,type=current 1",
		"__name__=http_latency_bucket,_id=c1,le=+Inf 3",
		"__name__=http_latency_bucket,_id=c1,le=0.1 1",
		"__name__=http_latency_bucket,_id=c1,le=1 2",
		"__name__=http_latency_count,_id=c1 3",
		"__name__=http_latency_sum,_id=c1 1.5",
	}
	if got := f.fwd.series(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("forwarded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range f.fwd.reqs {
		for _, s := range r.Timeseries {
			if s.Samples[0].Timestamp != f.now.UnixMilli() {
				t.Fatalf("upload kept client timestamp %d", s.Samples[0].Timestamp)
			}
		}
	}
	// A second upload inside the interval: 429 with Retry-After.
	f.now = f.now.Add(time.Minute)
	status, body, hdr, _ := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1)})
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") != "183" {
		t.Fatalf("second upload: %d %q retry-after %q", status, body, hdr.Get("Retry-After"))
	}
	// A JWT is bound to its cluster: a series for another cluster is refused.
	f.now = f.now.Add(10 * time.Minute)
	status, body, _, _ = harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1, "_id", "c2")})
	if status != http.StatusBadRequest {
		t.Fatalf("foreign _id on upload: %d %q", status, body)
	}
	// Also in a family the allowlist drops (the decoder skims its labels
	// but keeps _id for this check).
	status, body, _, _ = harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1), gauge("secret_total", 1, "a", "b", "_id", "c2")})
	if status != http.StatusBadRequest {
		t.Fatalf("foreign _id on a denied family: %d %q", status, body)
	}
	// The refused upload did not use up the interval.
	status, body, _, _ = harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{gauge("cluster_version", 1)})
	if status != http.StatusOK {
		t.Fatalf("upload after refused one: %d %q", status, body)
	}
}

func TestUploadContentNegotiation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := harness.EncodeFamilies([]*dto.MetricFamily{gauge("cluster_version", 1)})
	for _, tc := range []struct {
		ct, enc string
		body    []byte
		want    int
	}{
		{"text/plain; version=0.0.4", "snappy", body, 415},
		{harness.UploadContentType, "gzip", body, 415},
		{harness.UploadContentType, "snappy", []byte("not snappy framed"), 400},
		{harness.UploadContentType, "snappy", body, 200},
	} {
		status, resp, _, err := harness.UploadRaw(ctx, f.srv.URL+"/upload", jwt, tc.ct, tc.enc, tc.body)
		if err != nil || status != tc.want {
			t.Errorf("%s/%s: %d %q %v, want %d", tc.ct, tc.enc, status, resp, err, tc.want)
		}
	}
}

func TestUploadBodyOverCap(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	// Incompressible-ish data so the framed body exceeds 64 KiB compressed;
	// sent chunked (no Content-Length) so the cap is met while reading.
	data := make([]byte, 100<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	w.Write(data)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/upload", struct{ io.Reader }{bytes.NewReader(buf.Bytes())})
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Content-Type", harness.UploadContentType)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "max_request_bytes") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestAllowlistEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	get := func(bearer string) (*http.Response, allowlistResponse) {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/allowlist", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out allowlistResponse
		json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	if resp, _ := get(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", resp.StatusCode)
	}
	resp, out := get(jwt)
	if resp.StatusCode != 200 || len(out.Matches) != 3 || out.Matches[0] != `{__name__="cluster_version"}` || out.Hash == "" || resp.Header.Get("X-Telegate-Allowlist-Hash") != out.Hash {
		t.Fatalf("%d %+v", resp.StatusCode, out)
	}
	status, _, hdr := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, f.now.UnixMilli(), "__name__", "cluster_version"))
	if status != 204 || hdr.Get("X-Telegate-Allowlist-Hash") != out.Hash {
		t.Fatalf("write: %d hash header %q", status, hdr.Get("X-Telegate-Allowlist-Hash"))
	}
}

// Native histograms and exemplars of a remote write 1.0 request are
// forwarded with the series' samples; metadata of a forwarded family too.
func TestNativeHistogramsForwarded(t *testing.T) {
	f := newFixture(t, nil)
	s := ts(1, f.now.UnixMilli(), "__name__", "cluster_version")
	s.Histograms = []prompb.Histogram{{Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 1, Schema: 0, Timestamp: f.now.UnixMilli(),
		PositiveSpans: []prompb.BucketSpan{{Length: 1}}, PositiveDeltas: []int64{3}}}
	s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 0.5, Timestamp: f.now.UnixMilli()}}
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}, Metadata: []prompb.MetricMetadata{
		{MetricFamilyName: "cluster_version", Type: prompb.MetricMetadata_GAUGE, Help: "the version"},
		{MetricFamilyName: "not_allowed", Type: prompb.MetricMetadata_GAUGE, Help: "dropped with its family"},
	}}
	raw, _ := wr.Marshal()
	status, body, hdr := f.postRaw(t, "/api/v1/receive", harness.CompositeToken("dev", "c1"), "application/x-protobuf", raw)
	want := "__name__=cluster_version,_id=c1 1\n__name__=cluster_version,_id=c1 exemplar 0.5\n__name__=cluster_version,_id=c1 histogram count=3"
	if got := strings.Join(f.fwd.series(), "\n"); status != 204 || hdr.Get("X-Telegate-Dropped-Samples") != "" || got != want {
		t.Fatalf("%d %q %q\n%s\nwant\n%s", status, body, hdr.Get("X-Telegate-Dropped-Samples"), got, want)
	}
	if md := f.fwd.reqs[0].Metadata; len(md) != 1 || md[0].MetricFamilyName != "cluster_version" || md[0].Help != "the version" {
		t.Fatalf("metadata forwarded: %+v", md)
	}
}

func TestExplainLastUpload(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ExplainCacheBytes = 1 << 20 })
	ctx := context.Background()
	jwt, _, _, err := harness.Authorize(ctx, f.srv.URL, "dev", "c1")
	if err != nil {
		t.Fatal(err)
	}
	get := func(bearer, query string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/explain"+query, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("", ""); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: %d", code)
	}
	if code, body := get(jwt, ""); code != http.StatusNotFound || !strings.Contains(body, "no_upload") {
		t.Fatalf("before any upload: %d %s", code, body)
	}
	status, body, _, _ := harness.Upload(ctx, f.srv.URL, jwt, []*dto.MetricFamily{
		gauge("cluster_version", 1, "type", "current", "pod", "p1"), gauge("secret_metric", 1)})
	if status != 200 {
		t.Fatalf("upload %d %s", status, body)
	}
	code, text := get(jwt, "?format=text")
	if code != 200 || !strings.Contains(text, "cluster_version") || !strings.Contains(text, "secret_metric") {
		t.Fatalf("explain text: %d\n%s", code, text)
	}
	code, js := get(jwt, "")
	var rep struct {
		Metrics []struct {
			Name    string `json:"name"`
			Allowed int    `json:"allowed"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(js), &rep); code != 200 || err != nil {
		t.Fatalf("explain json: %d %v\n%s", code, err, js)
	}
	allowed := map[string]int{}
	for _, m := range rep.Metrics {
		allowed[m.Name] = m.Allowed
	}
	if allowed["cluster_version"] != 1 || allowed["secret_metric"] != 0 || len(allowed) != 2 {
		t.Fatalf("explain verdicts: %v\n%s", allowed, js)
	}
}

func TestLastUploadsBounded(t *testing.T) {
	l := newLastUploads(100)
	now := time.Now()
	l.put("x", make([]byte, 10), now)
	if _, ok := l.get("x"); ok {
		t.Fatal("kept the upload of a cluster nobody asked about")
	}
	for _, c := range []string{"a", "b", "big", "c0", "c1", "c2", "c3", "c4"} {
		l.arm(c, now)
	}
	l.put("a", make([]byte, 20), now)
	l.put("b", make([]byte, 20), now)
	l.put("big", make([]byte, 30), now) // over a quarter of the budget: not kept
	if _, ok := l.get("big"); ok {
		t.Fatal("kept a body over a quarter of the budget")
	}
	for i := 0; i < 5; i++ {
		l.put(fmt.Sprint("c", i), make([]byte, 20), now)
	}
	if _, ok := l.get("a"); ok || l.size > 100 {
		t.Fatalf("oldest not evicted: size %d", l.size)
	}
	if _, ok := l.get("c4"); !ok {
		t.Fatal("newest evicted")
	}
}

// A chunked remote-write body (no Content-Length) over max_request_bytes
// is cut while reading and answered 413 naming that cap.
func TestReceiveChunkedBodyOverCap(t *testing.T) {
	f := newFixture(t, nil)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/receive", struct{ io.Reader }{bytes.NewReader(make([]byte, 65<<10))})
	req.Header.Set("Authorization", "Bearer "+harness.CompositeToken("dev", "c1"))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb errorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || eb.Reason != "max_request_bytes" || eb.Limit != 64<<10 {
		t.Fatalf("%d %+v", resp.StatusCode, eb)
	}
}
