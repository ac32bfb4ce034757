package batch

import (
	"runtime"
	"strconv"
	"testing"
	"unsafe"
)

func TestEndSeriesClipsCapacity(t *testing.T) {
	var b Batch
	b.PushLabel("__name__", "a")
	b.PushSample(1, 1)
	b.EndSeries()
	b.PushLabel("__name__", "b")
	b.PushSample(2, 2)
	b.EndSeries()
	// Appending to the first series must not overwrite the second.
	b.Series[0].Labels = append(b.Series[0].Labels, Label{"_id", "x"})
	if b.Series[1].Labels[0].Value != "b" || b.Series[1].Name() != "b" {
		t.Fatalf("neighbour overwritten: %+v", b.Series[1].Labels)
	}
	if b.Samples() != 2 {
		t.Fatalf("samples %d", b.Samples())
	}
}

func TestDiscardAndReset(t *testing.T) {
	var b Batch
	b.PushLabel("__name__", "a")
	b.PushLabel("job", "j")
	if len(b.PendingLabels()) != 2 {
		t.Fatal("pending labels")
	}
	b.DiscardSeries()
	b.PushLabel("__name__", "c")
	b.EndSeries()
	if len(b.Series) != 1 || len(b.Series[0].Labels) != 1 {
		t.Fatalf("discard kept labels: %+v", b.Series)
	}
	if v, ok := b.Series[0].Get("__name__"); !ok || v != "c" {
		t.Fatal("Get")
	}
	b.Reset()
	if len(b.Series) != 0 || len(b.PendingLabels()) != 0 {
		t.Fatal("reset")
	}
}

func TestSortLabels(t *testing.T) {
	s := Series{Labels: []Label{{"z", "1"}, {"__name__", "m"}, {"a", "2"}}}
	s.SortLabels()
	if s.Labels[0].Name != "__name__" || s.Labels[1].Name != "a" || s.Labels[2].Name != "z" {
		t.Fatalf("%v", s.Labels)
	}
}

func TestPoolDropsHugeBatches(t *testing.T) {
	b := Get()
	b.Buf = make([]byte, 0, maxPooledBytes+1)
	Put(b) // must not panic, and is not kept
	b2 := Get()
	if cap(b2.Buf) > maxPooledBytes {
		t.Fatal("huge buffer pooled")
	}
	Put(b2)
}

func TestSortLabelsDoesNotAllocate(t *testing.T) {
	labels := []Label{{"zone", "z"}, {"job", "j"}, {"__name__", "up"}, {"_id", "c"}, {"instance", "i"}}
	s := Series{Labels: make([]Label, len(labels))}
	n := testing.AllocsPerRun(100, func() {
		copy(s.Labels, labels)
		s.SortLabels()
	})
	if n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
	want := []string{"__name__", "_id", "instance", "job", "zone"}
	for i, l := range s.Labels {
		if l.Name != want[i] {
			t.Fatalf("order %v", s.Labels)
		}
	}
}

// inArena reports whether the non-empty slice s points into arena's array.
func inArena[T any](s, arena []T) bool {
	if len(s) == 0 {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(arena[:1])))
	return p >= base && p < base+uintptr(cap(arena))*unsafe.Sizeof(arena[0])
}

func TestGrowthRepointsSeries(t *testing.T) {
	var b Batch
	// Series of uneven sizes, including empty ones, across many growths.
	for i := 0; i < 5000; i++ {
		for j := 0; j < i%7; j++ {
			b.PushLabel("l", strconv.Itoa(i))
		}
		for j := 0; j < i%3; j++ {
			b.PushSample(int64(i), float64(j))
		}
		b.EndSeries()
	}
	for i := range b.Series {
		s := &b.Series[i]
		if !inArena(s.Labels, b.labels) || !inArena(s.Samples, b.samples) {
			t.Fatalf("series %d points into an old arena", i)
		}
		if len(s.Labels) != i%7 || len(s.Samples) != i%3 || cap(s.Labels) != len(s.Labels) || cap(s.Samples) != len(s.Samples) {
			t.Fatalf("series %d: %d labels (cap %d), %d samples (cap %d)", i, len(s.Labels), cap(s.Labels), len(s.Samples), cap(s.Samples))
		}
		for _, l := range s.Labels {
			if l.Value != strconv.Itoa(i) {
				t.Fatalf("series %d: label %q", i, l.Value)
			}
		}
		for _, x := range s.Samples {
			if x.Timestamp != int64(i) {
				t.Fatalf("series %d: sample %v", i, x)
			}
		}
	}
}

// TestNoArenaRetention: the heap a batch keeps is its current arenas, not
// every generation they went through.
func TestNoArenaRetention(t *testing.T) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	b := new(Batch)
	for i := 0; i < 100000; i++ {
		b.PushLabel("", "")
		b.PushLabel("", "")
		b.PushSample(0, 0)
		b.EndSeries()
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	held := int64(ms.HeapAlloc) - int64(before)
	if held > int64(b.Bytes())+1<<20 {
		t.Fatalf("batch of %d bytes keeps %d bytes of heap alive", b.Bytes(), held)
	}
	want := cap(b.labels)*32 + cap(b.samples)*16 + cap(b.Series)*int(unsafe.Sizeof(Series{}))
	if b.Bytes() != want || b.Bytes() < 100000*(2*32+16+int(unsafe.Sizeof(Series{}))) {
		t.Fatalf("Bytes() = %d, want %d", b.Bytes(), want)
	}
	runtime.KeepAlive(b)
}

func TestHistogramsAndExemplarsFollowTheirSeries(t *testing.T) {
	var b Batch
	for i := 0; i < 3000; i++ {
		v := strconv.Itoa(i)
		b.PushLabel("__name__", v)
		for j := 0; j < i%3; j++ {
			b.PushHistogram(int64(i), []byte(v))
		}
		for j := 0; j < i%4; j++ {
			for k := 0; k < j; k++ {
				b.PushExemplarLabel("trace_id", v)
			}
			b.PushExemplar(int64(i), float64(j))
		}
		if i%5 == 4 {
			b.DiscardSeries()
			continue
		}
		b.EndSeries()
	}
	if len(b.Series) != 3000-600 {
		t.Fatalf("%d series", len(b.Series))
	}
	hs, ex := 0, 0
	for _, s := range b.Series {
		name := s.Name()
		i, _ := strconv.Atoi(name)
		if len(s.Histograms) != i%3 || len(s.Exemplars) != i%4 || cap(s.Histograms) != len(s.Histograms) || cap(s.Exemplars) != len(s.Exemplars) {
			t.Fatalf("series %s: %d histograms, %d exemplars", name, len(s.Histograms), len(s.Exemplars))
		}
		if !inArena(s.Histograms, b.histograms) || !inArena(s.Exemplars, b.exemplars) {
			t.Fatalf("series %s points into an old arena", name)
		}
		for _, h := range s.Histograms {
			if h.Timestamp != int64(i) || string(h.Raw) != name {
				t.Fatalf("series %s: histogram %v", name, h)
			}
		}
		for j, e := range s.Exemplars {
			if len(e.Labels) != j || e.Value != float64(j) || !inArena(e.Labels, b.exLabels) {
				t.Fatalf("series %s: exemplar %d %+v", name, j, e)
			}
			for _, l := range e.Labels {
				if l.Value != name {
					t.Fatalf("series %s: exemplar label %v", name, l)
				}
			}
		}
		hs += len(s.Histograms)
		ex += len(s.Exemplars)
		if s.Points() != len(s.Samples)+len(s.Histograms) {
			t.Fatal("Points")
		}
	}
	if b.Histograms() != hs || b.Exemplars() != ex || b.Points() != hs {
		t.Fatalf("counts %d %d %d", b.Histograms(), b.Exemplars(), b.Points())
	}
	b.Reset()
	if b.Histograms() != 0 || len(b.histograms) != 0 || len(b.exLabels) != 0 {
		t.Fatal("reset")
	}
}
