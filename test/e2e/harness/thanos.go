package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// ThanosEnv overrides the path of the thanos binary.
const ThanosEnv = "TELEGATE_E2E_THANOS"

// ThanosBinary returns the thanos executable: $TELEGATE_E2E_THANOS, else
// bin/thanos under the module root (built by `make thanos` at the version
// test/tools/go.mod pins). It fails the test if it is missing.
func ThanosBinary(t testing.TB) string {
	t.Helper()
	var candidates []string
	if root, err := ModuleRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, "bin", "thanos"))
	}
	return RequireBinary(t, ThanosEnv, "run `make thanos` (builds bin/thanos from the module proxy)", candidates...)
}

// ThanosReceiveOptions configure StartThanosReceive.
type ThanosReceiveOptions struct {
	// Name labels the process in logs; default "thanos-receive".
	Name string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// StartTimeout bounds the wait for /-/ready; default 60s.
	StartTimeout time.Duration
}

// ThanosReceive is a running single-node Thanos Receive (no hashring),
// ingesting remote write into its own TSDB and serving it over the gRPC
// store API. Its tenant label is tenant_id, its replica label
// receive_replica="0".
type ThanosReceive struct {
	t        testing.TB
	proc     *Process
	http     string
	grpc     string
	rw       string
	dir      string
	deadline time.Duration
}

// StartThanosReceive starts `thanos receive` on free loopback ports with
// its TSDB in a temporary directory and waits until it is ready. It is
// stopped when the test ends.
func StartThanosReceive(t testing.TB, opts ThanosReceiveOptions) *ThanosReceive {
	t.Helper()
	r := newThanosReceive(t, opts, FreeAddr(t))
	r.start(t, opts, `--label=receive_replica="0"`)
	r.proc.WaitHTTP("http://"+r.http+"/-/ready", r.deadline)
	return r
}

// newThanosReceive picks Receive's other ports and its directory.
func newThanosReceive(t testing.TB, opts ThanosReceiveOptions, grpc string) *ThanosReceive {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	return &ThanosReceive{t: t, http: FreeAddr(t), grpc: grpc, rw: FreeAddr(t), dir: t.TempDir(), deadline: opts.StartTimeout}
}

// start runs `thanos receive` with the common flags, then args, then
// opts.ExtraArgs; it does not wait.
func (r *ThanosReceive) start(t testing.TB, opts ThanosReceiveOptions, args ...string) {
	t.Helper()
	bin := ThanosBinary(t)
	if opts.Name == "" {
		opts.Name = "thanos-receive"
	}
	all := []string{
		"receive",
		"--log.level=info",
		"--http-address=" + r.http,
		"--grpc-address=" + r.grpc,
		"--remote-write.address=" + r.rw,
		// Cap'n Proto replication listens on 0.0.0.0:19391 by default,
		// which parallel tests would fight over.
		"--receive.capnproto-address=" + FreeAddr(t),
		"--tsdb.path=" + filepath.Join(r.dir, "tsdb"),
		"--tsdb.retention=1d",
	}
	all = append(all, args...)
	all = append(all, opts.ExtraArgs...)
	r.proc = StartProcess(t, ProcessOptions{Name: opts.Name, Binary: bin, Args: all, Dir: r.dir})
}

// ThanosHashringOptions configure StartThanosHashring.
type ThanosHashringOptions struct {
	// Receivers is the number of Receive nodes; default 3.
	Receivers int
	// ReplicationFactor is --receive.replication-factor; default
	// Receivers. Thanos' write quorum is ReplicationFactor/2+1.
	ReplicationFactor int
	// ExtraArgs are appended to every receiver's command line (e.g.
	// --tsdb.out-of-order.time-window=1h).
	ExtraArgs []string
	// StartTimeout bounds each receiver's wait for /-/ready; default 60s.
	StartTimeout time.Duration
}

// ThanosHashring is a set of Receive nodes sharing one hashring (one
// hashring JSON file naming their gRPC addresses): any of them takes
// remote write and forwards each series to ReplicationFactor nodes. Node
// i carries the external label receive_replica="i", so the same sample
// stored by several nodes is several raw samples to Query (without
// deduplication).
type ThanosHashring struct {
	// Receivers are the nodes, in hashring order.
	Receivers         []*ThanosReceive
	replicationFactor int
}

// StartThanosHashring starts opts.Receivers Receive nodes in one hashring
// and waits until all are ready. They are stopped when the test ends.
func StartThanosHashring(t testing.TB, opts ThanosHashringOptions) *ThanosHashring {
	t.Helper()
	if opts.Receivers <= 0 {
		opts.Receivers = 3
	}
	if opts.ReplicationFactor <= 0 {
		opts.ReplicationFactor = opts.Receivers
	}
	grpcs := make([]string, opts.Receivers)
	for i := range grpcs {
		grpcs[i] = FreeAddr(t)
	}
	ring, err := json.Marshal([]map[string]any{{"hashring": "default", "endpoints": grpcs}})
	if err != nil {
		t.Fatalf("harness: hashring json: %v", err)
	}
	ringFile := filepath.Join(t.TempDir(), "hashrings.json")
	if err := os.WriteFile(ringFile, ring, 0o600); err != nil {
		t.Fatalf("harness: writing hashring file: %v", err)
	}
	h := &ThanosHashring{replicationFactor: opts.ReplicationFactor}
	for i, g := range grpcs {
		ro := ThanosReceiveOptions{Name: fmt.Sprintf("thanos-receive-%d", i), ExtraArgs: opts.ExtraArgs, StartTimeout: opts.StartTimeout}
		r := newThanosReceive(t, ro, g)
		r.start(t, ro,
			fmt.Sprintf(`--label=receive_replica="%d"`, i),
			"--receive.hashrings-file="+ringFile,
			"--receive.local-endpoint="+g,
			fmt.Sprintf("--receive.replication-factor=%d", opts.ReplicationFactor),
		)
		h.Receivers = append(h.Receivers, r)
	}
	for _, r := range h.Receivers {
		r.proc.WaitHTTP("http://"+r.http+"/-/ready", r.deadline)
	}
	return h
}

// GRPCAddrs are the nodes' store API addresses (for Thanos Query).
func (h *ThanosHashring) GRPCAddrs() []string {
	out := make([]string, len(h.Receivers))
	for i, r := range h.Receivers {
		out[i] = r.GRPCAddr()
	}
	return out
}

// RemoteWriteURLs are the nodes' remote write endpoints.
func (h *ThanosHashring) RemoteWriteURLs() []string {
	out := make([]string, len(h.Receivers))
	for i, r := range h.Receivers {
		out[i] = r.RemoteWriteURL()
	}
	return out
}

// ReplicationFactor is how many nodes store each sample.
func (h *ThanosHashring) ReplicationFactor() int { return h.replicationFactor }

// RemoteWriteURL is where Receive takes remote write 1.0.
func (r *ThanosReceive) RemoteWriteURL() string { return "http://" + r.rw + "/api/v1/receive" }

// GRPCAddr is the store API address (for Thanos Query's --endpoint).
func (r *ThanosReceive) GRPCAddr() string { return r.grpc }

// HTTPURL is the base of /metrics and health.
func (r *ThanosReceive) HTTPURL() string { return "http://" + r.http }

// Process returns the underlying process (Stop, Kill, logs).
func (r *ThanosReceive) Process() *Process { return r.proc }

// Stop stops Receive (SIGTERM); its TSDB stays for Start.
func (r *ThanosReceive) Stop() {
	r.t.Helper()
	if err := r.proc.Stop(); err != nil {
		r.t.Logf("harness: stopping thanos receive: %v", err)
	}
}

// Start starts a stopped Receive again on the same ports and TSDB and
// waits until it is ready.
func (r *ThanosReceive) Start() {
	r.t.Helper()
	r.proc.Restart()
	r.proc.WaitHTTP("http://"+r.http+"/-/ready", r.deadline)
}

// ThanosQueryOptions configure StartThanosQuery.
type ThanosQueryOptions struct {
	// Name labels the process in logs; default "thanos-query".
	Name string
	// Endpoints are gRPC store API addresses to read from.
	Endpoints []string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// StartTimeout bounds the wait for /-/ready; default 60s.
	StartTimeout time.Duration
}

// ThanosQuery is a running Thanos Query; its Prometheus HTTP API methods
// come from the embedded PromAPI.
type ThanosQuery struct {
	*PromAPI
	proc *Process
	http string
}

// StartThanosQuery starts `thanos query` reading opts.Endpoints over gRPC
// and waits until it is ready. It is stopped when the test ends.
func StartThanosQuery(t testing.TB, opts ThanosQueryOptions) *ThanosQuery {
	t.Helper()
	bin := ThanosBinary(t)
	if opts.Name == "" {
		opts.Name = "thanos-query"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	q := &ThanosQuery{http: FreeAddr(t)}
	args := []string{
		"query",
		"--log.level=info",
		"--http-address=" + q.http,
		"--grpc-address=" + FreeAddr(t),
		// Find a restarted Receive again quickly.
		"--endpoint.info-timeout=2s",
		"--store.unhealthy-timeout=1m",
	}
	for _, e := range opts.Endpoints {
		args = append(args, "--endpoint="+e)
	}
	args = append(args, opts.ExtraArgs...)
	q.PromAPI = NewPromAPI("http://" + q.http)
	q.proc = StartProcess(t, ProcessOptions{Name: opts.Name, Binary: bin, Args: args})
	q.proc.WaitHTTP("http://"+q.http+"/-/ready", opts.StartTimeout)
	return q
}

// URL is Query's base URL.
func (q *ThanosQuery) URL() string { return "http://" + q.http }

// Process returns the underlying process.
func (q *ThanosQuery) Process() *Process { return q.proc }

// CheckThanosReadPath writes one sample straight into Receive and waits
// until Query returns it: proof that Query reads Receive before a test
// relies on it. It fails the test after timeout.
func CheckThanosReadPath(t testing.TB, r *ThanosReceive, q *ThanosQuery, timeout time.Duration) {
	t.Helper()
	name := fmt.Sprintf("harness_read_path_probe_%d", time.Now().UnixNano())
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, _, err := RemoteWrite(ctx, r.RemoteWriteURL(), "", req)
	if err != nil || code/100 != 2 {
		t.Fatalf("harness: remote write to thanos receive: %d %s %v", code, body, err)
	}
	q.QueryEventually(t, name, func(v model.Vector) bool { return len(v) == 1 }, timeout)
}

// CheckThanosHashringReadPath is CheckThanosReadPath for a hashring: one
// sample written to its first node is returned by Query once per replica
// (ReplicationFactor raw copies, no deduplication).
func CheckThanosHashringReadPath(t testing.TB, h *ThanosHashring, q *ThanosQuery, timeout time.Duration) {
	t.Helper()
	name := fmt.Sprintf("harness_read_path_probe_%d", time.Now().UnixNano())
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, _, err := RemoteWrite(ctx, h.Receivers[0].RemoteWriteURL(), "", req)
	if err != nil || code/100 != 2 {
		t.Fatalf("harness: remote write to the thanos hashring: %d %s %v", code, body, err)
	}
	q.QueryEventually(t, name, Len(h.replicationFactor), timeout)
}

// Ready reports whether url answers 200 now.
func Ready(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
