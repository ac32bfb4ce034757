package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/privacy"
	"github.com/telegate/telegate/test/e2e/harness"
)

const pushAllowlist = testAllowlist + `# owners: (@t/t)
# Test.
- '{__name__=~"assisted_installer_.*"}'
`

func newPushFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, func(o *Options) {
		al, err := allowlist.Parse([]byte(pushAllowlist), "allowlist.yaml")
		if err != nil {
			t.Fatal(err)
		}
		o.Allowlist = al
	})
}

// installerHistogram is the installer-style histogram of issue 16 in the
// text format: le buckets from 1 to 60, a sum and a count.
func installerHistogram(om bool) string {
	var sb strings.Builder
	sb.WriteString("# HELP assisted_installer_cluster_installation_minutes Minutes an installation took.\n")
	sb.WriteString("# TYPE assisted_installer_cluster_installation_minutes histogram\n")
	for le := 1; le <= 60; le++ {
		fmt.Fprintf(&sb, "assisted_installer_cluster_installation_minutes_bucket{le=\"%d\"} %d\n", le, le)
	}
	sb.WriteString("assisted_installer_cluster_installation_minutes_bucket{le=\"+Inf\"} 61\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_sum 1900\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_count 61\n")
	if om {
		sb.WriteString("assisted_installer_cluster_installation_minutes_created 1.7e+09\n# EOF\n")
	}
	return sb.String()
}

type pushReq struct {
	method, path, bearer, ct, enc string
	body                          []byte
}

func (f *fixture) push(t *testing.T, p pushReq) (int, http.Header, string) {
	t.Helper()
	if p.method == "" {
		p.method = http.MethodPost
	}
	req, _ := http.NewRequest(p.method, f.srv.URL+p.path, bytes.NewReader(p.body))
	if p.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+p.bearer)
	}
	if p.ct != "" {
		req.Header.Set("Content-Type", p.ct)
	}
	if p.enc != "" {
		req.Header.Set("Content-Encoding", p.enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func TestPushFormats(t *testing.T) {
	tok := harness.CompositeToken("dev", "c1")
	text := []byte(installerHistogram(false))
	om := []byte(installerHistogram(true))
	var framed bytes.Buffer
	sw := snappy.NewBufferedWriter(&framed)
	sw.Write(text)
	sw.Close()
	for _, c := range []struct {
		name, ct, enc string
		body          []byte
		series        int
	}{
		{"text", decode.TextContentType, "", text, 63},
		{"text without Content-Type", "", "", text, 63},
		{"text gzip", decode.TextContentType, "gzip", gz(text), 63},
		{"text snappy framed", decode.TextContentType, "snappy", framed.Bytes(), 63},
		{"text snappy block", decode.TextContentType, "snappy", snappy.Encode(nil, text), 63},
		{"openmetrics", decode.OpenMetricsContentType, "", om, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newPushFixture(t)
			status, hdr, body := f.push(t, pushReq{path: "/metrics/v1/push", bearer: tok, ct: c.ct, enc: c.enc, body: c.body})
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			got := f.fwd.series()
			if len(got) != c.series {
				t.Fatalf("%d series forwarded, want %d", len(got), c.series)
			}
			want := "__name__=assisted_installer_cluster_installation_minutes_bucket,_id=c1,le=1.0 1"
			if !slices.Contains(got, want) {
				t.Fatalf("%q not in %v", want, got)
			}
			if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "" {
				t.Fatalf("dropped %q", d)
			}
			// Metadata travels with the first body.
			if md := f.fwd.reqs[0].Metadata; len(md) != 1 || md[0].MetricFamilyName != "assisted_installer_cluster_installation_minutes" {
				t.Fatalf("metadata %+v", md)
			}
		})
	}
}

// TestPushHostile is the status table of the push endpoint: every hostile
// or malformed input gets its 4xx.
func TestPushHostile(t *testing.T) {
	tok := harness.CompositeToken("dev", "c1")
	txt := decode.TextContentType
	var many strings.Builder
	for i := range 101 {
		fmt.Fprintf(&many, "assisted_installer_x{i=\"%d\"} 1\n", i)
	}
	// Over max_request_bytes (64 KiB) as sent; over max_decoded_bytes
	// (256 KiB) once gunzipped.
	big := bytes.Repeat([]byte("# "+strings.Repeat("x", 1000)+"\n"), 70)
	bomb := gz(bytes.Repeat([]byte("#\n"), 1<<20))
	millions := gz(bytes.Repeat([]byte("a 1\n"), 1<<20))
	hugeLine := gz([]byte("assisted_installer_x{a=\"" + strings.Repeat("y", 200<<10) + "\"} 1\n"))
	for _, c := range []struct {
		name string
		r    pushReq
		want int
		msg  string
	}{
		{"no credentials", pushReq{bearer: "", ct: txt, body: []byte("a 1\n")}, 401, "Authorization"},
		{"wrong token", pushReq{bearer: harness.CompositeToken("nope", "c1"), ct: txt, body: []byte("a 1\n")}, 401, ""},
		{"GET", pushReq{method: http.MethodGet, bearer: tok}, 405, "use POST, PUT"},
		{"DELETE without the path form", pushReq{method: http.MethodDelete, bearer: tok}, 405, ""},
		{"unknown Content-Type", pushReq{bearer: tok, ct: "application/json", body: []byte("{}")}, 415, "unsupported Content-Type"},
		{"curl's default Content-Type", pushReq{bearer: tok, ct: "application/x-www-form-urlencoded", body: []byte("a 1\n")}, 415, "text/plain; version=0.0.4"},
		{"OpenMetrics 2.0", pushReq{bearer: tok, ct: "application/openmetrics-text; version=2.0.0", body: []byte("# EOF\n")}, 415, ""},
		{"unknown Content-Encoding", pushReq{bearer: tok, ct: txt, enc: "br", body: []byte("a 1\n")}, 415, "Content-Encoding"},
		{"malformed line", pushReq{bearer: tok, ct: txt, body: []byte("assisted_installer_a 1\nassisted_installer_b{x=} 1\n")}, 400, "line 2"},
		{"OpenMetrics without # EOF", pushReq{bearer: tok, ct: decode.OpenMetricsContentType, body: []byte("assisted_installer_a 1\n")}, 400, "# EOF"},
		{"invalid UTF-8", pushReq{bearer: tok, ct: txt, body: []byte("assisted_installer_a{x=\"\xff\xfe\"} 1\n")}, 400, "UTF-8"},
		{"NaN le", pushReq{bearer: tok, ct: txt, body: []byte("# TYPE assisted_installer_h histogram\nassisted_installer_h_bucket{le=\"NaN\"} 1\n")}, 400, "not a number"},
		{"claims another cluster", pushReq{bearer: tok, ct: txt, body: []byte("assisted_installer_a{_id=\"c2\"} 1\n")}, 400, "c2"},
		{"claims another cluster in the path", pushReq{path: "/metrics/job/j/_id/c2", bearer: tok, ct: txt, body: []byte("assisted_installer_a 1\n")}, 400, "c2"},
		{"too many series", pushReq{bearer: tok, ct: txt, body: []byte(many.String())}, 413, "max_series_per_request"},
		{"body over max_request_bytes", pushReq{bearer: tok, ct: txt, body: big}, 413, "max_request_bytes"},
		{"gzip bomb", pushReq{bearer: tok, ct: txt, enc: "gzip", body: bomb}, 413, "max_decoded_bytes"},
		{"a million series", pushReq{bearer: tok, ct: txt, enc: "gzip", body: millions}, 413, "max_decoded_bytes"},
		{"10000 series under the decoded cap", pushReq{bearer: tok, ct: txt, enc: "gzip", body: gz(bytes.Repeat([]byte("assisted_installer_a 1\n"), 10000))}, 413, "max_series_per_request"},
		{"corrupt gzip", pushReq{bearer: tok, ct: txt, enc: "gzip", body: []byte("not gzip at all")}, 400, "gzip"},
		{"huge line", pushReq{bearer: tok, ct: txt, enc: "gzip", body: hugeLine}, 400, "max_label_value_length"},
		{"odd path", pushReq{path: "/metrics/job/j/region", bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "odd number"},
		{"empty job", pushReq{path: "/metrics/job@base64/=", bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "job name is required"},
		{"bad base64", pushReq{path: "/metrics/job/j/a@base64/!!", bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "base64"},
		{"reserved label", pushReq{path: "/metrics/job/j/__name__/x", bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "improper grouping label"},
		{"label twice", pushReq{path: "/metrics/job/j/a/1/a/2", bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "twice"},
		{"too many grouping labels", pushReq{path: "/metrics/job/j" + strings.Repeat("/a/1", 40), bearer: tok, ct: txt, body: []byte("a 1\n")}, 400, "grouping labels"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newPushFixture(t)
			if c.r.path == "" {
				c.r.path = "/metrics/v1/push"
			}
			status, _, body := f.push(t, c.r)
			if status != c.want || !strings.Contains(body, c.msg) {
				t.Fatalf("status %d %s, want %d with %q", status, body, c.want, c.msg)
			}
			if len(f.fwd.series()) != 0 {
				t.Fatalf("forwarded %v", f.fwd.series())
			}
		})
	}
}

func TestPushPolicy(t *testing.T) {
	f := newPushFixture(t)
	tok := harness.CompositeToken("dev", "c1")
	old := f.now.Add(-2 * time.Hour).UnixMilli()
	body := fmt.Sprintf("assisted_installer_a{instance=\"host:1\"} 1\nnot_allowed 2\nassisted_installer_old 3 %d\nassisted_installer_own{_id=\"c1\"} 4\n", old)
	status, hdr, resp := f.push(t, pushReq{path: "/metrics/v1/push", bearer: tok, ct: decode.TextContentType, body: []byte(body)})
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	want := []string{"__name__=assisted_installer_a,_id=c1 1", "__name__=assisted_installer_own,_id=c1 4"}
	if got := f.fwd.series(); !slices.Equal(got, want) {
		t.Fatalf("forwarded %v, want %v", got, want)
	}
	if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "allowlist=1, too_old=1" {
		t.Fatalf("dropped %q", d)
	}
	if f.fwd.reqs[0].Timeseries[0].Samples[0].Timestamp != f.now.UnixMilli() {
		t.Fatalf("a sample without a timestamp is not stamped with the server's clock")
	}
}

func TestPushGroupingPath(t *testing.T) {
	f := newPushFixture(t)
	tok := harness.CompositeToken("dev", "c1")
	// job=installer, region=us/east (base64url), instance="" (stripped
	// anyway), a pushed job label replaced by the path's.
	path := "/metrics/job/installer/region@base64/dXMvZWFzdA/instance@base64/=/zone/a%2Fb"
	status, _, resp := f.push(t, pushReq{method: http.MethodPut, path: path, bearer: tok, ct: decode.TextContentType,
		body: []byte("assisted_installer_a{job=\"other\",x=\"1\"} 1\n")})
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	want := []string{"__name__=assisted_installer_a,_id=c1,job=installer,region=us/east,x=1,zone=a/b 1"}
	if got := f.fwd.series(); !slices.Equal(got, want) {
		t.Fatalf("forwarded %v, want %v", got, want)
	}
	status, _, resp = f.push(t, pushReq{method: http.MethodDelete, path: "/metrics/job/installer", bearer: tok})
	if status != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", status, resp)
	}
	status, _, _ = f.push(t, pushReq{method: http.MethodDelete, path: "/metrics/job/installer"})
	if status != http.StatusUnauthorized {
		t.Fatalf("DELETE without credentials: %d", status)
	}
}

func TestParseGroupingPath(t *testing.T) {
	got, err := parseGroupingPath("/metrics/job@base64/YS9i/l@base64/=/m/v%20w")
	want := []batch.Label{{Name: "job", Value: "a/b"}, {Name: "l", Value: ""}, {Name: "m", Value: "v w"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	// Padding is optional.
	if got, err := parseGroupingPath("/metrics/job@base64/YQ=="); err != nil || got[0].Value != "a" {
		t.Fatalf("%v %v", got, err)
	}
}

// TestPushClientGolang pushes with client_golang's push helper, unchanged:
// its default delimited protobuf, the text format, Push (PUT), Add (POST)
// with a grouping label that needs base64, and Delete.
func TestPushClientGolang(t *testing.T) {
	f := newPushFixture(t)
	reg := prometheus.NewRegistry()
	buckets := make([]float64, 60)
	for i := range buckets {
		buckets[i] = float64(i + 1)
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "assisted_installer_cluster_installation_minutes", Help: "Minutes.", Buckets: buckets})
	for _, v := range []float64{3, 17, 42, 42, 59} {
		h.Observe(v)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "assisted_installer_clusters_created_total", Help: "Clusters."})
	c.Add(7)
	reg.MustRegister(h, c)
	hdr := http.Header{"Authorization": {"Bearer " + harness.CompositeToken("dev", "c1")}}
	pusher := func(format expfmt.Format) *push.Pusher {
		p := push.New(f.srv.URL, "assisted-installer").Gatherer(reg).Grouping("region", "us/east").Header(hdr.Clone())
		if format != "" {
			p = p.Format(format)
		}
		return p
	}
	for _, format := range []expfmt.Format{"", expfmt.NewFormat(expfmt.TypeTextPlain)} {
		if err := pusher(format).Push(); err != nil {
			t.Fatalf("Push %q: %v", format, err)
		}
		if err := pusher(format).Add(); err != nil {
			t.Fatalf("Add %q: %v", format, err)
		}
	}
	if err := pusher("").Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got := f.fwd.series()
	// 60 buckets + Inf + sum + count + the counter, 4 pushes.
	if len(got) != 4*64 {
		t.Fatalf("%d series forwarded, want %d", len(got), 4*64)
	}
	for _, want := range []string{
		// Protobuf and text alike: le as a Prometheus 3 scrape writes it.
		"__name__=assisted_installer_cluster_installation_minutes_bucket,_id=c1,job=assisted-installer,le=42.0,region=us/east 4",
		"__name__=assisted_installer_clusters_created_total,_id=c1,job=assisted-installer,region=us/east 7",
	} {
		if !slices.Contains(got, want) {
			t.Fatalf("%q not forwarded: %v", want, got[:5])
		}
	}
	// Without credentials the helper reports the 401.
	if err := push.New(f.srv.URL, "x").Gatherer(reg).Push(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push without credentials: %v", err)
	}
}

// TestPushHostileMemory: two million one-line series (8 MiB of text in a
// small gzip body) under a 10000-series cap are refused after the cap's
// worth of work, allocating about the decoded body, not the series.
func TestPushHostileMemory(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Limits.MaxRequestBytes = 1 << 20
		o.Limits.MaxDecodedBytes = 16 << 20
		o.Limits.MaxSeriesPerRequest = 10000
	})
	body := gz(bytes.Repeat([]byte("a 1\n"), 2<<20))
	tok := harness.CompositeToken("dev", "c1")
	f.push(t, pushReq{path: "/metrics/v1/push", bearer: tok, ct: decode.TextContentType, enc: "gzip", body: body}) // warm the pools
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	status, _, resp := f.push(t, pushReq{path: "/metrics/v1/push", bearer: tok, ct: decode.TextContentType, enc: "gzip", body: body})
	runtime.ReadMemStats(&after)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(resp, "max_series_per_request") {
		t.Fatalf("status %d %s", status, resp)
	}
	// The decoded body (8 MiB, grown by doubling to 16 MiB: about
	// 32 MiB in all) and 10000 series (2 MiB); building the two million
	// series would take 300 MiB. Measured: 38 MiB.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
	if alloc > 56<<20 {
		t.Fatalf("refusing the push allocated %d MiB", alloc>>20)
	}
}

// TestPushActivity: a push is an installation's activity for the console,
// like a remote write.
func TestPushActivity(t *testing.T) {
	f := newPushFixture(t)
	tok := harness.CompositeToken("dev", "c1")
	status, _, resp := f.push(t, pushReq{path: "/metrics/job/installer", bearer: tok, ct: decode.TextContentType, body: []byte("assisted_installer_a 1\nnot_allowed 2\n")})
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	f.push(t, pushReq{path: "/metrics/v1/push", bearer: tok, ct: decode.TextContentType, body: []byte("assisted_installer_a{ 1\n")})
	a, ok := f.gw.Installation("c1")
	if !ok {
		t.Fatal("c1 unknown")
	}
	if a.Requests != 2 || a.AcceptedSamples != 1 || a.Dropped["allowlist"] != 1 || a.LastPush.IsZero() || !a.LastReceive.IsZero() {
		t.Fatalf("activity %+v", a)
	}
	if len(a.Errors) != 1 || a.Errors[0].Handler != "push" || !strings.Contains(a.Errors[0].Message, "line 1") {
		t.Fatalf("errors %+v", a.Errors)
	}
}

// TestPushOptedOut: an installation on the opt-out list is refused on
// push (403 opted_out), DELETE included, as on every write.
func TestPushOptedOut(t *testing.T) {
	var opt privacy.OptOuts
	f := newFixture(t, func(o *Options) { o.OptOuts = &opt })
	opt.Set([]privacy.OptOut{{ID: "c1"}}, time.Now())
	tok := harness.CompositeToken("dev", "c1")
	for _, r := range []pushReq{
		{path: "/metrics/v1/push", bearer: tok, ct: decode.TextContentType, body: []byte("cluster_version 1\n")},
		{method: http.MethodDelete, path: "/metrics/job/x", bearer: tok},
	} {
		if status, _, body := f.push(t, r); status != http.StatusForbidden || !strings.Contains(body, "opted_out") {
			t.Fatalf("%s %s: %d %s", r.method, r.path, status, body)
		}
	}
	if n := len(f.fwd.series()); n != 0 {
		t.Fatalf("%d series forwarded", n)
	}
}
