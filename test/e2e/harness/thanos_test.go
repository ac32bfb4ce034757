package harness

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// TestThanosReceiveQuery: Query reads what Receive ingested, and again
// after Receive was stopped and started on the same TSDB.
func TestThanosReceiveQuery(t *testing.T) {
	r := StartThanosReceive(t, ThanosReceiveOptions{})
	q := StartThanosQuery(t, ThanosQueryOptions{Endpoints: []string{r.GRPCAddr()}})
	CheckThanosReadPath(t, r, q, 60*time.Second)
	r.Stop()
	if Ready(r.HTTPURL() + "/-/ready") {
		t.Fatal("receive still ready after Stop")
	}
	r.Start()
	CheckThanosReadPath(t, r, q, 60*time.Second)
	// Both probes survive the restart (the TSDB was kept).
	q.QueryEventually(t, `count({__name__=~"harness_read_path_probe_.*"})`, func(v model.Vector) bool {
		return len(v) == 1 && v[0].Value == 2
	}, 30*time.Second)
}

// TestThanosHashring: a sample written to any node of a 3-node hashring
// with replication factor 3 is stored by every node (three raw copies,
// told apart by receive_replica), and still written with one node killed
// (write quorum 2).
func TestThanosHashring(t *testing.T) {
	h := StartThanosHashring(t, ThanosHashringOptions{})
	q := StartThanosQuery(t, ThanosQueryOptions{Endpoints: h.GRPCAddrs()})
	CheckThanosHashringReadPath(t, h, q, 60*time.Second)
	h.Receivers[2].Process().Kill()
	ms := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "harness_quorum_probe"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: ms}, {Value: 2, Timestamp: ms + 1}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code, body, _, err := RemoteWrite(ctx, h.Receivers[1].RemoteWriteURL(), "", req); err != nil || code/100 != 2 {
		t.Fatalf("write with one node of three down: %d %s %v", code, body, err)
	}
	var m model.Matrix
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		m, err = q.QueryMatrixErr(context.Background(), "harness_quorum_probe[5m]")
		if err == nil && len(m) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw samples on the two live nodes: %v (err %v)", m, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range m {
		if len(s.Values) != 2 || s.Metric["receive_replica"] == "2" {
			t.Fatalf("raw stream %v", s)
		}
	}
}
