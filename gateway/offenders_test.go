package gateway

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// naiveOffenders is the reference space-saving table: a map, and a scan
// for the smallest entry when a newcomer arrives at a full table. ties
// counts evictions where the smallest count was not unique (the victim is
// then arbitrary, so two correct tables may differ).
type naiveOffenders struct {
	max     int
	entries map[offenderKey]int64
	ties    int
}

func (n *naiveOffenders) record(rows []offenderRow) {
	for _, r := range rows {
		k := r.key
		// Always a copy: assigning to an existing key of a Go map may
		// store the new key's string in place of the old one, and r's
		// name aliases a buffer the caller overwrites.
		k.name = strings.Clone(k.name[:min(len(k.name), 200)])
		if _, ok := n.entries[k]; !ok {
			if len(n.entries) >= n.max {
				var minK offenderKey
				minV, atMin := int64(-1), 0
				for ek, v := range n.entries {
					switch {
					case minV < 0 || v < minV:
						minK, minV, atMin = ek, v, 1
					case v == minV:
						atMin++
					}
				}
				if atMin > 1 {
					n.ties++
				}
				delete(n.entries, minK)
				n.entries[k] = minV
			}
		}
		n.entries[k] += int64(r.samples)
	}
}

// checkHeap fails unless o's heap and index agree and are in heap order.
func checkHeap(t *testing.T, o *offenders) {
	t.Helper()
	if len(o.heap) != len(o.entries) || len(o.heap) > o.max {
		t.Fatalf("heap %d, index %d, max %d", len(o.heap), len(o.entries), o.max)
	}
	for i, e := range o.heap {
		if e.at != i || o.entries[e.key] != e {
			t.Fatalf("heap[%d] = %+v is not indexed there", i, *e)
		}
		if p := (i - 1) / 2; i > 0 && o.heap[p].count > e.count {
			t.Fatalf("heap[%d] = %d under heap[%d] = %d", i, e.count, p, o.heap[p].count)
		}
	}
}

// snapshot returns o's entries as /debug/limits reports them.
func snapshot(o *offenders) map[offenderKey]int64 {
	out := map[offenderKey]int64{}
	enf, shadow, _ := o.top(o.max)
	for enforced, m := range map[bool]map[string][]Offender{true: enf, false: shadow} {
		for reason, rows := range m {
			for _, r := range rows {
				out[offenderKey{reason, r.Metric, enforced}] = r.Samples
			}
		}
	}
	return out
}

// offenderStream feeds o (and ref) rows in batches of 1 to 16, the way
// offenderTally flushes, drawn from a skewed key distribution that
// includes names over 200 bytes (truncated: several collapse into one).
// Each name is built in a buffer that is overwritten after every batch,
// so a name the table did not copy shows up garbled. weight draws a
// row's samples. It returns the true total per (truncated) key.
func offenderStream(seed uint64, steps int, weight func(*rand.Rand) int, tables ...interface{ record([]offenderRow) }) map[offenderKey]int64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	reasons := []string{reasonAllowlist, reasonBudget}
	long := strings.Repeat("l", 200)
	truth := map[offenderKey]int64{}
	buf := make([]byte, 0, 512)
	var rows []offenderRow
	for step := 0; step < steps; {
		buf, rows = buf[:0], rows[:0]
		var spans [][2]int
		for n := 1 + rng.IntN(16); n > 0 && step < steps; n, step = n-1, step+1 {
			// Squaring skews towards small IDs: a few heavy hitters, a
			// long tail of names seen once or twice.
			f := rng.Float64()
			id := int(f * f * 3000)
			start := len(buf)
			if id%97 == 0 {
				buf = fmt.Appendf(buf, "%s%d", long, id%5) // truncates to `long`
			} else {
				buf = fmt.Appendf(buf, "metric_%d", id)
			}
			spans = append(spans, [2]int{start, len(buf)})
		}
		name := unsafe.String(&buf[0], len(buf)) // aliases buf, overwritten below
		for _, sp := range spans {
			r := offenderRow{key: offenderKey{reasons[rng.IntN(2)], name[sp[0]:sp[1]], rng.IntN(4) != 0}, samples: weight(rng)}
			rows = append(rows, r)
			k := r.key
			k.name = strings.Clone(k.name[:min(len(k.name), 200)])
			truth[k] += int64(r.samples)
		}
		for _, tb := range tables {
			tb.record(rows)
		}
		// The next request reuses the pooled buffer the names aliased.
		for i := range buf {
			buf[i] = '#'
		}
	}
	return truth
}

// A name already in the table, recorded again from a request's buffer,
// keeps the table's own copy as its key: assigning to an existing Go map
// key may store the new key's string, which would alias the buffer the
// next request overwrites, garbling the name and losing the entry (it can
// no longer be found nor evicted, so the table also outgrows its bound).
func TestOffenderKeysNeverAliasTheRequest(t *testing.T) {
	o := newOffenders(2)
	buf := []byte("metric_a")
	aliased := unsafe.String(&buf[0], len(buf))
	row := func(name string, samples int) []offenderRow {
		return []offenderRow{{key: offenderKey{reasonAllowlist, name, true}, samples: samples}}
	}
	o.record(row(aliased, 100)) // inserted: copied
	o.record(row(aliased, 100)) // found: must not replace the stored key
	copy(buf, "########")       // the next request reuses the buffer
	o.record(row("metric_a", 100))
	for i := range 20 {
		o.record(row(fmt.Sprintf("other_%d", i), 1))
	}
	enf, _, _ := o.top(10)
	var got []string
	for _, r := range enf[reasonAllowlist] {
		got = append(got, fmt.Sprintf("%s=%d", r.Metric, r.Samples))
	}
	if len(o.entries) != 2 || len(got) != 2 || got[0] != "metric_a=300" {
		t.Fatalf("%d entries, top %q; want 2 entries led by metric_a=300", len(o.entries), got)
	}
}

// With weights that make ties at eviction (all but) impossible, the
// smallest entry is unique each time, so the heap table must hold exactly
// the reference table's entries and counts after every stream.
func TestOffendersMatchNaiveSpaceSaving(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		for _, size := range []int{1, 7, 50, 500} {
			o := newOffenders(size)
			ref := &naiveOffenders{max: size, entries: map[offenderKey]int64{}}
			offenderStream(seed, 20000, func(r *rand.Rand) int { return 1 + r.IntN(1<<30) }, o, ref)
			if ref.ties > 0 {
				t.Fatalf("seed %d size %d: the stream had %d tied evictions; pick other weights", seed, size, ref.ties)
			}
			checkHeap(t, o)
			got := snapshot(o)
			if len(o.entries) != len(ref.entries) || len(got) != len(ref.entries) {
				t.Fatalf("seed %d size %d: %d entries (%d shown), reference %d", seed, size, len(o.entries), len(got), len(ref.entries))
			}
			for k, v := range ref.entries {
				if c, ok := got[k]; !ok || c != v {
					t.Fatalf("seed %d size %d: %+v = %d (present %v), reference %d", seed, size, k, c, ok, v)
				}
			}
		}
	}
}

// With small weights ties are everywhere and the victim is arbitrary; the
// space-saving guarantees still hold against the true counts: counts sum
// to the stream's total, no entry under-counts, an entry over-counts by at
// most the smallest count, and every key whose true count exceeds the
// smallest count is in the table (heavy hitters are never missed).
func TestOffendersSpaceSavingGuarantees(t *testing.T) {
	for _, seed := range []uint64{11, 12, 13} {
		for _, size := range []int{10, 100, 500} {
			o := newOffenders(size)
			truth := offenderStream(seed, 30000, func(r *rand.Rand) int { return 1 + r.IntN(3) }, o)
			checkHeap(t, o)
			got := snapshot(o)
			if len(got) != size || len(o.entries) != size {
				t.Fatalf("seed %d size %d: %d entries (%d shown)", seed, size, len(o.entries), len(got))
			}
			var total, sum int64
			for _, v := range truth {
				total += v
			}
			minCount := int64(-1)
			for _, c := range got {
				if minCount < 0 || c < minCount {
					minCount = c
				}
			}
			for k, c := range got {
				sum += c
				if c < truth[k] || c-truth[k] > minCount {
					t.Fatalf("seed %d size %d: %+v counted %d, true %d, smallest %d", seed, size, k, c, truth[k], minCount)
				}
			}
			if sum != total {
				t.Fatalf("seed %d size %d: counts sum to %d, stream total %d", seed, size, sum, total)
			}
			for k, v := range truth {
				if _, ok := got[k]; v > minCount && !ok {
					t.Fatalf("seed %d size %d: heavy hitter %+v (%d > smallest %d) missing", seed, size, k, v, minCount)
				}
			}
		}
	}
}

// BenchmarkOffendersFullTable is one request with 10,000 denied metric
// names, none of them in the table, arriving at a full table (500 entries,
// the gateway's size): every name replaces the smallest entry.
func BenchmarkOffendersFullTable(b *testing.B) {
	o := newOffenders(500)
	fill := offenderTally{o: o}
	for i := range 500 {
		fill.add(reasonAllowlist, fmt.Sprintf("resident_%d", i), 1000+i, true)
	}
	fill.flush()
	names := make([]string, 10000)
	for i := range names {
		names[i] = fmt.Sprintf("denied_metric_%05d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tally := offenderTally{o: o}
		for _, n := range names {
			tally.add(reasonAllowlist, n, 1, true)
		}
		tally.flush()
	}
}
