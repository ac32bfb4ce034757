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

// Histogram is one native histogram sample: its timestamp and its
// protobuf encoding as a remote write 1.0 prometheus.Histogram message.
// io.prometheus.write.v2.Histogram is the same message with one more
// field (start_timestamp, 17), so a 2.0 histogram is carried as it
// arrived. Raw has been validated by the decoder that pushed it (wire
// format and the rules of Prometheus' histogram Validate), so later stages
// and the downstream can trust it. It aliases Buf or memory the batch
// owns: copy it to keep it.
type Histogram struct {
	Timestamp int64
	Raw       []byte
}

// Exemplar is one exemplar of a series: its own labels, value and
// timestamp.
type Exemplar struct {
	Labels    []Label
	Value     float64
	Timestamp int64
}

// MetricType is a metric family's type, numbered as remote write 1.0's
// MetricMetadata.MetricType (0 unknown, 1 counter, 2 gauge, 3 histogram,
// 4 gauge histogram, 5 summary, 6 info, 7 stateset).
type MetricType uint8

// Metadata is the type, help and unit of one metric family, named by
// Family (the metric name without a histogram's or summary's suffix).
type Metadata struct {
	Family     string
	Type       MetricType
	Help, Unit string
}

// Series is one time series: its labels (sorted by name once the pipeline
// has run), its float samples, native histogram samples and exemplars.
type Series struct {
	Labels     []Label
	Samples    []Sample
	Histograms []Histogram
	Exemplars  []Exemplar
}

// Points returns the number of samples of s, float and histogram: the
// unit of samples-per-second budgets and of the written counts.
func (s *Series) Points() int { return len(s.Samples) + len(s.Histograms) }

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

	// Metadata holds the metric families' metadata the request carried
	// (remote write 1.0's WriteRequest.metadata, 2.0's per-series
	// metadata, one entry per family).
	Metadata []Metadata

	// Buf is the decompressed request body the strings may alias. The
	// decoders reuse its capacity across requests.
	Buf []byte

	labels     []Label
	samples    []Sample
	histograms []Histogram
	exemplars  []Exemplar
	exLabels   []Label
	lMark      int
	sMark      int
	hMark      int
	eMark      int
	xMark      int
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

// PushHistogram adds a native histogram sample to the series under
// construction; raw must stay valid as long as the batch (see Histogram).
func (b *Batch) PushHistogram(ts int64, raw []byte) {
	if len(b.histograms) == cap(b.histograms) {
		b.histograms = grow(b.histograms, b.Series, func(s *Series) *[]Histogram { return &s.Histograms })
	}
	b.histograms = append(b.histograms, Histogram{Timestamp: ts, Raw: raw})
}

// PushExemplarLabel adds a label to the exemplar under construction.
func (b *Batch) PushExemplarLabel(name, value string) {
	if len(b.exLabels) == cap(b.exLabels) {
		// Finished and pending exemplars alike live in b.exemplars.
		b.exLabels = grow(b.exLabels, b.exemplars, func(e *Exemplar) *[]Label { return &e.Labels })
	}
	b.exLabels = append(b.exLabels, Label{Name: name, Value: value})
}

// PushExemplar ends the exemplar under construction (the labels pushed
// since the previous PushExemplar) and adds it to the series under
// construction.
func (b *Batch) PushExemplar(ts int64, v float64) {
	if len(b.exemplars) == cap(b.exemplars) {
		b.exemplars = grow(b.exemplars, b.Series, func(s *Series) *[]Exemplar { return &s.Exemplars })
	}
	ls := b.exLabels[b.xMark:len(b.exLabels):len(b.exLabels)]
	b.exemplars = append(b.exemplars, Exemplar{Labels: ls, Value: v, Timestamp: ts})
	b.xMark = len(b.exLabels)
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

// grow returns arena grown by at least one element, every owner's slice
// (slot) into the old array re-pointed into the new one.
func grow[T, O any](arena []T, series []O, slot func(*O) *[]T) []T {
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
	return (cap(b.labels)+cap(b.exLabels))*int(unsafe.Sizeof(Label{})) +
		cap(b.samples)*int(unsafe.Sizeof(Sample{})) +
		cap(b.histograms)*int(unsafe.Sizeof(Histogram{})) +
		cap(b.exemplars)*int(unsafe.Sizeof(Exemplar{})) +
		cap(b.Series)*int(unsafe.Sizeof(Series{})) +
		cap(b.Metadata)*int(unsafe.Sizeof(Metadata{}))
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
	s := Series{Labels: ls, Samples: ss}
	if len(b.histograms) > b.hMark {
		s.Histograms = b.histograms[b.hMark:len(b.histograms):len(b.histograms)]
	}
	if len(b.exemplars) > b.eMark {
		s.Exemplars = b.exemplars[b.eMark:len(b.exemplars):len(b.exemplars)]
	}
	b.Series = append(b.Series, s)
	b.lMark, b.sMark, b.hMark, b.eMark = len(b.labels), len(b.samples), len(b.histograms), len(b.exemplars)
}

// DiscardSeries forgets everything pushed since the previous EndSeries.
func (b *Batch) DiscardSeries() {
	b.labels = b.labels[:b.lMark]
	b.samples = b.samples[:b.sMark]
	b.histograms = b.histograms[:b.hMark]
	b.exemplars = b.exemplars[:b.eMark]
	b.exLabels = b.exLabels[:b.xMark]
}

// Samples returns the number of float samples in the batch.
func (b *Batch) Samples() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Samples)
	}
	return n
}

// Histograms returns the number of native histogram samples in the batch.
func (b *Batch) Histograms() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Histograms)
	}
	return n
}

// Exemplars returns the number of exemplars in the batch.
func (b *Batch) Exemplars() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Exemplars)
	}
	return n
}

// Points returns the number of float and histogram samples in the batch.
func (b *Batch) Points() int {
	n := 0
	for i := range b.Series {
		n += b.Series[i].Points()
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
	clear(b.histograms)
	b.histograms = b.histograms[:0]
	clear(b.exemplars)
	b.exemplars = b.exemplars[:0]
	clear(b.exLabels)
	b.exLabels = b.exLabels[:0]
	clear(b.Metadata)
	b.Metadata = b.Metadata[:0]
	b.lMark, b.sMark, b.hMark, b.eMark, b.xMark = 0, 0, 0, 0, 0
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
