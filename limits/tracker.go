package limits

import (
	"sync"
	"time"
)

// SeriesTracker is the in-memory active-series state: per cluster, an
// open-addressing hash table from a series' 64-bit hash to the second it
// was last seen. A slot costs 12 bytes; tables grow at three quarters full
// and shrink below an eighth, so a tracked series costs 16 to 32 bytes.
// A table never holds more than its cluster's budget (series over the
// budget are refused, not tracked), so memory is bounded by the budgets.
//
// It is safe for concurrent use; clusters do not contend with each other.
type SeriesTracker struct {
	mu       sync.RWMutex
	clusters map[string]*seriesTable

	sweepMu   sync.Mutex
	lastSweep int64
}

// NewSeriesTracker returns an empty tracker.
func NewSeriesTracker() *SeriesTracker {
	return &SeriesTracker{clusters: map[string]*seriesTable{}}
}

// seriesTable is one cluster's series. keys holds hash values with 0
// meaning empty (a real hash of 0 is stored as 1); seen the matching
// last-seen time in Unix seconds.
type seriesTable struct {
	mu        sync.Mutex
	keys      []uint64
	seen      []uint32
	used      int
	lastSweep uint32
	window    uint32
	dead      bool // removed from the tracker by the cluster sweep
}

const minTableSize = 16

// Admit records hashes as seen at now and sets admitted[i] for each hash
// that is already active (seen within window) or new while fewer than max
// series are active. A hash beyond the budget is neither admitted nor
// tracked. max <= 0 admits everything without tracking. admitted must be
// at least as long as hashes. It returns how many were refused.
func (t *SeriesTracker) Admit(cluster string, hashes []uint64, max int, window time.Duration, now time.Time, admitted []bool) int {
	if max <= 0 {
		for i := range hashes {
			admitted[i] = true
		}
		return 0
	}
	t.maybeSweepClusters(now, window)
	tab := t.lockedTable(cluster)
	defer tab.mu.Unlock()
	sec := uint32(now.Unix())
	win := uint32(max64(1, int64(window/time.Second)))
	tab.window = win
	if sec-tab.lastSweep >= sweepEvery(win) || sec < tab.lastSweep {
		tab.sweep(sec)
	}
	refused := 0
	swept := false
	for i, h := range hashes {
		if h == 0 {
			h = 1
		}
		slot, found := tab.find(h)
		if found {
			tab.seen[slot] = sec
			admitted[i] = true
			continue
		}
		if tab.used >= max && !swept && tab.lastSweep != sec {
			// Entries may have expired since the last sweep: reclaim
			// them before refusing anything.
			tab.sweep(sec)
			swept = true
			slot, _ = tab.find(h)
		}
		if tab.used >= max {
			admitted[i] = false
			refused++
			continue
		}
		if (tab.used+1)*4 > len(tab.keys)*3 {
			tab.resize(len(tab.keys) * 2)
			slot, _ = tab.find(h)
		}
		tab.keys[slot] = h
		tab.seen[slot] = sec
		tab.used++
		admitted[i] = true
	}
	return refused
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// sweepEvery is how often a table drops expired entries on its own: a
// quarter of the window, at most a minute.
func sweepEvery(window uint32) uint32 {
	return min(max(window/4, 1), 60)
}

// lockedTable returns cluster's table, locked, creating it if needed. A
// table the cluster sweep removed concurrently is never returned.
func (t *SeriesTracker) lockedTable(cluster string) *seriesTable {
	for {
		t.mu.RLock()
		tab := t.clusters[cluster]
		t.mu.RUnlock()
		if tab == nil {
			t.mu.Lock()
			if tab = t.clusters[cluster]; tab == nil {
				tab = &seriesTable{keys: make([]uint64, minTableSize), seen: make([]uint32, minTableSize)}
				t.clusters[cluster] = tab
			}
			t.mu.Unlock()
		}
		tab.mu.Lock()
		if !tab.dead {
			return tab
		}
		tab.mu.Unlock()
	}
}

// maybeSweepClusters forgets clusters with no active series, at most once
// per window, so memory follows the active fleet.
func (t *SeriesTracker) maybeSweepClusters(now time.Time, window time.Duration) {
	sec := now.Unix()
	t.sweepMu.Lock()
	if sec-t.lastSweep < int64(window/time.Second) {
		t.sweepMu.Unlock()
		return
	}
	t.lastSweep = sec
	t.sweepMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, tab := range t.clusters {
		tab.mu.Lock()
		if tab.window > 0 {
			tab.sweep(uint32(sec))
		}
		if tab.used == 0 && tab.window > 0 {
			tab.dead = true
			delete(t.clusters, c)
		}
		tab.mu.Unlock()
	}
}

// find returns h's slot, or the empty slot where it would go.
func (tab *seriesTable) find(h uint64) (int, bool) {
	mask := uint64(len(tab.keys) - 1)
	i := mix(h) & mask
	for {
		switch tab.keys[i] {
		case h:
			return int(i), true
		case 0:
			return int(i), false
		}
		i = (i + 1) & mask
	}
}

// mix spreads hash bits so sequential or low-entropy hashes (tests,
// adversarial input hashed elsewhere) still probe well.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// sweep rebuilds the table without entries older than the window,
// shrinking it when few survive.
func (tab *seriesTable) sweep(sec uint32) {
	tab.lastSweep = sec
	survivors := 0
	for i, k := range tab.keys {
		if k != 0 && live(tab.seen[i], sec, tab.window) {
			survivors++
		}
	}
	size := len(tab.keys)
	for size > minTableSize && survivors*8 < size*3 {
		size /= 2
	}
	if survivors == tab.used && size == len(tab.keys) {
		return
	}
	tab.rebuild(size, func(seen uint32) bool { return live(seen, sec, tab.window) })
}

// live reports whether a series last seen at seen is within window
// before sec. A last-seen time ahead of sec (the clock stepped back)
// counts as live.
func live(seen, sec, window uint32) bool {
	return int64(sec)-int64(seen) < int64(window)
}

func (tab *seriesTable) resize(size int) { tab.rebuild(size, func(uint32) bool { return true }) }

// rebuild moves the entries keep accepts (given their last-seen time) into
// a fresh table of size slots.
func (tab *seriesTable) rebuild(size int, keep func(seen uint32) bool) {
	oldK, oldS := tab.keys, tab.seen
	tab.keys, tab.seen, tab.used = make([]uint64, size), make([]uint32, size), 0
	for i, k := range oldK {
		if k == 0 || !keep(oldS[i]) {
			continue
		}
		slot, _ := tab.find(k)
		tab.keys[slot], tab.seen[slot] = k, oldS[i]
		tab.used++
	}
}

// Active returns the number of series tracked for cluster (including
// entries that expired since its last sweep, at most sweepEvery ago).
func (t *SeriesTracker) Active(cluster string) int {
	t.mu.RLock()
	tab := t.clusters[cluster]
	t.mu.RUnlock()
	if tab == nil {
		return 0
	}
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return tab.used
}

// Stats returns the number of tracked series and the bytes their tables
// hold (slots only; per-cluster overhead is a few dozen bytes).
func (t *SeriesTracker) Stats() (series int, bytes int64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, tab := range t.clusters {
		tab.mu.Lock()
		series += tab.used
		bytes += int64(len(tab.keys))*8 + int64(len(tab.seen))*4
		tab.mu.Unlock()
	}
	return series, bytes
}
