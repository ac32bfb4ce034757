package relabel

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/telegate/telegate/batch"
)

// Reason says why a series or sample was dropped.
type Reason int

// Drop reasons, also used as the `reason` label of metrics and in the
// X-Telegate-Dropped-* response headers.
const (
	ReasonRelabel   Reason = iota // a relabel_config dropped the series
	ReasonCollision               // identical to another series after stripping, or a repeated timestamp of one series
	ReasonTooOld                  // sample older than max_sample_age
	ReasonTooNew                  // sample further in the future than max_future_skew
	ReasonInvalid                 // the series is invalid (see Stats.Invalid)
	NumReasons
)

var reasonNames = [NumReasons]string{"relabel", "collision", "too_old", "too_new", "invalid"}

func (r Reason) String() string { return reasonNames[r] }

// Stats counts what Process dropped, by reason.
type Stats struct {
	Series  [NumReasons]int
	Samples [NumReasons]int
}

// Options configure a Pipeline.
type Options struct {
	// ClusterIDLabel is stamped on every series (default "_id").
	ClusterIDLabel string
	// DropLabels are removed from every series.
	DropLabels []string
	// RelabelConfigs run after stripping, before stamping.
	RelabelConfigs []*relabel.Config
	// MaxLabels, MaxNameLength and MaxValueLength bound each series; a
	// series over them makes the request invalid.
	MaxLabels, MaxNameLength, MaxValueLength int
	// MaxSampleAge and MaxFutureSkew bound sample timestamps relative to
	// now when CheckTimestamps is asked for. 0 disables a bound.
	MaxSampleAge, MaxFutureSkew time.Duration
}

// InvalidError is a series the pipeline refuses; the request gets 400.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// Pipeline applies Options to batches. It is safe for concurrent use; the
// per-call scratch state lives in a Scratch the caller pools.
type Pipeline struct {
	opts Options
	drop map[string]struct{}
	// dropList holds DropLabels when they are few: a linear scan comparing
	// lengths first beats hashing every label name.
	dropList []string
	// seed starts every series hash, so which label sets collide differs
	// per process and cannot be aimed at.
	seed uint64
	// lookalikeStart holds the first bytes a look-alike of the cluster ID
	// label can start with (see lookalike): most label names start with
	// none of them and cost one table lookup.
	lookalikeStart [256]bool
	// plain holds the first bytes no DropLabels entry and no look-alike
	// starts with: a label whose name starts with one is kept by strip
	// after one table lookup.
	plain [256]bool
}

// maxDropList is the most DropLabels scanned linearly rather than hashed.
const maxDropList = 8

// New returns a Pipeline for opts.
func New(opts Options) *Pipeline {
	p := &Pipeline{opts: opts, drop: map[string]struct{}{}, seed: maphash.Comparable(maphash.MakeSeed(), 0)}
	for _, l := range opts.DropLabels {
		p.drop[l] = struct{}{}
	}
	if len(p.drop) <= maxDropList {
		for l := range p.drop {
			p.dropList = append(p.dropList, l)
		}
	}
	if p.opts.ClusterIDLabel == "" {
		p.opts.ClusterIDLabel = "_id"
	}
	for _, c := range []byte{p.opts.ClusterIDLabel[0], exportedPrefix[0]} {
		p.lookalikeStart[lower(c)] = true
		p.lookalikeStart[upper(c)] = true
	}
	for c := range p.plain {
		p.plain[c] = !p.lookalikeStart[c]
	}
	for l := range p.drop {
		if l != "" {
			p.plain[l[0]] = false
		}
	}
	return p
}

// ClusterIDLabel returns the label the pipeline stamps.
func (p *Pipeline) ClusterIDLabel() string { return p.opts.ClusterIDLabel }

// DropLabels returns the labels the pipeline strips.
func (p *Pipeline) DropLabels() []string { return append([]string(nil), p.opts.DropLabels...) }

// TimestampBounds returns MaxSampleAge and MaxFutureSkew (0: no bound).
func (p *Pipeline) TimestampBounds() (maxAge, maxFutureSkew time.Duration) {
	return p.opts.MaxSampleAge, p.opts.MaxFutureSkew
}

// Scratch is reusable per-request state. The zero value is ready.
type Scratch struct {
	seen seenTable
	// src is, for each kept series, the hash of what stripping and
	// relabeling changed (see strip).
	src []uint64
	lb  *labels.Builder
}

// CheckIdentity returns an error if a series carries a cluster ID label
// with a value other than clusterID: identity comes only from credentials.
// Every occurrence counts: {_id="", _id="c2"} claims c2 too.
func (p *Pipeline) CheckIdentity(s *batch.Series, clusterID string) error {
	name := p.opts.ClusterIDLabel
	for i := range s.Labels {
		l := &s.Labels[i]
		if len(l.Name) == len(name) && l.Name == name && l.Value != clusterID && l.Value != "" {
			return p.identityError(s, l.Value, clusterID)
		}
	}
	return nil
}

// identityError is CheckIdentity's error for a series that claims the
// cluster claimed.
func (p *Pipeline) identityError(s *batch.Series, claimed, clusterID string) error {
	return invalid("series %s carries label %s=%q but the credentials are for cluster %q", s.Name(), p.opts.ClusterIDLabel, claimed, clusterID)
}

// Process rewrites every series of b in place: strip (drop_labels and
// look-alikes of the cluster ID label, see lookalike), relabel, stamp,
// validate, sort, apply the timestamp bounds (when checkTimestamps) and
// drop collisions. Series that end up dropped are removed from b.Series.
// Process does not stop at an invalid series: it drops it (counted as
// ReasonInvalid), goes on, and returns the first one's *InvalidError with
// b holding every valid series, so the caller can write those and answer
// 400, as Prometheus' own receiver does.
func (p *Pipeline) Process(b *batch.Batch, clusterID string, now time.Time, checkTimestamps bool, sc *Scratch) (Stats, error) {
	r := p.Begin(b, clusterID, now, checkTimestamps, sc)
	for i := range b.Series {
		r.Add(b.Series[i])
	}
	return r.Finish()
}

// Run is Process a series at a time, for a caller that has work of its
// own to do on each series first (the gateway's PII guard) and would
// rather do it while the series' labels are still in the cache: Begin
// it, Add each series in order, then Finish. A Run is not safe for
// concurrent use and ends with Finish.
type Run struct {
	p            *Pipeline
	b            *batch.Batch
	sc           *Scratch
	clusterID    string
	check        bool
	minTs, maxTs int64
	out          []batch.Series
	st           Stats
	invalid      error
	identity     error
}

// Begin starts a Run over b's series: Add them in order (the i-th series
// passed to Add by value, which may overwrite b.Series[:i+1]); Finish
// leaves the kept ones in b.Series.
func (p *Pipeline) Begin(b *batch.Batch, clusterID string, now time.Time, checkTimestamps bool, sc *Scratch) Run {
	sc.seen.reset(len(b.Series))
	sc.src = sc.src[:0]
	r := Run{p: p, b: b, sc: sc, clusterID: clusterID, check: checkTimestamps, minTs: math.MinInt64, maxTs: math.MaxInt64, out: b.Series[:0]}
	if checkTimestamps {
		nowMs := now.UnixMilli()
		if p.opts.MaxSampleAge > 0 {
			r.minTs = nowMs - p.opts.MaxSampleAge.Milliseconds()
		}
		if p.opts.MaxFutureSkew > 0 {
			r.maxTs = nowMs + p.opts.MaxFutureSkew.Milliseconds()
		}
	}
	return r
}

// Finish ends the Run: b.Series becomes the series kept; it returns what
// was dropped and the first invalid series' *InvalidError (see Process).
func (r *Run) Finish() (Stats, error) {
	clear(r.b.Series[len(r.out):])
	r.b.Series = r.out
	return r.st, r.invalid
}

// Identity returns CheckIdentity's error for the first series Add was
// given that carries the cluster ID label with another cluster's ID, nil
// if none did. Add checks it while it strips (no pass of its own over
// the labels) and goes on as Process always has (stamping overwrites the
// claim); a caller that refuses such a request (the gateway) asks here
// after Finish, and must check the series it does not Add itself.
func (r *Run) Identity() error { return r.identity }

// Add puts s through the pipeline (see Process) and appends it to the
// kept series unless it is dropped or merged into an earlier one.
func (r *Run) Add(s batch.Series) {
	p, st := r.p, &r.st
	var src uint64
	var claimed string
	s.Labels, src, claimed = p.strip(s.Labels, r.clusterID)
	if claimed != "" && r.identity == nil {
		r.identity = p.identityError(&s, claimed, r.clusterID)
	}
	if len(p.opts.RelabelConfigs) > 0 {
		// Relabeling may make different series equal: the labels it
		// started from tell the sources apart.
		src = mix(src, p.labelsHash(s.Labels))
		var keep bool
		s.Labels, keep = p.relabel(s.Labels, r.sc)
		if !keep {
			st.Series[ReasonRelabel]++
			st.Samples[ReasonRelabel] += s.Points()
			return
		}
	}
	s.Labels = stamp(s.Labels, p.opts.ClusterIDLabel, r.clusterID)
	h, err := p.check(&s)
	if err != nil {
		st.Series[ReasonInvalid]++
		st.Samples[ReasonInvalid] += s.Points()
		if r.invalid == nil {
			r.invalid = err
		}
		return
	}
	if r.check {
		minTs, maxTs := r.minTs, r.maxTs
		kept := s.Samples[:0]
		for _, smp := range s.Samples {
			switch {
			case smp.Timestamp < minTs:
				st.Samples[ReasonTooOld]++
			case smp.Timestamp > maxTs:
				st.Samples[ReasonTooNew]++
			default:
				kept = append(kept, smp)
			}
		}
		s.Samples = kept
		if len(s.Histograms) > 0 {
			keptH := s.Histograms[:0]
			for _, h := range s.Histograms {
				switch {
				case h.Timestamp < minTs:
					st.Samples[ReasonTooOld]++
				case h.Timestamp > maxTs:
					st.Samples[ReasonTooNew]++
				default:
					keptH = append(keptH, h)
				}
			}
			s.Histograms = keptH
		}
		if len(s.Exemplars) > 0 {
			// Exemplars out of bounds go quietly (they are not
			// samples); Prometheus' remote write 1.0 sends them in
			// series of their own, without samples.
			keptE := s.Exemplars[:0]
			for _, e := range s.Exemplars {
				if e.Timestamp >= minTs && e.Timestamp <= maxTs {
					keptE = append(keptE, e)
				}
			}
			s.Exemplars = keptE
		}
		if s.Points() == 0 && len(s.Exemplars) == 0 {
			return
		}
	}
	if j, dup := p.seenBefore(&r.sc.seen, h, r.out, &s); dup {
		if r.sc.src[j] == src {
			// The same series again (remote write 1.0 senders send
			// one TimeSeries per sample): its samples join the first.
			st.Samples[ReasonCollision] += mergeInto(&r.out[j], &s)
			return
		}
		st.Series[ReasonCollision]++
		st.Samples[ReasonCollision] += s.Points()
		return
	}
	r.out = append(r.out, s)
	r.sc.src = append(r.sc.src, src)
}

// seenBefore reports whether kept (the series kept so far) holds a series
// with s's labels, and which; if not, it records that s, whose labels hash
// to h, will be kept[len(kept)]. Different label sets with the same hash
// take the next free slot, so a hash collision never hides a later
// duplicate.
func (p *Pipeline) seenBefore(seen *seenTable, h uint64, kept []batch.Series, s *batch.Series) (int, bool) {
	for {
		j, ok := seen.get(h)
		if !ok {
			seen.put(h, len(kept))
			return 0, false
		}
		if equal(kept[j].Labels, s.Labels) {
			return j, true
		}
		h++
	}
}

// seenTable maps the label hashes of a request's kept series to their
// index: an open-addressing table sized for the request at Begin (at
// most half full), cleared in one sweep of its slot markers. For the
// thousand series of a usual request it is about a third of a Go map's
// cost per lookup and insert.
type seenTable struct {
	keys  []uint64
	vals  []int32 // index+1; 0 is a free slot
	shift uint8   // 64 - log2(len(keys))
	n     int     // entries
}

// reset empties t and sizes it for n entries.
func (t *seenTable) reset(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if len(t.keys) < size || len(t.keys) > 4*size && len(t.keys) > 1<<12 {
		t.keys, t.vals = make([]uint64, size), make([]int32, size)
	} else {
		size = len(t.keys)
		clear(t.vals)
	}
	t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	t.n = 0
}

func (t *seenTable) slot(h uint64) int { return int((h * 0x9e3779b97f4a7c15) >> t.shift) }

// get returns the index stored for h.
func (t *seenTable) get(h uint64) (int, bool) {
	mask := len(t.keys) - 1
	for i := t.slot(h); ; i = (i + 1) & mask {
		v := t.vals[i]
		if v == 0 {
			return 0, false
		}
		if t.keys[i] == h {
			return int(v - 1), true
		}
	}
}

// put stores j for h, which get did not find; the table doubles when it
// would be more than half full (more series than reset was told of).
func (t *seenTable) put(h uint64, j int) {
	if 2*(t.n+1) > len(t.keys) {
		t.grow()
	}
	mask := len(t.keys) - 1
	i := t.slot(h)
	for t.vals[i] != 0 {
		i = (i + 1) & mask
	}
	t.keys[i], t.vals[i] = h, int32(j+1)
	t.n++
}

func (t *seenTable) grow() {
	keys, vals := t.keys, t.vals
	t.keys, t.vals = make([]uint64, 2*max(len(keys), 8)), make([]int32, 2*max(len(keys), 8))
	t.shift = uint8(64 - bits.TrailingZeros(uint(len(t.keys))))
	t.n = 0
	for i, v := range vals {
		if v != 0 {
			t.put(keys[i], int(v-1))
		}
	}
}

// mergeInto adds s's samples, histograms and exemplars to dst, a series
// with the same labels from the same source, in timestamp order. A
// timestamp dst already has keeps dst's value; the samples dropped for it
// are returned. The merged slices are new arrays (the batch's are clipped
// to each series), so neighbours are never overwritten.
func mergeInto(dst, s *batch.Series) int {
	var n, m int
	dst.Samples, n = merge(dst.Samples, s.Samples, func(x *batch.Sample) int64 { return x.Timestamp })
	dst.Histograms, m = merge(dst.Histograms, s.Histograms, func(x *batch.Histogram) int64 { return x.Timestamp })
	if len(s.Exemplars) > 0 {
		dst.Exemplars = append(dst.Exemplars, s.Exemplars...)
	}
	return n + m
}

// merge appends src to dst and, unless that is already in strictly
// increasing timestamp order, sorts stably and keeps the first of each
// timestamp, returning how many it dropped.
func merge[T any](dst, src []T, ts func(*T) int64) ([]T, int) {
	if len(src) == 0 {
		return dst, 0
	}
	from := len(dst)
	dst = append(dst, src...)
	ordered := true
	for i := max(from, 1); i < len(dst); i++ {
		if ts(&dst[i-1]) >= ts(&dst[i]) {
			ordered = false
			break
		}
	}
	if ordered {
		return dst, 0
	}
	slices.SortStableFunc(dst, func(a, b T) int { return cmp.Compare(ts(&a), ts(&b)) })
	out := dst[:1]
	for i := 1; i < len(dst); i++ {
		if ts(&dst[i]) == ts(&out[len(out)-1]) {
			continue
		}
		out = append(out, dst[i])
	}
	return out, len(dst) - len(out)
}

// strip removes the configured labels, look-alikes of the cluster ID
// label and empty-valued labels (an empty value means "no such label" in
// Prometheus), in place. It returns a hash of what it removed (0 when
// nothing but empty values): two series equal after stripping came from
// the same source series only if they lost the same labels. claimed is
// the value of a cluster ID label other than clusterID ("" if none: see
// CheckIdentity), found on the way.
func (p *Pipeline) strip(ls []batch.Label, clusterID string) (out []batch.Label, src uint64, claimed string) {
	out = ls[:0]
	id := p.opts.ClusterIDLabel
	for _, l := range ls {
		if l.Value == "" {
			continue
		}
		if l.Name != "" && p.plain[l.Name[0]] {
			out = append(out, l)
			continue
		}
		// The real label is CheckIdentity's to judge (stamp then sets it).
		isID := len(l.Name) == len(id) && l.Name == id
		if isID && l.Value != clusterID && claimed == "" {
			claimed = l.Value
		}
		if p.dropped(l.Name) || !isID && l.Name != "" && p.lookalikeStart[l.Name[0]] && p.lookalike(l.Name) {
			if src == 0 {
				src = p.seed
			}
			src = hashString(hashString(src, l.Name), l.Value)
			continue
		}
		out = append(out, l)
	}
	return out, src, claimed
}

// labelsHash hashes a label set as it is (order included).
func (p *Pipeline) labelsHash(ls []batch.Label) uint64 {
	h := p.seed
	for i := range ls {
		h = hashString(hashString(h, ls[i].Name), ls[i].Value)
	}
	return h
}

// exportedPrefix is what Prometheus prepends to a scraped label that
// clashes with a target label (honor_labels: false), once per clash.
const exportedPrefix = "exported_"

// lookalike reports whether name could pass for the cluster ID label
// without being it: the label's name in another case (_ID, _Id), or
// "exported_" (in any case, repeated any number of times) followed by the
// label's name in any case (exported__id, exported_exported__ID). Stored
// next to the real label they would mislead queries; the real label
// itself is not a look-alike (CheckIdentity and stamp handle it).
func (p *Pipeline) lookalike(name string) bool {
	id := p.opts.ClusterIDLabel
	for exported := false; ; exported = true {
		if len(name) == len(id) && equalFoldASCII(name, id) {
			return exported || name != id
		}
		if len(name) < len(exportedPrefix)+len(id) || !equalFoldASCII(name[:len(exportedPrefix)], exportedPrefix) {
			return false
		}
		name = name[len(exportedPrefix):]
	}
}

// equalFoldASCII is strings.EqualFold for ASCII only: label names are
// ASCII, and a non-ASCII name (which Unicode folding could equate with an
// ASCII one) must reach validation and be refused, not be stripped.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// dropped reports whether name is one of DropLabels.
func (p *Pipeline) dropped(name string) bool {
	if p.dropList == nil && len(p.drop) > 0 {
		_, ok := p.drop[name]
		return ok
	}
	for _, d := range p.dropList {
		if len(d) == len(name) && d == name {
			return true
		}
	}
	return false
}

func (p *Pipeline) relabel(ls []batch.Label, sc *Scratch) ([]batch.Label, bool) {
	if sc.lb == nil {
		sc.lb = labels.NewBuilder(labels.EmptyLabels())
	}
	sc.lb.Reset(labels.EmptyLabels())
	for _, l := range ls {
		sc.lb.Set(l.Name, l.Value)
	}
	if !relabel.ProcessBuilder(sc.lb, p.opts.RelabelConfigs...) {
		return ls, false
	}
	out := ls[:0]
	sc.lb.Range(func(l labels.Label) {
		out = append(out, batch.Label{Name: l.Name, Value: l.Value})
	})
	return out, true
}

// stamp sets name=value, replacing an existing (equal, checked earlier)
// value or inserting it before the first label that sorts after it, so
// labels that arrive sorted (as remote write requires) stay sorted and need
// no sort. The series slices are capacity-clipped by the batch, so the
// insertion never overwrites a neighbour.
func stamp(ls []batch.Label, name, value string) []batch.Label {
	at := len(ls)
	for i := range ls {
		if ls[i].Name == name {
			ls[i].Value = value
			return ls
		}
		if at == len(ls) && ls[i].Name > name {
			at = i
		}
	}
	return slices.Insert(ls, at, batch.Label{Name: name, Value: value})
}

// check sorts s's labels if they are not sorted, validates them and returns
// their hash, in one pass over the labels when they arrive sorted (the
// remote write spec requires it, and stamp keeps them so).
func (p *Pipeline) check(s *batch.Series) (uint64, error) {
	ls := s.Labels
	if len(ls) > p.opts.MaxLabels && p.opts.MaxLabels > 0 {
		return 0, invalid("series %s has %d labels, over max_labels_per_series (%d)", s.Name(), len(ls), p.opts.MaxLabels)
	}
	h := p.seed
	hasName := false
	ascii := uint64(0)
	for i := range ls {
		l := &ls[i]
		if i > 0 {
			if c := compareNames(ls[i-1].Name, l.Name); c >= 0 {
				if c == 0 {
					return 0, invalid("series %s has duplicate label %q", s.Name(), l.Name)
				}
				s.SortLabels()
				return p.check(s) // sorted now: no second recursion
			}
		}
		if p.opts.MaxNameLength > 0 && len(l.Name) > p.opts.MaxNameLength {
			return 0, invalid("label name %.64q... is %d bytes, over max_label_name_length (%d)", l.Name, len(l.Name), p.opts.MaxNameLength)
		}
		if p.opts.MaxValueLength > 0 && len(l.Value) > p.opts.MaxValueLength {
			return 0, invalid("label %s of series %s is %d bytes, over max_label_value_length (%d)", l.Name, s.Name(), len(l.Value), p.opts.MaxValueLength)
		}
		h = hashString(h, l.Name)
		if l.Name == batch.MetricName {
			h = hashString(h, l.Value)
			hasName = true
			if !validMetricName(l.Value) {
				return 0, invalid("invalid metric name %q", l.Value)
			}
			continue
		}
		if !validLabelName(l.Name) {
			return 0, invalid("series %s has invalid label name %q", s.Name(), l.Name)
		}
		// Label values are nearly always ASCII: OR their bytes together
		// (from the words the hash reads) and run the UTF-8 check only
		// on a series that has a high bit.
		var or uint64
		h, or = hashStringOr(h, l.Value)
		ascii |= or
	}
	if ascii&0x8080808080808080 != 0 {
		for i := range ls {
			if !utf8.ValidString(ls[i].Value) {
				return 0, invalid("label %s of series %s is not valid UTF-8", ls[i].Name, s.Name())
			}
		}
	}
	if !hasName {
		return 0, invalid("series without a metric name (__name__)")
	}
	return h, nil
}

// hashString chains s onto h a word at a time, its length folded in
// first (outside the chain of multiplications), so the (name, value)
// strings of a label set hash in order and {a="bc"} and {ab="c"} differ.
// Short strings and tails are read as overlapping words (the way wyhash
// does): a string of up to 8 bytes costs one mix. It is not a
// cryptographic hash: label sets that collide are told apart by equal()
// (see seenBefore), so a collision costs a comparison, never a series.
func hashString(h uint64, s string) uint64 {
	n := len(s)
	p := unsafe.Pointer(unsafe.StringData(s))
	h ^= uint64(n) * 0xff51afd7ed558ccd
	switch {
	case n >= 8:
		for i := 0; i+8 < n; i += 8 {
			h = mix(h, load64(p, i))
		}
		return mix(h, load64(p, n-8))
	case n >= 4:
		return mix(h, uint64(load32(p, 0))<<32|uint64(load32(p, n-4)))
	case n > 0:
		return mix(h, uint64(load8(p, 0))<<16|uint64(load8(p, n/2))<<8|uint64(load8(p, n-1)))
	}
	return mix(h, 0)
}

// hashStringOr is hashString(h, s) and the bitwise OR of s's bytes (in
// some lane of a word: its 0x80 bits are set iff s has a byte >= 0x80),
// from one read of s.
func hashStringOr(h uint64, s string) (uint64, uint64) {
	n := len(s)
	p := unsafe.Pointer(unsafe.StringData(s))
	h ^= uint64(n) * 0xff51afd7ed558ccd
	switch {
	case n >= 8:
		var acc uint64
		for i := 0; i+8 < n; i += 8 {
			w := load64(p, i)
			acc |= w
			h = mix(h, w)
		}
		w := load64(p, n-8)
		return mix(h, w), acc | w
	case n >= 4:
		a, b := load32(p, 0), load32(p, n-4)
		return mix(h, uint64(a)<<32|uint64(b)), uint64(a | b)
	case n > 0:
		x, y, z := load8(p, 0), load8(p, n/2), load8(p, n-1)
		return mix(h, uint64(x)<<16|uint64(y)<<8|uint64(z)), uint64(x | y | z)
	}
	return mix(h, 0), 0
}

// load64, load32 and load8 read s[i:] of a string's bytes at p (native
// byte order: the hash only needs to be the same within one process).
func load64(p unsafe.Pointer, i int) uint64 { return *(*uint64)(unsafe.Add(p, i)) }
func load32(p unsafe.Pointer, i int) uint32 { return *(*uint32)(unsafe.Add(p, i)) }
func load8(p unsafe.Pointer, i int) uint8   { return *(*uint8)(unsafe.Add(p, i)) }

func mix(h, x uint64) uint64 { return bits.RotateLeft64((h^x)*0x9e3779b97f4a7c15, 31) }

// validLabelName accepts [a-zA-Z_][a-zA-Z0-9_]* and refuses the reserved
// "__" prefix: internal labels never reach long-term storage.
func validLabelName(n string) bool {
	if n == "" || (len(n) >= 2 && n[0] == '_' && n[1] == '_') {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// validMetricName accepts [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// compareNames is strings.Compare with a shortcut for the usual case of
// adjacent label names that differ in their first byte.
func compareNames(a, b string) int {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		if a[0] < b[0] {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func equal(a, b []batch.Label) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
