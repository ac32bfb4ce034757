package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
)

// Fairness bounds what one installation can hold of the gateway at once,
// so its requests cannot make another installation's fail.
type Fairness struct {
	// MaxConcurrentPerInstallation bounds one installation's requests in
	// flight (past authentication); more get 429 at once. 0 = unbounded.
	MaxConcurrentPerInstallation int
	// MaxInflightBytes bounds the memory of every request in flight: the
	// compressed body, the decoded body and the decoded series are
	// reserved from it before they are allocated. A request that finds it
	// full gets 503 at once. 0 = unbounded.
	MaxInflightBytes int64
	// MaxInflightBytesPerInstallation is one installation's share of
	// MaxInflightBytes: past it its requests get 429; a single request
	// needing more than the whole share gets 413. 0 = MaxInflightBytes.
	MaxInflightBytesPerInstallation int64
	// MinBodyRate is the slowest a request body may arrive, in bytes per
	// second on average since the request started, after BodyGrace: a
	// slower body is cut with 408. 0 = no minimum (web.read_timeout only).
	MinBodyRate float64
	BodyGrace   time.Duration
	// MaxBodyTime is the listener's read timeout: the body-rate deadline
	// never extends past it. 0 = none.
	MaxBodyTime time.Duration
}

// admission is the per-installation accounting of Fairness: requests in
// flight and reserved bytes, per installation and in total. It holds an
// entry only for installations with requests in flight, so it stays as
// small as the concurrency limit.
type admission struct {
	f       Fairness
	mu      sync.Mutex
	used    int64
	byInst  map[string]*instUse
	refused *prometheus.CounterVec
	bytes   prometheus.Gauge
}

type instUse struct {
	requests int
	bytes    int64
}

// Refusal reasons of telegate_http_fairness_refused_total.
const (
	reasonInstallationConcurrency = "installation_concurrency"
	reasonInstallationMemory      = "installation_memory"
	reasonMemory                  = "memory"
	reasonRequestMemory           = "request_memory"
	reasonBodyTooSlow             = "body_too_slow"
)

func newAdmission(f Fairness, reg prometheus.Registerer) *admission {
	if f.MaxInflightBytesPerInstallation <= 0 || (f.MaxInflightBytes > 0 && f.MaxInflightBytesPerInstallation > f.MaxInflightBytes) {
		f.MaxInflightBytesPerInstallation = f.MaxInflightBytes
	}
	fa := promauto.With(reg)
	a := &admission{
		f:      f,
		byInst: map[string]*instUse{},
		refused: fa.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_http_fairness_refused_total",
			Help: "Requests refused to keep one installation from starving the others, by reason: installation_concurrency (429, limits.max_concurrent_requests_per_installation), installation_memory (429, its share of limits.max_inflight_bytes), memory (503, limits.max_inflight_bytes full), request_memory (413, one request needs more than an installation's share), body_too_slow (408, limits.body_min_rate).",
		}, []string{"reason"}),
		bytes: fa.NewGauge(prometheus.GaugeOpts{
			Name: "telegate_http_inflight_bytes",
			Help: "Memory reserved by the requests in flight (compressed bodies, decoded bodies, decoded series), bounded by limits.max_inflight_bytes.",
		}),
	}
	for _, r := range []string{reasonInstallationConcurrency, reasonInstallationMemory, reasonMemory, reasonRequestMemory, reasonBodyTooSlow} {
		a.refused.WithLabelValues(r)
	}
	return a
}

// ticket is one admitted request's hold on the gateway: it must be
// released (done) when the request ends. Its methods are not safe for
// concurrent use: a request's handler goroutine owns its ticket.
type ticket struct {
	a     *admission
	inst  string
	use   *instUse
	bytes int64
}

// admit counts a request of installation inst in flight, or returns the
// 429 to answer when the installation already has its share in flight.
func (a *admission) admit(inst string) (*ticket, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.byInst[inst]
	if u == nil {
		u = &instUse{}
		a.byInst[inst] = u
	}
	if max := a.f.MaxConcurrentPerInstallation; max > 0 && u.requests >= max {
		a.refused.WithLabelValues(reasonInstallationConcurrency).Inc()
		if u.requests == 0 {
			delete(a.byInst, inst)
		}
		e := newError(http.StatusTooManyRequests, reasonInstallationConcurrency,
			"this installation already has "+strconv.Itoa(max)+" requests in flight (limits.max_concurrent_requests_per_installation); wait for them to finish")
		e.retryAfter = time.Second
		e.limit = int64(max)
		return nil, e
	}
	u.requests++
	return &ticket{a: a, inst: inst, use: u}, nil
}

// reserve grows the ticket's reservation to total bytes (a no-op when it
// holds that much already). It fails with 413 when total is more than an
// installation's share, 429 when the installation's other requests hold
// the rest of its share, and 503 when every installation's requests
// together hold MaxInflightBytes.
func (t *ticket) reserve(total int64) error {
	if t == nil || total <= t.bytes {
		return nil
	}
	a := t.a
	if a.f.MaxInflightBytes <= 0 {
		return nil
	}
	share := a.f.MaxInflightBytesPerInstallation
	if total > share {
		a.refused.WithLabelValues(reasonRequestMemory).Inc()
		e := newError(http.StatusRequestEntityTooLarge, reasonRequestMemory,
			"the request needs "+strconv.FormatInt(total, 10)+" bytes of memory to decode, more than one installation's share of limits.max_inflight_bytes ("+strconv.FormatInt(share, 10)+" bytes): send smaller requests")
		e.limit = share
		return e
	}
	more := total - t.bytes
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.use.bytes+more > share {
		a.refused.WithLabelValues(reasonInstallationMemory).Inc()
		e := newError(http.StatusTooManyRequests, reasonInstallationMemory,
			"this installation's requests in flight hold its share of limits.max_inflight_bytes ("+strconv.FormatInt(share, 10)+" bytes); wait for them to finish")
		e.retryAfter = time.Second
		e.limit = share
		return e
	}
	if a.used+more > a.f.MaxInflightBytes {
		a.refused.WithLabelValues(reasonMemory).Inc()
		e := newError(http.StatusServiceUnavailable, reasonMemory, "the gateway's memory for requests in flight (limits.max_inflight_bytes) is in use; retry shortly")
		e.retryAfter = time.Second
		e.limit = a.f.MaxInflightBytes
		return e
	}
	t.use.bytes += more
	a.used += more
	t.bytes = total
	a.bytes.Add(float64(more))
	return nil
}

// add reserves n bytes more than the ticket holds.
func (t *ticket) add(n int) error {
	if t == nil {
		return nil
	}
	return t.reserve(t.bytes + int64(n))
}

// requests returns the requests of inst in flight (tests).
func (a *admission) requests(inst string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.byInst[inst]; u != nil {
		return u.requests
	}
	return 0
}

// growth is the decode.Reserve of a buffer whose capacity, held bytes,
// the ticket holds already: each growth reserves what it adds.
func (t *ticket) growth(held int) decode.Reserve {
	return func(newCap int) error {
		err := t.add(newCap - held)
		held = max(held, newCap)
		return err
	}
}

// done releases everything the ticket holds.
func (t *ticket) done() {
	if t == nil {
		return
	}
	a := t.a
	a.mu.Lock()
	t.use.requests--
	t.use.bytes -= t.bytes
	a.used -= t.bytes
	if t.use.requests == 0 {
		delete(a.byInst, t.inst)
	}
	a.mu.Unlock()
	a.bytes.Sub(float64(t.bytes))
	t.bytes = 0
}

// perRequestOverhead is what a request in flight holds besides what it
// reserves: its headers (the listener's MaxHeaderBytes, 64 KiB), the
// connection's buffers and the handler's small state.
const perRequestOverhead = 128 << 10

// MemoryBound returns the most memory the public API's requests in flight
// can hold at once under o, not counting the process's baseline (the Go
// runtime, caches, budgets' state): with Fairness.MaxInflightBytes, that
// budget plus a fixed overhead per concurrent request; without it, the
// concurrency limit times one request's worst case (compressed body,
// decoded body, decoded series, forward encoding). Plus the /explain
// cache. It returns -1 when nothing bounds it (no concurrency limit and no
// in-flight bytes).
func (o Options) MemoryBound() int64 {
	conc := int64(o.MaxConcurrentRequests)
	var reqs int64
	switch {
	case o.Fairness.MaxInflightBytes > 0 && conc > 0:
		reqs = o.Fairness.MaxInflightBytes + conc*perRequestOverhead
	case o.Fairness.MaxInflightBytes > 0:
		return -1 // the overhead of unboundedly many connections
	case conc > 0:
		d := int64(o.Limits.MaxDecodedBytes)
		series := max(o.Limits.MaxSeriesPerRequest, 1)
		batchBytes := int64(decode.UploadBudget(int(d)))
		reqs = conc * (o.Limits.MaxRequestBytes + d + 2*batchBytes + int64(forwardReserve(o.MaxForwardBytes, int(d), series)) + perRequestOverhead)
	default:
		return -1
	}
	return reqs + o.ExplainCacheBytes
}

// pipelineBytes is what relabel's stamping allocates for series: a copy
// of each series' labels plus the cluster-ID label.
func pipelineBytes(series []batch.Series) int {
	n := 0
	for i := range series {
		n += len(series[i].Labels) + 1
	}
	return n * int(unsafe.Sizeof(batch.Label{}))
}

// forwardReserve is what encoding a request's kept series for the
// downstream holds: the protobuf encoding of a part (at most maxForward
// bytes, estimated from the decoded body plus the stamped label of each
// series) and its snappy compression.
func forwardReserve(maxForward, decoded, series int) int {
	return forwardReserveOf(maxForward, decoded+32*series)
}

// forwardReserveOf is forwardReserve for an encoding of about encoded
// bytes.
func forwardReserveOf(maxForward, encoded int) int {
	if maxForward <= 0 {
		maxForward = forward.DefaultMaxRequestBytes
	}
	return 2 * min(maxForward, encoded)
}

// encodedBytes is about the size of series encoded as remote write 1.0
// (its label strings in full): a 2.0 request, whose labels are small
// references into its symbols table, can encode to many times its own
// size, so its reservation cannot be estimated from the body.
func encodedBytes(series []batch.Series) int {
	n := 0
	for i := range series {
		s := &series[i]
		n += 8 + 16*len(s.Samples) + 40*len(s.Exemplars)
		for _, l := range s.Labels {
			n += 6 + len(l.Name) + len(l.Value)
		}
		for _, h := range s.Histograms {
			n += 4 + len(h.Raw)
		}
		for _, e := range s.Exemplars {
			for _, l := range e.Labels {
				n += 6 + len(l.Name) + len(l.Value)
			}
		}
	}
	return n
}

// metadataBytes is about the size of md encoded.
func metadataBytes(md []batch.Metadata) int {
	n := 0
	for i := range md {
		n += 16 + len(md[i].Family) + len(md[i].Help) + len(md[i].Unit)
	}
	return n
}
