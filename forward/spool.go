package forward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/thanos-io/objstore"
)

// Layout of a spool bucket:
//
//	spool/<cluster key>/<enqueue unix ns, 20 digits>-<sequence, 8 hex>   pending
//	dead/<cluster key>/<same name>.<reason>                              dead-lettered
//
// The cluster key is "x" + hex(cluster ID) (IDs up to 100 bytes) or "h" +
// hex(sha256(cluster ID)); the full ID is in the object header. Names sort
// by enqueue time within a cluster.
const (
	spoolDir = "spool/"
	deadDir  = "dead/"
)

// Dead-letter reasons (the reason label of
// telegate_spool_dead_lettered_total and the suffix of dead objects).
const (
	DeadBadRequest = "bad_request" // downstream answered 400 / 422
	DeadConflict   = "conflict"    // downstream answered 409 (out of order, out of bounds, duplicate)
	DeadTooLarge   = "too_large"   // downstream answered 413
	DeadRejected   = "rejected"    // any other 4xx the downstream will never accept
	DeadTooOld     = "too_old"     // every sample is older than max_sample_age
	DeadCorrupt    = "corrupt"     // the object cannot be decoded
	// DeadUnsupported: the downstream does not take the object's protobuf
	// message (415, or a 2.0 body answered 2xx with nothing written; see
	// ErrUnsupported).
	DeadUnsupported = "unsupported"
)

var deadReasons = []string{DeadBadRequest, DeadConflict, DeadTooLarge, DeadRejected, DeadTooOld, DeadCorrupt, DeadUnsupported}

// ErrSpoolFull is returned by Spool.Put when the object would take the
// spool over its size cap.
var ErrSpoolFull = errors.New("forward: spool is full")

// maxObjectBytes bounds what replay reads of one object.
const maxObjectBytes = 256 << 20

// objMagic starts every spool object (format version 1).
var objMagic = []byte("TGSPOOL\x01")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// objHeader is the JSON header of a spool object. Samples counts float and
// native histogram samples alike (the unit of the gateway's budgets and
// written counts), Histograms the latter again; MinTS and MaxTS span both.
// Exemplars and metadata are counted but have no say in the timestamps.
// Objects spooled before histograms were forwarded decode with zero
// Histograms, Exemplars and Metadata, which is what they held. Proto is
// the body's protobuf message, "" for MessageV1 (and for objects spooled
// before 2.0 could be sent); Metadata counts, for 2.0, the series carrying
// a metadata message.
type objHeader struct {
	ClusterID  string `json:"cluster_id"`
	EnqueuedMS int64  `json:"enqueued_ms"`
	Proto      string `json:"proto,omitempty"`
	Series     int    `json:"series"`
	Samples    int    `json:"samples"`
	Histograms int    `json:"histograms,omitempty"`
	Exemplars  int    `json:"exemplars,omitempty"`
	Metadata   int    `json:"metadata,omitempty"`
	MinTS      int64  `json:"min_ts_ms"`
	MaxTS      int64  `json:"max_ts_ms"`
	// Dead-letter fields.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	DeadMS  int64  `json:"dead_ms,omitempty"`
}

// encodeObject frames header and body:
// magic | u32 header len | header JSON | u32 body len | body | u32 CRC-32C of all before.
func encodeObject(h *objHeader, body []byte) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(hj) > math.MaxUint32 || len(body) > math.MaxUint32 {
		return nil, errors.New("forward: spool object too large")
	}
	out := make([]byte, 0, len(objMagic)+12+len(hj)+len(body))
	out = append(out, objMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hj)))
	out = append(out, hj...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable)), nil
}

// decodeObject is the inverse of encodeObject. body aliases data.
func decodeObject(data []byte) (*objHeader, []byte, error) {
	if len(data) < len(objMagic)+12 || string(data[:len(objMagic)]) != string(objMagic) {
		return nil, nil, errors.New("not a spool object (bad magic or truncated)")
	}
	sum := binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(data[:len(data)-4], crcTable) != sum {
		return nil, nil, errors.New("checksum mismatch")
	}
	rest := data[len(objMagic) : len(data)-4]
	hl := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(hl)+4 > uint64(len(rest)) {
		return nil, nil, errors.New("header length out of range")
	}
	h := &objHeader{}
	if err := json.Unmarshal(rest[:hl], h); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	rest = rest[hl:]
	bl := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(bl) != uint64(len(rest)) {
		return nil, nil, errors.New("body length mismatch")
	}
	return h, rest, nil
}

// bodyStats decodes a snappy remote-write body, 1.0 or 2.0 (told apart by
// the first field: 1.0's WriteRequest numbers its fields 1 and 3, 2.0's
// Request 4 and 5), and fills the proto, series, sample, histogram,
// exemplar, metadata and timestamp fields of h.
func bodyStats(body []byte, h *objHeader) error {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return fmt.Errorf("snappy: %w", err)
	}
	h.Proto, h.Samples, h.Histograms, h.Exemplars, h.MinTS, h.MaxTS = "", 0, 0, 0, math.MaxInt64, math.MinInt64
	stamp := func(ts int64) {
		h.MinTS = min(h.MinTS, ts)
		h.MaxTS = max(h.MaxTS, ts)
	}
	if tag, n := binary.Uvarint(raw); n > 0 && (tag>>3 == 4 || tag>>3 == 5) {
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			return fmt.Errorf("write request 2.0: %w", err)
		}
		h.Proto, h.Series, h.Metadata = MessageV2, len(req.Timeseries), 0
		for _, ts := range req.Timeseries {
			for _, s := range ts.Samples {
				stamp(s.Timestamp)
			}
			for _, hs := range ts.Histograms {
				stamp(hs.Timestamp)
			}
			h.Samples += len(ts.Samples) + len(ts.Histograms)
			h.Histograms += len(ts.Histograms)
			h.Exemplars += len(ts.Exemplars)
			if md := ts.Metadata; md.Type != 0 || md.HelpRef != 0 || md.UnitRef != 0 {
				h.Metadata++
			}
		}
	} else {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		h.Series, h.Metadata = len(wr.Timeseries), len(wr.Metadata)
		for _, ts := range wr.Timeseries {
			for _, s := range ts.Samples {
				stamp(s.Timestamp)
			}
			for _, hs := range ts.Histograms {
				stamp(hs.Timestamp)
			}
			h.Samples += len(ts.Samples) + len(ts.Histograms)
			h.Histograms += len(ts.Histograms)
			h.Exemplars += len(ts.Exemplars)
		}
	}
	if h.Samples == 0 {
		h.MinTS, h.MaxTS = 0, 0
	}
	return nil
}

// clusterKey is the bucket-safe directory name of a cluster ID.
func clusterKey(id string) string {
	if len(id) <= 100 {
		return "x" + hex.EncodeToString([]byte(id))
	}
	sum := sha256.Sum256([]byte(id))
	return "h" + hex.EncodeToString(sum[:])
}

// parseSpoolName splits "spool/<key>/<ns>-<seq>" into key and enqueue time.
func parseSpoolName(name string) (key string, enq time.Time, ok bool) {
	rest, found := strings.CutPrefix(name, spoolDir)
	if !found {
		return "", time.Time{}, false
	}
	key, file, found := strings.Cut(rest, "/")
	if !found || key == "" || strings.Contains(file, "/") {
		return "", time.Time{}, false
	}
	ns, _, found := strings.Cut(file, "-")
	if !found || len(ns) != 20 {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || n < 0 {
		return "", time.Time{}, false
	}
	return key, time.Unix(0, n), true
}

// entry is one pending object in the index.
type entry struct {
	name string
	size int64
	enq  time.Time
}

// queue is one cluster's pending objects, oldest first.
type queue struct {
	key  string
	objs []entry
	busy bool // its head is being replayed
	// conflicts counts the head's refusals as out of order; notBefore is
	// when it may be tried again.
	conflicts int
	notBefore time.Time
}

// deadEntry is one object under dead/ in the index.
type deadEntry struct {
	size int64
	at   time.Time // dead-lettered (the object's last modification)
	seq  uint64    // when it entered the index (see sweepDead)
}

// SpoolOptions configure a Spool.
type SpoolOptions struct {
	// MaxBytes caps the total size of pending and dead-lettered objects;
	// Put returns ErrSpoolFull beyond it. 0 means no cap.
	MaxBytes int64
	// MaxSampleAge: replay dead-letters an object whose newest sample is
	// older than this (the downstream would refuse it). 0 disables.
	MaxSampleAge time.Duration
	// DeadRetention: Replay deletes dead-lettered objects older than this
	// (by their last modification). 0 keeps them until removed by hand.
	DeadRetention time.Duration
	Logger        log.Logger
	Registerer    prometheus.Registerer
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Spool is a durable queue of remote-write bodies on an objstore bucket,
// one FIFO per cluster. Put is safe for concurrent use; Replay drains it.
// One process must own a bucket (or prefix) at a time: two gateways on the
// same spool would replay the same objects.
type Spool struct {
	bkt    objstore.Bucket
	opts   SpoolOptions
	logger log.Logger
	seq    atomic.Uint32

	mu       sync.Mutex
	queues   map[string]*queue
	order    []string // round-robin order of keys
	cursor   int
	bytes    int64 // pending plus reserved by Puts in progress
	objects  int
	wake     chan struct{}
	lastSeen int64 // last enqueue ns handed out, to keep names increasing

	dead      map[string]deadEntry // objects under dead/
	deadBytes int64
	deadSeq   uint64

	m *spoolMetrics
}

type spoolMetrics struct {
	replayed   prometheus.Counter
	dead       *prometheus.CounterVec
	writes     *prometheus.CounterVec
	replayErrs prometheus.Counter
	expired    prometheus.Counter
	conflicts  prometheus.Counter
}

// OpenSpool lists the pending objects of bkt (left by an earlier process)
// and returns a Spool that continues with them.
func OpenSpool(ctx context.Context, bkt objstore.Bucket, o SpoolOptions) (*Spool, error) {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBytes < 0 || o.MaxSampleAge < 0 || o.DeadRetention < 0 {
		return nil, errors.New("forward: spool max_bytes, max_sample_age and dead_letter_retention must not be negative")
	}
	s := &Spool{bkt: bkt, opts: o, logger: o.Logger, queues: map[string]*queue{}, wake: make(chan struct{}, 1), dead: map[string]deadEntry{}}
	err := bkt.Iter(ctx, spoolDir, func(name string) error {
		key, enq, ok := parseSpoolName(name)
		if !ok {
			level.Warn(s.logger).Log("msg", "ignoring unexpected object in spool", "object", name)
			return nil
		}
		attrs, err := bkt.Attributes(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		s.add(key, entry{name: name, size: attrs.Size, enq: enq})
		s.bytes += attrs.Size
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("forward: listing spool: %w", err)
	}
	// Dead letters count against max_bytes too.
	err = bkt.Iter(ctx, deadDir, func(name string) error {
		return s.indexDead(ctx, name)
	}, objstore.WithRecursiveIter())
	if err != nil {
		return nil, fmt.Errorf("forward: listing spool dead letters: %w", err)
	}
	if err := s.registerMetrics(o.Registerer); err != nil {
		return nil, err
	}
	if s.objects > 0 {
		level.Info(s.logger).Log("msg", "spool has objects left to replay", "objects", s.objects, "bytes", s.bytes)
	}
	if n := len(s.dead); n > 0 {
		level.Info(s.logger).Log("msg", "spool has dead-lettered objects", "objects", n, "bytes", s.deadBytes, "retention", o.DeadRetention)
	}
	return s, nil
}

// indexDead adds the dead-lettered object name, found in a listing, to the
// index with its size and last modification.
func (s *Spool) indexDead(ctx context.Context, name string) error {
	attrs, err := s.bkt.Attributes(ctx, name)
	if s.bkt.IsObjNotFoundErr(err) {
		return nil // removed since the listing
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	at := attrs.LastModified
	if at.IsZero() {
		at = s.opts.Now() // a store without modification times: from now on
	}
	s.mu.Lock()
	if _, known := s.dead[name]; !known { // deadLetter's own entry wins
		s.putDead(name, attrs.Size, at)
	}
	s.mu.Unlock()
	return nil
}

// putDead adds or replaces an index entry. Callers hold mu.
func (s *Spool) putDead(name string, size int64, at time.Time) {
	if old, ok := s.dead[name]; ok {
		s.deadBytes -= old.size
	}
	s.deadSeq++
	s.dead[name] = deadEntry{size: size, at: at, seq: s.deadSeq}
	s.deadBytes += size
}

// dropDead removes an index entry. Callers hold mu.
func (s *Spool) dropDead(name string) {
	if old, ok := s.dead[name]; ok {
		s.deadBytes -= old.size
		delete(s.dead, name)
	}
}

// DeadStats returns the objects and bytes under dead/.
func (s *Spool) DeadStats() (objects int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dead), s.deadBytes
}

// sweepDead brings the dead/ index in line with the bucket (an operator
// may have removed or re-sent dead letters; they then no longer count
// against max_bytes) and deletes the dead letters older than
// DeadRetention. It returns the first error; the rest of the sweep still
// runs.
func (s *Spool) sweepDead(ctx context.Context) error {
	s.mu.Lock()
	start := s.deadSeq
	s.mu.Unlock()
	listed := map[string]bool{}
	var firstErr error
	err := s.bkt.Iter(ctx, deadDir, func(name string) error {
		listed[name] = true
		s.mu.Lock()
		_, known := s.dead[name]
		s.mu.Unlock()
		if !known {
			if err := s.indexDead(ctx, name); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing dead letters: %w", err)
	}
	var expired []string
	s.mu.Lock()
	for name, e := range s.dead {
		// Entries added after the listing began may be missing from it.
		if !listed[name] && e.seq <= start {
			s.dropDead(name)
		}
	}
	if ret := s.opts.DeadRetention; ret > 0 {
		cutoff := s.opts.Now().Add(-ret)
		for name, e := range s.dead {
			if e.at.Before(cutoff) {
				expired = append(expired, name)
			}
		}
	}
	s.mu.Unlock()
	sort.Strings(expired)
	for _, name := range expired {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.bkt.Delete(ctx, name); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			if firstErr == nil {
				firstErr = fmt.Errorf("expiring %s: %w", name, err)
			}
			continue
		}
		s.mu.Lock()
		s.dropDead(name)
		s.mu.Unlock()
		s.m.expired.Inc()
	}
	if len(expired) > 0 {
		level.Info(s.logger).Log("msg", "expired dead-lettered objects", "objects", len(expired), "retention", s.opts.DeadRetention)
	}
	return firstErr
}

func (s *Spool) registerMetrics(reg prometheus.Registerer) error {
	m := &spoolMetrics{
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_spool_replayed_total",
			Help: "Spooled objects the downstream accepted on replay (then deleted).",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_spool_dead_lettered_total",
			Help: "Spooled objects moved to dead/ instead of being replayed, by reason.",
		}, []string{"reason"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_spool_writes_total",
			Help: "Attempts to spool a request, by result (ok, full, error).",
		}, []string{"result"}),
		replayErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_spool_replay_failures_total",
			Help: "Replay attempts that failed in a way worth retrying (downstream or bucket unavailable).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_spool_dead_expired_total",
			Help: "Dead-lettered objects deleted because they were older than dead_letter_retention.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_spool_replay_conflicts_total",
			Help: "Replay attempts the downstream refused as out of order (409 out of order sample / out of bounds / too old sample), each retried a bounded number of times before dead-lettering; the receivers need an out-of-order window.",
		}),
	}
	for _, r := range deadReasons {
		m.dead.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "full", "error"} {
		m.writes.WithLabelValues(r)
	}
	s.m = m
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.replayed, m.dead, m.writes, m.replayErrs, m.expired, m.conflicts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_objects",
			Help: "Objects waiting in the spool for replay.",
		}, func() float64 { o, _, _ := s.Stats(); return float64(o) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_bytes",
			Help: "Bytes waiting in the spool (including writes in progress).",
		}, func() float64 { _, b, _ := s.Stats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_max_bytes",
			Help: "The spool's size cap, pending and dead-lettered objects together (0: none).",
		}, func() float64 { return float64(s.opts.MaxBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_dead_objects",
			Help: "Dead-lettered objects kept under dead/.",
		}, func() float64 { o, _ := s.DeadStats(); return float64(o) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_dead_bytes",
			Help: "Bytes of dead-lettered objects under dead/; they count against the spool's max_bytes.",
		}, func() float64 { _, b := s.DeadStats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telegate_spool_oldest_age_seconds",
			Help: "Age of the oldest object waiting in the spool; 0 when empty.",
		}, func() float64 {
			_, _, oldest := s.Stats()
			if oldest.IsZero() {
				return 0
			}
			return max(0, s.opts.Now().Sub(oldest).Seconds())
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("forward: registering spool metrics: %w", err)
		}
	}
	return nil
}

// add inserts e into its cluster's queue in name order, never ahead of a
// head being replayed. Callers hold mu (or own s exclusively).
func (s *Spool) add(key string, e entry) {
	q, ok := s.queues[key]
	if !ok {
		q = &queue{key: key}
		s.queues[key] = q
		s.order = append(s.order, key)
	}
	i := sort.Search(len(q.objs), func(i int) bool { return q.objs[i].name > e.name })
	if q.busy && i == 0 {
		i = 1
	}
	q.objs = append(q.objs, entry{})
	copy(q.objs[i+1:], q.objs[i:])
	q.objs[i] = e
	s.objects++
}

// Stats returns the pending objects and bytes, and the enqueue time of the
// oldest object (zero when empty).
func (s *Spool) Stats() (objects int, bytes int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queues {
		if len(q.objs) > 0 && (oldest.IsZero() || q.objs[0].enq.Before(oldest)) {
			oldest = q.objs[0].enq
		}
	}
	return s.objects, s.bytes, oldest
}

// HasBacklog reports whether clusterID has objects waiting. New data of
// such a cluster must be spooled behind them, not sent ahead: the
// downstream would refuse the older samples as out of order.
func (s *Spool) HasBacklog(clusterID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[clusterKey(clusterID)]
	return ok && len(q.objs) > 0
}

// Put durably stores body (a snappy remote-write body) for clusterID and
// returns once the bucket has it. It returns ErrSpoolFull when pending
// and dead-lettered objects would exceed the cap, or the bucket's error.
func (s *Spool) Put(ctx context.Context, clusterID string, body []byte) error {
	now := s.opts.Now()
	h := &objHeader{ClusterID: clusterID, EnqueuedMS: now.UnixMilli()}
	if err := bodyStats(body, h); err != nil {
		s.m.writes.WithLabelValues("error").Inc()
		return fmt.Errorf("forward: spool: invalid body: %w", err)
	}
	obj, err := encodeObject(h, body)
	if err != nil {
		s.m.writes.WithLabelValues("error").Inc()
		return err
	}
	size := int64(len(obj))
	key := clusterKey(clusterID)

	s.mu.Lock()
	if s.opts.MaxBytes > 0 && s.bytes+s.deadBytes+size > s.opts.MaxBytes {
		s.mu.Unlock()
		s.m.writes.WithLabelValues("full").Inc()
		return ErrSpoolFull
	}
	s.bytes += size
	ns := max(now.UnixNano(), s.lastSeen+1)
	s.lastSeen = ns
	s.mu.Unlock()

	name := fmt.Sprintf("%s%s/%020d-%08x", spoolDir, key, ns, s.seq.Add(1))
	if err := s.bkt.Upload(ctx, name, bytes.NewReader(obj)); err != nil {
		s.mu.Lock()
		s.bytes -= size
		s.mu.Unlock()
		s.m.writes.WithLabelValues("error").Inc()
		return fmt.Errorf("forward: spool: %w", err)
	}
	s.mu.Lock()
	s.add(key, entry{name: name, size: size, enq: time.Unix(0, ns)})
	s.mu.Unlock()
	s.m.writes.WithLabelValues("ok").Inc()
	s.signal()
	return nil
}

// signal wakes one idle replay worker, if any is waiting.
func (s *Spool) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next picks the head of the next cluster in round-robin order that has
// objects, none in replay and no retry postponed to later, and marks it
// busy. conflicts is how often the head was refused as out of order.
func (s *Spool) next() (key string, e entry, conflicts int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	n := len(s.order)
	for i := 0; i < n; i++ {
		k := s.order[(s.cursor+i)%n]
		q := s.queues[k]
		if q.busy || len(q.objs) == 0 || now.Before(q.notBefore) {
			continue
		}
		s.cursor = (s.cursor + i + 1) % n
		q.busy = true
		return k, q.objs[0], q.conflicts, true
	}
	return "", entry{}, 0, false
}

// postpone releases a cluster's head after a refusal as out of order: it
// stays in place, counted, and is not picked again before wait.
func (s *Spool) postpone(key string, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[key]
	q.busy = false
	q.conflicts++
	q.notBefore = time.Now().Add(wait)
}

// done releases a cluster's head after replay; removed says it left the
// spool (replayed or dead-lettered).
func (s *Spool) done(key string, removed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[key]
	q.busy = false
	if removed {
		q.conflicts, q.notBefore = 0, time.Time{}
		s.bytes -= q.objs[0].size
		s.objects--
		q.objs = q.objs[1:]
	}
	if len(q.objs) == 0 {
		delete(s.queues, key)
		for i, k := range s.order {
			if k == key {
				s.order = append(s.order[:i], s.order[i+1:]...)
				if s.cursor > i {
					s.cursor--
				}
				break
			}
		}
		if len(s.order) > 0 {
			s.cursor %= len(s.order)
		} else {
			s.cursor = 0
		}
	}
}

// deadLetter stores the object under dead/ with the reason in its name and
// header (raw as read when it could not be decoded, h nil), then deletes
// the pending object. The dead letter counts against MaxBytes until it
// expires (DeadRetention) or is removed.
func (s *Spool) deadLetter(ctx context.Context, name string, raw []byte, h *objHeader, body []byte, reason, msg string) error {
	out := raw
	if h != nil {
		h.Reason, h.Message, h.DeadMS = reason, msg, s.opts.Now().UnixMilli()
		b, err := encodeObject(h, body)
		if err != nil {
			return err
		}
		out = b
	}
	deadName := deadDir + strings.TrimPrefix(name, spoolDir) + "." + reason
	if err := s.bkt.Upload(ctx, deadName, bytes.NewReader(out)); err != nil {
		return fmt.Errorf("dead-lettering %s: %w", name, err)
	}
	s.mu.Lock()
	s.putDead(deadName, int64(len(out)), s.opts.Now())
	s.mu.Unlock()
	if err := s.bkt.Delete(ctx, name); err != nil && !s.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting %s after dead-lettering: %w", name, err)
	}
	s.m.dead.WithLabelValues(reason).Inc()
	level.Warn(s.logger).Log("msg", "spooled object dead-lettered", "object", name, "dead_object", deadName, "reason", reason, "detail", msg)
	return nil
}

// Purge deletes clusterID's pending objects (an installation's data, on
// its deletion request) and its dead letters, and returns how many it
// deleted. An object being replayed at that moment is left to its replay.
func (s *Spool) Purge(ctx context.Context, clusterID string) (int, error) {
	key := clusterKey(clusterID)
	s.mu.Lock()
	var names []string
	emptied := false
	if q, ok := s.queues[key]; ok {
		keep := 0
		if q.busy && len(q.objs) > 0 {
			keep = 1
		}
		for _, e := range q.objs[keep:] {
			names = append(names, e.name)
			s.bytes -= e.size
			s.objects--
		}
		q.objs = q.objs[:keep]
		emptied = keep == 0
	}
	var dead []string
	for name := range s.dead {
		if strings.HasPrefix(name, deadDir+key+"/") {
			dead = append(dead, name)
		}
	}
	s.mu.Unlock()
	if emptied {
		s.done(key, false) // drops the empty queue from the rotation
	}
	n := 0
	for _, name := range append(names, dead...) {
		if err := s.bkt.Delete(ctx, name); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			return n, fmt.Errorf("forward: spool: purging %s: %w", name, err)
		}
		n++
	}
	s.mu.Lock()
	for _, name := range dead {
		s.dropDead(name)
	}
	s.mu.Unlock()
	return n, nil
}
