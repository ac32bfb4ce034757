package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

// The internal listener follows Prometheus: POST /-/reload only with
// --web.enable-lifecycle (403 "Lifecycle API is not enabled." without),
// pprof only with --web.enable-pprof (404 without); /metrics and the
// registered handlers (health, /debug/limits) are always there.
func TestInternalMuxFlags(t *testing.T) {
	for _, tc := range []struct {
		args             []string
		lifecycle, pprof bool
	}{
		{args: nil},
		{args: []string{"--web.enable-lifecycle"}, lifecycle: true},
		{args: []string{"--web.enable-pprof"}, pprof: true},
		{args: []string{"--web.enable-lifecycle", "--web.enable-pprof"}, lifecycle: true, pprof: true},
	} {
		t.Run(strings.Join(append([]string{"flags"}, tc.args...), " "), func(t *testing.T) {
			app := kingpin.New("telegate", "")
			g := registerGateway(app)
			if _, err := app.Parse(append([]string{"gateway"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			reloads := 0
			mux := newInternalMux(internalOptions{
				Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics\n") }),
				Reload: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					reloads++
					io.WriteString(w, "allowlist reloaded\n")
				}),
				Register: []func(*http.ServeMux){func(m *http.ServeMux) {
					m.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
					m.HandleFunc("/debug/limits", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}\n") })
				}},
				EnableLifecycle: g.enableLifecycle,
				EnablePprof:     g.enablePprof,
			})
			do := func(method, path string) (int, string) {
				t.Helper()
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
				return rec.Code, rec.Body.String()
			}

			for _, p := range []string{"/metrics", "/-/ready", "/debug/limits"} {
				if code, body := do("GET", p); code != 200 {
					t.Errorf("GET %s: %d %q, want 200 whatever the flags", p, code, body)
				}
			}

			for _, method := range []string{"POST", "PUT"} {
				code, body := do(method, "/-/reload")
				if tc.lifecycle && code != 200 {
					t.Errorf("%s /-/reload with --web.enable-lifecycle: %d %q", method, code, body)
				}
				if !tc.lifecycle && (code != http.StatusForbidden || strings.TrimSpace(body) != "Lifecycle API is not enabled.") {
					t.Errorf("%s /-/reload without --web.enable-lifecycle: %d %q, want 403 %q", method, code, body, "Lifecycle API is not enabled.")
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tc.lifecycle]; reloads != want {
				t.Errorf("reloads ran %d times, want %d", reloads, want)
			}
			if code, _ := do("GET", "/-/reload"); !tc.lifecycle && code != http.StatusMethodNotAllowed {
				t.Errorf("GET /-/reload without the flag: %d, want 405", code)
			}

			for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol"} {
				code, body := do("GET", p)
				if tc.pprof && code != 200 {
					t.Errorf("GET %s with --web.enable-pprof: %d %q", p, code, body)
				}
				if !tc.pprof && code != http.StatusNotFound {
					t.Errorf("GET %s without --web.enable-pprof: %d, want 404", p, code)
				}
			}
			if code, body := do("GET", "/debug/pprof/heap?debug=1"); tc.pprof && (code != 200 || !strings.Contains(body, "heap profile")) {
				t.Errorf("heap profile: %d %.80q", code, body)
			}
		})
	}
}
