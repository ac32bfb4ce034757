package relabel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"

	"github.com/telegate/telegate/batch"
)

func mk(series ...[]string) *batch.Batch {
	b := &batch.Batch{}
	for _, s := range series {
		for i := 0; i+1 < len(s); i += 2 {
			b.PushLabel(s[i], s[i+1])
		}
		b.PushSample(1000, 1)
		b.EndSeries()
	}
	return b
}

func labelsOf(s batch.Series) string {
	var parts []string
	for _, l := range s.Labels {
		parts = append(parts, l.Name+"="+l.Value)
	}
	return strings.Join(parts, ",")
}

func defaultOpts() Options {
	return Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod"}, MaxLabels: 10, MaxNameLength: 20, MaxValueLength: 40}
}

func TestProcessStripsStampsSorts(t *testing.T) {
	p := New(defaultOpts())
	b := mk([]string{"job", "x", "__name__", "up", "instance", "1.2.3.4:9090", "pod", "p-1", "empty", ""})
	st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := labelsOf(b.Series[0]), "__name__=up,_id=c1,job=x"; got != want {
		t.Fatalf("labels %q, want %q", got, want)
	}
	if st != (Stats{}) {
		t.Fatalf("unexpected drops %+v", st)
	}
}

func TestStampDoesNotOverwriteNeighbour(t *testing.T) {
	p := New(defaultOpts())
	b := mk([]string{"__name__", "a"}, []string{"__name__", "b"})
	if _, err := p.Process(b, "c1", time.Now(), false, &Scratch{}); err != nil {
		t.Fatal(err)
	}
	if got := labelsOf(b.Series[1]); got != "__name__=b,_id=c1" {
		t.Fatalf("second series corrupted: %q", got)
	}
}

func TestCollisionsAfterStripping(t *testing.T) {
	p := New(defaultOpts())
	b := mk(
		[]string{"__name__", "up", "instance", "a"},
		[]string{"__name__", "up", "instance", "b"},
		[]string{"__name__", "up", "job", "j"},
	)
	st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 2 || st.Series[ReasonCollision] != 1 || st.Samples[ReasonCollision] != 1 {
		t.Fatalf("series=%d stats=%+v", len(b.Series), st)
	}
}

func TestCheckIdentity(t *testing.T) {
	p := New(defaultOpts())
	b := mk([]string{"__name__", "up", "_id", "other"}, []string{"__name__", "up", "_id", "c1"})
	err := p.CheckIdentity(&b.Series[0], "c1")
	var ie *InvalidError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "_id") {
		t.Fatalf("want invalid error naming _id, got %v", err)
	}
	if err := p.CheckIdentity(&b.Series[1], "c1"); err != nil {
		t.Fatal(err)
	}
	// A second occurrence claims as much as the first.
	b = mk([]string{"__name__", "up", "_id", "", "_id", "other"})
	if err := p.CheckIdentity(&b.Series[0], "c1"); !errors.As(err, &ie) {
		t.Fatalf("foreign second _id: got %v", err)
	}
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("v", 41)
	for name, s := range map[string][]string{
		"bad label name":   {"__name__", "up", "1abc", "x"},
		"reserved prefix":  {"__name__", "up", "__meta", "x"},
		"bad metric name":  {"__name__", "1up"},
		"no metric name":   {"job", "x"},
		"duplicate label":  {"__name__", "up", "job", "a", "job", "b"},
		"value too long":   {"__name__", "up", "job", long},
		"name too long":    {"__name__", "up", strings.Repeat("n", 21), "x"},
		"invalid utf8":     {"__name__", "up", "job", "\xff\xfe"},
		"too many labels":  {"__name__", "up", "a", "1", "b", "1", "c", "1", "d", "1", "e", "1", "f", "1", "g", "1", "h", "1", "i", "1"},
		"stamped too many": {"__name__", "up", "a", "1", "b", "1", "c", "1", "d", "1", "e", "1", "f", "1", "g", "1", "h", "1", "j", "1"},
	} {
		t.Run(name, func(t *testing.T) {
			p := New(defaultOpts())
			// The invalid series is dropped and reported; the valid one
			// beside it is kept.
			b := mk(s, []string{"__name__", "ok"})
			st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("want InvalidError, got %v", err)
			}
			if len(b.Series) != 1 || b.Series[0].Name() != "ok" || st.Series[ReasonInvalid] != 1 || st.Samples[ReasonInvalid] != 1 {
				t.Fatalf("kept %+v, stats %+v", b.Series, st)
			}
		})
	}
}

func TestTimestampBounds(t *testing.T) {
	o := defaultOpts()
	o.MaxSampleAge, o.MaxFutureSkew = time.Hour, time.Minute
	p := New(o)
	now := time.UnixMilli(10_000_000)
	b := &batch.Batch{}
	b.PushLabel("__name__", "up")
	b.PushSample(now.Add(-2*time.Hour).UnixMilli(), 1)
	b.PushSample(now.UnixMilli(), 2)
	b.PushSample(now.Add(2*time.Minute).UnixMilli(), 3)
	b.EndSeries()
	b.PushLabel("__name__", "old")
	b.PushSample(now.Add(-2*time.Hour).UnixMilli(), 1)
	b.EndSeries()
	st, err := p.Process(b, "c1", now, true, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 1 || len(b.Series[0].Samples) != 1 || b.Series[0].Samples[0].Value != 2 {
		t.Fatalf("got %+v", b.Series)
	}
	if st.Samples[ReasonTooOld] != 2 || st.Samples[ReasonTooNew] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Without the check nothing is dropped.
	b2 := mk([]string{"__name__", "up"})
	b2.Series[0].Samples[0].Timestamp = 0
	if _, err := p.Process(b2, "c1", now, false, &Scratch{}); err != nil || len(b2.Series) != 1 {
		t.Fatalf("server-time path dropped: %v", err)
	}
}

func TestRelabelConfigs(t *testing.T) {
	var cfgs []*relabel.Config
	if err := yaml.UnmarshalStrict([]byte(`
- source_labels: [__name__]
  regex: secret_.*
  action: drop
- source_labels: [job]
  target_label: component
`), &cfgs); err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		if err := c.Validate(model.LegacyValidation); err != nil {
			t.Fatal(err)
		}
	}
	o := defaultOpts()
	o.RelabelConfigs = cfgs
	p := New(o)
	b := mk([]string{"__name__", "secret_x"}, []string{"__name__", "up", "job", "api", "pod", "p"})
	st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 1 || st.Series[ReasonRelabel] != 1 {
		t.Fatalf("series %v stats %+v", b.Series, st)
	}
	if got := labelsOf(b.Series[0]); got != "__name__=up,_id=c1,component=api,job=api" {
		t.Fatalf("labels %q", got)
	}
}

func BenchmarkProcess(b *testing.B) {
	p := New(Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod", "prometheus_replica"}, MaxLabels: 64, MaxNameLength: 256, MaxValueLength: 4096})
	src := &batch.Batch{}
	sc := &Scratch{}
	build := func() {
		src.Reset()
		for i := 0; i < 500; i++ {
			src.PushLabel("__name__", "metric_name_"+string(rune('a'+i%20)))
			src.PushLabel("instance", "10.0.0.1:9090")
			src.PushLabel("job", "job")
			src.PushLabel("namespace", "openshift-monitoring")
			src.PushLabel("pod", "pod-"+string(rune('a'+i%26)))
			src.PushLabel("series", string(rune('A'+i%50))+string(rune('a'+i/50)))
			src.PushSample(1, 1)
			src.EndSeries()
		}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		build()
		b.StartTimer()
		if _, err := p.Process(src, "c1", time.Now(), true, sc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "series/s")
}

// The one-pass check sorts unsorted labels before it validates and hashes
// them: a duplicate hidden by the order is found, and the same label set in
// two orders is one series.
func TestCheckSortsBeforeValidatingAndHashing(t *testing.T) {
	p := New(defaultOpts())
	_, err := p.Process(mk([]string{"job", "b", "__name__", "up", "job", "a"}), "c1", time.Now(), false, &Scratch{})
	var ie *InvalidError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "duplicate label") {
		t.Fatalf("unsorted duplicate: got %v", err)
	}
	b := mk(
		[]string{"zone", "z", "job", "x", "__name__", "up"},
		[]string{"__name__", "up", "job", "x", "zone", "z"},
		[]string{"__name__", "up", "jo", "bx", "zone", "z"}, // same bytes, other split
		[]string{"__name__", "up", "job", "x", "zone", "zz"},
	)
	st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range b.Series {
		got = append(got, labelsOf(s))
	}
	want := []string{"__name__=up,_id=c1,job=x,zone=z", "__name__=up,_id=c1,jo=bx,zone=z", "__name__=up,_id=c1,job=x,zone=zz"}
	// The first two are one series sent twice: merged, their one
	// timestamp kept once.
	if strings.Join(got, " ") != strings.Join(want, " ") || st.Series[ReasonCollision] != 0 || st.Samples[ReasonCollision] != 1 {
		t.Fatalf("got %q (stats %+v), want %q and one repeated sample", got, st, want)
	}
}

// Native histogram samples obey the same timestamp bounds as float samples,
// are counted with them, and keep a series that has no float sample.
func TestTimestampBoundsHistograms(t *testing.T) {
	o := defaultOpts()
	o.MaxSampleAge, o.MaxFutureSkew = time.Hour, time.Minute
	p := New(o)
	now := time.UnixMilli(10_000_000)
	b := &batch.Batch{}
	b.PushLabel("__name__", "latency")
	b.PushHistogram(now.Add(-2*time.Hour).UnixMilli(), []byte("old"))
	b.PushHistogram(now.UnixMilli(), []byte("now"))
	b.PushHistogram(now.Add(2*time.Minute).UnixMilli(), []byte("new"))
	b.EndSeries()
	b.PushLabel("__name__", "stale")
	b.PushHistogram(now.Add(-2*time.Hour).UnixMilli(), []byte("old"))
	b.EndSeries()
	st, err := p.Process(b, "c1", now, true, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 1 || len(b.Series[0].Histograms) != 1 || string(b.Series[0].Histograms[0].Raw) != "now" {
		t.Fatalf("got %+v", b.Series)
	}
	if st.Samples[ReasonTooOld] != 2 || st.Samples[ReasonTooNew] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A collision counts the histograms it drops.
	b2 := &batch.Batch{}
	for range 2 {
		b2.PushLabel("__name__", "latency")
		b2.PushHistogram(now.UnixMilli(), []byte("h"))
		b2.PushHistogram(now.UnixMilli()+1, []byte("h"))
		b2.EndSeries()
	}
	st, err = p.Process(b2, "c1", now, true, &Scratch{})
	if err != nil || len(b2.Series) != 1 || st.Samples[ReasonCollision] != 2 {
		t.Fatalf("collision: %v %+v %+v", err, st, b2.Series)
	}
}

// Remote write 1.0 senders send one TimeSeries per sample: the same series
// repeated in a request is one series holding all its samples in
// timestamp order (a repeated timestamp keeps the first value), while
// series that only became equal by stripping (two instances) still
// collide and the later one is dropped.
func TestRepeatedSeriesMerge(t *testing.T) {
	p := New(defaultOpts())
	b := &batch.Batch{}
	push := func(instance string, ts int64, v float64, hist bool) {
		b.PushLabel("__name__", "up")
		b.PushLabel("instance", instance)
		if hist {
			b.PushHistogram(ts, []byte{byte(v)})
		} else {
			b.PushSample(ts, v)
		}
		b.PushExemplarLabel("trace_id", instance)
		b.PushExemplar(ts, v)
		b.EndSeries()
	}
	push("a", 1000, 1, false)
	push("b", 1000, 9, false) // another instance: a collision
	push("a", 3000, 3, false)
	push("a", 2000, 2, false) // out of order
	push("a", 2000, 7, false) // repeated timestamp: dropped
	push("a", 1500, 5, true)
	push("a", 1400, 4, true)
	push("b", 5000, 9, false) // another instance again
	st, err := p.Process(b, "c1", time.Now(), false, &Scratch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Series) != 1 {
		t.Fatalf("%d series: %+v", len(b.Series), b.Series)
	}
	s := b.Series[0]
	var got []string
	for _, x := range s.Samples {
		got = append(got, fmt.Sprintf("%d=%g", x.Timestamp, x.Value))
	}
	if strings.Join(got, " ") != "1000=1 2000=2 3000=3" {
		t.Fatalf("samples %v", got)
	}
	if len(s.Histograms) != 2 || s.Histograms[0].Timestamp != 1400 || s.Histograms[1].Timestamp != 1500 {
		t.Fatalf("histograms %+v", s.Histograms)
	}
	if len(s.Exemplars) != 6 {
		t.Fatalf("exemplars %+v", s.Exemplars)
	}
	if st.Series[ReasonCollision] != 2 || st.Samples[ReasonCollision] != 3 {
		t.Fatalf("stats %+v: want 2 colliding series (2 samples) and 1 repeated timestamp", st)
	}
}

// Run checks the identity of the series it is given as it strips, as
// CheckIdentity does: the first claim of another cluster, also behind an
// empty _id, also when _id is among the labels dropped; the own ID and an
// empty value claim nothing. The series still go through (stamped), as
// Process always did.
func TestRunIdentity(t *testing.T) {
	for _, drop := range [][]string{nil, {"_id"}} {
		opts := defaultOpts()
		opts.DropLabels = append(opts.DropLabels, drop...)
		p := New(opts)
		for _, c := range []struct {
			labels []string
			want   string
		}{
			{[]string{"__name__", "up", "_id", "c1"}, ""},
			{[]string{"__name__", "up", "_id", ""}, ""},
			{[]string{"__name__", "up", "job", "x"}, ""},
			{[]string{"__name__", "up", "_id", "other"}, "other"},
			{[]string{"__name__", "up", "_id", "", "_id", "c2"}, "c2"},
		} {
			b := mk(c.labels, []string{"__name__", "up", "_id", "c3", "zone", "z"})
			r := p.Begin(b, "c1", time.Now(), false, &Scratch{})
			for i := range b.Series {
				r.Add(b.Series[i])
			}
			if _, err := r.Finish(); err != nil {
				t.Fatal(err)
			}
			err := r.Identity()
			if c.want == "" {
				// The second series (c3) is the first claim then.
				if err == nil || !strings.Contains(err.Error(), `"c3"`) {
					t.Fatalf("drop %v, %v: got %v, want the claim of c3", drop, c.labels, err)
				}
				continue
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), strconv.Quote(c.want)) {
				t.Fatalf("drop %v, %v: got %v, want the claim of %q", drop, c.labels, err, c.want)
			}
			if len(b.Series) != 2 {
				t.Fatalf("drop %v, %v: %d series kept, want 2 (stamped, like Process)", drop, c.labels, len(b.Series))
			}
		}
	}
}
