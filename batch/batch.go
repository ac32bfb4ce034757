package batch

import (
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// MetricName is the label that holds a series' metric name.
const MetricName = "__name__"

// Label is one name/value pair of a series.
type Label struct {
	Name, Value string
}

// Sample is one value at a millisecond timestamp.
type Sample struct {
	Timestamp int64
	Value     float64
}

// Series is one time series: its labels (sorted by name once the pipeline
// has run) and its samples.
type Series struct {
	Labels  []Label
	Samples []Sample
}

// Name returns the value of the __name__ label, or "".
func (s *Series) Name() string {
	for i := range s.Labels {
		if s.Labels[i].Name == MetricName {
			return s.Labels[i].Value
		}
	}
	return ""
}

// Get returns the value of the named label, or "".
func (s *Series) Get(name string) (string, bool) {
	for i := range s.Labels {
		if s.Labels[i].Name == name {
			return s.Labels[i].Value, true
		}
	}
	return "", false
}

// SortLabels sorts the labels by name if they are not already sorted. It
// does not allocate.
func (s *Series) SortLabels() {
	ls := s.Labels
	for i := 1; i < len(ls); i++ {
		if ls[i-1].Name > ls[i].Name {
			slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
			return
		}
	}
}

// Batch is a set of series decoded from one request. Build it with
// PushLabel/PushSample/EndSeries; labels and samples live in two arenas so a
// pooled Batch decodes the next request without allocating.
type Batch struct {
	Series []Series

	// Buf is the decompressed request body the strings may alias. The
	// decoders reuse its capacity across requests.
	Buf []byte

	labels  []Label
	samples []Sample
	lMark   int
	sMark   int
}

// PushLabel adds a label to the series under construction.
func (b *Batch) PushLabel(name, value string) {
	if len(b.labels) == cap(b.labels) {
		b.growLabels()
	}
	b.labels = append(b.labels, Label{Name: name, Value: value})
}

// PushSample adds a sample to the series under construction.
func (b *Batch) PushSample(ts int64, v float64) {
	if len(b.samples) == cap(b.samples) {
		b.growSamples()
	}
	b.samples = append(b.samples, Sample{Timestamp: ts, Value: v})
}

// growLabels moves the labels arena to a larger array (append's growth)
// and re-points the finished series into it, so the old array is garbage as
// soon as the caller drops its own references: a series keeping its arena
// generation alive would make a batch hold every generation (about 5x the
// final arena with append's 1.25x growth). It is O(series) per growth; the
// old array is left intact for callers still reading from it.
func (b *Batch) growLabels() {
	b.labels = grow(b.labels, b.Series, func(s *Series) *[]Label { return &s.Labels })
}

// growSamples is growLabels for the samples arena.
func (b *Batch) growSamples() {
	b.samples = grow(b.samples, b.Series, func(s *Series) *[]Sample { return &s.Samples })
}

// grow returns arena grown by at least one element, every series' slice
// (slot) into the old array re-pointed into the new one.
func grow[T any](arena []T, series []Series, slot func(*Series) *[]T) []T {
	grown := slices.Grow(arena, 1)
	if cap(arena) == 0 {
		return grown
	}
	size := unsafe.Sizeof(*new(T))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(arena[:1])))
	end := base + uintptr(cap(arena))*size
	for i := range series {
		s := slot(&series[i])
		if len(*s) == 0 {
			// A zero-capacity slice need not point into the arena; it
			// must not keep it alive either.
			*s = grown[:0:0]
			continue
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(*s))); p >= base && p < end {
			off := int((p - base) / size)
			*s = grown[off : off+len(*s) : off+len(*s)]
		}
	}
	return grown
}

// Bytes returns about how much heap the batch holds: its arenas and series
// slice at their capacity (the decoded buffer Buf not included).
func (b *Batch) Bytes() int {
	return cap(b.labels)*int(unsafe.Sizeof(Label{})) +
		cap(b.samples)*int(unsafe.Sizeof(Sample{})) +
		cap(b.Series)*int(unsafe.Sizeof(Series{}))
}

// PendingLabels returns the labels pushed since the last EndSeries or
// DiscardSeries.
func (b *Batch) PendingLabels() []Label { return b.labels[b.lMark:] }

// EndSeries turns everything pushed since the previous EndSeries into a new
// Series. The series' slices have their capacity clipped, so appending to
// them never overwrites a neighbour.
func (b *Batch) EndSeries() {
	ls := b.labels[b.lMark:len(b.labels):len(b.labels)]
	ss := b.samples[b.sMark:len(b.samples):len(b.samples)]
	b.Series = append(b.Series, Series{Labels: ls, Samples: ss})
	b.lMark, b.sMark = len(b.labels), len(b.samples)
}

// DiscardSeries forgets everything pushed since the previous EndSeries.
func (b *Batch) DiscardSeries() {
	b.labels = b.labels[:b.lMark]
	b.samples = b.samples[:b.sMark]
}

// Samples returns the number of samples in the batch.
func (b *Batch) Samples() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Samples)
	}
	return n
}

// Reset empties the batch, keeping its capacity.
func (b *Batch) Reset() {
	for i := range b.Series {
		b.Series[i] = Series{}
	}
	b.Series = b.Series[:0]
	clear(b.labels)
	b.labels = b.labels[:0]
	b.samples = b.samples[:0]
	b.lMark, b.sMark = 0, 0
	b.Buf = b.Buf[:0]
}

// maxPooledBytes keeps one huge request from pinning its buffers forever.
const maxPooledBytes = 8 << 20

var pool = sync.Pool{New: func() any { return new(Batch) }}

// Get returns an empty Batch from the pool.
func Get() *Batch { return pool.Get().(*Batch) }

// Put resets b and returns it to the pool. b must not be used afterwards.
func Put(b *Batch) {
	if cap(b.Buf) > maxPooledBytes || cap(b.labels)*32 > maxPooledBytes {
		return
	}
	b.Reset()
	pool.Put(b)
}
