package harness

import (
	"context"
	"fmt"
	"net/http"
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
	bin := ThanosBinary(t)
	if opts.Name == "" {
		opts.Name = "thanos-receive"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	r := &ThanosReceive{t: t, http: FreeAddr(t), grpc: FreeAddr(t), rw: FreeAddr(t), dir: t.TempDir(), deadline: opts.StartTimeout}
	args := []string{
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
		`--label=receive_replica="0"`,
	}
	args = append(args, opts.ExtraArgs...)
	r.proc = StartProcess(t, ProcessOptions{Name: opts.Name, Binary: bin, Args: args, Dir: r.dir})
	r.proc.WaitHTTP("http://"+r.http+"/-/ready", opts.StartTimeout)
	return r
}

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
