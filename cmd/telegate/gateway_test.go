package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

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
