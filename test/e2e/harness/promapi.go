package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// apiTimeout bounds one HTTP API call.
const apiTimeout = 10 * time.Second

// PromAPI reads from any server speaking the Prometheus HTTP API
// (Prometheus, Thanos Query, Thanos Receive's store via a querier).
type PromAPI struct {
	base string
}

// NewPromAPI returns a client for the Prometheus HTTP API at baseURL
// (e.g. "http://127.0.0.1:9090").
func NewPromAPI(baseURL string) *PromAPI {
	return &PromAPI{base: strings.TrimRight(baseURL, "/")}
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// get calls path with params and decodes the "data" field into out.
func (a *PromAPI) get(ctx context.Context, path string, params url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	u := a.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", u, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: HTTP %d, undecodable body %.200q: %w", u, resp.StatusCode, body, err)
	}
	if r.Status != "success" || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d, %s: %s", u, resp.StatusCode, r.ErrorType, r.Error)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("GET %s: decoding data: %w", u, err)
	}
	return nil
}

// QueryErr runs an instant query at the server's current time. A vector
// result is returned as is; a scalar becomes a one-sample vector with an
// empty metric; any other result type is an error.
func (a *PromAPI) QueryErr(ctx context.Context, promql string) (model.Vector, error) {
	return a.query(ctx, url.Values{"query": {promql}})
}

// QueryAtErr runs an instant query evaluated at ts (millisecond precision),
// with QueryErr's result rules.
func (a *PromAPI) QueryAtErr(ctx context.Context, promql string, ts time.Time) (model.Vector, error) {
	return a.query(ctx, url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)}})
}

func (a *PromAPI) query(ctx context.Context, params url.Values) (model.Vector, error) {
	promql := params.Get("query")
	var data struct {
		ResultType model.ValueType `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get(ctx, "/api/v1/query", params, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case model.ValVector:
		var v model.Vector
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("decoding vector: %w", err)
		}
		return v, nil
	case model.ValScalar:
		var s model.Scalar
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, fmt.Errorf("decoding scalar: %w", err)
		}
		return model.Vector{{Metric: model.Metric{}, Value: s.Value, Timestamp: s.Timestamp}}, nil
	default:
		return nil, fmt.Errorf("query %q returned a %s, want a vector or scalar", promql, data.ResultType)
	}
}

// QueryMatrixErr runs an instant query whose result is a range vector
// (e.g. `metric[10m]`): the raw samples as stored, one stream per series.
// Against Thanos Query without --query.replica-label each receiver's copy
// is a series of its own (its replica label differs): nothing is
// deduplicated.
func (a *PromAPI) QueryMatrixErr(ctx context.Context, promql string) (model.Matrix, error) {
	var data struct {
		ResultType model.ValueType `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := a.get(ctx, "/api/v1/query", url.Values{"query": {promql}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != model.ValMatrix {
		return nil, fmt.Errorf("query %q returned a %s, want a matrix", promql, data.ResultType)
	}
	var m model.Matrix
	if err := json.Unmarshal(data.Result, &m); err != nil {
		return nil, fmt.Errorf("decoding matrix: %w", err)
	}
	return m, nil
}

// Query runs an instant query and fails the test on any error.
func (a *PromAPI) Query(t testing.TB, promql string) model.Vector {
	t.Helper()
	v, err := a.QueryErr(context.Background(), promql)
	if err != nil {
		t.Fatalf("harness: query %q: %v", promql, err)
	}
	return v
}

// QueryEventually runs promql every 100ms until cond accepts the result and
// returns that result. Errors (e.g. the server restarting) are retried. If
// timeout passes first, it fails the test showing the last result or error.
func (a *PromAPI) QueryEventually(t testing.TB, promql string, cond func(model.Vector) bool, timeout time.Duration) model.Vector {
	t.Helper()
	if cond == nil {
		t.Fatalf("harness: QueryEventually(%q): nil condition", promql)
	}
	deadline := time.Now().Add(timeout)
	for {
		v, err := a.QueryErr(context.Background(), promql)
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("harness: query %q: condition not met within %s; last error: %v", promql, timeout, err)
			}
			t.Fatalf("harness: query %q: condition not met within %s; last result:\n%s", promql, timeout, v)
		}
		time.Sleep(pollInterval)
	}
}

// SeriesErr lists the series matching any of the selectors over the whole
// stored time range, sorted by their label sets for stable comparisons.
func (a *PromAPI) SeriesErr(ctx context.Context, matchers ...string) ([]map[string]string, error) {
	if len(matchers) == 0 {
		return nil, errors.New("series: at least one matcher is required")
	}
	var out []map[string]string
	if err := a.get(ctx, "/api/v1/series", url.Values{"match[]": matchers}, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		return model.LabelSet(toLabelSet(out[i])).String() < model.LabelSet(toLabelSet(out[j])).String()
	})
	return out, nil
}

// Series is SeriesErr failing the test on error.
func (a *PromAPI) Series(t testing.TB, matchers ...string) []map[string]string {
	t.Helper()
	s, err := a.SeriesErr(context.Background(), matchers...)
	if err != nil {
		t.Fatalf("harness: series %q: %v", matchers, err)
	}
	return s
}

// LabelValuesErr lists the values of label name, optionally restricted to
// series matching the selectors.
func (a *PromAPI) LabelValuesErr(ctx context.Context, name string, matchers ...string) ([]string, error) {
	if name == "" {
		return nil, errors.New("label values: empty label name")
	}
	params := url.Values{}
	if len(matchers) > 0 {
		params["match[]"] = matchers
	}
	var out []string
	if err := a.get(ctx, "/api/v1/label/"+url.PathEscape(name)+"/values", params, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// LabelValues is LabelValuesErr failing the test on error.
func (a *PromAPI) LabelValues(t testing.TB, name string, matchers ...string) []string {
	t.Helper()
	v, err := a.LabelValuesErr(context.Background(), name, matchers...)
	if err != nil {
		t.Fatalf("harness: label values of %q: %v", name, err)
	}
	return v
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// Len returns a QueryEventually condition: the vector has exactly n samples.
func Len(n int) func(model.Vector) bool {
	return func(v model.Vector) bool { return len(v) == n }
}

// NonEmpty is a QueryEventually condition: at least one sample.
func NonEmpty(v model.Vector) bool { return len(v) > 0 }
