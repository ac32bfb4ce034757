package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protodelim"
)

// Content types and headers of the wire protocols (DESIGN.md).
const (
	// UploadContentType is what telemeter-client sends to /upload.
	UploadContentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	// RemoteWriteContentType is the remote write 1.0 content type.
	RemoteWriteContentType = "application/x-protobuf"
	// RemoteWriteVersion is the remote write 1.0 version header value.
	RemoteWriteVersion = "0.1.0"
	// UserAgent identifies harness requests in gateway logs.
	UserAgent = "telegate-e2e-harness"
)

// maxResponseBody bounds how much of a response body is read.
const maxResponseBody = 1 << 20

// httpClient is shared by every helper. It never follows redirects, so
// tests see exactly the status the server sent, and bounds every request.
var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// authorizeResponse is the JSON body of a 200 from /authorize.
type authorizeResponse struct {
	Version          int               `json:"version"`
	Token            string            `json:"token"`
	ExpiresInSeconds int64             `json:"expiresInSeconds"`
	Labels           map[string]string `json:"labels"`
}

// Authorize performs telemeter-client's token exchange: POST
// {gatewayURL}/authorize?id=CLUSTER with "Authorization: Bearer TOKEN" and an
// empty body. On 200 it returns the JWT and the labels to stamp. For any
// other status, or a 200 whose body is not a version 1 response carrying a
// token, err is non-nil and says why (including the server's message);
// status is set whenever the server answered. An empty pullSecretToken
// sends no Authorization header.
func Authorize(ctx context.Context, gatewayURL, pullSecretToken, clusterID string) (token string, labels map[string]string, status int, err error) {
	u := strings.TrimRight(gatewayURL, "/") + "/authorize?id=" + url.QueryEscape(clusterID)
	status, body, _, err := post(ctx, u, pullSecretToken, nil, nil)
	if err != nil {
		return "", nil, status, err
	}
	if status != http.StatusOK {
		return "", nil, status, fmt.Errorf("authorize: HTTP %d: %s", status, strings.TrimSpace(body))
	}
	var r authorizeResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return "", nil, status, fmt.Errorf("authorize: decoding response %q: %w", body, err)
	}
	if r.Version != 1 {
		return "", nil, status, fmt.Errorf("authorize: response version %d, want 1", r.Version)
	}
	if r.Token == "" {
		return "", nil, status, errors.New("authorize: response has no token")
	}
	return r.Token, r.Labels, status, nil
}

// EncodeFamilies encodes families as telemeter-client does: length-delimited
// io.prometheus.client.MetricFamily messages in snappy's framed format.
// Names are sent as given (no escaping), so invalid names can be tested.
func EncodeFamilies(families []*dto.MetricFamily) ([]byte, error) {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	for i, mf := range families {
		if mf == nil {
			return nil, fmt.Errorf("metric family %d is nil", i)
		}
		if _, err := protodelim.MarshalTo(w, mf); err != nil {
			return nil, fmt.Errorf("encoding metric family %d (%q): %w", i, mf.GetName(), err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Upload sends families to {gatewayURL}/upload exactly like
// telemeter-client: EncodeFamilies body, UploadContentType,
// "Content-Encoding: snappy" and "Authorization: Bearer JWT" (omitted when
// jwt is empty). err is non-nil only when the families cannot be encoded
// or no complete response was received; check status for the outcome.
func Upload(ctx context.Context, gatewayURL, jwt string, families []*dto.MetricFamily) (status int, body string, header http.Header, err error) {
	payload, err := EncodeFamilies(families)
	if err != nil {
		return 0, "", nil, err
	}
	return UploadRaw(ctx, strings.TrimRight(gatewayURL, "/")+"/upload", jwt, UploadContentType, "snappy", payload)
}

// UploadRaw POSTs body to the full endpoint URL (e.g. gw+"/upload" or
// gw+"/api/v1/receive") with the given headers, each omitted when empty:
// "Authorization: Bearer jwt", Content-Type and Content-Encoding. It is the
// tool for negative tests (wrong content type, corrupt body, ...). err is
// non-nil only when no complete response was received.
func UploadRaw(ctx context.Context, url, jwt, contentType, contentEncoding string, body []byte) (status int, respBody string, header http.Header, err error) {
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	if contentEncoding != "" {
		h["Content-Encoding"] = contentEncoding
	}
	return post(ctx, url, jwt, h, body)
}

// EncodeWriteRequest marshals req with gogo protobuf and compresses it with
// snappy's block format, as remote write 1.0 requires.
func EncodeWriteRequest(req *prompb.WriteRequest) ([]byte, error) {
	if req == nil {
		return nil, errors.New("nil WriteRequest")
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshalling WriteRequest: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// RemoteWrite sends req to url (the full endpoint, e.g.
// prom.RemoteWriteURL() or gw+"/api/v1/receive") with the headers the
// remote write 1.0 spec requires and "Authorization: Bearer bearer"
// (omitted when bearer is empty). err is non-nil only when the request
// cannot be encoded or no complete response was received.
func RemoteWrite(ctx context.Context, url, bearer string, req *prompb.WriteRequest) (status int, body string, header http.Header, err error) {
	payload, err := EncodeWriteRequest(req)
	if err != nil {
		return 0, "", nil, err
	}
	return post(ctx, url, bearer, map[string]string{
		"Content-Type":                      RemoteWriteContentType,
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": RemoteWriteVersion,
	}, payload)
}

// CompositeToken builds the remote-write bearer token of DESIGN.md:
// base64 (standard, padded) of JSON {"authorization_token":T,"cluster_id":ID}.
func CompositeToken(token, clusterID string) string {
	b, _ := json.Marshal(struct {
		AuthorizationToken string `json:"authorization_token"`
		ClusterID          string `json:"cluster_id"`
	}{token, clusterID}) // cannot fail: two strings
	return base64.StdEncoding.EncodeToString(b)
}

// post sends a POST and returns status, body (at most maxResponseBody
// bytes) and headers; err is set only when no complete response was
// received (status is still set if the body could not be read).
func post(ctx context.Context, url, bearer string, headers map[string]string, body []byte) (int, string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return resp.StatusCode, string(b), resp.Header, fmt.Errorf("reading response body: %w", err)
	}
	return resp.StatusCode, string(b), resp.Header, nil
}
