package client

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
)

// Any selector string parses or fails cleanly; a parsed one matches
// without panicking.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`up`, `{__name__="up"}`, `up{job=~"a.*",x!="y"}`, `{"quoted", a='b\'c'}`, "{a=`raw`}", `{a=~"("}`, `up{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		if len(sel) == 0 {
			t.Fatalf("%q: parsed to no matcher", s)
		}
		Selectors{sel}.Matches(labels.FromStrings("__name__", "up", "job", "x"))
	})
}

// Any body, in either format, is read or refused with an error; never a
// panic.
func FuzzScrapeBody(f *testing.F) {
	f.Add("text/plain; version=0.0.4", "# TYPE a counter\na_total{b=\"c\"} 1 1000\n")
	f.Add("application/openmetrics-text; version=1.0.0", "# TYPE a counter\na_total 1 1.5 # {t=\"x\"} 1\n# EOF\n")
	f.Add("", "a{le=\"NaN\"} NaN\n")
	f.Add("application/openmetrics-text", "a 1\n")
	sel, _ := ParseSelectors([]string{`{__name__=~".+"}`})
	f.Fuzz(func(t *testing.T, ctype, body string) {
		b := &familyBuilder{byName: map[string]*dto.MetricFamily{}, sel: sel, now: time.Now().UnixMilli()}
		b.add([]byte(body), ctype)
		out := b.families()
		if b.samples < b.unselected || len(out) > b.samples {
			t.Fatalf("counts: %d samples, %d unselected, %d families", b.samples, b.unselected, len(out))
		}
	})
}
