package harness

import (
	"encoding/json"
	"io"
	"net/url"
	"testing"
)

// APIAnswer is a Prometheus HTTP API answer as a generic JSON object, for
// comparing two servers' answers field by field.
type APIAnswer struct {
	Code int
	Body map[string]any
}

// GetJSON GETs base+path?params and decodes the JSON object it answers,
// whatever the status code; a body that is not a JSON object fails t.
func GetJSON(t testing.TB, base, path string, params url.Values) APIAnswer {
	t.Helper()
	resp, err := httpClient.Get(base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, raw)
	}
	return APIAnswer{Code: resp.StatusCode, Body: body}
}
