package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/config"
)

func TestOptOutFileAndAPI(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "opt-outs.yaml")
	if err := os.WriteFile(file, []byte("installations:\n- c1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Privacy.OptOutFile = file
	o, err := newOptOuts(c, log.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o.set.Contains("c1"); !ok {
		t.Fatal("c1 not loaded")
	}
	mux := http.NewServeMux()
	o.register(mux)
	do := func(method, query string) (int, optOutsResponse) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, "/api/v1/opt-outs"+query, nil))
		var resp optOutsResponse
		json.Unmarshal(rec.Body.Bytes(), &resp)
		return rec.Code, resp
	}
	if code, resp := do(http.MethodPost, "?id=c2&reason=asked+by+mail"); code != 200 || len(resp.Installations) != 2 || resp.Installations[1].Reason != "asked by mail" {
		t.Fatalf("POST: %d %+v", code, resp)
	}
	if _, ok := o.set.Contains("c2"); !ok {
		t.Fatal("c2 not effective")
	}
	// The file was rewritten: a new start reads the same list.
	o2, err := newOptOuts(c, log.NewNopLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o2.set.Contains("c2"); !ok {
		t.Fatal("c2 not persisted")
	}
	if code, resp := do(http.MethodDelete, "?id=c1"); code != 200 || len(resp.Installations) != 1 || resp.Installations[0].ID != "c2" {
		t.Fatalf("DELETE: %d %+v", code, resp)
	}
	if code, _ := do(http.MethodPost, ""); code != http.StatusBadRequest {
		t.Fatalf("POST without id: %d", code)
	}
	if code, _ := do(http.MethodPut, "?id=x"); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", code)
	}
	// An invalid file keeps the previous list; a valid change applies.
	os.WriteFile(file, []byte("installations: {broken\n"), 0o644)
	if err := o.Reload(); err == nil {
		t.Fatal("invalid file reloaded")
	}
	if _, ok := o.set.Contains("c2"); !ok {
		t.Fatal("invalid file dropped the list")
	}
	os.WriteFile(file, []byte("installations: [c3]\n"), 0o644)
	if err := o.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.set.Contains("c3"); !ok {
		t.Fatal("c3 not reloaded")
	}
	// Without a file the API says where the problem is.
	none, _ := newOptOuts(config.Default(), log.NewNopLogger(), prometheus.NewRegistry())
	mux2 := http.NewServeMux()
	none.register(mux2)
	rec := httptest.NewRecorder()
	mux2.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/opt-outs?id=x", nil))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "opt_out_file") {
		t.Fatalf("no file: %d %s", rec.Code, rec.Body)
	}
}
