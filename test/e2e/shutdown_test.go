package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// TestGracefulShutdown: SIGTERM while a request is in flight (the
// downstream is slow) lets the request finish, its data lands in the
// store, and the gateway exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	target, _ := url.Parse(down.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	reached := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		time.Sleep(2 * time.Second)
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()
	gw := startGateway(t, gatewayOpts{downstream: slow.URL + "/api/v1/write", tokens: true})

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "cluster_version"}},
			Samples: []prompb.Sample{{Value: 7, Timestamp: time.Now().UnixMilli()}},
		}}}
		status, body, _, err := harness.RemoteWrite(context.Background(), gw.url+"/api/v1/receive", harness.CompositeToken("fleet-token", "cluster-drain"), req)
		done <- result{status, body, err}
	}()
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("request never reached the downstream")
	}
	must(t, syscall.Kill(gw.Pid(), syscall.SIGTERM))
	r := <-done
	if r.err != nil || r.status != http.StatusNoContent {
		t.Fatalf("in-flight request during shutdown: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case <-gw.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	if err := gw.ExitError(); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	v := down.QueryEventually(t, `cluster_version{_id="cluster-drain"}`, harness.Len(1), 30*time.Second)
	if v[0].Value != 7 {
		t.Fatalf("value %v", v[0].Value)
	}
}
