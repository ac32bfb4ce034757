package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/test/e2e/harness"
)

// Scale scenario sizing: a 2-core machine shared with other work. 1,000
// installations on an 8s cadence (the 4m30s of production compressed
// about 34 times), half remote write, half /upload, 3 series each; every
// tenth installation also offers 2 series past its budget of 3.
const (
	scaleInstallations = 1000
	scaleInterval      = 8 * time.Second
	scaleRounds        = 10
	scaleSeries        = 3
	scaleExtraSeries   = 2
)

// hostPort is the host:port of a URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	must(t, err)
	return u.Host
}

func port(t *testing.T, hp string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hp)
	must(t, err)
	return p
}

// scaleHAProxyConfig balances the gateways by the Authorization header
// with consistent hashing (one installation sticks to one replica while
// it is up; only a failed replica's installations move), and the
// receivers round robin; both with health checks on /-/ready.
func scaleHAProxyConfig(t *testing.T, gwFront, recvFront string, gws []*gatewayProc, recvs []*harness.ThanosReceive) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  retries 3
  option redispatch
frontend gateways
  bind %s
  default_backend gateways
backend gateways
  balance hdr(Authorization)
  hash-type consistent
  option httpchk GET /-/ready
  default-server inter 500ms fall 2 rise 2
`, gwFront)
	for i, g := range gws {
		fmt.Fprintf(&b, "  server g%d %s check port %s\n", i, hostPort(t, g.url), port(t, hostPort(t, g.internal)))
	}
	fmt.Fprintf(&b, `frontend receivers
  bind %s
  default_backend receivers
backend receivers
  balance roundrobin
  option httpchk GET /-/ready
  default-server inter 500ms fall 2 rise 2
`, recvFront)
	for i, r := range recvs {
		fmt.Fprintf(&b, "  server r%d %s check port %s\n", i, hostPort(t, r.RemoteWriteURL()), port(t, hostPort(t, r.HTTPURL())))
	}
	return b.String()
}

// fleet drives the simulated installations through the load balancer and
// records every sample in the ledger.
type scaleFleet struct {
	lb     string
	client *http.Client
	l      *ledger
	start  time.Time

	mu      sync.Mutex
	lastTS  map[string]int64
	dropped int // samples the gateways said they dropped (budget)
}

func (f *scaleFleet) ts(inst string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := max(time.Now().UnixMilli(), f.lastTS[inst]+1)
	f.lastTS[inst] = ts
	return ts
}

func (f *scaleFleet) post(ctx context.Context, path, bearer, ctype string, body []byte) (int, http.Header) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.lb+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Content-Encoding", "snappy")
	}
	if path == "/api/v1/receive" {
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// installation runs one installation's rounds.
func (f *scaleFleet) installation(ctx context.Context, i int, wg *sync.WaitGroup) {
	defer wg.Done()
	inst := fmt.Sprintf("inst-%04d", i)
	upload := i%2 == 1
	overBudget := i%10 == 3
	next := f.start.Add(rand.N(scaleInterval))
	var jwt string
	for r := 0; r < scaleRounds; r++ {
		if !sleepCtx(ctx, time.Until(next)) {
			return
		}
		next = next.Add(scaleInterval)
		n := scaleSeries
		if overBudget && r > 0 {
			n += scaleExtraSeries
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if upload {
			if jwt == "" {
				var err error
				jwt, _, _, err = harness.Authorize(rctx, f.lb, "fleet-token", inst)
				if err != nil {
					jwt = ""
					f.l.record("authorize", 0, nil, nil)
					cancel()
					continue
				}
			}
			if f.upload(rctx, inst, jwt, n, float64(r)) == http.StatusUnauthorized {
				jwt = ""
			}
		} else {
			f.remoteWrite(rctx, inst, n, float64(r))
		}
		cancel()
	}
}

func inBudget(k sampleKey) bool {
	s := k.series[strings.LastIndexByte(k.series, '|')+1:]
	n, _ := strconv.Atoi(s)
	return n < scaleSeries
}

func (f *scaleFleet) remoteWrite(ctx context.Context, inst string, n int, v float64) {
	ts := f.ts(inst)
	req := &prompb.WriteRequest{}
	samples := map[sampleKey]float64{}
	for s := 0; s < n; s++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: scaleRWMetric}, {Name: "inst", Value: inst}, {Name: "s", Value: strconv.Itoa(s)}},
			Samples: []prompb.Sample{{Value: v, Timestamp: ts}},
		})
		samples[sampleKey{seriesID(scaleRWMetric, inst, strconv.Itoa(s)), ts}] = v
	}
	body, err := harness.EncodeWriteRequest(req)
	if err != nil {
		panic(err)
	}
	status, hdr := f.post(ctx, "/api/v1/receive", harness.CompositeToken("fleet-token", inst), "application/x-protobuf", body)
	f.note(hdr)
	f.l.record("receive", status, samples, inBudget)
}

func (f *scaleFleet) upload(ctx context.Context, inst, jwt string, n int, v float64) int {
	ts := f.ts(inst)
	mf := &dto.MetricFamily{Name: proto.String(scaleUploadMetric), Type: dto.MetricType_GAUGE.Enum()}
	samples := map[sampleKey]float64{}
	for s := 0; s < n; s++ {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label:       []*dto.LabelPair{{Name: proto.String("inst"), Value: proto.String(inst)}, {Name: proto.String("s"), Value: proto.String(strconv.Itoa(s))}},
			Gauge:       &dto.Gauge{Value: proto.Float64(v)},
			TimestampMs: proto.Int64(ts),
		})
		samples[sampleKey{seriesID(scaleUploadMetric, inst, strconv.Itoa(s)), ts}] = v
	}
	body, err := harness.EncodeFamilies([]*dto.MetricFamily{mf})
	if err != nil {
		panic(err)
	}
	status, hdr := f.post(ctx, "/upload", jwt, harness.UploadContentType, body)
	f.note(hdr)
	f.l.record("upload", status, samples, inBudget)
	return status
}

func (f *scaleFleet) note(h http.Header) {
	if h == nil {
		return
	}
	d := droppedBy(h.Get("X-Telegate-Dropped-Samples"), "budget")
	f.mu.Lock()
	f.dropped += d
	f.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// TestScaleOutUnderFaults is issue 19's scenario: three gateway replicas
// behind HAProxy, budgets in Redis, a Thanos Receive hashring of three
// with replication factor 3 (and an out-of-order window, which replicas
// replaying their spools need), Thanos Query over it, and a fleet of
// 1,000 installations (remote write and /upload) while, one at a time and
// then together, a gateway replica is SIGKILLed and restarted, a receiver
// SIGKILLed, a receiver stalled with SIGSTOP, Redis restarted, HAProxy
// reloaded. At the end every acknowledged sample is found among the raw
// samples of the receivers (counted without Query's deduplication, which
// is not a way to count), no series carries another installation's _id,
// no installation holds more series than its budget, every spool is
// drained and nothing is dead-lettered.
func TestScaleOutUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("scale scenario: minutes of load")
	}
	begin := time.Now()
	_, keyPEM, _ := signingKey(t)
	redis := harness.StartRedis(t, harness.RedisOptions{Persist: true})
	ring := harness.StartThanosHashring(t, harness.ThanosHashringOptions{
		Receivers: 3, ReplicationFactor: 3,
		// A replica replaying its spool sends samples older than what the
		// others forwarded meanwhile for the same installation.
		ExtraArgs: []string{"--tsdb.out-of-order.time-window=1h"},
	})
	q := harness.StartThanosQuery(t, harness.ThanosQueryOptions{Endpoints: ring.GRPCAddrs()})
	gwFront, recvFront := harness.FreeAddr(t), harness.FreeAddr(t)
	var gws []*gatewayProc
	for i := 0; i < 3; i++ {
		gws = append(gws, startScaleGateway(t, scaleGatewayOpts{
			name: fmt.Sprintf("telegate-%d", i), downstream: "http://" + recvFront + "/api/v1/receive",
			redis: redis.Addr(), jwtPEM: keyPEM, seriesBudget: scaleSeries,
		}))
	}
	lb := harness.StartHAProxy(t, scaleHAProxyConfig(t, gwFront, recvFront, gws, ring.Receivers), gwFront, recvFront)
	harness.CheckThanosHashringReadPath(t, ring, q, 60*time.Second)
	recvs := ring.Receivers
	defer func() {
		for _, r := range recvs {
			_ = r.Process().Signal(syscall.SIGCONT)
		}
	}()
	t.Logf("topology up in %.1fs", time.Since(begin).Seconds())

	l := newLedger()
	f := &scaleFleet{
		lb: "http://" + gwFront, l: l, start: time.Now(), lastTS: map[string]int64{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < scaleInstallations; i++ {
		wg.Add(1)
		go f.installation(ctx, i, &wg)
	}
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()

	at := func(d time.Duration, what string) {
		time.Sleep(time.Until(f.start.Add(d)))
		t.Logf("t=%5.1fs %s", time.Since(f.start).Seconds(), what)
	}
	restartGateway := func(g *gatewayProc) {
		g.Restart()
		g.WaitHTTP(g.internal+"/-/ready", 30*time.Second)
	}
	// One at a time (the first round, 0-8s, sets the budgets up).
	at(10*time.Second, "SIGKILL gateway 0")
	gws[0].Kill()
	at(14*time.Second, "restart gateway 0")
	restartGateway(gws[0])
	at(18*time.Second, "SIGKILL receiver 0")
	recvs[0].Process().Kill()
	at(23*time.Second, "restart receiver 0")
	recvs[0].Start()
	at(27*time.Second, "SIGSTOP receiver 1")
	must(t, recvs[1].Process().Signal(syscall.SIGSTOP))
	at(42*time.Second, "SIGCONT receiver 1 (stalled 15s)")
	must(t, recvs[1].Process().Signal(syscall.SIGCONT))
	at(44*time.Second, "restart Redis")
	redis.Restart(t)
	at(47*time.Second, "reload HAProxy")
	must(t, lb.Reload())
	// Together: quorum lost (one receiver killed, one stalled), so the
	// replicas spool; one of them is killed with its spool and comes
	// back after the others forwarded newer samples of its installations.
	at(50*time.Second, "together: SIGKILL receiver 2, SIGSTOP receiver 0, SIGKILL gateway 1 (with a spool)")
	recvs[2].Process().Kill()
	must(t, recvs[0].Process().Signal(syscall.SIGSTOP))
	time.Sleep(4 * time.Second)
	spooled := metricOf(gws[1], "telegate_spool_objects")
	gws[1].Kill()
	at(60*time.Second, fmt.Sprintf("SIGCONT receiver 0, restart receiver 2 (gateway 1 was killed holding %v spooled objects)", spooled))
	must(t, recvs[0].Process().Signal(syscall.SIGCONT))
	recvs[2].Start()
	at(64*time.Second, "restart gateway 1, reload HAProxy")
	restartGateway(gws[1])
	must(t, lb.Reload())

	select {
	case <-loadDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("fleet did not finish its rounds")
	}
	t.Logf("t=%5.1fs load done", time.Since(f.start).Seconds())

	// Every spool drains, nothing is dead-lettered.
	deadline := time.Now().Add(90 * time.Second)
	for {
		pending := 0.0
		for _, g := range gws {
			pending += max(0, metricOf(g, "telegate_spool_objects"))
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			var conflicts []float64
			for _, g := range gws {
				conflicts = append(conflicts, metricOf(g, "telegate_spool_replay_conflicts_total"))
			}
			t.Fatalf("spools still hold %v objects; replay conflicts (out of order) by gateway %v", pending, conflicts)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i, g := range gws {
		t.Logf("gateway %d: replayed %v, replay conflicts %v, dead-lettered %v, spool writes %v",
			i, metricOf(g, "telegate_spool_replayed_total"), metricOf(g, "telegate_spool_replay_conflicts_total"),
			metricOf(g, "telegate_spool_dead_objects"), metricOf(g, "telegate_spool_writes_total", "result", "ok"))
		if d := metricOf(g, "telegate_spool_dead_objects"); d != 0 {
			t.Errorf("gateway %d dead-lettered %v objects", i, d)
		}
		if c := metricOf(g, "telegate_spool_replay_conflicts_total"); c != 0 {
			t.Errorf("gateway %d: %v replays refused as out of order despite the receivers' window", i, c)
		}
	}

	window := time.Since(f.start) + 2*time.Minute
	tl, st := waitFound(t, q, l, window, 60*time.Second, scaleRWMetric, scaleUploadMetric)
	var codes []string
	l.mu.Lock()
	for k, v := range l.statuses {
		codes = append(codes, fmt.Sprintf("%s: %d", k, v))
	}
	l.mu.Unlock()
	sort.Strings(codes)
	t.Logf("answers: %s", strings.Join(codes, ", "))
	t.Logf("FIGURES: %s; dropped by budget %d; %.1fs in all", tl, f.dropped, time.Since(begin).Seconds())
	t.Logf("stored on fewer than %d receivers: %s", ring.ReplicationFactor(), underReplicated(st, ring.ReplicationFactor(), f.start))
	if tl.lost != 0 {
		t.Errorf("%d acknowledged samples not stored, e.g. %v", tl.lost, tl.lostExamples)
	}
	if tl.acked < scaleInstallations*scaleRounds*scaleSeries/2 {
		t.Errorf("only %d samples acknowledged: the faults took too much", tl.acked)
	}
	if tl.unexpected != 0 || tl.conflictingValues != 0 {
		t.Errorf("%d stored samples never sent, %d with different values", tl.unexpected, tl.conflictingValues)
	}
	if len(st.wrongTenant) != 0 {
		t.Errorf("%d series carry another installation's _id, e.g. %v", len(st.wrongTenant), st.wrongTenant[:min(5, len(st.wrongTenant))])
	}
	over := 0
	for sid := range st.series {
		if !inBudget(sampleKey{series: sid}) {
			over++
		}
	}
	if over != 0 {
		t.Errorf("%d series past an installation's budget of %d are stored", over, scaleSeries)
	}
	if f.dropped == 0 {
		t.Error("no sample was dropped by the budget: the over-budget installations were not limited")
	}
}
