package gateway

import (
	"hash/maphash"
	"math"
	"math/bits"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/allowlist"
)

// activity is the gateway's own record of what it did, for the console
// (package console): per installation, the last request of each
// protocol, what was accepted and dropped and the last error answers;
// per allowlist rule, what it matched; and the fleet's recent rates and
// downstream outcomes. It is bounded (maxInstallations, a few names and a
// small sketch per rule) and updated once per request (instrument,
// ingest's rule tally), never once per series under a shared lock.
type activity struct {
	shards   [activityShards]installShard
	perShard int // max/activityShards: the whole never holds more than max
	max      int
	since    time.Time

	rate rateRing

	rulesMu sync.Mutex
	rules   atomic.Pointer[ruleTable]
	// loaded is when the active allowlist was swapped in.
	loaded atomic.Pointer[allowlistLoad]

	downMu      sync.Mutex
	lastDownErr string
	lastDownAt  time.Time
}

type allowlistLoad struct {
	al *allowlist.Allowlist
	at time.Time
}

const (
	activityShards = 64
	// DefaultMaxInstallations bounds the installations the console's
	// activity tracker remembers (the least recently seen are evicted).
	DefaultMaxInstallations = 100_000
	// maxErrorAnswers is how many of an installation's last error
	// answers are kept, each message cut at maxErrorMessage bytes.
	maxErrorAnswers = 3
	maxErrorMessage = 160
	// evictSample is how many entries an insertion into a full shard
	// looks at to evict the least recently seen of them.
	evictSample = 8
)

// Protocols of an installation's last requests, by handler name.
var activityProtocols = [...]string{"receive", "upload", "authorize", "push"}

// Drop reasons of an installation's dropped samples: those of
// X-Telegate-Dropped-Samples.
var dropReasons = [...]string{"allowlist", "budget", "relabel", "collision", "too_old", "too_new", "invalid"}

type installShard struct {
	mu sync.Mutex
	m  map[string]*installRecord
	_  [40]byte // keep shards' locks on separate cache lines
}

type installRecord struct {
	last            [len(activityProtocols)]int64 // unix nanoseconds
	lastAny         int64
	requests        int64
	acceptedSeries  int64
	acceptedSamples int64
	dropped         [len(dropReasons)]int64
	errors          *errorRing
}

type errorRing struct {
	n    int // answers recorded, ever
	ring [maxErrorAnswers]ErrorAnswer
}

// ErrorAnswer is an error the gateway answered an installation with.
type ErrorAnswer struct {
	At      time.Time `json:"at"`
	Handler string    `json:"handler"`
	Status  int       `json:"status"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

func newActivity(maxInstallations int, now time.Time) *activity {
	if maxInstallations <= 0 {
		maxInstallations = DefaultMaxInstallations
	}
	a := &activity{perShard: max(1, maxInstallations/activityShards), max: maxInstallations, since: now}
	for i := range a.shards {
		a.shards[i].m = map[string]*installRecord{}
	}
	return a
}

var activitySeed = maphash.MakeSeed()

func (a *activity) shard(id string) *installShard {
	return &a.shards[maphash.String(activitySeed, id)%activityShards]
}

// outcome is what one request did, gathered while it runs (on its
// authAttempt) and recorded once when it is answered.
type outcome struct {
	cluster         string
	acceptedSeries  int
	acceptedSamples int
	dropped         [len(dropReasons)]int64 // samples, by dropReasons
	errReason       string
	errMsg          string
}

// noteCluster marks r as a request of the authenticated installation
// cluster, whose outcome instrument records.
func noteCluster(r *http.Request, cluster string) {
	if a := attemptOf(r.Context()); a != nil {
		a.out.cluster = cluster
	}
}

// setDropped copies a request's dropped samples by reason.
func (o *outcome) setDropped(dropped map[string]int) {
	for i, r := range dropReasons {
		o.dropped[i] = int64(dropped[r])
	}
}

// record notes one answered request of an authenticated installation.
func (a *activity) record(handler string, code int, o *outcome, now time.Time) {
	proto := -1
	for i, p := range activityProtocols {
		if p == handler {
			proto = i
		}
	}
	if proto < 0 {
		return
	}
	var droppedSum int64
	for _, n := range o.dropped {
		droppedSum += n
	}
	a.rate.add(now, int64(o.acceptedSamples), droppedSum)
	s := a.shard(o.cluster)
	ns := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.m[o.cluster]
	if rec == nil {
		if len(s.m) >= a.perShard {
			a.evict(s)
		}
		rec = &installRecord{}
		s.m[strings.Clone(o.cluster)] = rec
	}
	rec.last[proto] = ns
	rec.lastAny = ns
	rec.requests++
	rec.acceptedSeries += int64(o.acceptedSeries)
	rec.acceptedSamples += int64(o.acceptedSamples)
	for i, n := range o.dropped {
		rec.dropped[i] += n
	}
	if code >= 400 {
		if rec.errors == nil {
			rec.errors = &errorRing{}
		}
		msg := o.errMsg
		if len(msg) > maxErrorMessage {
			msg = strings.Clone(truncateUTF8(msg, maxErrorMessage)) + "…"
		}
		rec.errors.ring[rec.errors.n%maxErrorAnswers] = ErrorAnswer{At: now, Handler: handler, Status: code, Reason: o.errReason, Message: msg}
		rec.errors.n++
	}
}

// evict removes the least recently seen of a few entries of a full
// shard (Go's map iteration starts at a random place).
func (a *activity) evict(s *installShard) {
	var (
		oldest   string
		oldestAt int64 = math.MaxInt64
		n        int
	)
	for id, r := range s.m {
		if r.lastAny < oldestAt {
			oldest, oldestAt = id, r.lastAny
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(s.m, oldest)
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// InstallationActivity is what the gateway remembers of one installation.
type InstallationActivity struct {
	ID string `json:"id"`
	// LastReceive, LastUpload and LastAuthorize are the times of its last
	// answered remote write, /upload and /authorize (zero: none since
	// the gateway started, or since the installation was evicted).
	LastReceive   time.Time `json:"last_receive,omitzero"`
	LastUpload    time.Time `json:"last_upload,omitzero"`
	LastAuthorize time.Time `json:"last_authorize,omitzero"`
	// LastPush is the time of its last answered push (/metrics/v1/push
	// or the Pushgateway path form).
	LastPush time.Time `json:"last_push,omitzero"`
	LastSeen time.Time `json:"last_seen"`
	Requests int64     `json:"requests"`
	// AcceptedSeries and AcceptedSamples were forwarded (or stored);
	// Dropped are samples dropped by policy, by reason.
	AcceptedSeries  int64            `json:"accepted_series"`
	AcceptedSamples int64            `json:"accepted_samples"`
	Dropped         map[string]int64 `json:"dropped"`
	DroppedTotal    int64            `json:"dropped_total"`
	// Errors are its last error answers, newest first; ErrorCount how
	// many it was answered since it is tracked.
	Errors     []ErrorAnswer `json:"errors"`
	ErrorCount int           `json:"error_count"`
}

func (r *installRecord) snapshot(id string, withErrors bool) InstallationActivity {
	out := InstallationActivity{ID: id, Requests: r.requests, AcceptedSeries: r.acceptedSeries, AcceptedSamples: r.acceptedSamples, Dropped: map[string]int64{}}
	ts := func(ns int64) time.Time {
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns).UTC()
	}
	out.LastReceive, out.LastUpload, out.LastAuthorize, out.LastSeen = ts(r.last[0]), ts(r.last[1]), ts(r.last[2]), ts(r.lastAny)
	out.LastPush = ts(r.last[3])
	for i, n := range r.dropped {
		if n > 0 {
			out.Dropped[dropReasons[i]] = n
			out.DroppedTotal += n
		}
	}
	out.Errors = []ErrorAnswer{}
	if r.errors != nil {
		out.ErrorCount = r.errors.n
		if withErrors {
			for k := 0; k < min(r.errors.n, maxErrorAnswers); k++ {
				out.Errors = append(out.Errors, r.errors.ring[(r.errors.n-1-k)%maxErrorAnswers])
			}
		}
	}
	return out
}

// Installation returns what the gateway remembers of installation id.
func (g *Gateway) Installation(id string) (InstallationActivity, bool) {
	s := g.activity.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok {
		return InstallationActivity{}, false
	}
	return r.snapshot(id, true), true
}

// InstallationQuery selects installations for Installations.
type InstallationQuery struct {
	// Contains keeps the IDs containing it (empty: all).
	Contains string
	// Sort is "recent" (last seen first, the default), "dropped" (most
	// dropped samples first), "errors" (most error answers first) or "id".
	Sort string
	// Limit bounds the rows returned (0: 100).
	Limit int
}

// Installations returns the installations q selects, sorted, without
// their error answers, and how many matched in all.
func (g *Gateway) Installations(q InstallationQuery) (rows []InstallationActivity, matched int) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	// Sort light keys, then snapshot only the rows returned.
	type key struct {
		id            string
		last, dropped int64
		errors        int
	}
	var keys []key
	for i := range g.activity.shards {
		s := &g.activity.shards[i]
		s.mu.Lock()
		for id, r := range s.m {
			if q.Contains != "" && !strings.Contains(id, q.Contains) {
				continue
			}
			k := key{id: id, last: r.lastAny}
			for _, n := range r.dropped {
				k.dropped += n
			}
			if r.errors != nil {
				k.errors = r.errors.n
			}
			keys = append(keys, k)
		}
		s.mu.Unlock()
	}
	less := func(a, b *key) bool { return a.last > b.last }
	switch q.Sort {
	case "dropped":
		less = func(a, b *key) bool { return a.dropped > b.dropped }
	case "errors":
		less = func(a, b *key) bool { return a.errors > b.errors }
	case "id":
		less = func(a, b *key) bool { return a.id < b.id }
	}
	sort.Slice(keys, func(i, j int) bool {
		if less(&keys[i], &keys[j]) {
			return true
		}
		if less(&keys[j], &keys[i]) {
			return false
		}
		return keys[i].id < keys[j].id
	})
	matched = len(keys)
	rows = make([]InstallationActivity, 0, min(len(keys), q.Limit))
	for _, k := range keys[:min(len(keys), q.Limit)] {
		s := g.activity.shard(k.id)
		s.mu.Lock()
		if r, ok := s.m[k.id]; ok { // not evicted meanwhile
			rows = append(rows, r.snapshot(k.id, false))
		}
		s.mu.Unlock()
	}
	return rows, matched
}

// InstallationCount is how many installations the gateway remembers.
func (g *Gateway) InstallationCount() int {
	n := 0
	for i := range g.activity.shards {
		s := &g.activity.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// rateRing counts accepted and dropped samples and downstream writes in
// 10-second slots for the last minute's rates, with atomics only.
type rateRing struct {
	slots [rateSlots]rateSlot
}

const (
	rateSlots     = 8
	rateSlotWidth = 10 * time.Second
)

type rateSlot struct {
	epoch       atomic.Int64 // unix time / 10s of the slot's counts
	accepted    atomic.Int64
	dropped     atomic.Int64
	writes      atomic.Int64
	writeErrors atomic.Int64
	writeNanos  atomic.Int64
	writeMax    atomic.Int64
}

func (r *rateRing) slot(now time.Time) *rateSlot {
	e := now.UnixNano() / int64(rateSlotWidth)
	s := &r.slots[e%rateSlots]
	if old := s.epoch.Load(); old != e && s.epoch.CompareAndSwap(old, e) {
		// A new slot: its counts restart (a racing add may land in the
		// old period; the rates are approximate).
		s.accepted.Store(0)
		s.dropped.Store(0)
		s.writes.Store(0)
		s.writeErrors.Store(0)
		s.writeNanos.Store(0)
		s.writeMax.Store(0)
	}
	return s
}

func (r *rateRing) add(now time.Time, accepted, dropped int64) {
	if accepted == 0 && dropped == 0 {
		return
	}
	s := r.slot(now)
	s.accepted.Add(accepted)
	s.dropped.Add(dropped)
}

func (r *rateRing) write(now time.Time, took time.Duration, failed bool) {
	s := r.slot(now)
	s.writes.Add(1)
	s.writeNanos.Add(int64(took))
	if failed {
		s.writeErrors.Add(1)
	}
	for {
		m := s.writeMax.Load()
		if int64(took) <= m || s.writeMax.CompareAndSwap(m, int64(took)) {
			return
		}
	}
}

// window sums the last minute: the five slots before now's and now's
// own, so far. covered is the time they span (less while the gateway is
// younger than that).
func (r *rateRing) window(now, since time.Time) (accepted, dropped, writes, writeErrors int64, writeTime, writeMax, covered time.Duration) {
	e := now.UnixNano() / int64(rateSlotWidth)
	for k := int64(0); k <= 5; k++ {
		s := &r.slots[(e-k)%rateSlots]
		if s.epoch.Load() != e-k {
			continue
		}
		accepted += s.accepted.Load()
		dropped += s.dropped.Load()
		writes += s.writes.Load()
		writeErrors += s.writeErrors.Load()
		writeTime += time.Duration(s.writeNanos.Load())
		writeMax = max(writeMax, time.Duration(s.writeMax.Load()))
	}
	covered = 5*rateSlotWidth + time.Duration(now.UnixNano()-e*int64(rateSlotWidth))
	covered = max(min(covered, now.Sub(since)), time.Second)
	return
}

// downstreamDone records one write downstream (forward or embedded store).
func (a *activity) downstreamDone(now time.Time, took time.Duration, err error) {
	a.rate.write(now, took, err != nil)
	if err != nil {
		msg := truncateUTF8(err.Error(), 300)
		a.downMu.Lock()
		a.lastDownErr, a.lastDownAt = msg, now
		a.downMu.Unlock()
	}
}

// Fleet is the console's overview of the gateway.
type Fleet struct {
	Now   time.Time `json:"now"`
	Since time.Time `json:"since"`
	// Installations is how many the gateway remembers (at most
	// MaxInstallations; the least recently seen are evicted).
	Installations    int `json:"installations"`
	MaxInstallations int `json:"max_installations"`
	// Rates over the last minute (RateWindow seconds: less while the
	// gateway is younger), per second.
	RateWindow        float64 `json:"rate_window_seconds"`
	AcceptedPerSecond float64 `json:"accepted_samples_per_second"`
	DroppedPerSecond  float64 `json:"dropped_samples_per_second"`
	// DroppedTotal are the samples dropped since start, by reason.
	DroppedTotal map[string]int64 `json:"dropped_total"`
	// Offenders are the metric names that lost the most samples, by
	// reason (GET /debug/limits' table): enforced and shadow mode.
	Offenders       map[string][]Offender `json:"offenders"`
	ShadowOffenders map[string][]Offender `json:"shadow_offenders"`
	Downstream      DownstreamActivity    `json:"downstream"`
	Allowlist       AllowlistVersion      `json:"allowlist"`
	ShadowAllowlist bool                  `json:"allowlist_shadow_mode"`
}

// DownstreamActivity is the last minute of writes downstream (the
// Fleet's RateWindow).
type DownstreamActivity struct {
	Writes         int64     `json:"writes_last_minute"`
	Errors         int64     `json:"errors_last_minute"`
	MeanLatency    float64   `json:"mean_latency_seconds"`
	MaxLatency     float64   `json:"max_latency_seconds"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	EmbeddedStore  bool      `json:"embedded_store"`
	ForwardMessage string    `json:"forward_message,omitempty"`
}

// AllowlistVersion names the active allowlist.
type AllowlistVersion struct {
	File     string    `json:"file"`
	Hash     string    `json:"hash"`
	Entries  int       `json:"entries"`
	LoadedAt time.Time `json:"loaded_at"`
}

// Fleet returns the overview of the gateway's recent activity.
func (g *Gateway) Fleet(topOffenders int) Fleet {
	now := g.opts.Now()
	a := g.activity
	f := Fleet{Now: now.UTC(), Since: a.since.UTC(), Installations: g.InstallationCount(), MaxInstallations: a.max, DroppedTotal: map[string]int64{}, ShadowAllowlist: g.opts.AllowlistShadow}
	acc, drop, writes, werr, wt, wmax, covered := a.rate.window(now, a.since)
	f.RateWindow = covered.Seconds()
	f.AcceptedPerSecond, f.DroppedPerSecond = float64(acc)/covered.Seconds(), float64(drop)/covered.Seconds()
	f.Downstream = DownstreamActivity{Writes: writes, Errors: werr, MaxLatency: wmax.Seconds(), ForwardMessage: g.opts.ForwardMessage}
	if writes > 0 {
		f.Downstream.MeanLatency = (wt / time.Duration(writes)).Seconds()
	}
	_, f.Downstream.EmbeddedStore = g.opts.Forwarder.(BatchForwarder)
	if f.Downstream.EmbeddedStore {
		f.Downstream.ForwardMessage = ""
	}
	a.downMu.Lock()
	f.Downstream.LastError, f.Downstream.LastErrorAt = a.lastDownErr, a.lastDownAt
	a.downMu.Unlock()
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for _, r := range s.m {
			for k, n := range r.dropped {
				if n > 0 {
					f.DroppedTotal[dropReasons[k]] += n
				}
			}
		}
		s.mu.Unlock()
	}
	f.Offenders, f.ShadowOffenders, _ = g.budgets.offenders.top(topOffenders)
	f.Allowlist = g.AllowlistVersion()
	return f
}

// AllowlistVersion names the active allowlist and when it was loaded.
func (g *Gateway) AllowlistVersion() AllowlistVersion {
	al := g.allowlist.Load()
	if al == nil {
		return AllowlistVersion{}
	}
	v := AllowlistVersion{File: al.File(), Hash: al.Hash(), Entries: len(al.Entries)}
	if l := g.activity.loaded.Load(); l != nil && l.al == al {
		v.LoadedAt = l.at.UTC()
	}
	return v
}

// Allowlist returns the active allowlist.
func (g *Gateway) Allowlist() *allowlist.Allowlist { return g.allowlist.Load() }

// ruleTable holds the activity of one allowlist version's entries.
type ruleTable struct {
	al    *allowlist.Allowlist
	rules []ruleStats
}

// ruleStats is one entry's activity.
type ruleStats struct {
	mu       sync.Mutex
	series   int64
	samples  int64
	lastSeen int64
	names    [maxRuleNames]ruleName
	// sketches count distinct installations per sketchPeriod (a
	// HyperLogLog of sketchRegisters registers each), the last
	// len(sketches) periods: together about the last hour.
	sketches [sketchPeriods]sketch
}

type ruleName struct {
	name string
	at   int64
}

const (
	maxRuleNames    = 16
	sketchPeriods   = 5
	sketchPeriod    = 15 * time.Minute
	sketchRegisters = 256
)

type sketch struct {
	period int64
	reg    [sketchRegisters]uint8
}

// table returns the rule table of al, building it (and carrying over the
// stats of entries with the same selector) when al is new.
func (a *activity) table(al *allowlist.Allowlist) *ruleTable {
	if t := a.rules.Load(); t != nil && t.al == al {
		return t
	}
	a.rulesMu.Lock()
	defer a.rulesMu.Unlock()
	old := a.rules.Load()
	if old != nil && old.al == al {
		return old
	}
	t := &ruleTable{al: al, rules: make([]ruleStats, len(al.Entries))}
	if old != nil {
		prev := map[string]*ruleStats{}
		for i := range old.al.Entries {
			prev[old.al.Entries[i].Selector] = &old.rules[i]
		}
		for i := range al.Entries {
			if p := prev[al.Entries[i].Selector]; p != nil {
				p.mu.Lock()
				r := &t.rules[i]
				r.series, r.samples, r.lastSeen, r.names, r.sketches = p.series, p.samples, p.lastSeen, p.names, p.sketches
				p.mu.Unlock()
			}
		}
	}
	a.rules.Store(t)
	return t
}

// setAllowlist notes when al became the active allowlist.
func (a *activity) setAllowlist(al *allowlist.Allowlist, now time.Time) {
	a.loaded.Store(&allowlistLoad{al: al, at: now})
	if al != nil {
		a.table(al)
	}
}

// ruleTally gathers one request's matches per allowlist entry, flushed
// once at the end of the request: one lock per matched entry, not one
// per series.
type ruleTally struct {
	acc     []ruleAcc // by entry index
	touched []int
}

type ruleAcc struct {
	series, samples int
	names           [4]string // the first distinct names this request
	nnames          int
}

var ruleTallies = sync.Pool{New: func() any { return new(ruleTally) }}

func getRuleTally(entries int) *ruleTally {
	t := ruleTallies.Get().(*ruleTally)
	if cap(t.acc) < entries {
		t.acc = make([]ruleAcc, entries)
	}
	t.acc = t.acc[:entries]
	return t
}

func (t *ruleTally) add(entry int, name string, points int) {
	a := &t.acc[entry]
	if a.series == 0 {
		t.touched = append(t.touched, entry)
	}
	a.series++
	a.samples += points
	if a.nnames > 0 && a.names[a.nnames-1] == name {
		return
	}
	if a.nnames < len(a.names) {
		for _, n := range a.names[:a.nnames] {
			if n == name {
				return
			}
		}
		a.names[a.nnames] = name
		a.nnames++
	}
}

// flush adds the tally to al's rule table for installation cluster and
// returns the tally to its pool.
func (t *ruleTally) flush(a *activity, al *allowlist.Allowlist, cluster string, now time.Time) {
	if len(t.touched) > 0 {
		tbl := a.table(al)
		h := maphash.String(activitySeed, cluster)
		ns := now.UnixNano()
		period := ns / int64(sketchPeriod)
		for _, e := range t.touched {
			acc := &t.acc[e]
			r := &tbl.rules[e]
			r.mu.Lock()
			r.series += int64(acc.series)
			r.samples += int64(acc.samples)
			r.lastSeen = ns
			for _, n := range acc.names[:acc.nnames] {
				r.addName(n, ns)
			}
			r.addInstallation(h, period)
			r.mu.Unlock()
			*acc = ruleAcc{}
		}
		t.touched = t.touched[:0]
	}
	ruleTallies.Put(t)
}

// addName notes a metric name the entry matched; when full, the name seen
// least recently gives its place. Names are copied (the caller's alias a
// request buffer).
func (r *ruleStats) addName(name string, ns int64) {
	oldest := 0
	for i := range r.names {
		n := &r.names[i]
		if n.name == name && n.at != 0 {
			n.at = ns
			return
		}
		if n.at < r.names[oldest].at {
			oldest = i
		}
	}
	if len(name) > 200 {
		name = truncateUTF8(name, 200)
	}
	r.names[oldest] = ruleName{name: strings.Clone(name), at: ns}
}

func (r *ruleStats) addInstallation(h uint64, period int64) {
	s := &r.sketches[period%sketchPeriods]
	if s.period != period {
		*s = sketch{period: period}
	}
	idx := h >> 56 // sketchRegisters == 256
	rho := uint8(bits.LeadingZeros64(h<<8|1<<7) + 1)
	if rho > s.reg[idx] {
		s.reg[idx] = rho
	}
}

// installations estimates the distinct installations of the sketches of
// the last hour (the current period and the ones before it that end
// within the hour).
func (r *ruleStats) installations(now time.Time) int {
	period := now.UnixNano() / int64(sketchPeriod)
	var merged [sketchRegisters]uint8
	any := false
	for i := range r.sketches {
		s := &r.sketches[i]
		if s.period == 0 || period-s.period >= sketchPeriods-1 {
			continue
		}
		any = true
		for k, v := range s.reg {
			merged[k] = max(merged[k], v)
		}
	}
	if !any {
		return 0
	}
	return hllEstimate(&merged)
}

// hllEstimate is HyperLogLog's estimate with linear counting for small
// cardinalities.
func hllEstimate(reg *[sketchRegisters]uint8) int {
	const m = float64(sketchRegisters)
	sum, zeros := 0.0, 0
	for _, v := range reg {
		sum += math.Ldexp(1, -int(v))
		if v == 0 {
			zeros++
		}
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return int(math.Round(est))
}

// RuleActivity is one allowlist entry with what it matched.
type RuleActivity struct {
	Index       int      `json:"index"`
	Line        int      `json:"line"`
	Selector    string   `json:"selector"`
	Owners      []string `json:"owners"`
	Description string   `json:"description"`
	// Series and Samples it matched (first matching entry) since start
	// or since the entry was added; LastSeen the last time.
	Series   int64     `json:"series"`
	Samples  int64     `json:"samples"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// RecentNames are the metric names it matched most recently (at
	// most 16).
	RecentNames []string `json:"recent_names"`
	// Installations estimates the installations that sent series it
	// matched in the last hour (a HyperLogLog sketch: about ±7%, over
	// 60 to 75 minutes).
	Installations int `json:"installations_last_hour"`
}

// RuleActivity returns every entry of the active allowlist with its
// activity, in file order.
func (g *Gateway) RuleActivity() []RuleActivity {
	al := g.allowlist.Load()
	if al == nil {
		return nil
	}
	now := g.opts.Now()
	tbl := g.activity.table(al)
	out := make([]RuleActivity, len(al.Entries))
	for i := range al.Entries {
		e := &al.Entries[i]
		r := &tbl.rules[i]
		ra := RuleActivity{Index: i, Line: e.Line, Selector: e.Selector, Owners: e.Owners, Description: e.Description, RecentNames: []string{}}
		if ra.Owners == nil {
			ra.Owners = []string{}
		}
		r.mu.Lock()
		ra.Series, ra.Samples = r.series, r.samples
		if r.lastSeen != 0 {
			ra.LastSeen = time.Unix(0, r.lastSeen).UTC()
		}
		names := make([]ruleName, 0, maxRuleNames)
		for _, n := range r.names {
			if n.at != 0 {
				names = append(names, n)
			}
		}
		ra.Installations = r.installations(now)
		r.mu.Unlock()
		sort.Slice(names, func(a, b int) bool {
			return names[a].at > names[b].at || names[a].at == names[b].at && names[a].name < names[b].name
		})
		for _, n := range names {
			ra.RecentNames = append(ra.RecentNames, n.name)
		}
		out[i] = ra
	}
	return out
}

func maphashString(s string) uint64 { return maphash.String(activitySeed, s) }

// InstallationBudget is an installation's effective budget (defaults
// plus its override) and its use.
type InstallationBudget struct {
	MaxActiveSeries       int     `json:"max_active_series"`
	ActiveSeriesWindow    string  `json:"active_series_window"`
	EnforceActiveSeries   bool    `json:"enforce_active_series"`
	SamplesPerSecond      float64 `json:"samples_per_second"`
	SamplesBurst          int     `json:"samples_burst"`
	EnforceSamplesRate    bool    `json:"enforce_samples_rate"`
	EnforceUploadInterval bool    `json:"enforce_upload_interval"`
	// ActiveSeries is the installation's tracked active series; -1 when
	// the state is shared (Redis) and not held by this replica.
	ActiveSeries int `json:"active_series"`
}

// Budget returns installation id's effective budget and its use.
func (g *Gateway) Budget(id string) InstallationBudget {
	b := g.opts.Budgets.Budget(id, g.opts.Now())
	out := InstallationBudget{
		MaxActiveSeries: b.ActiveSeries.Max, ActiveSeriesWindow: b.ActiveSeries.Window.String(), EnforceActiveSeries: b.ActiveSeries.Enforce,
		SamplesPerSecond: b.SamplesRate.PerSecond, SamplesBurst: b.SamplesRate.Burst, EnforceSamplesRate: b.SamplesRate.Enforce,
		EnforceUploadInterval: b.UploadInterval.Enforce, ActiveSeries: -1,
	}
	if n, ok := g.opts.Budgets.ActiveSeries(id); ok {
		out.ActiveSeries = n
	}
	return out
}
