package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/store"
	"github.com/telegate/telegate/test/e2e/harness"
)

// batchForwarder records Append calls; Send must never be used.
type batchForwarder struct {
	mu       sync.Mutex
	calls    [][]string // per call, each series as "name=value,..." (copied)
	clusters []string
	sends    int
	err      error
}

func (f *batchForwarder) Send(context.Context, string, []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends++
	return errors.New("Send called on a BatchForwarder")
}

func (f *batchForwarder) AppendWritten(_ context.Context, clusterID string, series []batch.Series) (forward.Written, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return forward.Written{}, f.err
	}
	var call []string
	for _, s := range series {
		var parts []string
		for _, l := range s.Labels {
			parts = append(parts, l.Name+"="+l.Value)
		}
		call = append(call, strings.Join(parts, ","))
	}
	f.calls = append(f.calls, call)
	f.clusters = append(f.clusters, clusterID)
	return forward.WrittenOf(series), nil
}

// TestBatchForwarderSkipsEncoding: a Forwarder that implements
// BatchForwarder gets the processed series of the whole request in one
// Append (no remote-write encoding, no split at MaxForwardBytes), and its
// errors map to the status table like Send's.
func TestBatchForwarderSkipsEncoding(t *testing.T) {
	bf := &batchForwarder{}
	f := newFixture(t, func(o *Options) { o.Forwarder = bf; o.MaxForwardBytes = 300 })
	ms := f.now.UnixMilli()
	var series []prompb.TimeSeries
	for i := 0; i < 30; i++ {
		series = append(series, ts(float64(i), ms, "__name__", "cluster_version", "type", strconv.Itoa(i), "instance", "x"))
	}
	status, body, _ := f.write(t, harness.CompositeToken("dev", "c7"), series...)
	if status != http.StatusNoContent {
		t.Fatalf("status %d: %s", status, body)
	}
	bf.mu.Lock()
	if bf.sends != 0 || len(bf.calls) != 1 || len(bf.calls[0]) != 30 || bf.clusters[0] != "c7" {
		t.Fatalf("sends=%d calls=%d clusters=%v", bf.sends, len(bf.calls), bf.clusters)
	}
	if got := bf.calls[0][0]; got != "__name__=cluster_version,_id=c7,type=0" {
		t.Fatalf("first series %q: not processed (stripped, stamped)", got)
	}
	bf.mu.Unlock()

	for _, tc := range []struct {
		err    error
		want   int
		reason string
	}{
		{&forward.Error{Status: http.StatusBadRequest, Msg: "refused"}, 400, "downstream_rejected"},
		{&forward.Error{Msg: "disk full", Recoverable: true}, 503, "downstream_unavailable"},
	} {
		bf.mu.Lock()
		bf.err = tc.err
		bf.mu.Unlock()
		status, body, _ := f.write(t, harness.CompositeToken("dev", "c7"), ts(1, ms, "__name__", "cluster_version"))
		var eb errorBody
		json.Unmarshal([]byte(body), &eb)
		if status != tc.want || eb.Reason != tc.reason {
			t.Errorf("%v: %d %s", tc.err, status, body)
		}
	}
}

// TestEmbeddedStoreAsForwarder runs the gateway on the real embedded
// store: what a request acknowledged is stored with the right labels even
// after later requests reuse the pooled request buffers its labels came
// from, and samples the TSDB refuses are answered 400.
func TestEmbeddedStoreAsForwarder(t *testing.T) {
	s, err := store.Open(t.TempDir(), store.Options{NoWALFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := newFixture(t, func(o *Options) { o.Forwarder = s })
	ms := f.now.UnixMilli()
	bearer := harness.CompositeToken("dev", "c1")
	// Same sizes, different bytes: each request reuses the buffers of the
	// one before.
	for i := 0; i < 20; i++ {
		v := strconv.Itoa(10 + i)
		status, body, _ := f.write(t, bearer,
			ts(float64(i), ms, "__name__", "cluster_version", "type", "t"+v, "instance", "i"+v),
			ts(float64(i), ms, "__name__", "rpc_duration_seconds", "method", "m"+v))
		if status != http.StatusNoContent {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	q, err := s.Queryable().Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().String())
	}
	q.Close()
	sort.Strings(got)
	var want []string
	for i := 0; i < 20; i++ {
		v := strconv.Itoa(10 + i)
		want = append(want, `{__name__="cluster_version", _id="c1", type="t`+v+`"}`, `{__name__="rpc_duration_seconds", _id="c1", method="m`+v+`"}`)
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Another value for a stored timestamp: refused for good.
	status, body, _ := f.write(t, bearer, ts(99, ms, "__name__", "cluster_version", "type", "t10"))
	if status != http.StatusBadRequest || !strings.Contains(body, "downstream_rejected") {
		t.Fatalf("conflicting sample: %d %s", status, body)
	}
	// Once the store is closed, writes are 503 with Retry-After.
	s.Close()
	f.now = f.now.Add(time.Second)
	status, body, hdr := f.write(t, bearer, ts(1, f.now.UnixMilli(), "__name__", "cluster_version"))
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("closed store: %d %s", status, body)
	}
}
