package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/test/e2e/harness"
)

// blockable is a reverse proxy to a receiver that answers 503 while
// blocked: one replica's downstream fails while the others' works.
type blockable struct {
	*httptest.Server
	blocked atomic.Bool
}

func newBlockable(t *testing.T, target string) *blockable {
	t.Helper()
	u, err := url.Parse(target)
	must(t, err)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	b := &blockable{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.blocked.Load() {
			http.Error(w, "blocked by the test", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// writeSeries sends one remote write of n series of inst, one sample
// each at ts, and records it in l.
func writeSeries(t *testing.T, l *ledger, gw, inst string, n int, ts int64, v float64) int {
	t.Helper()
	req := &prompb.WriteRequest{}
	samples := map[sampleKey]float64{}
	for s := 0; s < n; s++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: scaleRWMetric}, {Name: "inst", Value: inst}, {Name: "s", Value: strconv.Itoa(s)}},
			Samples: []prompb.Sample{{Value: v, Timestamp: ts}},
		})
		samples[sampleKey{seriesID(scaleRWMetric, inst, strconv.Itoa(s)), ts}] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, _, err := harness.RemoteWrite(ctx, gw+"/api/v1/receive", harness.CompositeToken("fleet-token", inst), req)
	if err != nil || status/100 != 2 {
		t.Fatalf("remote write through %s: %d %s %v", gw, status, body, err)
	}
	l.record("receive", status, samples, nil)
	return status
}

// TestScaleOutOfOrderReplay forces what issue 19 found: replica A
// acknowledges an installation's samples while its downstream fails
// (they go to its spool), replica B then forwards newer samples of the
// same series, and A replays afterwards. The receiver refuses A's
// samples as out of order (409). Without an out-of-order window the
// gateway now counts the conflict and keeps retrying instead of
// dead-lettering at once (and the samples are not stored: the receiver
// cannot take them); with the receiver's window covering the spool's age
// every acknowledged sample is stored and nothing is dead-lettered.
func TestScaleOutOfOrderReplay(t *testing.T) {
	_, keyPEM, _ := signingKey(t)
	for _, c := range []struct {
		name   string
		window string
	}{{"no out-of-order window", "0s"}, {"out-of-order window 1h", "1h"}} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			recv := harness.StartThanosReceive(t, harness.ThanosReceiveOptions{ExtraArgs: []string{"--tsdb.out-of-order.time-window=" + c.window}})
			q := harness.StartThanosQuery(t, harness.ThanosQueryOptions{Endpoints: []string{recv.GRPCAddr()}})
			proxy := newBlockable(t, recv.RemoteWriteURL())
			proxy.blocked.Store(true)
			a := startScaleGateway(t, scaleGatewayOpts{name: "telegate-a", downstream: proxy.URL + "/api/v1/receive", jwtPEM: keyPEM})
			b := startScaleGateway(t, scaleGatewayOpts{name: "telegate-b", downstream: recv.RemoteWriteURL(), jwtPEM: keyPEM})
			harness.CheckThanosReadPath(t, recv, q, 60*time.Second)

			l := newLedger()
			const inst, series = "inst-ooo", 3
			base := time.Now().Add(-time.Minute).UnixMilli()
			// Through A: acknowledged, spooled (A's downstream fails).
			for i := 0; i < 3; i++ {
				writeSeries(t, l, a.url, inst, series, base+int64(i)*1000, float64(i))
			}
			if n := metricOf(a, "telegate_spool_objects"); n != 3 {
				t.Fatalf("replica A spooled %v objects, want 3", n)
			}
			// Through B: newer samples of the same series, forwarded.
			for i := 3; i < 6; i++ {
				writeSeries(t, l, b.url, inst, series, base+int64(i)*1000, float64(i))
			}
			// A's downstream is back: A replays older samples than the
			// receiver already holds for these series.
			proxy.blocked.Store(false)

			if c.window == "0s" {
				deadline := time.Now().Add(30 * time.Second)
				for metricOf(a, "telegate_spool_replay_conflicts_total") < 1 {
					if time.Now().After(deadline) {
						t.Fatalf("no conflict counted by replica A; spool objects %v, dead %v", metricOf(a, "telegate_spool_objects"), metricOf(a, "telegate_spool_dead_objects"))
					}
					time.Sleep(200 * time.Millisecond)
				}
				time.Sleep(time.Second)
				if d := metricOf(a, "telegate_spool_dead_objects"); d != 0 {
					t.Fatalf("replica A dead-lettered %v objects at the first conflict", d)
				}
				if n := metricOf(a, "telegate_spool_objects"); n < 1 {
					t.Fatalf("replica A's spool holds %v objects; the conflicting one should wait for a retry", n)
				}
				tl := compare(l, mustStored(t, q))
				t.Logf("without a window: %s; conflicts counted %v (%.1fs)", tl, metricOf(a, "telegate_spool_replay_conflicts_total"), time.Since(start).Seconds())
				if tl.lost != 9 {
					t.Fatalf("want the 9 spooled samples refused by a receiver without an out-of-order window, lost %d", tl.lost)
				}
				return
			}
			waitSpoolDrained(t, a, 30*time.Second)
			tl, _ := waitFound(t, q, l, 10*time.Minute, 30*time.Second, scaleRWMetric)
			t.Logf("with a window: %s; conflicts %v, dead-lettered %v (%.1fs)", tl, metricOf(a, "telegate_spool_replay_conflicts_total"), metricOf(a, "telegate_spool_dead_objects"), time.Since(start).Seconds())
			if tl.lost != 0 || tl.acked != 18 || tl.found != 18 {
				t.Fatalf("acknowledged samples lost: %s; e.g. %v", tl, tl.lostExamples)
			}
			if d := metricOf(a, "telegate_spool_dead_objects"); d != 0 {
				t.Fatalf("replica A dead-lettered %v objects", d)
			}
			if n := metricOf(a, "telegate_spool_replay_conflicts_total"); n != 0 {
				t.Fatalf("%v conflicts with an out-of-order window", n)
			}
		})
	}
}

func mustStored(t *testing.T, q *harness.ThanosQuery) *stored {
	t.Helper()
	st, err := readStored(q, 10*time.Minute, scaleRWMetric)
	must(t, err)
	return st
}
