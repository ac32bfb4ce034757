package limits

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/batch"
)

func hashes(from, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = SeriesHash([]batch.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: fmt.Sprint(from + i)}})
	}
	return out
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func TestTrackerBudgetKeepsKnownSeries(t *testing.T) {
	tr := NewSeriesTracker()
	now := time.Unix(1_700_000_000, 0)
	w := 10 * time.Minute
	adm := make([]bool, 200)
	if r := tr.Admit("c", hashes(0, 80), 100, w, now, adm); r != 0 || countTrue(adm[:80]) != 80 {
		t.Fatalf("refused %d under the budget", r)
	}
	// 80 known + 40 new: 20 fit, 20 refused; known ones all pass.
	h := append(hashes(0, 80), hashes(1000, 40)...)
	if r := tr.Admit("c", h, 100, w, now.Add(time.Second), adm); r != 20 {
		t.Fatalf("refused %d, want 20", r)
	}
	if countTrue(adm[:80]) != 80 || countTrue(adm[80:100]) != 20 || countTrue(adm[100:120]) != 0 {
		t.Fatalf("admitted known=%d new-first=%d new-rest=%d", countTrue(adm[:80]), countTrue(adm[80:100]), countTrue(adm[100:120]))
	}
	if got := tr.Active("c"); got != 100 {
		t.Fatalf("active %d", got)
	}
	// Another cluster has its own budget.
	if r := tr.Admit("d", hashes(0, 100), 100, w, now, adm); r != 0 {
		t.Fatalf("cluster d refused %d", r)
	}
	// A refused series is still refused next time: it was not tracked.
	if r := tr.Admit("c", hashes(1030, 5), 100, w, now.Add(2*time.Second), adm); r != 5 {
		t.Fatalf("refused %d, want 5", r)
	}
}

func TestTrackerWindowExpiry(t *testing.T) {
	tr := NewSeriesTracker()
	now := time.Unix(1_700_000_000, 0)
	w := 9 * time.Minute
	adm := make([]bool, 100)
	tr.Admit("c", hashes(0, 50), 50, w, now, adm)
	// Half the series keep reporting.
	for m := 1; m <= 8; m++ {
		tr.Admit("c", hashes(0, 25), 50, w, now.Add(time.Duration(m)*time.Minute), adm)
	}
	// Still inside the window for the silent half: new series refused.
	if r := tr.Admit("c", hashes(500, 10), 50, w, now.Add(8*time.Minute+59*time.Second), adm); r != 10 {
		t.Fatalf("refused %d inside the window, want 10", r)
	}
	// The silent half expired: room for 25 new ones, exactly.
	if r := tr.Admit("c", hashes(500, 30), 50, w, now.Add(9*time.Minute), adm); r != 5 {
		t.Fatalf("refused %d after expiry, want 5", r)
	}
	if tr.Active("c") != 50 {
		t.Fatalf("active %d", tr.Active("c"))
	}
	// Everything silent for a window: the cluster is forgotten.
	tr.Admit("other", hashes(0, 1), 10, w, now.Add(30*time.Minute), adm)
	if n := len(tr.clusters); n != 1 {
		t.Fatalf("%d clusters kept", n)
	}
}

func TestTrackerOffAndZeroHash(t *testing.T) {
	tr := NewSeriesTracker()
	adm := make([]bool, 3)
	if r := tr.Admit("c", []uint64{1, 2, 3}, 0, time.Minute, time.Now(), adm); r != 0 || countTrue(adm) != 3 {
		t.Fatal("budget 0 must admit everything")
	}
	if s, _ := tr.Stats(); s != 0 {
		t.Fatal("budget 0 must not track")
	}
	// Hash 0 (the empty marker) still works as a series.
	if r := tr.Admit("c", []uint64{0, 0}, 1, time.Minute, time.Now(), adm); r != 0 || tr.Active("c") != 1 {
		t.Fatalf("hash 0: refused %d, active %d", r, tr.Active("c"))
	}
}

func TestTrackerConcurrentExact(t *testing.T) {
	tr := NewSeriesTracker()
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admittedNew := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			adm := make([]bool, 100)
			for r := 0; r < 10; r++ {
				h := hashes(g*10000+r*100, 100)
				tr.Admit("c", h, 1000, time.Hour, now, adm)
				mu.Lock()
				admittedNew += countTrue(adm)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if admittedNew != 1000 || tr.Active("c") != 1000 {
		t.Fatalf("admitted %d, active %d; want exactly 1000", admittedNew, tr.Active("c"))
	}
}

// TestTrackerBytesPerSeries holds the memory target: at most 32 bytes per
// tracked series, for any number of series (table slots only), and the
// same measured on the heap for a large table.
func TestTrackerBytesPerSeries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, n := range []int{100, 1000, 1536, 1537, 3000, 12289, 50000} {
		tr := NewSeriesTracker()
		adm := make([]bool, n)
		tr.Admit("c", hashes(0, n), n, time.Hour, now, adm)
		series, bytes := tr.Stats()
		if series != n {
			t.Fatalf("n=%d tracked %d", n, series)
		}
		if per := float64(bytes) / float64(n); per > 32 {
			t.Errorf("n=%d: %.1f bytes/series, over 32", n, per)
		}
	}
	// After expiry the tables shrink back under the target.
	tr := NewSeriesTracker()
	adm := make([]bool, 5000)
	tr.Admit("c", hashes(0, 5000), 5000, time.Minute, now, adm)
	tr.Admit("c", hashes(0, 700), 5000, time.Minute, now.Add(59*time.Second), adm)
	tr.Admit("c", hashes(0, 700), 5000, time.Minute, now.Add(61*time.Second), adm)
	if series, bytes := tr.Stats(); series != 700 || float64(bytes)/700 > 32 {
		t.Errorf("after expiry: %d series in %d bytes", series, bytes)
	}
	per := heapBytesPerSeries(200_000)
	t.Logf("heap: %.1f bytes/series", per)
	if per > 32 {
		t.Errorf("heap: %.1f bytes/series, over 32", per)
	}
}

// heapBytesPerSeries tracks n series in 100 clusters and returns the live
// heap growth per series.
func heapBytesPerSeries(n int) float64 {
	const clusters = 100
	h := make([][]uint64, clusters)
	for c := range h {
		h[c] = hashes(c*n, n/clusters)
	}
	adm := make([]bool, n/clusters)
	now := time.Unix(1_700_000_000, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := NewSeriesTracker()
	for c := range h {
		tr.Admit(fmt.Sprint("cluster-", c), h[c], n, time.Hour, now, adm)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tr)
	runtime.KeepAlive(h)
	runtime.KeepAlive(adm)
	if s, _ := tr.Stats(); s != n {
		panic(fmt.Sprintf("tracked %d of %d series", s, n))
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkTrackerBytesPerSeries reports the heap a tracked series costs.
func BenchmarkTrackerBytesPerSeries(b *testing.B) {
	var per float64
	for b.Loop() {
		per = heapBytesPerSeries(1_000_000)
	}
	b.ReportMetric(per, "bytes/series")
}

// BenchmarkAdmit is the budget check cost per series for a cluster
// re-sending its known series (the steady state).
func BenchmarkAdmit(b *testing.B) {
	tr := NewSeriesTracker()
	h := hashes(0, 1000)
	adm := make([]bool, len(h))
	now := time.Unix(1_700_000_000, 0)
	tr.Admit("c", h, 10000, time.Hour, now, adm)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tr.Admit("c", h, 10000, time.Hour, now.Add(time.Duration(i)*time.Millisecond), adm)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(h)), "ns/series")
}

// BenchmarkSeriesHash is the cost of identifying one series.
func BenchmarkSeriesHash(b *testing.B) {
	ls := []batch.Label{{Name: "__name__", Value: "cluster_version"}, {Name: "_id", Value: "0d0c3d62-4f3f-4bd6-b1a4-0a3b6ac8b7a9"}, {Name: "type", Value: "current"}, {Name: "version", Value: "4.16.3"}}
	for b.Loop() {
		SeriesHash(ls)
	}
}
