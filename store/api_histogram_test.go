package store

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/test/e2e/harness"
)

// histogramFixture is native histograms and exemplars written to a
// store; wr is the same as a remote write request.
type histogramFixture struct {
	t0 int64
	wr prompb.WriteRequest
	bs []batch.Series
}

func newHistogramFixture(t *testing.T) *histogramFixture {
	f := &histogramFixture{t0: time.Now().Add(-2 * time.Minute).Truncate(time.Minute).UnixMilli()}
	add := func(lbls []prompb.Label, hs []*histogram.Histogram, samples []float64, exemplars ...prompb.Exemplar) {
		ts := prompb.TimeSeries{Labels: lbls, Exemplars: exemplars}
		b := batch.Series{}
		for _, l := range lbls {
			b.Labels = append(b.Labels, batch.Label{Name: l.Name, Value: l.Value})
		}
		for i, h := range hs {
			at := f.t0 + int64(i)*15000
			ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(at, h))
			b.Histograms = append(b.Histograms, batch.Histogram{Timestamp: at, Raw: rawInt(t, at, h)})
		}
		for i, v := range samples {
			at := f.t0 + int64(i)*15000
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at, Value: v})
			b.Samples = append(b.Samples, batch.Sample{Timestamp: at, Value: v})
		}
		for _, e := range exemplars {
			ex := batch.Exemplar{Value: e.Value, Timestamp: e.Timestamp}
			for _, l := range e.Labels {
				ex.Labels = append(ex.Labels, batch.Label{Name: l.Name, Value: l.Value})
			}
			b.Exemplars = append(b.Exemplars, ex)
		}
		f.wr.Timeseries = append(f.wr.Timeseries, ts)
		f.bs = append(f.bs, b)
	}
	exemplar := func(trace string, v float64, at int64) prompb.Exemplar {
		return prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: trace}}, Value: v, Timestamp: at}
	}
	// A counter histogram growing by intHist(1) every 15s, and one with
	// negative and zero buckets, both with exemplars.
	add([]prompb.Label{{Name: "__name__", Value: "rpc_seconds"}, {Name: "_id", Value: "a"}},
		[]*histogram.Histogram{intHist(1), intHist(2), intHist(3), intHist(4)}, nil,
		exemplar("t1", 1.5, f.t0+1), exemplar("t2", 3.25, f.t0+15001))
	wide := &histogram.Histogram{
		Schema: 1, Count: 12, ZeroCount: 2, ZeroThreshold: 0.001, Sum: 18.4,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}}, PositiveBuckets: []int64{1, 1, -1, 0},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}}, NegativeBuckets: []int64{1, 1, -1, 0},
	}
	add([]prompb.Label{{Name: "__name__", Value: "rpc_seconds"}, {Name: "_id", Value: "b"}},
		[]*histogram.Histogram{wide, wide}, nil, exemplar("t3", -0.75, f.t0+2))
	add([]prompb.Label{{Name: "__name__", Value: "up"}, {Name: "_id", Value: "a"}}, nil, []float64{1, 1, 1, 1},
		exemplar("t4", 1, f.t0+3))
	return f
}

// TestHistogramAPIMatchesPrometheus writes the same native histograms and
// exemplars to the store and to a real Prometheus and compares the query
// API's answers: histogram samples in vectors and matrices, functions
// over them, /api/v1/query_exemplars.
func TestHistogramAPIMatchesPrometheus(t *testing.T) {
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{
		Name: "reference", EnableRemoteWriteReceiver: true,
		// Debian's 2.42 stores native histograms and exemplars only
		// with these.
		ExtraArgs: []string{"--enable-feature=native-histograms,exemplar-storage"},
	})
	s, reg := openTest(t, t.TempDir(), Options{})
	mux := http.NewServeMux()
	NewAPI(s, APIOptions{Registerer: reg}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	f := newHistogramFixture(t)
	// Prometheus' 1.0 receiver appends a series' exemplars before its
	// histograms, so it drops those of a series that has only histograms
	// and does not exist yet: create the series first.
	var first prompb.WriteRequest
	for _, ts := range f.wr.Timeseries {
		ts.Exemplars = nil
		ts.Histograms = ts.Histograms[:min(len(ts.Histograms), 1)]
		ts.Samples = ts.Samples[:min(len(ts.Samples), 1)]
		first.Timeseries = append(first.Timeseries, ts)
	}
	for _, wr := range []*prompb.WriteRequest{&first, &f.wr} {
		status, body, _, err := harness.RemoteWrite(context.Background(), prom.RemoteWriteURL(), "", wr)
		if err != nil || status/100 != 2 {
			t.Fatalf("remote write to Prometheus: %d %s %v", status, body, err)
		}
	}
	if w, err := s.AppendWritten(context.Background(), "", f.bs); err != nil || w != (Written{Samples: 4, Histograms: 6, Exemplars: 4}) {
		t.Fatalf("%+v %v", w, err)
	}
	sec := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) }
	t0 := f.t0
	at := sec(t0 + 45000)
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
		{"/api/v1/query", v("query", `rpc_seconds`, "time", at)},
		{"/api/v1/query", v("query", `rpc_seconds[1m]`, "time", at)},
		{"/api/v1/query", v("query", `histogram_count(rpc_seconds)`, "time", at)},
		{"/api/v1/query", v("query", `histogram_sum(rpc_seconds)`, "time", at)},
		{"/api/v1/query", v("query", `histogram_quantile(0.5, rpc_seconds{_id="a"})`, "time", at)},
		{"/api/v1/query", v("query", `{_id="a"}`, "time", at)},
		{"/api/v1/query_range", v("query", `rpc_seconds`, "start", sec(t0-30000), "end", sec(t0+60000), "step", "15")},
		{"/api/v1/query_range", v("query", `{_id="a"}`, "start", sec(t0), "end", sec(t0+30000), "step", "15")},
		{"/api/v1/query_range", v("query", `histogram_count(rpc_seconds)`, "start", sec(t0), "end", sec(t0+45000), "step", "15")},
		{"/api/v1/query_exemplars", v("query", `rpc_seconds`, "start", sec(t0-60000), "end", sec(t0+60000))},
		{"/api/v1/query_exemplars", v("query", `rpc_seconds{_id="a"}`, "start", sec(t0+10000), "end", sec(t0+60000))},
		{"/api/v1/query_exemplars", v("query", `sum(rate(rpc_seconds[5m])) / up`)},
		{"/api/v1/query_exemplars", v("query", `nothing_here`)},
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
	for _, c := range []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query_exemplars", nil},
		{"/api/v1/query_exemplars", v("query", `up{`)},
		{"/api/v1/query_exemplars", v("query", `up`, "start", "later")},
		{"/api/v1/query_exemplars", v("query", `up`, "start", "10", "end", "5")},
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

// TestHistogramQueriesThroughAStockClient: what the e2e harness (and so
// any client built on prometheus/common/model) reads back from the API.
func TestHistogramQueriesThroughAStockClient(t *testing.T) {
	s, reg := openTest(t, t.TempDir(), Options{})
	mux := http.NewServeMux()
	NewAPI(s, APIOptions{Registerer: reg}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := newHistogramFixture(t)
	// A float histogram too: 4.5 observations in (1,2], 5 in (2,4].
	fh := intHist(1).ToFloat(nil)
	fh.Count, fh.PositiveBuckets[0] = 9.5, 4.5
	f.bs = append(f.bs, batch.Series{
		Labels:     []batch.Label{{Name: "__name__", Value: "gauge_hist"}, {Name: "_id", Value: "a"}},
		Histograms: []batch.Histogram{{Timestamp: f.t0, Raw: rawFloat(t, f.t0, fh)}},
	})
	if err := s.Append(context.Background(), "", f.bs); err != nil {
		t.Fatal(err)
	}
	api := harness.NewPromAPI(srv.URL)
	ctx := context.Background()
	at := time.UnixMilli(f.t0 + 45000)
	one := func(q string) *model.Sample {
		t.Helper()
		vec, err := api.QueryAtErr(ctx, q, at)
		if err != nil || len(vec) != 1 {
			t.Fatalf("%s: %v %v", q, vec, err)
		}
		return vec[0]
	}
	if s := one(`histogram_quantile(0.5, rpc_seconds{_id="a"})`); s.Value != 2 || s.Histogram != nil {
		t.Errorf("median: %v", s)
	}
	if s := one(`histogram_count(rpc_seconds{_id="a"})`); s.Value != 40 {
		t.Errorf("count: %v", s)
	}
	if s := one(`histogram_sum(rate(rpc_seconds{_id="a"}[1m]))`); s.Value != 20.0/15 {
		t.Errorf("rate of sum: %v", s)
	}
	h := one(`rpc_seconds{_id="a"}`).Histogram
	if h == nil || h.Count != 40 || h.Sum != 80 || len(h.Buckets) != 2 ||
		*h.Buckets[0] != (model.HistogramBucket{Boundaries: 0, Lower: 1, Upper: 2, Count: 20}) {
		t.Errorf("histogram sample: %v", h)
	}
	if s := one(`histogram_count(gauge_hist)`); s.Value != 9.5 {
		t.Errorf("float histogram count: %v", s)
	}
	// /api/v1/query_exemplars as client_golang's QueryExemplars reads it.
	a := harness.GetJSON(t, srv.URL, "/api/v1/query_exemplars", url.Values{"query": {`rpc_seconds{_id="a"}`}})
	raw, _ := json.Marshal(a.Body["data"])
	var res []struct {
		SeriesLabels model.LabelSet `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    model.LabelSet    `json:"labels"`
			Value     model.SampleValue `json:"value"`
			Timestamp model.Time        `json:"timestamp"`
		} `json:"exemplars"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res) != 1 || len(res[0].Exemplars) != 2 ||
		res[0].SeriesLabels["_id"] != "a" || res[0].Exemplars[1].Labels["trace_id"] != "t2" ||
		res[0].Exemplars[1].Value != 3.25 || int64(res[0].Exemplars[1].Timestamp) != f.t0+15001 {
		t.Fatalf("query_exemplars: %s %v", raw, err)
	}
}
