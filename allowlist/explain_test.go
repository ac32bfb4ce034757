package allowlist

import (
	"reflect"
	"strings"
	"testing"

	"github.com/telegate/telegate/batch"
)

func TestExplain(t *testing.T) {
	a := mustParse(t,
		`{__name__="up",job="telemeter-client"}`,
		`{__name__="up"}`, // allows what the first does not: a shadowing test below
		`{__name__=~"x|y",env!="dev"}`,
		`{__name__="z",mode="a"}`,
		`{__name__=~"z.*"}`,
	)
	a.Entries[0].Owners = []string{"@o/mon"}
	a.Entries[1].Owners = []string{"@o/mon"}
	a.Entries[2].Owners = []string{"@o/x", "@o/mon"}
	all := [][]batch.Label{
		series("__name__", "up", "job", "telemeter-client", "instance", "a"),
		series("job", "telemeter-client", "__name__", "up", "instance", "b"), // collides with the first once stripped
		series("__name__", "up", "job", "node", "instance", "a"),
		series("__name__", "x", "env", "prod", "pod", "p1", "user_email", "e"),
		series("__name__", "x", "env", "prod", "pod", "p2", "extra", "", "user_email", "e"), // empty label: stripped like the gateway does
		series("__name__", "x", "env", "dev"),
		series("__name__", "y"),
		series("__name__", "w", "mode", "b"),
		series("mode", "b"),
	}
	in := make([][]batch.Label, len(all))
	for i := range all {
		in[i] = append([]batch.Label(nil), all[i]...)
	}
	r := Explain(a, all, ExplainOptions{MaxSeriesPerMetric: 1, MaxSeriesPerOwner: 2})
	if !reflect.DeepEqual(in, all) {
		t.Error("Explain modified its input")
	}
	if r.Series != 9 || r.Allowed != 6 || r.Stored != 4 || r.Collisions != 2 {
		t.Errorf("totals series %d allowed %d stored %d collisions %d, want 9 6 4 2", r.Series, r.Allowed, r.Stored, r.Collisions)
	}

	up := r.Metric("up")
	if up == nil || up.Series != 3 || up.Allowed != 3 || up.Stored != 2 || up.Collisions != 1 || up.Denied != 0 {
		t.Fatalf("up = %+v", up)
	}
	if len(up.AllowedBy) != 2 || up.AllowedBy[0].Line != 2 || up.AllowedBy[1].Line != 3 {
		t.Errorf("up allowed by %+v", up.AllowedBy)
	}
	if !reflect.DeepEqual(up.StrippedLabels, []string{"instance"}) || !up.OverGuidance {
		t.Errorf("up stripped %q over %v", up.StrippedLabels, up.OverGuidance)
	}
	if !reflect.DeepEqual(up.CollisionExamples, []string{`up{job="telemeter-client"} (from 2 series)`}) {
		t.Errorf("up collisions %q", up.CollisionExamples)
	}

	x := r.Metric("x")
	if x.Allowed != 2 || x.Denied != 1 || x.Stored != 1 || x.Collisions != 1 {
		t.Errorf("x = %+v", x)
	}
	if x.DeniedExample != `x{env="dev"}` || x.DenyReason != `line 4 {__name__=~"x|y",env!="dev"} needs env!="dev", the series has env="dev"` {
		t.Errorf("x denied %q because %q", x.DeniedExample, x.DenyReason)
	}
	if !reflect.DeepEqual(x.PersonalData, []string{"user_email"}) || !reflect.DeepEqual(x.StrippedLabels, []string{"pod"}) {
		t.Errorf("x personal %q stripped %q", x.PersonalData, x.StrippedLabels)
	}

	w := r.Metric("w")
	if w.Allowed != 0 || w.DenyReason != `no entry allows the metric name "w"` {
		t.Errorf("w = %+v", w)
	}
	if noName := r.Metric(""); noName == nil || noName.Denied != 1 {
		t.Errorf("series without a name: %+v", noName)
	}
	if r.Metric("nope") != nil {
		t.Error("Metric(nope) != nil")
	}

	// Entry 1 matches two series but entry 0 allows them first.
	e := r.Entries
	if e[0].Matched != 2 || e[0].Allowed != 2 || e[0].Stored != 1 || e[0].OverGuidance {
		t.Errorf("entry 0 = %+v", e[0])
	}
	if e[1].Matched != 3 || e[1].Allowed != 1 || e[1].Stored != 1 {
		t.Errorf("entry 1 = %+v", e[1])
	}
	// Guidance per entry scales with its metrics: x and y, 2 stored, not
	// over 1 per metric.
	if e[2].Metrics != 2 || e[2].Stored != 2 || e[2].OverGuidance {
		t.Errorf("entry 2 = %+v", e[2])
	}
	if e[3].Matched != 0 || e[4].Matched != 0 {
		t.Errorf("entries 3, 4 = %+v %+v", e[3], e[4])
	}

	wantOwners := []OwnerReport{
		{Owner: "(no owner)", Metrics: 0, Stored: 0},
		{Owner: "@o/mon", Metrics: 3, Stored: 4, OverGuidance: true},
		{Owner: "@o/x", Metrics: 2, Stored: 2},
	}
	if !reflect.DeepEqual(r.Owners, wantOwners) {
		t.Errorf("owners %+v, want %+v", r.Owners, wantOwners)
	}
}

func TestExplainDenyReasons(t *testing.T) {
	a := mustParse(t, `{__name__="z",mode="a"}`, `{__name__=~"z.*",job!=""}`, `{__name__="q"}`)
	r := Explain(a, [][]batch.Label{series("__name__", "z", "mode", "b")}, ExplainOptions{})
	want := `line 2 {__name__="z",mode="a"} needs mode="a", the series has mode="b"; line 3 {__name__=~"z.*",job!=""} needs job!="", the series has no job label`
	if got := r.Metrics[0].DenyReason; got != want {
		t.Errorf("reason %q\nwant   %q", got, want)
	}
}

func TestExplainZeroAllowlist(t *testing.T) {
	var a Allowlist
	r := Explain(&a, [][]batch.Label{series("__name__", "up")}, ExplainOptions{})
	if r.Allowed != 0 || len(r.Entries) != 0 || r.Metrics[0].DenyReason == "" {
		t.Errorf("report %+v", r)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "up: denied, 1 series") {
		t.Errorf("text %q err %v", b.String(), err)
	}
}

func TestSeriesFromText(t *testing.T) {
	src := `# HELP h A histogram.
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
# TYPE s summary
s{quantile="0.5"} 1
s_count 1
up{job="a"} 1 1700000000000
up{job="a"} 1 1700000001000
`
	got, err := SeriesFromText([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ls := range got {
		names = append(names, formatSeries(ls, nil))
	}
	// The parser normalises le and quantile values, as Prometheus stores them.
	want := []string{`h_bucket{le="1.0"}`, `h_bucket{le="+Inf"}`, `h_sum{}`, `h_count{}`, `s{quantile="0.5"}`, `s_count{}`, `up{job="a"}`}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("series %q, want %q", names, want)
	}
	for _, bad := range []string{"up{job=\"a\" 1\n", "up 1 2 3 4\n", "{} 1\n"} {
		if _, err := SeriesFromText([]byte(bad)); err == nil {
			t.Errorf("SeriesFromText(%q) accepted", bad)
		}
	}
	if got, err := SeriesFromText(nil); err != nil || len(got) != 0 {
		t.Errorf("empty input: %v %v", got, err)
	}
}
