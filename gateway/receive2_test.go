package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/golang/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/store"
	"github.com/telegate/telegate/test/e2e/harness"
)

// v2Series is a 2.0 series of labels (name, value pairs, sorted by the
// caller) with one sample, symbolized into st.
func v2Series(st *writev2.SymbolsTable, v float64, ms int64, kv ...string) writev2.TimeSeries {
	ts := writev2.TimeSeries{Samples: []writev2.Sample{{Value: v, Timestamp: ms}}}
	for i := 0; i < len(kv); i += 2 {
		ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(kv[i]), st.Symbolize(kv[i+1]))
	}
	return ts
}

// postV2 sends a remote write 2.0 request (or anything, raw) with
// Content-Type ct.
func (f *fixture) postRaw(t *testing.T, path, bearer, ct string, raw []byte) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, f.srv.URL+path, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (f *fixture) writeV2(t *testing.T, bearer string, req *writev2.Request) (int, string, http.Header) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return f.postRaw(t, "/api/v1/receive", bearer, decode.RemoteWriteV2ContentType, raw)
}

// written returns the three written headers as "samples/histograms/exemplars",
// "-" for a missing one.
func written(h http.Header) string {
	var parts []string
	for _, k := range []string{writtenSamplesHeader, writtenHistogramsHeader, writtenExemplarsHeader} {
		v := h.Get(k)
		if len(h.Values(k)) == 0 {
			v = "-"
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, "/")
}

func TestRemoteWriteV2(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	st := writev2.NewSymbolTable()
	hist := v2Series(&st, 0, ms, "__name__", "rpc_duration_seconds", "job", "hist")
	hist.Samples = nil
	hist.Histograms = []writev2.Histogram{{Count: &writev2.Histogram_CountInt{CountInt: 3}, Schema: 1, Timestamp: ms,
		PositiveSpans: []writev2.BucketSpan{{Length: 1}}, PositiveDeltas: []int64{3}}}
	withExemplar := v2Series(&st, 7, ms, "__name__", "rpc_duration_seconds", "instance", "a", "job", "api")
	withExemplar.Samples = append(withExemplar.Samples, writev2.Sample{Value: 8, Timestamp: ms + 1})
	withExemplar.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 7, Timestamp: ms}}
	withExemplar.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("help")}
	series := []writev2.TimeSeries{
		v2Series(&st, 1, ms, "__name__", "cluster_version", "instance", "10.0.0.1:9090", "pod", "p", "type", "current"),
		v2Series(&st, 2, ms, "__name__", "not_allowed", "_id", "c1", "job", "x"),
		withExemplar,
		hist,
	}
	req := &writev2.Request{Symbols: st.Symbols(), Timeseries: series}
	for _, path := range []string{"/api/v1/receive", "/metrics/v1/receive"} {
		f.fwd.reqs = nil
		raw, _ := req.Marshal()
		status, body, hdr := f.postRaw(t, path, harness.CompositeToken("dev", "c1"), decode.RemoteWriteV2ContentType, raw)
		if status != http.StatusNoContent {
			t.Fatalf("%s: status %d: %s", path, status, body)
		}
		got := f.fwd.series()
		want := []string{"__name__=cluster_version,_id=c1,type=current 1", "__name__=rpc_duration_seconds,_id=c1,job=api 7", "__name__=rpc_duration_seconds,_id=c1,job=api 8",
			"__name__=rpc_duration_seconds,_id=c1,job=api exemplar 7", "__name__=rpc_duration_seconds,_id=c1,job=hist histogram count=3"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: forwarded\n%s\nwant\n%s", path, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// Written: the 3 forwarded samples, the histogram and the
		// exemplar; not the sample the allowlist dropped.
		if w := written(hdr); w != "3/1/1" {
			t.Errorf("%s: written headers %s, want 3/1/1", path, w)
		}
		if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "allowlist=1" {
			t.Errorf("%s: dropped header %q", path, d)
		}
	}
	// 1.0 answers carry no written headers.
	status, _, hdr := f.write(t, harness.CompositeToken("dev", "c1"), ts(1, ms, "__name__", "cluster_version"))
	if status != http.StatusNoContent || written(hdr) != "-/-/-" {
		t.Errorf("1.0: status %d, written headers %s", status, written(hdr))
	}
}

// Every answer to a 2.0 request carries the written headers, 0 when
// nothing reached downstream.
func TestRemoteWriteV2Errors(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	st := writev2.NewSymbolTable()
	good := &writev2.Request{Timeseries: []writev2.TimeSeries{v2Series(&st, 1, ms, "__name__", "cluster_version")}, Symbols: st.Symbols()}
	token := harness.CompositeToken("dev", "c1")
	for _, c := range []struct {
		name   string
		req    *writev2.Request
		bearer string
		fwdErr error
		status int
		msg    string
	}{
		{"unsorted labels", &writev2.Request{Symbols: []string{"", "__name__", "cluster_version", "a", "b"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{3, 4, 1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}}},
			token, nil, 400, `label names not sorted: \"__name__\" after \"a\"`},
		{"reference out of range", &writev2.Request{Symbols: []string{"", "__name__"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 7}, Samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}}},
			token, nil, 400, "outside the symbols table (2 symbols)"},
		{"symbols[0] not empty", &writev2.Request{Symbols: []string{"x"}}, token, nil, 400, "symbols[0]"},
		{"foreign _id", &writev2.Request{Symbols: []string{"", "__name__", "cluster_version", "_id", "c2"},
			Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Value: 1, Timestamp: ms}}}}},
			token, nil, 400, "_id"},
		{"unauthenticated", good, harness.CompositeToken("nope", "c1"), nil, 401, ""},
		{"downstream down", good, token, &forward.Error{Status: 503, Msg: "down", Recoverable: true}, 503, "long-term storage unavailable"},
		{"downstream refuses", good, token, &forward.Error{Status: 409, Msg: "out of order"}, 400, "rejected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.fwd.err = c.fwdErr
			status, body, hdr := f.writeV2(t, c.bearer, c.req)
			if status != c.status || !strings.Contains(body, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", status, body, c.status, c.msg)
			}
			if w := written(hdr); w != "0/0/0" {
				t.Errorf("written headers %s, want 0/0/0", w)
			}
		})
	}
	f.fwd.err = nil

	// Negotiation: an unknown proto is a 415 naming the accepted
	// messages, without written headers (it is not a 2.0 request); a
	// 2.0 request with the wrong encoding is a 415 with them.
	raw, _ := good.Marshal()
	status, body, hdr := f.postRaw(t, "/api/v1/receive", token, "application/x-protobuf;proto=x", raw)
	if status != 415 || !strings.Contains(body, `unsupported remote write message \"x\"; accepted: prometheus.WriteRequest, io.prometheus.write.v2.Request`) || written(hdr) != "-/-/-" {
		t.Errorf("unknown proto: %d %q %s", status, body, written(hdr))
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/receive", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", decode.RemoteWriteV2ContentType)
	req.Header.Set("Content-Encoding", "zstd")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 || written(resp.Header) != "0/0/0" {
		t.Errorf("2.0 with zstd: %d %s", resp.StatusCode, written(resp.Header))
	}
	// A 2.0 body sent as 1.0 is decoded as 1.0: its fields are unknown
	// there, nothing is written.
	f.fwd.reqs = nil
	status, body, _ = f.postRaw(t, "/api/v1/receive", token, "application/x-protobuf", raw)
	if status != 204 || len(f.fwd.series()) != 0 {
		t.Errorf("2.0 body as 1.0: %d %q %v", status, body, f.fwd.series())
	}
	// And the good request is written.
	status, body, hdr = f.writeV2(t, token, good)
	if status != 204 || written(hdr) != "1/0/0" {
		t.Errorf("good request: %d %q %s", status, body, written(hdr))
	}
}

// A request with invalid series writes its valid ones and answers 400 with
// what was written, as Prometheus' own receiver does: a sender dropping the
// request on 400 loses only the invalid series.
func TestRemoteWriteV2PartialWrite(t *testing.T) {
	f := newFixture(t, nil)
	ms := f.now.UnixMilli()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		v2Series(&st, 1, ms, "__name__", "cluster_version", "type", "current"),
		v2Series(&st, 2, ms, "job", "nameless"),                                // no __name__: invalid
		v2Series(&st, 3, ms, "__name__", "cluster_version", "type", "b\xffad"), // invalid UTF-8
		v2Series(&st, 4, ms, "__name__", "rpc_duration_seconds", "job", "api"),
	}}
	req.Symbols = st.Symbols()
	status, body, hdr := f.writeV2(t, harness.CompositeToken("dev", "c1"), req)
	if status != http.StatusBadRequest || !strings.Contains(body, "without a metric name") {
		t.Fatalf("status %d: %s", status, body)
	}
	want := []string{"__name__=cluster_version,_id=c1,type=current 1", "__name__=rpc_duration_seconds,_id=c1,job=api 4"}
	if got := f.fwd.series(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("forwarded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := written(hdr); w != "2/0/0" {
		t.Errorf("written headers %s, want 2/0/0", w)
	}
	if d := hdr.Get("X-Telegate-Dropped-Samples"); d != "invalid=2" {
		t.Errorf("dropped header %q", d)
	}
	// A series claiming another cluster still refuses the whole request.
	f.fwd.reqs = nil
	st = writev2.NewSymbolTable()
	req = &writev2.Request{Timeseries: []writev2.TimeSeries{
		v2Series(&st, 1, ms, "__name__", "cluster_version", "type", "current"),
		v2Series(&st, 2, ms, "__name__", "cluster_version", "_id", "c2"),
	}}
	req.Symbols = st.Symbols()
	if status, _, hdr := f.writeV2(t, harness.CompositeToken("dev", "c1"), req); status != http.StatusBadRequest || len(f.fwd.series()) != 0 || written(hdr) != "0/0/0" {
		t.Fatalf("identity: status %d, forwarded %v, written %s", status, f.fwd.series(), written(hdr))
	}
}

// rawForwarder keeps the decompressed bodies it is sent.
type rawForwarder struct{ bodies [][]byte }

func (f *rawForwarder) Send(_ context.Context, _ string, body []byte) error {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return err
	}
	f.bodies = append(f.bodies, raw)
	return nil
}

// With ForwardMessage 2.0 the gateway encodes what it forwards as
// io.prometheus.write.v2.Request: stamped labels, samples, the histogram
// as it arrived, exemplars and the family's metadata on its series.
func TestForwardRemoteWriteV2(t *testing.T) {
	fwd := &rawForwarder{}
	f := newFixture(t, func(o *Options) { o.Forwarder, o.ForwardMessage = fwd, forward.MessageV2 })
	ms := f.now.UnixMilli()
	st := writev2.NewSymbolTable()
	s := v2Series(&st, 7, ms, "__name__", "rpc_duration_seconds", "instance", "a", "job", "api")
	s.Histograms = []writev2.Histogram{{Count: &writev2.Histogram_CountInt{CountInt: 3}, Schema: 1, Timestamp: ms + 1,
		PositiveSpans: []writev2.BucketSpan{{Length: 1}}, PositiveDeltas: []int64{3}}}
	s.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 7, Timestamp: ms}}
	s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("latency")}
	raw, _ := (&writev2.Request{Symbols: st.Symbols(), Timeseries: []writev2.TimeSeries{s}}).Marshal()
	status, body, hdr := f.postRaw(t, "/api/v1/receive", harness.CompositeToken("dev", "c1"), decode.RemoteWriteV2ContentType, raw)
	if status != http.StatusNoContent || written(hdr) != "1/1/1" || len(fwd.bodies) != 1 {
		t.Fatalf("status %d %s, written %s, %d bodies", status, body, written(hdr), len(fwd.bodies))
	}
	var got writev2.Request
	if err := got.Unmarshal(fwd.bodies[0]); err != nil {
		t.Fatalf("forwarded body is not a 2.0 request: %v", err)
	}
	if len(got.Timeseries) != 1 {
		t.Fatalf("%d series forwarded", len(got.Timeseries))
	}
	g := got.Timeseries[0]
	var labels []string
	for i := 0; i+1 < len(g.LabelsRefs); i += 2 {
		labels = append(labels, got.Symbols[g.LabelsRefs[i]]+"="+got.Symbols[g.LabelsRefs[i+1]])
	}
	if strings.Join(labels, ",") != "__name__=rpc_duration_seconds,_id=c1,job=api" ||
		len(g.Samples) != 1 || g.Samples[0].Value != 7 ||
		len(g.Histograms) != 1 || g.Histograms[0].GetCountInt() != 3 || g.Histograms[0].Timestamp != ms+1 ||
		len(g.Exemplars) != 1 || got.Symbols[g.Exemplars[0].LabelsRefs[1]] != "abc" ||
		g.Metadata.Type != writev2.Metadata_METRIC_TYPE_HISTOGRAM || got.Symbols[g.Metadata.HelpRef] != "latency" {
		t.Fatalf("forwarded %v %+v (symbols %q)", labels, g, got.Symbols)
	}
}

// The embedded store refusing some samples for good stores the rest: the
// 400 says how many were written (remote write 2.0 requires the written
// headers on every answer), and a storage failure, which stores nothing,
// answers zero.
func TestRemoteWriteV2StorePartialWrite(t *testing.T) {
	s, err := store.Open(t.TempDir(), store.Options{NoWALFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := newFixture(t, func(o *Options) { o.Forwarder = s })
	ms := f.now.UnixMilli()
	bearer := harness.CompositeToken("dev", "c1")
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{v2Series(&st, 1, ms, "__name__", "cluster_version", "type", "current")}}
	req.Symbols = st.Symbols()
	if status, body, hdr := f.writeV2(t, bearer, req); status != http.StatusNoContent || written(hdr) != "1/0/0" {
		t.Fatalf("first write: %d %s, written %s", status, body, written(hdr))
	}
	// Another value at the stored timestamp (refused), and a new series
	// with an exemplar (stored).
	st = writev2.NewSymbolTable()
	fresh := v2Series(&st, 5, ms, "__name__", "rpc_duration_seconds", "job", "api")
	fresh.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 5, Timestamp: ms}}
	req = &writev2.Request{Timeseries: []writev2.TimeSeries{
		v2Series(&st, 2, ms, "__name__", "cluster_version", "type", "current"),
		fresh,
	}}
	req.Symbols = st.Symbols()
	status, body, hdr := f.writeV2(t, bearer, req)
	if status != http.StatusBadRequest || !strings.Contains(body, "downstream_rejected") {
		t.Fatalf("partial write: %d %s", status, body)
	}
	if w := written(hdr); w != "1/0/1" {
		t.Errorf("partial write: written headers %s, want 1/0/1", w)
	}
	// Storage failing stores nothing: 503, zero written.
	s.Close()
	st = writev2.NewSymbolTable()
	req = &writev2.Request{Timeseries: []writev2.TimeSeries{v2Series(&st, 3, ms+1000, "__name__", "cluster_version", "type", "current")}}
	req.Symbols = st.Symbols()
	if status, body, hdr := f.writeV2(t, bearer, req); status != http.StatusServiceUnavailable || written(hdr) != "0/0/0" {
		t.Fatalf("closed store: %d %s, written %s", status, body, written(hdr))
	}
}

// writtenForwarder is a BatchForwarder that answers with fixed counts and
// error.
type writtenForwarder struct {
	batchForwarder
	w   forward.Written
	err error
}

func (f *writtenForwarder) AppendWritten(context.Context, string, []batch.Series) (forward.Written, error) {
	return f.w, f.err
}

// Counts a BatchForwarder returns with a recoverable error (or one that is
// not a *forward.Error) are not trusted: the answer says zero.
func TestRemoteWriteV2BatchForwarderFailureWritesNothing(t *testing.T) {
	for _, err := range []error{
		&forward.Error{Msg: "disk full", Recoverable: true},
		errors.New("something else"),
	} {
		bf := &writtenForwarder{w: forward.Written{Samples: 1}, err: err}
		f := newFixture(t, func(o *Options) { o.Forwarder = bf })
		st := writev2.NewSymbolTable()
		req := &writev2.Request{Timeseries: []writev2.TimeSeries{v2Series(&st, 1, f.now.UnixMilli(), "__name__", "cluster_version")}}
		req.Symbols = st.Symbols()
		status, body, hdr := f.writeV2(t, harness.CompositeToken("dev", "c1"), req)
		if status/100 == 2 || written(hdr) != "0/0/0" {
			t.Errorf("%v: %d %s, written %s", err, status, body, written(hdr))
		}
	}
}
