package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/test/e2e/harness"
)

// TestAPIMatchesPrometheus stores the same samples in the embedded store
// and in a real Prometheus (remote-write receiver) and compares the query
// API's answers field by field.
func TestAPIMatchesPrometheus(t *testing.T) {
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "reference", EnableRemoteWriteReceiver: true})
	s, reg := openTest(t, t.TempDir(), Options{})
	api := NewAPI(s, APIOptions{Registerer: reg})
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Whole seconds, a minute ago, 15s apart: the same in both stores.
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Minute).UnixMilli()
	var wr prompb.WriteRequest
	var bs []batch.Series
	add := func(name string, lbls map[string]string, vals ...float64) {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}}
		b := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: name}}}
		for k, v := range lbls {
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
			b.Labels = append(b.Labels, batch.Label{Name: k, Value: v})
		}
		for i, v := range vals {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t0 + int64(i)*15000, Value: v})
			b.Samples = append(b.Samples, batch.Sample{Timestamp: t0 + int64(i)*15000, Value: v})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
		bs = append(bs, b)
	}
	add("up", map[string]string{"_id": "cluster-a", "job": "prometheus"}, 1, 1, 0, 1)
	add("up", map[string]string{"_id": "cluster-b", "job": "prometheus"}, 1, 1, 1, 1)
	add("requests_total", map[string]string{"_id": "cluster-a", "code": "200"}, 10, 25.5, 40, 1e22)
	add("requests_total", map[string]string{"_id": "cluster-b", "code": "500"}, 0.0000001, 2, 3, 4)
	add("cluster_version", map[string]string{"_id": "cluster-a", "version": "4.16.2"}, 1, 1, 1, 1)
	status, body, _, err := harness.RemoteWrite(context.Background(), prom.RemoteWriteURL(), "", &wr)
	if err != nil || status/100 != 2 {
		t.Fatalf("remote write to Prometheus: %d %s %v", status, body, err)
	}
	if err := s.Append(context.Background(), "", bs); err != nil {
		t.Fatal(err)
	}

	at := strconv.FormatFloat(float64(t0+45000)/1000, 'f', -1, 64)
	start := strconv.FormatFloat(float64(t0-30000)/1000, 'f', -1, 64)
	end := strconv.FormatFloat(float64(t0+120000)/1000, 'f', -1, 64)
	v := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", v("query", `up`, "time", at)},
		{"/api/v1/query", v("query", `up{_id="cluster-a"} == 0`, "time", strconv.FormatFloat(float64(t0+30000)/1000, 'f', -1, 64))},
		{"/api/v1/query", v("query", `sum by (_id) (rate(requests_total[1m]))`, "time", at)},
		{"/api/v1/query", v("query", `requests_total`, "time", at)},
		{"/api/v1/query", v("query", `requests_total[1m]`, "time", at)},
		{"/api/v1/query", v("query", `count(up) / 3`, "time", at)},
		{"/api/v1/query", v("query", `scalar(sum(up))`, "time", at)},
		{"/api/v1/query", v("query", `"hello"`, "time", at)},
		{"/api/v1/query", v("query", `up offset 1h`, "time", at)},
		{"/api/v1/query", v("query", `1/0`, "time", "1700000000.123")},
		{"/api/v1/query_range", v("query", `up`, "start", start, "end", end, "step", "15")},
		{"/api/v1/query_range", v("query", `sum(requests_total) by (_id)`, "start", start, "end", end, "step", "7.5s")},
		{"/api/v1/query_range", v("query", `max_over_time(up[30s])`, "start", start, "end", end, "step", "1m")},
		{"/api/v1/series", v("match[]", `up`)},
		{"/api/v1/series", v("match[]", `up{_id="cluster-b"}`, "match[]", `{__name__=~"cluster_.*"}`, "start", start, "end", end)},
		{"/api/v1/series", v("match[]", `nothing_here`)},
		{"/api/v1/labels", nil},
		{"/api/v1/labels", v("match[]", `cluster_version`)},
		{"/api/v1/label/_id/values", nil},
		{"/api/v1/label/__name__/values", nil},
		{"/api/v1/label/code/values", v("match[]", `requests_total{_id="cluster-b"}`)},
		{"/api/v1/label/nope/values", nil},
	}
	for _, c := range cases {
		t.Run(c.path+"?"+c.params.Encode(), func(t *testing.T) {
			want := harness.GetJSON(t, prom.URL(), c.path, c.params)
			got := harness.GetJSON(t, srv.URL, c.path, c.params)
			if testing.Verbose() {
				t.Logf("%d %v", got.Code, got.Body)
			}
			if got.Code != want.Code || !reflect.DeepEqual(got.Body, want.Body) {
				t.Fatalf("\nprometheus: %d %v\ntelegate:   %d %v", want.Code, want.Body, got.Code, got.Body)
			}
		})
	}
	// Errors: the same status and errorType (messages differ between
	// Prometheus releases).
	for _, c := range []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", v("query", `up{`)},
		{"/api/v1/query", v("query", `up`, "time", "yesterday")},
		{"/api/v1/query", v("query", `rate(up)`)},
		{"/api/v1/query_range", v("query", `up`, "start", start, "end", end, "step", "0")},
		{"/api/v1/query_range", v("query", `up`, "start", end, "end", start, "step", "15")},
		{"/api/v1/query_range", v("query", `up`, "start", "0", "end", "1000000", "step", "1")},
		{"/api/v1/series", nil},
		{"/api/v1/series", v("match[]", `{job=~".*"}`)},
		{"/api/v1/query", v("query", `label_replace(up, "__name__", "", "", "")`, "time", at)},
	} {
		t.Run("error "+c.path+"?"+c.params.Encode(), func(t *testing.T) {
			want := harness.GetJSON(t, prom.URL(), c.path, c.params)
			got := harness.GetJSON(t, srv.URL, c.path, c.params)
			if got.Code != want.Code || got.Body["status"] != want.Body["status"] || got.Body["errorType"] != want.Body["errorType"] {
				t.Fatalf("\nprometheus: %d %v\ntelegate:   %d %v", want.Code, want.Body, got.Code, got.Body)
			}
		})
	}
}

// TestGrafanaEndpoints: what Grafana's Prometheus data source calls
// answers with Prometheus' shapes rather than 404.
func TestGrafanaEndpoints(t *testing.T) {
	s, reg := openTest(t, t.TempDir(), Options{})
	mux := http.NewServeMux()
	NewAPI(s, APIOptions{Registerer: reg, Revision: "abc"}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{
		"/api/v1/metadata": `{}`,
		"/api/v1/rules":    `{"groups":[]}`,
		"/api/v1/alerts":   `{"alerts":[]}`,
		"/api/v1/labels":   `[]`,
	} {
		a := harness.GetJSON(t, srv.URL, path, nil)
		data, _ := json.Marshal(a.Body["data"])
		if a.Code != 200 || a.Body["status"] != "success" || string(data) != want {
			t.Errorf("%s: %d %v", path, a.Code, a.Body)
		}
	}
	a := harness.GetJSON(t, srv.URL, "/api/v1/status/buildinfo", nil)
	bi, _ := a.Body["data"].(map[string]any)
	if a.Code != 200 || bi["version"] != prometheusVersion() || bi["revision"] != "abc" {
		t.Fatalf("buildinfo: %d %v", a.Code, a.Body)
	}
	if v := fmt.Sprint(bi["version"]); v == "" || v[0] != '3' {
		t.Fatalf("version %q: Grafana needs a Prometheus release number", v)
	}
	resp, err := http.Post(srv.URL+"/api/v1/query", "application/x-www-form-urlencoded", stringsReader("query=1%2B1&time=10"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(raw) != `{"status":"success","data":{"resultType":"scalar","result":[10,"2"]}}` {
		t.Fatalf("POST query: %d %s", resp.StatusCode, raw)
	}
}

func stringsReader(s string) io.Reader { return &stringReader{s: s} }

type stringReader struct{ s string }

func (r *stringReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}
