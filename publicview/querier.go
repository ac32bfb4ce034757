package publicview

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// apiResponse is the Prometheus HTTP API's envelope of an instant query.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// maxResponse bounds an answer read from the query API.
const maxResponse = 16 << 20

func decodeVector(status int, body io.Reader) (model.Vector, error) {
	var r apiResponse
	if err := json.NewDecoder(io.LimitReader(body, maxResponse)).Decode(&r); err != nil {
		return nil, fmt.Errorf("query API answered %d: %w", status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query API answered %d: %s: %s", status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query API answered a %s, want a vector", r.Data.ResultType)
	}
	var v model.Vector
	if err := json.Unmarshal(r.Data.Result, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func queryForm(promql string, ts time.Time) url.Values {
	return url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)}}
}

// HTTPQuerier queries a Prometheus-compatible query API (Thanos Query, a
// Prometheus) at URL (its root: /api/v1/query is appended).
type HTTPQuerier struct {
	URL    string
	Client *http.Client
}

// Query implements Querier.
func (q *HTTPQuerier) Query(ctx context.Context, promql string, ts time.Time) (model.Vector, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(q.URL, "/")+"/api/v1/query", strings.NewReader(queryForm(promql, ts).Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := q.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeVector(resp.StatusCode, resp.Body)
}

// HandlerQuerier queries a query API served by H in this process (the
// embedded store's), without a network round trip.
type HandlerQuerier struct{ H http.Handler }

// Query implements Querier.
func (q HandlerQuerier) Query(ctx context.Context, promql string, ts time.Time) (model.Vector, error) {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/query", strings.NewReader(queryForm(promql, ts).Encode())).WithContext(ctx)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	q.H.ServeHTTP(rec, req)
	return decodeVector(rec.Code, rec.Body)
}
