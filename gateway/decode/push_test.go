package decode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/telegate/telegate/batch"
)

const pushNow = 1700000000000

// installerText is the installer-style histogram of issue 16: minutes
// with le buckets from 1 to 60, as client_golang writes it.
func installerText(om bool) string {
	var sb strings.Builder
	sb.WriteString("# HELP assisted_installer_cluster_installation_minutes Minutes an installation took.\n")
	sb.WriteString("# TYPE assisted_installer_cluster_installation_minutes histogram\n")
	for le := 1; le <= 60; le++ {
		fmt.Fprintf(&sb, "assisted_installer_cluster_installation_minutes_bucket{result=\"ok\",le=\"%d\"} %d\n", le, le*2)
	}
	sb.WriteString("assisted_installer_cluster_installation_minutes_bucket{result=\"ok\",le=\"+Inf\"} 130\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_sum{result=\"ok\"} 4321.5\n")
	sb.WriteString("assisted_installer_cluster_installation_minutes_count{result=\"ok\"} 130\n")
	if om {
		sb.WriteString("assisted_installer_cluster_installation_minutes_created{result=\"ok\"} 1.7e+09\n")
		sb.WriteString("# EOF\n")
	}
	return sb.String()
}

func seriesString(s batch.Series) string {
	var sb strings.Builder
	for i, l := range s.Labels {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(l.Name + "=" + l.Value)
	}
	for _, x := range s.Samples {
		fmt.Fprintf(&sb, " %v@%d", x.Value, x.Timestamp)
	}
	return sb.String()
}

func TestUnmarshalTextInstallerHistogram(t *testing.T) {
	for _, om := range []bool{false, true} {
		format := PushText
		if om {
			format = PushOpenMetrics
		}
		b := &batch.Batch{}
		st, err := UnmarshalText([]byte(installerText(om)), b, format, pushNow, Limits{}, nil)
		if err != nil {
			t.Fatalf("%v: %v", format, err)
		}
		want := 63
		if om {
			want = 64 // _created is an ordinary series
		}
		if st.Series != want || len(b.Series) != want || st.Samples != want {
			t.Fatalf("%v: %+v, %d series, want %d", format, st, len(b.Series), want)
		}
		// Every bucket arrives, le normalized as a scrape normalizes it.
		first := seriesString(b.Series[0])
		if first != "__name__=assisted_installer_cluster_installation_minutes_bucket,le=1.0,result=ok 2@1700000000000" {
			t.Fatalf("%v: first series %s", format, first)
		}
		inf := seriesString(b.Series[60])
		if !strings.Contains(inf, "le=+Inf") || !strings.HasSuffix(inf, " 130@1700000000000") {
			t.Fatalf("%v: +Inf bucket %s", format, inf)
		}
		if len(b.Metadata) != 1 || b.Metadata[0] != (batch.Metadata{Family: "assisted_installer_cluster_installation_minutes", Type: 3, Help: "Minutes an installation took."}) {
			t.Fatalf("%v: metadata %+v", format, b.Metadata)
		}
	}
}

func TestUnmarshalTextTimestampsAndExemplars(t *testing.T) {
	b := &batch.Batch{}
	// Text timestamps are milliseconds; OpenMetrics' are seconds.
	if _, err := UnmarshalText([]byte("a 1 1600000000123\nb 2\n"), b, PushText, pushNow, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := b.Series[0].Samples[0].Timestamp; got != 1600000000123 {
		t.Fatalf("text timestamp %d", got)
	}
	if got := b.Series[1].Samples[0].Timestamp; got != pushNow {
		t.Fatalf("missing timestamp gives %d, want the server's", got)
	}
	om := "# TYPE c counter\nc_total 3 1600000000.5 # {trace_id=\"abc\"} 1 1600000000.25\nc_total{x=\"y\"} 4 # {trace_id=\"def\"} 2\n# EOF\n"
	b = &batch.Batch{}
	st, err := UnmarshalText([]byte(om), b, PushOpenMetrics, pushNow, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Exemplars != 2 || b.Series[0].Samples[0].Timestamp != 1600000000500 {
		t.Fatalf("%+v %v", st, b.Series[0])
	}
	e := b.Series[0].Exemplars[0]
	if e.Timestamp != 1600000000250 || e.Value != 1 || !slices.Equal(e.Labels, []batch.Label{{Name: "trace_id", Value: "abc"}}) {
		t.Fatalf("exemplar %+v", e)
	}
	if e := b.Series[1].Exemplars[0]; e.Timestamp != pushNow {
		t.Fatalf("exemplar without a timestamp gets %d, want the sample's", e.Timestamp)
	}
}

func TestUnmarshalTextRefusals(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	cases := []struct {
		name   string
		format PushFormat
		body   string
		l      Limits
		status int
		msg    string
	}{
		{"bad token line 3", PushText, "a 1\n\n# HELP b x\nb{c=} 1\n", Limits{}, 400, "line 4: expected label value"},
		{"blank lines before", PushText, "\n\n  \nb{ 1\n", Limits{}, 400, "line 4:"},
		{"bad value", PushText, "a 1\nb x\n", Limits{}, 400, "line 2:"},
		{"bad type", PushText, "# TYPE a nonsense\n", Limits{}, 400, "line 1: invalid metric type"},
		{"om without EOF", PushOpenMetrics, "a 1\nb 2\n", Limits{}, 400, "line 3: data does not end with # EOF"},
		{"om after EOF", PushOpenMetrics, "a 1\n# EOF\nb 2\n", Limits{}, 400, "unexpected data after # EOF"},
		{"om blank line", PushOpenMetrics, "a 1\n\nb 2\n# EOF\n", Limits{}, 400, "line 2:"},
		{"invalid utf8 value", PushText, "a{b=\"\xff\"} 1\n", Limits{}, 400, "line 1: invalid UTF-8 label value"},
		{"invalid utf8 name", PushText, "{\"\xff\"} 1\n", Limits{}, 400, "line 1:"},
		{"NaN le", PushText, "# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n", Limits{}, 400, "line 2: histogram bucket h_bucket has le=\"NaN\", not a number"},
		{"missing le", PushText, "# TYPE h histogram\nh_bucket 1\n", Limits{}, 400, "has no le label"},
		{"word le", PushOpenMetrics, "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n# EOF\n", Limits{}, 400, "not a number"},
		{"NaN quantile", PushText, "# TYPE s summary\ns{quantile=\"NaN\"} 1\n", Limits{}, 400, "quantile=\"NaN\""},
		{"huge line", PushText, "a{b=\"" + big + "\" 1\n", Limits{}, 400, "line 1:"},
		{"too many series", PushText, "a 1\nb 1\nc 1\n", Limits{MaxSeries: 2}, 413, "max_series_per_request (2)"},
		{"too many labels", PushText, "a{b=\"1\",c=\"2\",d=\"3\"} 1\n", Limits{MaxLabelsPerSeries: 3}, 400, "line 1: series a has more than 3 labels"},
		{"over budget", PushText, strings.Repeat("a 1\n", 1000), Limits{MaxBatchBytes: 10000}, 413, "expands to more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &batch.Batch{}
			_, err := UnmarshalText([]byte(c.body), b, c.format, pushNow, c.l, nil)
			var de *Error
			if !errors.As(err, &de) || de.Status != c.status || !strings.Contains(de.Msg, c.msg) {
				t.Fatalf("got %v, want %d containing %q", err, c.status, c.msg)
			}
			if len(de.Msg) > 2*maxErrorText {
				t.Fatalf("message of %d bytes", len(de.Msg))
			}
		})
	}
}

func TestUnmarshalTextFilterSkims(t *testing.T) {
	body := "keep{a=\"1\",_id=\"c\"} 1\ndrop{a=\"1\",_id=\"c\"} 2\n"
	b := &batch.Batch{}
	f := &NameFilter{Wanted: func(n string) bool { return n == "keep" }, KeepLabel: "_id"}
	st, err := UnmarshalText([]byte(body), b, PushText, pushNow, Limits{}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := seriesString(b.Series[1]); got != "__name__=drop,_id=c 2@1700000000000" {
		t.Fatalf("skimmed series %s", got)
	}
	full := &batch.Batch{}
	stFull, _ := UnmarshalText([]byte(body), full, PushText, pushNow, Limits{}, nil)
	if st != stFull {
		t.Fatalf("filter changes the stats: %+v vs %+v", st, stFull)
	}
}

func TestCheckPushContentType(t *testing.T) {
	cases := []struct {
		ct   string
		want PushFormat
	}{
		{"", PushText},
		{"text/plain", PushText},
		{TextContentType, PushText},
		{"text/plain; version=0.0.4; charset=utf-8; escaping=underscores", PushText},
		{OpenMetricsContentType, PushOpenMetrics},
		{"application/openmetrics-text; version=0.0.1; charset=utf-8", PushOpenMetrics},
		{"application/openmetrics-text", PushOpenMetrics},
		{UploadContentType, PushProtobuf},
		{string(expfmt.NewFormat(expfmt.TypeProtoDelim)), PushProtobuf},
		{"application/openmetrics-text; version=2.0.0", 0},
		{"text/plain; version=1.0.0", 0},
		{"text/plain; charset=latin1", 0},
		{"application/x-www-form-urlencoded", 0},
		{"application/json", 0},
		{"application/vnd.google.protobuf; proto=io.prometheus.client.Other; encoding=delimited", 0},
		{"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text", 0},
		{"garbage;;", 0},
	}
	for _, c := range cases {
		got, err := CheckPushContentType(c.ct)
		if c.want == 0 {
			if StatusOf(err) != 415 || err == nil {
				t.Errorf("%q: %v %v, want 415", c.ct, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %v %v, want %v", c.ct, got, err, c.want)
		}
	}
	for _, ce := range []string{"", "identity", "gzip", "GZIP", "snappy"} {
		if _, err := CheckPushEncoding(ce); err != nil {
			t.Errorf("%q: %v", ce, err)
		}
	}
	for _, ce := range []string{"br", "zstd", "deflate"} {
		if _, err := CheckPushEncoding(ce); StatusOf(err) != 415 {
			t.Errorf("%q: %v, want 415", ce, err)
		}
	}
}

func TestDecodePushBody(t *testing.T) {
	body := []byte(installerText(false))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	var framed bytes.Buffer
	sw := snappy.NewBufferedWriter(&framed)
	sw.Write(body)
	sw.Close()
	block := snappy.Encode(nil, body)
	for name, c := range map[string]struct {
		src []byte
		enc PushEncoding
	}{"gzip": {gz.Bytes(), PushGzip}, "framed": {framed.Bytes(), PushSnappy}, "block": {block, PushSnappy}, "identity": {body, PushIdentity}} {
		got, err := DecodePushBody(nil, c.src, c.enc, len(body), nil)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := DecodePushBody(nil, c.src, c.enc, len(body)-1, nil); StatusOf(err) != 413 || !strings.Contains(err.Error(), CapDecodedBytes) {
			t.Fatalf("%s over the cap: %v", name, err)
		}
	}
	// A gzip bomb stops at the cap; corrupt input is a 400.
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 64<<20))
	zw.Close()
	if _, err := DecodePushBody(nil, bomb.Bytes(), PushGzip, 1<<20, nil); StatusOf(err) != 413 {
		t.Fatalf("gzip bomb: %v", err)
	}
	for name, c := range map[string]struct {
		src []byte
		enc PushEncoding
	}{"gzip": {[]byte("not gzip"), PushGzip}, "gzip truncated": {gz.Bytes()[:gz.Len()/2], PushGzip}, "snappy": {[]byte{0xff, 0xff, 0xff}, PushSnappy}, "framed": {append([]byte(snappyStreamID), 0x00, 0x05, 0, 0, 1), PushSnappy}} {
		var de *Error
		if _, err := DecodePushBody(nil, c.src, c.enc, 1<<20, nil); !errors.As(err, &de) || de.Status != 400 {
			t.Fatalf("%s: %v, want a 400 *Error", name, err)
		}
	}
}

// TestHonestAmplificationText measures the batch bytes honest pushes
// charge per decoded byte (see TextBudget).
func TestHonestAmplificationText(t *testing.T) {
	// A Prometheus server's own /metrics (see honest_test.go).
	f, err := os.Open("testdata/prometheus-self.prom.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	prom, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"installer histogram": installerText(false),
		"prometheus self":     string(prom),
	} {
		b := &batch.Batch{}
		st, err := UnmarshalText([]byte(body), b, PushText, pushNow, Limits{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		per := float64(st.BatchBytes) / float64(len(body))
		t.Logf("%s: %d series, %.2f batch bytes per decoded byte", name, st.Series, per)
		if per > uploadPerByte/2 {
			t.Fatalf("%s amplifies %.1f, too close to the budget %d", name, per, uploadPerByte)
		}
	}
}

// TestPushProtobufIsUpload: a protobuf push is an /upload body.
func TestPushProtobufIsUpload(t *testing.T) {
	mfs := []*dto.MetricFamily{{Name: proto.String("a"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}}}
	var buf bytes.Buffer
	if err := EncodeMetricFamilies(&buf, mfs); err != nil {
		t.Fatal(err)
	}
	b := &batch.Batch{}
	if _, err := UnmarshalMetricFamilies(buf.Bytes(), b, pushNow, false, Limits{}); err != nil || len(b.Series) != 1 {
		t.Fatal(err)
	}
}

func FuzzUnmarshalText(f *testing.F) {
	f.Add([]byte(installerText(false)), false)
	f.Add([]byte(installerText(true)), true)
	f.Add([]byte("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n"), false)
	f.Add([]byte("# TYPE c counter\n# UNIT c seconds\nc_total 3 1600000000.5 # {trace_id=\"abc\"} 1 1600000000.25\n# EOF\n"), true)
	f.Add([]byte("{\"utf8.name\",\"a b\"=\"c\"} 1 123\n"), false)
	r := rand.New(rand.NewPCG(7, 8))
	for range 10 {
		f.Add(mutate(r, []byte(installerText(false))), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, om bool) {
		format := PushText
		if om {
			format = PushOpenMetrics
		}
		checkBoundedText(t, data, format)
	})
}

// checkBoundedText is checkBounded for text: a 400 or 413 *Error or
// success, the batch within its budget and caps, a filter changing
// nothing but the labels it skims, limits changing nothing accepted.
func checkBoundedText(t *testing.T, data []byte, format PushFormat) {
	l := Limits{MaxSeries: 50, MaxLabelsPerSeries: 8, MaxBatchBytes: uploadPerByte*len(data) + 512}
	decode := func(l Limits, f *NameFilter) (*batch.Batch, Stats, error) {
		b := &batch.Batch{}
		st, err := UnmarshalText(slices.Clone(data), b, format, pushNow, l, f)
		return b, st, err
	}
	b, st, err := decode(l, nil)
	if err != nil {
		var de *Error
		if !errors.As(err, &de) || (de.Status != 400 && de.Status != 413) {
			t.Fatalf("error %v is not a 400 or 413 *Error", err)
		}
		if !strings.Contains(de.Msg, "line ") && de.Status == 400 {
			t.Fatalf("400 without a line: %v", de.Msg)
		}
	}
	if held := heldBytes(b, nil); held > l.MaxBatchBytes {
		t.Fatalf("batch holds %d bytes, over the budget %d (%d decoded bytes; err %v)", held, l.MaxBatchBytes, len(data), err)
	}
	for _, s := range b.Series {
		if len(s.Labels) > l.MaxLabelsPerSeries {
			t.Fatalf("series with %d labels, cap %d", len(s.Labels), l.MaxLabelsPerSeries)
		}
	}
	if len(b.Series) > l.MaxSeries {
		t.Fatalf("%d series, cap %d", len(b.Series), l.MaxSeries)
	}
	_, stF, errF := decode(l, testFilter)
	if (err == nil) != (errF == nil) || StatusOf(err) != StatusOf(errF) || st != stF {
		t.Fatalf("filter changes the outcome under limits: %v %+v vs %v %+v", err, st, errF, stF)
	}
	if err != nil {
		return
	}
	full, stFull, errFull := decode(Limits{}, nil)
	if errFull != nil || stFull.Series != st.Series || len(full.Series) != len(b.Series) {
		t.Fatalf("limits change an accepted body: %v %+v vs %+v", errFull, stFull, st)
	}
	sameSeriesContent(t, b, full)
}

func TestAdversarialTextBounded(t *testing.T) {
	for name, body := range map[string]string{
		"tiny lines":     strings.Repeat("a 1\n", 100000),
		"empty labels":   "a{" + strings.Repeat("b=\"\",", 10000) + "} 1\n",
		"many buckets":   "# TYPE h histogram\n" + strings.Repeat("h_bucket{le=\"1\"} 1\n", 100000),
		"long help":      "# HELP a " + strings.Repeat("x", 1<<20) + "\n",
		"many families":  strings.Repeat("# TYPE a gauge\n# TYPE b gauge\n", 50000),
		"many exemplars": strings.Repeat("a_total 1 # {a=\"b\"} 1\n", 1000) + "# EOF\n",
	} {
		t.Run(name, func(t *testing.T) {
			format := PushText
			if strings.HasSuffix(body, "# EOF\n") {
				format = PushOpenMetrics
			}
			checkBoundedText(t, []byte(body), format)
		})
	}
}

// TestPushedFamiliesMatchText: a family pushed as protobuf and the same
// family as text become the same series (le and quantile as a Prometheus
// 3 scrape writes them), where /upload keeps its shortest form.
func TestPushedFamiliesMatchText(t *testing.T) {
	mfs := []*dto.MetricFamily{{
		Name: proto.String("h"), Help: proto.String("x"), Type: dto.MetricType_HISTOGRAM.Enum(),
		Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: proto.String("a"), Value: proto.String("b")}},
			Histogram: &dto.Histogram{SampleCount: proto.Uint64(9), SampleSum: proto.Float64(3), Bucket: []*dto.Bucket{
				{UpperBound: proto.Float64(0), CumulativeCount: proto.Uint64(1)},
				{UpperBound: proto.Float64(0.25), CumulativeCount: proto.Uint64(2)},
				{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(3)},
				{UpperBound: proto.Float64(1e6), CumulativeCount: proto.Uint64(8)},
			}}}},
	}, {
		Name: proto.String("s"), Type: dto.MetricType_SUMMARY.Enum(),
		Metric: []*dto.Metric{{Summary: &dto.Summary{SampleCount: proto.Uint64(2), SampleSum: proto.Float64(1),
			Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(0.4)}, {Quantile: proto.Float64(1), Value: proto.Float64(0.9)}}}}},
	}}
	var pb, text bytes.Buffer
	if err := EncodeMetricFamilies(&pb, mfs); err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	render := func(b *batch.Batch) []string {
		var out []string
		for _, s := range b.Series {
			s.SortLabels()
			out = append(out, seriesString(s))
		}
		slices.Sort(out)
		return out
	}
	fromPB, fromText, upload := &batch.Batch{}, &batch.Batch{}, &batch.Batch{}
	if _, err := UnmarshalPushedFamilies(pb.Bytes(), fromPB, pushNow, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalText(text.Bytes(), fromText, PushText, pushNow, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := render(fromPB), render(fromText); !slices.Equal(got, want) {
		t.Fatalf("protobuf push\n%s\ntext push\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, want := range []string{"le=0.0 ", "le=0.25 ", "le=1.0 ", "le=1e+06 ", "le=+Inf ", "quantile=0.5 ", "quantile=1.0 "} {
		if !strings.Contains(strings.Join(render(fromPB), "\n"), want) {
			t.Fatalf("%q missing from %v", want, render(fromPB))
		}
	}
	if _, err := UnmarshalMetricFamilies(pb.Bytes(), upload, pushNow, true, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(render(upload), "\n"); !strings.Contains(got, "le=1 ") || !strings.Contains(got, "le=0 ") {
		t.Fatalf("/upload's le values changed:\n%s", got)
	}
}
