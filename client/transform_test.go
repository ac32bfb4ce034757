package client

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func lp(kv ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

func gauge(name string, v float64, ts int64, kv ...string) *dto.MetricFamily {
	m := &dto.Metric{Label: lp(kv...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	if ts != 0 {
		m.TimestampMs = proto.Int64(ts)
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}}
}

func text(t *testing.T, fams []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, fams); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAnonymizeStableSaltedTruncated(t *testing.T) {
	a := Anonymize("salt", "node-1")
	if a != Anonymize("salt", "node-1") {
		t.Fatal("not stable")
	}
	if a == Anonymize("other", "node-1") || a == Anonymize("salt", "node-2") {
		t.Fatal("salt or value ignored")
	}
	if len(a) != AnonymizedLength || strings.Contains(a, "node") {
		t.Fatalf("anonymized %q", a)
	}
	// Pinned: the hash must never change between releases, or every
	// anonymized series would split in two.
	// (printf node-1 | openssl dgst -sha256 -hmac salt, first 32 chars)
	if a != "7b4eea5dbf4591f538454fd31e1c44a4" {
		t.Fatalf("Anonymize(salt, node-1) = %s", a)
	}
}

func TestTransformPipeline(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ts := now.UnixMilli()
	stale := math.Float64frombits(staleNaN)
	in := []*dto.MetricFamily{
		gauge("ALERTS", 1, ts, "alertname", "Down", "prometheus_replica", "r1", "node", "n1"),
		gauge("up", 1, ts, "job", "a", "empty", "", "node", "n2"),
		gauge("bad-name", 1, ts),
		gauge("old", 1, now.Add(-2*time.Hour).UnixMilli(), "job", "a"),
		gauge("stale", stale, ts, "job", "a"),
		{Name: proto.String("novalue"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Label: lp("a", "b")}}},
		gauge("badlabel", 1, ts, "0x", "y"),
		gauge("dup", 1, ts, "a", "b", "a", "c"),
		// Two series that become one once prometheus_replica is elided:
		// the newest wins.
		{Name: proto.String("replicated"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{
			{Label: lp("prometheus_replica", "r0"), Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(ts - 1000)},
			{Label: lp("prometheus_replica", "r1"), Gauge: &dto.Gauge{Value: proto.Float64(2)}, TimestampMs: proto.Int64(ts)},
		}},
		// alerts already exists with another type: the renamed family
		// conflicts.
	}
	tr := &Transformer{
		Rename:    map[string]string{"ALERTS": "alerts"},
		Labels:    map[string]string{"env": "prod", "job": "forced"},
		Elide:     []string{"prometheus_replica"},
		Anonymize: []string{"node"},
		Salt:      "s3",
		MaxAge:    time.Hour,
	}
	out, st := tr.Transform(in, now)
	want := `# TYPE alerts gauge
alerts{alertname="Down",env="prod",job="forced",node="` + Anonymize("s3", "n1") + `"} 1 1700000000000
# TYPE replicated gauge
replicated{env="prod",job="forced"} 2 1700000000000
# TYPE up gauge
up{env="prod",job="forced",node="` + Anonymize("s3", "n2") + `"} 1 1700000000000
`
	if got := text(t, out); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if st.In != 10 || st.Out != 3 {
		t.Errorf("in=%d out=%d", st.In, st.Out)
	}
	wantF := map[string]int{FilterInvalid: 4, FilterTooOld: 1, FilterStale: 1, FilterDuplicate: 1}
	for k, v := range wantF {
		if st.Filtered[k] != v {
			t.Errorf("filtered[%s] = %d, want %d (%v)", k, st.Filtered[k], v, st.Filtered)
		}
	}
	// The input is untouched.
	if in[0].GetName() != "ALERTS" || len(in[0].Metric[0].Label) != 3 {
		t.Fatalf("input modified: %v", in[0])
	}
}

func TestTransformRenameMergeAndConflict(t *testing.T) {
	now := time.Now()
	in := []*dto.MetricFamily{
		gauge("alerts", 1, 0, "a", "1"),
		gauge("ALERTS", 1, 0, "a", "2"),
		{Name: proto.String("x"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}}}},
		gauge("X", 1, 0),
	}
	out, st := (&Transformer{Rename: map[string]string{"ALERTS": "alerts", "X": "x"}}).Transform(in, now)
	if len(out) != 2 || len(out[0].Metric) != 2 || out[1].GetType() != dto.MetricType_COUNTER {
		t.Fatalf("out %v", out)
	}
	if st.Filtered[FilterConflict] != 1 {
		t.Fatalf("filtered %v", st.Filtered)
	}
}

func TestSampleCounts(t *testing.T) {
	h := &dto.MetricFamily{Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{
		Histogram: &dto.Histogram{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1), Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}}},
	}}}
	s := &dto.MetricFamily{Name: proto.String("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{
		Summary: &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(1), Quantile: []*dto.Quantile{{Quantile: proto.Float64(.5), Value: proto.Float64(1)}}},
	}}}
	if n := CountSamples([]*dto.MetricFamily{h, s}); n != 4+3 {
		t.Fatalf("count %d", n)
	}
}

func TestWithLabelsOverridesAndCopies(t *testing.T) {
	in := []*dto.MetricFamily{gauge("m", 1, 0, "_id", "forged", "a", "b")}
	out := WithLabels(in, map[string]string{"_id": "real"})
	if got := text(t, out); got != "# TYPE m gauge\nm{_id=\"real\",a=\"b\"} 1\n" {
		t.Fatalf("got %q", got)
	}
	if in[0].Metric[0].Label[0].GetValue() != "forged" {
		t.Fatal("input modified")
	}
}

// The hand-written name checks of the hot path accept exactly what the
// config's regexps accept.
func TestNameChecksMatchRegexps(t *testing.T) {
	names := []string{"", "a", "A", "_", ":", "a:b", "a_b9", "9a", "a-b", "a b", "é", "a\x00", "__name__", "up", ":x:", "a9:", "0", "x.y", "Z_z"}
	for i := 0; i < 256; i++ {
		names = append(names, string([]byte{byte(i)}), "a"+string([]byte{byte(i)}))
	}
	for _, n := range names {
		if got, want := isMetricName(n), metricNameRE.MatchString(n); got != want {
			t.Errorf("isMetricName(%q) = %v, metricNameRE says %v", n, got, want)
		}
		if got, want := isLabelName(n), labelNameRE.MatchString(n); got != want {
			t.Errorf("isLabelName(%q) = %v, labelNameRE says %v", n, got, want)
		}
	}
}

// A repeated label name makes the series invalid with few labels (compared
// pairwise) and with many (a set), wherever the repeat is.
func TestTransformRepeatedLabelName(t *testing.T) {
	now := time.Now()
	for _, n := range []int{2, 16, 17, 40} {
		var kv []string
		for i := 0; i < n; i++ {
			kv = append(kv, fmt.Sprintf("l%d", i), "v")
		}
		ok := gauge("ok", 1, 0, kv...)
		dup := gauge("dup", 1, 0, append(kv, "l0", "again")...)
		out, st := (&Transformer{}).Transform([]*dto.MetricFamily{ok, dup}, now)
		if len(out) != 1 || out[0].GetName() != "ok" || len(out[0].Metric[0].Label) != n || st.Filtered[FilterInvalid] != 1 {
			t.Errorf("%d labels: kept %d families, filtered %v", n, len(out), st.Filtered)
		}
	}
}

// Transform and WithLabels share sample values with their input but never
// modify it, and their output's label slices are their own.
func TestTransformAndWithLabelsLeaveInputAlone(t *testing.T) {
	in := []*dto.MetricFamily{gauge("m", 1, 5, "b", "2", "a", "1"), gauge("m", 3, 5, "a", "0")}
	before := text(t, in)
	out, _ := (&Transformer{Labels: map[string]string{"c": "3"}}).Transform(in, time.Now())
	with := WithLabels(out, map[string]string{"_id": "x"})
	with[0].Metric[0].Label[0] = &dto.LabelPair{Name: proto.String("zz"), Value: proto.String("changed")}
	if got := text(t, in); got != before {
		t.Errorf("input changed:\n%s\nwas\n%s", got, before)
	}
	if got, want := text(t, out), "# TYPE m gauge\nm{a=\"0\",c=\"3\"} 3 5\nm{a=\"1\",b=\"2\",c=\"3\"} 1 5\n"; got != want {
		t.Errorf("Transform output changed through WithLabels' copy:\n%s\nwant\n%s", got, want)
	}
}
