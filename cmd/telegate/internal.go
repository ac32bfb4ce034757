package main

import (
	"net/http"
	"net/http/pprof"
)

// internalOptions is what the internal listener serves.
type internalOptions struct {
	// Metrics serves /metrics.
	Metrics http.Handler
	// Reload serves POST /-/reload when EnableLifecycle is set.
	Reload http.Handler
	// Register adds further handlers (health, /debug/limits, the query
	// API), which are always on.
	Register []func(*http.ServeMux)

	// EnableLifecycle (--web.enable-lifecycle) enables POST /-/reload;
	// without it the endpoint answers 403, as Prometheus does. SIGHUP
	// reloads either way.
	EnableLifecycle bool
	// EnablePprof (--web.enable-pprof) serves /debug/pprof/*; without it
	// those paths are 404.
	EnablePprof bool
}

// lifecycleDisabled is Prometheus' answer to /-/reload without
// --web.enable-lifecycle.
const lifecycleDisabled = "Lifecycle API is not enabled."

// newInternalMux builds the internal listener's handler.
func newInternalMux(o internalOptions) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", o.Metrics)
	if o.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if o.EnableLifecycle {
		mux.Handle("/-/reload", o.Reload)
	} else {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				w.Header().Set("Allow", "POST, PUT")
				http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
				return
			}
			http.Error(w, lifecycleDisabled, http.StatusForbidden)
		})
	}
	for _, register := range o.Register {
		register(mux)
	}
	return mux
}
