package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Protocols a simulated cluster speaks.
const (
	ProtocolUpload      = "upload"       // POST /authorize, then /upload every interval
	ProtocolRemoteWrite = "remote-write" // POST /api/v1/receive every interval
)

// Config is one fleet simulation.
type Config struct {
	// Target is the gateway's public base URL (loopback only).
	Target string
	// MetricsURL is the gateway's /metrics on its internal listener
	// (loopback only); "" skips the gateway's CPU and memory figures.
	MetricsURL string
	// Protocol is ProtocolUpload or ProtocolRemoteWrite.
	Protocol string
	// Path overrides the path of the write requests ("" = /upload or
	// /api/v1/receive, by Protocol), e.g. /api/v1/write to drive another
	// remote-write receiver (vmagent) with the same payload.
	Path string
	// Clusters is the number of simulated clusters.
	Clusters int
	// Interval is each cluster's upload interval before speedup (4m30s).
	Interval time.Duration
	// Speedup divides Interval: 10 makes every cluster upload every 27s.
	// The gateway's limits.upload_interval must be divided likewise.
	Speedup float64
	// Duration bounds the run; MaxRequests bounds the requests sent
	// (uploads and authorizations).
	Duration    time.Duration
	MaxRequests int
	// Token is the pull-secret token every cluster presents; cluster IDs
	// are ClusterPrefix + index.
	Token         string
	ClusterPrefix string
	// Spec is each cluster's payload; Templates distinct payloads (other
	// pods and instances) are shared round-robin by the clusters.
	Spec      Spec
	Templates int
	// IDLabel, when not "", makes every /upload series carry IDLabel=its
	// cluster's ID, as telemeter-client stamps _id (its --label); each
	// cluster then has its own body (built before the run, so Clusters x
	// Spec.Series() is bounded). telemeter-server refuses uploads whose
	// series lack its token's _id; telegate accepts both. Upload only.
	IDLabel string
	// Concurrency bounds the requests in flight; Timeout bounds each.
	Concurrency int
	// Senders, when not 0, replaces the fleet's schedule by a closed loop:
	// Senders goroutines each send the next write as soon as the previous
	// one is answered, taking the clusters in turn (Interval and Speedup
	// are then unused; Expected is 0). 1 sends one request at a time; more
	// senders than the target has cores saturate it. Concurrency is raised
	// to Senders if it is lower.
	Senders int
	Timeout time.Duration
	// Settle is how long to wait, after the last write was answered,
	// before the final reading of MetricsURL, so that work the target does
	// after answering (a batching forwarder flushing downstream) counts
	// in its CPU figure. 0 reads at once.
	Settle time.Duration
	// Client sends the requests; nil builds one for Concurrency.
	Client *http.Client
	// Progress, when not nil, gets one line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// SetDefaults fills the zero fields with the defaults of `telegate load`.
func (c *Config) SetDefaults() {
	if c.Target == "" {
		c.Target = "http://127.0.0.1:9003"
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolUpload
	}
	if c.Clusters == 0 {
		c.Clusters = 100
	}
	if c.Interval == 0 {
		c.Interval = 4*time.Minute + 30*time.Second
	}
	if c.Speedup == 0 {
		c.Speedup = 1
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 1_000_000
	}
	if c.Token == "" {
		c.Token = "dev-token"
	}
	if c.ClusterPrefix == "" {
		c.ClusterPrefix = "load-"
	}
	if c.Spec == (Spec{}) {
		c.Spec = DefaultSpec
	}
	if c.Templates == 0 {
		c.Templates = 16
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Concurrency < c.Senders {
		c.Concurrency = c.Senders
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 10 * time.Second
	}
}

// Validate checks c after SetDefaults.
func (c *Config) Validate() error {
	if err := CheckLoopback(c.Target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if c.MetricsURL != "" {
		if err := CheckLoopback(c.MetricsURL); err != nil {
			return fmt.Errorf("metrics URL: %w", err)
		}
	}
	switch {
	case c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, "?#")):
		return fmt.Errorf("path %q: want an absolute path without query or fragment", c.Path)
	case c.Settle < 0 || c.Settle > time.Hour:
		return fmt.Errorf("settle %v: want 0 to 1h", c.Settle)
	case c.Protocol != ProtocolUpload && c.Protocol != ProtocolRemoteWrite:
		return fmt.Errorf("protocol %q: want %s or %s", c.Protocol, ProtocolUpload, ProtocolRemoteWrite)
	case c.Clusters < 1 || c.Clusters > 1_000_000:
		return fmt.Errorf("clusters %d: want 1 to 1000000", c.Clusters)
	case c.Interval <= 0:
		return errors.New("interval must be positive")
	case c.Speedup < 1 || c.Speedup > 10000:
		return fmt.Errorf("speedup %v: want 1 to 10000", c.Speedup)
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return fmt.Errorf("duration %v: want more than 0 and at most 24h", c.Duration)
	case c.MaxRequests < 1:
		return errors.New("max requests must be positive")
	case c.Spec.Names < 1 || c.Spec.SeriesPerName < 1 || c.Spec.Series() > 1_000_000:
		return fmt.Errorf("payload of %d x %d series: want 1 to 1000000 series", c.Spec.Names, c.Spec.SeriesPerName)
	case c.Templates < 1 || c.Templates > 1024:
		return fmt.Errorf("templates %d: want 1 to 1024", c.Templates)
	case c.IDLabel != "" && c.Protocol != ProtocolUpload:
		return fmt.Errorf("id label: only for protocol %s", ProtocolUpload)
	case c.IDLabel != "" && !labelNameRE.MatchString(c.IDLabel):
		return fmt.Errorf("id label %q: not a label name", c.IDLabel)
	case c.IDLabel != "" && c.Clusters*c.Spec.Series() > maxIDLabelSeries:
		return fmt.Errorf("id label: %d clusters x %d series: want at most %d series in all (one body per cluster)", c.Clusters, c.Spec.Series(), maxIDLabelSeries)
	case c.Concurrency < 1:
		return errors.New("concurrency must be positive")
	case c.Senders < 0 || c.Senders > 10000:
		return fmt.Errorf("senders %d: want 0 (the fleet's schedule) to 10000", c.Senders)
	}
	return nil
}

// maxIDLabelSeries bounds Clusters x Spec.Series() with IDLabel (about
// 40 bytes of body per series).
const maxIDLabelSeries = 10_000_000

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// CheckLoopback refuses any URL whose host is not a loopback address: the
// load generator only loads this machine.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http(s) URL", raw)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q: only loopback targets (127.0.0.1, ::1, localhost) are allowed", raw)
}

// Result is what a run measured.
type Result struct {
	Protocol string
	// Path is the write requests' path.
	Path     string
	Clusters int
	// Senders is Config.Senders: 0 for the fleet's schedule, else the
	// closed loop's senders.
	Senders int
	Elapsed time.Duration
	// Expected is the write rate the fleet should reach (clusters /
	// (interval/speedup); 0 in the closed loop); Achieved is the rate of
	// write requests sent.
	Expected, Achieved float64
	// Writes and Authorizes are the requests sent, by endpoint; Accepted
	// is the writes answered 2xx.
	Writes, Authorizes int
	Accepted           int
	// Codes counts answers by "endpoint status" ("upload 200"); network
	// errors and timeouts count as status 0.
	Codes map[string]int
	// Latency percentiles of the write requests.
	P50, P90, P99, Max time.Duration
	// SamplesSent is the number of samples in the writes answered 2xx.
	SamplesSent int
	// Gateway figures from its /metrics (zero without MetricsURL):
	// process CPU seconds over the run, per successful write, RSS at the
	// end, the highest RSS seen while running, and Go heap in use.
	GatewayCPU          float64
	CPUPerWrite         float64
	RSS, PeakRSS, Heap  float64
	GatewayMetricsError string
	// Sink is what a Sink run beside the fleet received; Run leaves it
	// nil, the caller that runs the sink fills it in for WriteTo and
	// WriteJSON.
	Sink *SinkCounts
}

// Run simulates the fleet until ctx ends, cfg.Duration passed or
// cfg.MaxRequests were sent.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		tr := &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
		}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	}
	f := &fleet{cfg: cfg, client: client, sem: make(chan struct{}, cfg.Concurrency), codes: map[string]int{},
		exhausted: make(chan struct{})}
	f.period = time.Duration(float64(cfg.Interval) / cfg.Speedup)
	if err := f.buildTemplates(time.Now()); err != nil {
		return nil, err
	}

	// Requests run under reqCtx (only the caller cancels them); ctx ends
	// the schedule after Duration, and requests in flight then finish.
	reqCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	f.sched = ctx

	var before gatewayStats
	var peak atomic.Uint64
	var wg sync.WaitGroup
	if cfg.MetricsURL != "" {
		var err error
		if before, err = scrapeGateway(ctx, client, cfg.MetricsURL); err != nil {
			return nil, fmt.Errorf("reading the gateway's metrics before the run: %w", err)
		}
		wg.Add(1)
		go func() { // RSS sampler
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if s, err := scrapeGateway(ctx, client, cfg.MetricsURL); err == nil {
						for {
							old := peak.Load()
							if uint64(s.rss) <= old || peak.CompareAndSwap(old, uint64(s.rss)) {
								break
							}
						}
					}
				}
			}
		}()
	}
	if cfg.Protocol == ProtocolRemoteWrite {
		wg.Add(1)
		go func() { // remote write keeps client timestamps: keep them fresh
			defer wg.Done()
			t := time.NewTicker(5 * time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					_ = f.buildTemplates(now)
				}
			}
		}()
	}
	if cfg.Progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			start := time.Now()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fmt.Fprintf(cfg.Progress, "%6.0fs  writes %d  authorizes %d  in flight %d\n",
						time.Since(start).Seconds(), f.writes.Load(), f.authorizes.Load(), len(f.sem))
				}
			}
		}()
	}

	start := time.Now()
	var clusters sync.WaitGroup
	if cfg.Senders > 0 {
		f.bearers = make([]string, cfg.Clusters)
		f.bearerMu = make([]sync.Mutex, cfg.Clusters)
		for range cfg.Senders {
			clusters.Add(1)
			go func() {
				defer clusters.Done()
				f.sender(ctx, reqCtx)
			}()
		}
	} else {
		for i := range cfg.Clusters {
			clusters.Add(1)
			go func() {
				defer clusters.Done()
				f.cluster(ctx, reqCtx, i)
			}()
		}
	}
	clusters.Wait()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()

	r := f.result(elapsed)
	if cfg.MetricsURL != "" {
		if cfg.Settle > 0 {
			t := time.NewTimer(cfg.Settle)
			select {
			case <-t.C:
			case <-reqCtx.Done():
				t.Stop()
			}
		}
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		after, err := scrapeGateway(sctx, client, cfg.MetricsURL)
		scancel()
		if err != nil {
			r.GatewayMetricsError = err.Error()
		} else {
			r.GatewayCPU = after.cpu - before.cpu
			if r.Accepted > 0 {
				r.CPUPerWrite = r.GatewayCPU / float64(r.Accepted)
			}
			r.RSS, r.Heap = after.rss, after.heap
			r.PeakRSS = max(float64(peak.Load()), after.rss)
		}
	}
	return r, nil
}

type fleet struct {
	cfg    Config
	client *http.Client
	period time.Duration
	sem    chan struct{}
	sched  context.Context // ends when the run's duration is over

	templates atomic.Pointer[[][]byte]
	bodies    [][]byte // by cluster, with Config.IDLabel; else nil

	sent       atomic.Int64 // requests reserved against MaxRequests
	next       atomic.Int64 // the closed loop's next cluster
	bearers    []string     // the closed loop's /upload tokens, by cluster
	bearerMu   []sync.Mutex
	exhaust    sync.Once
	exhausted  chan struct{} // closed when MaxRequests are spent
	writes     atomic.Int64
	authorizes atomic.Int64

	mu        sync.Mutex
	codes     map[string]int
	latencies []time.Duration
	samples   int
	accepted  int
}

func (f *fleet) buildTemplates(now time.Time) error {
	out := make([][]byte, f.cfg.Templates)
	for i := range out {
		spec := f.cfg.Spec
		spec.Seed += uint64(i)
		var err error
		if f.cfg.Protocol == ProtocolRemoteWrite {
			out[i], err = EncodeRemoteWrite(spec.WriteRequest(now.UnixMilli()))
		} else {
			out[i], err = EncodeUpload(spec.Families(now.UnixMilli()))
		}
		if err != nil {
			return err
		}
	}
	f.templates.Store(&out)
	if f.cfg.Protocol == ProtocolUpload && f.cfg.IDLabel != "" {
		return f.buildClusterBodies(now)
	}
	return nil
}

// buildClusterBodies gives each cluster its own /upload body: its
// template's series, each with IDLabel=the cluster's ID as its first label
// (label names sort "_id" before lowercase names, as a client sends them).
func (f *fleet) buildClusterBodies(now time.Time) error {
	f.bodies = make([][]byte, f.cfg.Clusters)
	for t := range min(f.cfg.Templates, f.cfg.Clusters) {
		spec := f.cfg.Spec
		spec.Seed += uint64(t)
		mfs := spec.Families(now.UnixMilli())
		id := &dto.LabelPair{Name: proto.String(f.cfg.IDLabel), Value: proto.String("")}
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				m.Label = append([]*dto.LabelPair{id}, m.Label...)
			}
		}
		for i := t; i < f.cfg.Clusters; i += f.cfg.Templates {
			id.Value = proto.String(f.cfg.ClusterPrefix + strconv.Itoa(i))
			b, err := EncodeUpload(mfs)
			if err != nil {
				return err
			}
			f.bodies[i] = b
		}
	}
	return nil
}

// body is cluster i's write body.
func (f *fleet) body(i int) []byte {
	if f.bodies != nil {
		return f.bodies[i]
	}
	return (*f.templates.Load())[i%f.cfg.Templates]
}

// reserve claims one request of the MaxRequests budget. Once it is spent
// no cluster starts another request; those in flight finish.
func (f *fleet) reserve() bool {
	if f.sent.Add(1) > int64(f.cfg.MaxRequests) {
		f.exhaust.Do(func() { close(f.exhausted) })
		return false
	}
	return true
}

// cluster runs one simulated cluster: a random phase within the period,
// then one write per period (authorizing first, and again after a 401).
func (f *fleet) cluster(sched, ctx context.Context, i int) {
	id := f.cfg.ClusterPrefix + strconv.Itoa(i)
	var bearer string
	if f.cfg.Protocol == ProtocolRemoteWrite {
		bearer = f.remoteWriteBearer(id)
	}
	next := time.Now().Add(rand.N(f.period))
	for {
		if !sleepUntil(sched, f.exhausted, next) {
			return
		}
		next = next.Add(f.period)
		if f.cfg.Protocol == ProtocolUpload && bearer == "" {
			if !f.reserve() {
				return
			}
			bearer = f.authorize(ctx, id)
			if bearer == "" {
				continue // try again next period
			}
		}
		if !f.reserve() {
			return
		}
		if code := f.write(ctx, bearer, f.body(i)); code == http.StatusUnauthorized && f.cfg.Protocol == ProtocolUpload {
			bearer = ""
		}
	}
}

// remoteWriteBearer is cluster id's bearer token for remote write.
func (f *fleet) remoteWriteBearer(id string) string {
	raw, _ := json.Marshal(map[string]string{"authorization_token": f.cfg.Token, "cluster_id": id})
	return base64.StdEncoding.EncodeToString(raw)
}

// sender is one sender of the closed loop (Config.Senders): it writes as
// the next cluster in turn as soon as its previous write was answered,
// until the schedule ends or MaxRequests are spent. For /upload a
// cluster authorizes on its first turn and again after a 401.
func (f *fleet) sender(sched, ctx context.Context) {
	for sched.Err() == nil {
		select {
		case <-f.exhausted:
			return
		default:
		}
		i := int(f.next.Add(1)-1) % f.cfg.Clusters
		id := f.cfg.ClusterPrefix + strconv.Itoa(i)
		body := f.body(i)
		if f.cfg.Protocol == ProtocolRemoteWrite {
			if !f.reserve() {
				return
			}
			f.write(ctx, f.remoteWriteBearer(id), body)
			continue
		}
		f.bearerMu[i].Lock() // one request per cluster at a time, like a real one
		if f.bearers[i] == "" {
			if !f.reserve() {
				f.bearerMu[i].Unlock()
				return
			}
			f.bearers[i] = f.authorize(ctx, id)
		}
		if f.bearers[i] != "" {
			if !f.reserve() {
				f.bearerMu[i].Unlock()
				return
			}
			if f.write(ctx, f.bearers[i], body) == http.StatusUnauthorized {
				f.bearers[i] = ""
			}
		}
		f.bearerMu[i].Unlock()
	}
}

func sleepUntil(ctx context.Context, stop <-chan struct{}, t time.Time) bool {
	select {
	case <-stop:
		return false
	default:
	}
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-timer.C:
		return true
	}
}

// do sends one request under the concurrency bound and returns the status
// (0 for a network error) and, for 200s, the body.
func (f *fleet) do(ctx context.Context, req *http.Request, wantBody bool) (int, []byte, time.Duration) {
	select {
	case f.sem <- struct{}{}:
	case <-f.sched.Done():
		return -1, nil, 0
	}
	defer func() { <-f.sem }()
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, nil, 0 // the run ended; not the gateway's fault
		}
		return 0, nil, time.Since(start)
	}
	var body []byte
	if wantBody && resp.StatusCode == http.StatusOK {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, body, time.Since(start)
}

func (f *fleet) count(endpoint string, code int) {
	f.mu.Lock()
	f.codes[endpoint+" "+strconv.Itoa(code)]++
	f.mu.Unlock()
}

// authorize returns the JWT for cluster id, or "" after a failure.
func (f *fleet) authorize(ctx context.Context, id string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Target+"/authorize?id="+url.QueryEscape(id), nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+f.cfg.Token)
	code, body, _ := f.do(ctx, req, true)
	if code < 0 {
		return ""
	}
	f.authorizes.Add(1)
	f.count("authorize", code)
	var resp struct {
		Token string `json:"token"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &resp) != nil {
		return ""
	}
	return resp.Token
}

// write sends one /upload or remote-write request and records it.
func (f *fleet) write(ctx context.Context, bearer string, body []byte) int {
	endpoint, ctype := "upload", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	if f.cfg.Protocol == ProtocolRemoteWrite {
		endpoint, ctype = "receive", "application/x-protobuf"
	}
	path := f.cfg.writePath()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Target+path, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Content-Encoding", "snappy")
	if f.cfg.Protocol == ProtocolRemoteWrite {
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	code, _, took := f.do(ctx, req, false)
	if code < 0 {
		return code
	}
	f.writes.Add(1)
	f.mu.Lock()
	f.codes[endpoint+" "+strconv.Itoa(code)]++
	f.latencies = append(f.latencies, took)
	if code/100 == 2 {
		f.samples += f.cfg.Spec.Series()
		f.accepted++
	}
	f.mu.Unlock()
	return code
}

func (f *fleet) result(elapsed time.Duration) *Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &Result{
		Protocol:    f.cfg.Protocol,
		Path:        f.cfg.writePath(),
		Clusters:    f.cfg.Clusters,
		Elapsed:     elapsed,
		Senders:     f.cfg.Senders,
		Writes:      int(f.writes.Load()),
		Authorizes:  int(f.authorizes.Load()),
		Accepted:    f.accepted,
		Codes:       f.codes,
		SamplesSent: f.samples,
	}
	if f.cfg.Senders == 0 {
		r.Expected = float64(f.cfg.Clusters) / f.period.Seconds()
	}
	if elapsed > 0 {
		r.Achieved = float64(r.Writes) / elapsed.Seconds()
	}
	lat := slices.Clone(f.latencies)
	slices.Sort(lat)
	r.P50, r.P90, r.P99 = percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// writePath is the path of the write requests.
func (c *Config) writePath() string {
	switch {
	case c.Path != "":
		return c.Path
	case c.Protocol == ProtocolRemoteWrite:
		return "/api/v1/receive"
	}
	return "/upload"
}

// percentile returns the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// WriteTo prints r for humans, one figure per line.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if r.Path != "" && r.Path != (&Config{Protocol: r.Protocol}).writePath() {
		fmt.Fprintf(&b, "protocol            %s to %s, %d clusters, %.1fs\n", r.Protocol, r.Path, r.Clusters, r.Elapsed.Seconds())
	} else {
		fmt.Fprintf(&b, "protocol            %s, %d clusters, %.1fs\n", r.Protocol, r.Clusters, r.Elapsed.Seconds())
	}
	if r.Senders > 0 {
		fmt.Fprintf(&b, "write rate          %.2f/s achieved, closed loop of %d sender(s)\n", r.Achieved, r.Senders)
	} else {
		fmt.Fprintf(&b, "write rate          %.2f/s achieved, %.2f/s expected\n", r.Achieved, r.Expected)
	}
	fmt.Fprintf(&b, "requests            %d writes, %d authorizes\n", r.Writes, r.Authorizes)
	keys := make([]string, 0, len(r.Codes))
	for k := range r.Codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "status              %-14s %d\n", k, r.Codes[k])
	}
	fmt.Fprintf(&b, "write latency       p50 %s  p90 %s  p99 %s  max %s\n", ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max))
	fmt.Fprintf(&b, "samples accepted    %d (%.0f/s)\n", r.SamplesSent, float64(r.SamplesSent)/max(r.Elapsed.Seconds(), 1e-9))
	switch {
	case r.GatewayMetricsError != "":
		fmt.Fprintf(&b, "gateway metrics     unavailable: %s\n", r.GatewayMetricsError)
	case r.GatewayCPU > 0 || r.RSS > 0:
		fmt.Fprintf(&b, "gateway CPU         %.2fs total, %.3f ms per accepted write, %.0f samples per CPU-second\n",
			r.GatewayCPU, r.CPUPerWrite*1000, float64(r.SamplesSent)/max(r.GatewayCPU, 1e-9))
		fmt.Fprintf(&b, "gateway memory      RSS %.1f MiB at end, peak %.1f MiB; Go heap in use %.1f MiB\n",
			r.RSS/(1<<20), r.PeakRSS/(1<<20), r.Heap/(1<<20))
	}
	if r.Sink != nil {
		fmt.Fprintf(&b, "sink                %d requests, %d samples, %d rejected\n", r.Sink.Requests, r.Sink.Samples, r.Sink.Rejected)
	}
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 1, 64) + "ms" }
