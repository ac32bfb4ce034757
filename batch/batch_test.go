package batch

import "testing"

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
