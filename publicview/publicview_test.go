package publicview

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

type fakeQuerier struct {
	answers map[string]model.Vector
	calls   int
}

func (f *fakeQuerier) Query(_ context.Context, q string, _ time.Time) (model.Vector, error) {
	f.calls++
	return f.answers[q], nil
}

func sample(v float64, kv ...string) *model.Sample {
	m := model.Metric{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

func TestCompileRefuses(t *testing.T) {
	for q, want := range map[string]string{
		`cluster_version`:                                    "aggregation",
		`max by (version) (cluster_version)`:                 "aggregation",
		`topk(3, cluster_version)`:                           "aggregation",
		`count without (pod) (cluster_version)`:              "without",
		`count by (version, _id) (cluster_version)`:          "installation label",
		`count by (version) (cluster_version`:                "unclosed",
		`sum by (provider) (rate(installs_total[1h])) * 100`: "aggregation",
	} {
		if _, _, err := Compile(Aggregation{Name: "x", Query: q}, "_id"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error about %s", q, err, want)
		}
	}
	by, support, err := Compile(Aggregation{Name: "x", Query: `(count by (version) (cluster_version))`}, "_id")
	if err != nil || len(by) != 1 || support != `count by (version) (count by (version, _id) (cluster_version))` {
		t.Fatalf("%v %q %v", by, support, err)
	}
}

func TestViewSuppressesSmallGroups(t *testing.T) {
	q := `count by (version) (cluster_version)`
	f := &fakeQuerier{answers: map[string]model.Vector{
		`count by (version) (count by (version, _id) (cluster_version))`: {sample(12, "version", "4.14.0"), sample(3, "version", "4.15.0-rc.1"), sample(10, "version", `we"ird\`)},
		q: {sample(12, "version", "4.14.0"), sample(3, "version", "4.15.0-rc.1"), sample(10, "version", `we"ird\`)},
	}}
	now := time.Unix(1000, 0)
	v, err := New(Options{Aggregations: []Aggregation{{Name: "cluster_versions", Query: q}}, Querier: f, K: 10, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(v)
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	code, body := get()
	if code != 200 || !strings.Contains(body, `cluster_versions{version="4.14.0"} 12`) || strings.Contains(body, "4.15.0-rc.1") ||
		!strings.Contains(body, `cluster_versions{version="we\"ird\\"} 10`) || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("%d\n%s", code, body)
	}
	// Cached: no new queries within the TTL; a new evaluation after it.
	calls := f.calls
	get()
	if f.calls != calls {
		t.Fatal("not cached")
	}
	now = now.Add(31 * time.Second)
	get()
	if f.calls == calls {
		t.Fatal("cache never expires")
	}
}

func TestRateLimited(t *testing.T) {
	f := &fakeQuerier{answers: map[string]model.Vector{}}
	v, err := New(Options{Aggregations: []Aggregation{{Name: "n", Query: `count(up)`}}, Querier: f, RequestsPerSecond: 0.001, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	codes := []int{}
	for range 3 {
		rec := httptest.NewRecorder()
		v.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		codes = append(codes, rec.Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("codes %v", codes)
	}
}
