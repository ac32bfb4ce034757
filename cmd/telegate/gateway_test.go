package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/config"
)

// The authorizer is reached with the HTTP client settings of
// authn.authorizer (here: a bearer credential the authorizer requires).
func TestAuthorizerHTTPClientConfig(t *testing.T) {
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer authz-secret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"account_id":"acct"}`))
	}))
	defer authz.Close()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte("matches: []\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("authz-secret"), 0o600))
	for name, authorization := range map[string]string{
		"with credentials":    "    authorization: {credentials_file: secret}\n",
		"without credentials": "",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := "authn:\n  tokens_file: ''\n  authorizer:\n    url: " + authz.URL + "\n" + authorization +
				"allowlist: {file: allowlist.yaml}\nforward:\n  url: http://127.0.0.1:1/api/v1/write\n  spool: {enabled: false}\n"
			must(os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
			c, err := config.LoadFile(filepath.Join(dir, "gateway.yaml"))
			must(err)
			comp, err := build(c, log.NewNopLogger(), prometheus.NewRegistry())
			must(err)
			id, err := comp.authenticator.Authenticate(context.Background(), "pull-secret", "c1")
			if authorization != "" && (err != nil || id.AccountID != "acct") {
				t.Fatalf("authorizer with credentials: %+v %v", id, err)
			}
			if authorization == "" && err == nil {
				t.Fatal("authorizer accepted a request without its credentials")
			}
		})
	}
}

// authn.authorizer.max_concurrent reaches the authorizer client: with one
// call held at the authorizer, the next is refused without reaching it.
func TestAuthorizerMaxConcurrentWired(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		w.Write([]byte(`{"account_id":"acct"}`))
	}))
	defer authz.Close()
	defer close(release)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte("matches: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "authn:\n  tokens_file: ''\n  authorizer:\n    url: " + authz.URL + "\n    max_concurrent: 1\n" +
		"allowlist: {file: allowlist.yaml}\nforward:\n  url: http://127.0.0.1:1/api/v1/write\n  spool: {enabled: false}\n"
	if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFile(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := build(c, log.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	go comp.authenticator.Authenticate(context.Background(), "held", "c1")
	for deadline := time.Now().Add(5 * time.Second); calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first call never reached the authorizer")
		}
	}
	if _, err := comp.authenticator.Authenticate(context.Background(), "second", "c1"); !errors.Is(err, authn.ErrBusy) {
		t.Fatalf("second call: %v, want authn.ErrBusy", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("authorizer calls: %d, want 1", n)
	}
}

// authn.jwt.telemeter_compat and authn.cluster_id_label reach the signer,
// with a signing key file and with an ephemeral key.
func TestTelemeterCompatWired(t *testing.T) {
	dir := t.TempDir()
	key, err := os.ReadFile("../../authn/testdata/telemeter/shared-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, data string }{{"allowlist.yaml", "matches: []\n"}, {"key.pem", string(key)}, {"tokens.yaml", "tokens: []\n"}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		jwt       string
		want      authn.TelemeterCompat
		wantIssue string
	}{
		"defaults":      {jwt: "{signing_key_file: key.pem}", want: authn.TelemeterCompat{Accept: true, Issue: true, PartitionLabel: "cluster_id"}, wantIssue: authn.TelemeterIssuer},
		"ephemeral":     {jwt: "{}", want: authn.TelemeterCompat{Accept: true, Issue: true, PartitionLabel: "cluster_id"}, wantIssue: authn.TelemeterIssuer},
		"accept only":   {jwt: "{signing_key_file: key.pem, telemeter_compat: {issue: false}}", want: authn.TelemeterCompat{Accept: true, PartitionLabel: "cluster_id"}, wantIssue: authn.TokenIssuer},
		"telegate only": {jwt: "{telemeter_compat: {accept: false, issue: false}}", want: authn.TelemeterCompat{PartitionLabel: "cluster_id"}, wantIssue: authn.TokenIssuer},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := "authn:\n  cluster_id_label: cluster_id\n  jwt: " + tc.jwt + "\n" +
				"allowlist: {file: allowlist.yaml}\nforward:\n  url: http://127.0.0.1:1/api/v1/write\n  spool: {enabled: false}\n"
			if err := os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadFile(filepath.Join(dir, "gateway.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			comp, err := build(c, log.NewNopLogger(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			if got := comp.issuer.Telemeter(); got != tc.want {
				t.Fatalf("signer compat %+v, want %+v", got, tc.want)
			}
			tok, _, err := comp.issuer.Issue(authn.Identity{ClusterID: "c1", Labels: map[string]string{"cluster_id": "c1"}})
			if err != nil {
				t.Fatal(err)
			}
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Iss string `json:"iss"`
			}
			if err := json.Unmarshal(payload, &claims); err != nil || claims.Iss != tc.wantIssue {
				t.Fatalf("issued token's iss %q (%v), want %q", claims.Iss, err, tc.wantIssue)
			}
			if id, err := comp.issuer.Verify(tok); err != nil || id.ClusterID != "c1" {
				t.Fatalf("the gateway refuses its own token: %+v %v", id, err)
			}
		})
	}
}
