package harness

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

func testFamilies() []*dto.MetricFamily {
	return []*dto.MetricFamily{
		{
			Name: proto.String("cluster_version"),
			Help: proto.String("version"),
			Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{
				Label:       []*dto.LabelPair{{Name: proto.String("version"), Value: proto.String("4.16.0")}},
				Gauge:       &dto.Gauge{Value: proto.Float64(1)},
				TimestampMs: proto.Int64(1700000000000),
			}},
		},
		{
			// Not a valid Prometheus name: must reach the server unchanged.
			Name: proto.String("bad.name"),
			Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{
				Counter: &dto.Counter{Value: proto.Float64(3)},
			}},
		},
	}
}

func TestUploadContentTypeMatchesExpfmt(t *testing.T) {
	if got := string(expfmt.NewFormat(expfmt.TypeProtoDelim)); got != UploadContentType {
		t.Fatalf("expfmt delimited format %q != UploadContentType %q", got, UploadContentType)
	}
}

func TestUploadWireFormat(t *testing.T) {
	var got []*dto.MetricFamily
	var hdr http.Header
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr, path = r.Header.Clone(), r.URL.Path
		if r.Method != http.MethodPost {
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		// Framed snappy, then length-delimited MetricFamily messages.
		br := bufio.NewReader(snappy.NewReader(r.Body))
		for {
			mf := &dto.MetricFamily{}
			err := protodelim.UnmarshalFrom(br, mf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got = append(got, mf)
		}
		w.Header().Set("X-Echo", "yes")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "thanks")
	}))
	defer srv.Close()

	want := testFamilies()
	status, body, header, err := Upload(context.Background(), srv.URL+"/", "the-jwt", want)
	if err != nil || status != http.StatusAccepted || body != "thanks" || header.Get("X-Echo") != "yes" {
		t.Fatalf("Upload = %d %q %v %v", status, body, header, err)
	}
	if path != "/upload" {
		t.Fatalf("path %q", path)
	}
	for k, v := range map[string]string{
		"Authorization":    "Bearer the-jwt",
		"Content-Type":     UploadContentType,
		"Content-Encoding": "snappy",
	} {
		if hdr.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, hdr.Get(k), v)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("server decoded %d families, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("family %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestEncodeFamiliesDecodableByExpfmt(t *testing.T) {
	fams := testFamilies()[:1]
	b, err := EncodeFamilies(fams)
	if err != nil {
		t.Fatal(err)
	}
	dec := expfmt.NewDecoder(snappy.NewReader(strings.NewReader(string(b))), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var mf dto.MetricFamily
	if err := dec.Decode(&mf); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&mf, fams[0]) {
		t.Fatalf("decoded %v", &mf)
	}
	if _, err := EncodeFamilies([]*dto.MetricFamily{fams[0], nil}); err == nil || !strings.Contains(err.Error(), "family 1 is nil") {
		t.Fatalf("nil family: err = %v", err)
	}
	if _, _, _, err := Upload(context.Background(), "http://127.0.0.1:1", "j", []*dto.MetricFamily{nil}); err == nil {
		t.Fatal("Upload with a nil family did not fail")
	}
}

func TestUploadRawOmitsEmptyHeaders(t *testing.T) {
	var hdr http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer srv.Close()

	status, resp, h, err := UploadRaw(context.Background(), srv.URL+"/api/v1/receive", "", "", "", []byte("junk"))
	if err != nil || status != http.StatusTooManyRequests || strings.TrimSpace(resp) != "slow down" || h.Get("Retry-After") != "5" {
		t.Fatalf("UploadRaw = %d %q %v %v", status, resp, h, err)
	}
	for _, k := range []string{"Authorization", "Content-Type", "Content-Encoding"} {
		if v, ok := hdr[k]; ok {
			t.Errorf("header %s sent (%q) although empty", k, v)
		}
	}
	if string(body) != "junk" {
		t.Fatalf("body %q", body)
	}
	if _, _, _, err := UploadRaw(context.Background(), "http://127.0.0.1:1/upload", "", "", "", nil); err == nil {
		t.Fatal("UploadRaw to a closed port: no error")
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	status, _, h, err := UploadRaw(context.Background(), srv.URL+"/upload", "j", "", "", nil)
	if err != nil || status != http.StatusTemporaryRedirect || h.Get("Location") != "/elsewhere" {
		t.Fatalf("got %d %v %v", status, h, err)
	}
}

func TestAuthorize(t *testing.T) {
	type seen struct {
		method, path, id, auth string
		body                   []byte
	}
	var s seen
	reply := func(w http.ResponseWriter, status int, body string) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s = seen{r.Method, r.URL.Path, r.URL.Query().Get("id"), r.Header.Get("Authorization"), b}
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			reply(w, 200, `{"version":1,"token":"jwt.x.y","expiresInSeconds":600,"labels":{"_id":"`+r.URL.Query().Get("id")+`"}}`)
		case "Bearer v2":
			reply(w, 200, `{"version":2,"token":"jwt"}`)
		case "Bearer notoken":
			reply(w, 200, `{"version":1}`)
		case "Bearer garbage":
			reply(w, 200, `<html>`)
		default:
			reply(w, 401, "invalid token\n")
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	tok, labels, status, err := Authorize(ctx, srv.URL, "good", "c 1/x")
	if err != nil || status != 200 || tok != "jwt.x.y" || labels["_id"] != "c 1/x" || len(labels) != 1 {
		t.Fatalf("Authorize = %q %v %d %v", tok, labels, status, err)
	}
	if s.method != http.MethodPost || s.path != "/authorize" || s.id != "c 1/x" || s.auth != "Bearer good" || len(s.body) != 0 {
		t.Fatalf("request seen: %+v", s)
	}

	for token, want := range map[string]string{
		"bad":     "HTTP 401: invalid token",
		"v2":      "version 2",
		"notoken": "no token",
		"garbage": "decoding response",
	} {
		tok, _, status, err := Authorize(ctx, srv.URL, token, "c")
		if err == nil || !strings.Contains(err.Error(), want) || tok != "" {
			t.Errorf("token %q: tok=%q err=%v, want error containing %q", token, tok, err, want)
		}
		if (token == "bad") != (status == 401) {
			t.Errorf("token %q: status %d", token, status)
		}
	}

	if _, _, _, err := Authorize(ctx, srv.URL, "", "c"); err == nil || s.auth != "" {
		t.Fatalf("empty token: err=%v, Authorization sent %q", err, s.auth)
	}
	if _, _, status, err := Authorize(ctx, "http://127.0.0.1:1", "good", "c"); err == nil || status != 0 {
		t.Fatalf("closed port: status %d err %v", status, err)
	}
}

func TestRemoteWriteWireFormat(t *testing.T) {
	var got prompb.WriteRequest
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		comp, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, comp) // block format
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := got.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "b"}},
		Samples: []prompb.Sample{{Timestamp: 1700000000000, Value: 2.5}},
	}}}
	status, body, _, err := RemoteWrite(context.Background(), srv.URL+"/api/v1/receive", "tok", req)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("RemoteWrite = %d %q %v", status, body, err)
	}
	for k, v := range map[string]string{
		"Authorization":                     "Bearer tok",
		"Content-Type":                      "application/x-protobuf",
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"User-Agent":                        UserAgent,
	} {
		if hdr.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, hdr.Get(k), v)
		}
	}
	if !reflect.DeepEqual(&got, req) {
		t.Fatalf("server decoded %v, want %v", got, req)
	}
	if _, _, _, err := RemoteWrite(context.Background(), srv.URL, "", nil); err == nil {
		t.Fatal("nil request: no error")
	}
}

func TestCompositeToken(t *testing.T) {
	tok := CompositeToken(`se"cret`, "cluster-1")
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("not standard base64: %v", err)
	}
	if string(raw) != `{"authorization_token":"se\"cret","cluster_id":"cluster-1"}` {
		t.Fatalf("payload %s", raw)
	}
	var v map[string]string
	if err := json.Unmarshal(raw, &v); err != nil || v["authorization_token"] != `se"cret` || v["cluster_id"] != "cluster-1" {
		t.Fatalf("decoded %v %v", v, err)
	}
}
