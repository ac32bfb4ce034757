package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/test/e2e/harness"
)

// The scale-out tests' metrics: every series carries inst, the
// installation that sent it, so that a stored series whose _id differs
// from its inst belongs to the wrong installation.
const (
	scaleRWMetric     = "scale_rw"
	scaleUploadMetric = "scale_up"
)

const scaleAllowlist = `matches:
# owners: (@telegate/e2e)
# Scale-out test, remote write.
- '{__name__="scale_rw"}'
# owners: (@telegate/e2e)
# Scale-out test, /upload.
- '{__name__="scale_up"}'
`

// scaleGatewayOpts configure startScaleGateway.
type scaleGatewayOpts struct {
	name       string
	downstream string
	// redis is the address of the shared budgets' Redis ("" = in memory).
	redis string
	// jwtPEM is the signing key all replicas share.
	jwtPEM string
	// seriesBudget is limits.budgets.active_series.max (0 = none).
	seriesBudget int
}

// startScaleGateway runs one gateway replica: static tokens, a shared JWT
// key, client timestamps on /upload (so the test knows every sample's
// timestamp), no upload-interval limit (the fleet is time-compressed),
// and a spool in its working directory that survives a SIGKILL and
// restart.
func startScaleGateway(t *testing.T, o scaleGatewayOpts) *gatewayProc {
	t.Helper()
	bin := harness.BuildBinary(t, "./cmd/telegate")
	dir := t.TempDir()
	pub, internal := harness.FreeAddr(t), harness.FreeAddr(t)
	must(t, os.WriteFile(filepath.Join(dir, "allowlist.yaml"), []byte(scaleAllowlist), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tokens.yaml"), []byte(tokensYAML), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "jwt.pem"), []byte(o.jwtPEM), 0o600))
	redis := ""
	if o.redis != "" {
		// fail_open false: during a Redis outage requests are refused
		// (503, not acknowledged) rather than admitted past the budget.
		redis = fmt.Sprintf("  redis: {address: %q, key_prefix: \"scale:\", timeout: 500ms, fail_open: false}\n", o.redis)
	}
	cfg := fmt.Sprintf(`web:
  listen_address: %s
  internal_listen_address: %s
  shutdown_timeout: 5s
authn:
  tokens_file: tokens.yaml
  jwt:
    signing_key_file: jwt.pem
allowlist:
  file: allowlist.yaml
relabel:
  upload_timestamps: client
  max_future_skew: 1h
limits:
  upload_interval: 0s
  failed_auth: {per_minute: 0}
  budgets:
    active_series: {max: %d, window: 10m}
%sforward:
  url: %s
  timeout: 3s
  max_retry_time: 6s
  spool:
    max_bytes: 256MiB
    send_deadline: 2s
    replay: {concurrency: 2, min_backoff: 200ms, max_backoff: 2s, interval: 200ms}
`, pub, internal, o.seriesBudget, redis, o.downstream)
	must(t, os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(cfg), 0o600))
	name := o.name
	if name == "" {
		name = "telegate"
	}
	p := harness.StartProcess(t, harness.ProcessOptions{
		Name:   name,
		Binary: bin,
		Args:   []string{"gateway", "--config.file=" + filepath.Join(dir, "gateway.yaml"), "--log.level=info"},
		Dir:    dir,
	})
	p.WaitHTTP("http://"+internal+"/-/ready", 30*time.Second)
	return &gatewayProc{Process: p, url: "http://" + pub, internal: "http://" + internal}
}

// metricOf reads one metric of a gateway, summed over the label sets
// that carry labels (name/value pairs); -1 when it cannot be read (the
// replica is down) or is not there.
func metricOf(gw *gatewayProc, name string, labels ...string) float64 {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(gw.internal + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return -1
	}
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// sampleKey names one sample: its series (without the receiver's replica
// label) and timestamp.
type sampleKey struct {
	series string
	ts     int64
}

// seriesID is the identity the scale tests give a series: metric, inst
// and s.
func seriesID(metric, inst, s string) string { return metric + "|" + inst + "|" + s }

// ledger records what the fleet sent and what was acknowledged.
type ledger struct {
	mu       sync.Mutex
	acked    map[sampleKey]float64 // acknowledged with a 2xx
	sent     map[sampleKey]bool    // sent at all (acknowledged or not)
	statuses map[string]int
}

func newLedger() *ledger {
	return &ledger{acked: map[sampleKey]float64{}, sent: map[sampleKey]bool{}, statuses: map[string]int{}}
}

func (l *ledger) record(endpoint string, status int, samples map[sampleKey]float64, ackedToo func(sampleKey) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses[fmt.Sprintf("%s %d", endpoint, status)]++
	for k, v := range samples {
		l.sent[k] = true
		if status/100 == 2 && (ackedToo == nil || ackedToo(k)) {
			l.acked[k] = v
		}
	}
}

// stored is what Thanos Query returns as raw samples of the scale
// metrics, by sample: the values each receiver holds.
type stored struct {
	copies      map[sampleKey][]float64
	replicas    map[sampleKey][]string // receive_replica of each copy
	raw         int
	wrongTenant []string
	series      map[string]bool
}

// readStored reads every raw sample of metrics over the last window from
// q, without deduplication: each receiver's copy is its own stream.
func readStored(q *harness.ThanosQuery, window time.Duration, metrics ...string) (*stored, error) {
	st := &stored{copies: map[sampleKey][]float64{}, replicas: map[sampleKey][]string{}, series: map[string]bool{}}
	for _, m := range metrics {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		mat, err := q.QueryMatrixErr(ctx, fmt.Sprintf("%s[%ds]", m, int(window.Seconds())))
		cancel()
		if err != nil {
			return nil, err
		}
		for _, ss := range mat {
			inst, id := string(ss.Metric["inst"]), string(ss.Metric["_id"])
			sid := seriesID(m, inst, string(ss.Metric["s"]))
			if id != inst {
				st.wrongTenant = append(st.wrongTenant, ss.Metric.String())
			}
			st.series[sid] = true
			for _, p := range ss.Values {
				k := sampleKey{sid, int64(p.Timestamp)}
				st.copies[k] = append(st.copies[k], float64(p.Value))
				st.replicas[k] = append(st.replicas[k], string(ss.Metric["receive_replica"]))
				st.raw++
			}
		}
	}
	return st, nil
}

// tally compares the ledger with what is stored.
type tally struct {
	acked, sent, found, lost, unexpected, raw, conflictingValues int
	copies                                                       map[int]int // samples by number of receivers holding them
	lostExamples                                                 []string
}

func compare(l *ledger, st *stored) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := tally{acked: len(l.acked), sent: len(l.sent), raw: st.raw, copies: map[int]int{}}
	for k := range l.acked {
		if _, ok := st.copies[k]; ok {
			tl.found++
		} else {
			tl.lost++
			if len(tl.lostExamples) < 10 {
				tl.lostExamples = append(tl.lostExamples, fmt.Sprintf("%s@%d", k.series, k.ts))
			}
		}
	}
	for k, vs := range st.copies {
		tl.copies[len(vs)]++
		if !l.sent[k] {
			tl.unexpected++
		}
		for _, v := range vs[1:] {
			if v != vs[0] {
				tl.conflictingValues++
				break
			}
		}
	}
	return tl
}

func (tl tally) String() string {
	var cs []string
	for n, c := range tl.copies {
		cs = append(cs, fmt.Sprintf("%d on %d receiver(s)", c, n))
	}
	sort.Strings(cs)
	return fmt.Sprintf("acknowledged %d, sent %d, found %d, lost %d, raw samples stored %d (%s), stored but never sent %d, same sample with different values %d",
		tl.acked, tl.sent, tl.found, tl.lost, tl.raw, strings.Join(cs, ", "), tl.unexpected, tl.conflictingValues)
}

// waitFound polls until every acknowledged sample is stored or timeout.
func waitFound(t *testing.T, q *harness.ThanosQuery, l *ledger, window, timeout time.Duration, metrics ...string) (tally, *stored) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := readStored(q, window, metrics...)
		if err == nil {
			tl := compare(l, st)
			if tl.lost == 0 || time.Now().After(deadline) {
				return tl, st
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("reading raw samples from Thanos Query: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// underReplicated describes the samples stored on fewer than want
// receivers: how many by the receivers holding them and by when they
// were sent (seconds after start, in 5s steps).
func underReplicated(st *stored, want int, start time.Time) string {
	by := map[string]int{}
	for k, rs := range st.replicas {
		if len(rs) >= want {
			continue
		}
		rs = append([]string(nil), rs...)
		sort.Strings(rs)
		at := int(time.UnixMilli(k.ts).Sub(start)/(5*time.Second)) * 5
		by[fmt.Sprintf("on receiver %s sent at t=%02ds", strings.Join(rs, "+"), at)]++
	}
	var out []string
	for k, n := range by {
		out = append(out, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
