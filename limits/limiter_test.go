package limits

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const overridesYAML = `overrides:
  big:
    active_series: {max: 500}
    samples_rate: {per_second: 100, burst: 1000}
  trial:
    expires: 2027-01-31
    active_series: {enforce: false}
  old:
    expires: 2020-01-01
    active_series: {max: 1}
`

func TestParseOverridesAndExpiry(t *testing.T) {
	o, err := ParseOverrides([]byte(overridesYAML))
	if err != nil {
		t.Fatal(err)
	}
	def := Budget{ActiveSeries: ActiveSeries{Max: 100, Window: time.Minute, Enforce: true}, SamplesRate: SamplesRate{PerSecond: 10, Enforce: true}}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if b := o.For("big", def, now); b.ActiveSeries.Max != 500 || !b.ActiveSeries.Enforce || b.SamplesRate.PerSecond != 100 || b.SamplesRate.Burst != 1000 || b.ActiveSeries.Window != time.Minute {
		t.Fatalf("big: %+v", b)
	}
	if b := o.For("trial", def, now); b.ActiveSeries.Enforce || b.ActiveSeries.Max != 100 {
		t.Fatalf("trial: %+v", b)
	}
	// Expires at 00:00 UTC of the date.
	if b := o.For("trial", def, time.Date(2027, 1, 30, 23, 59, 59, 0, time.UTC)); b.ActiveSeries.Enforce {
		t.Fatal("trial expired a day early")
	}
	if b := o.For("trial", def, time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)); !b.ActiveSeries.Enforce {
		t.Fatal("expired override still applies")
	}
	if b := o.For("old", def, now); b.ActiveSeries.Max != 100 {
		t.Fatalf("expired override applied: %+v", b)
	}
	if b := o.For("nobody", def, now); b != def {
		t.Fatal("cluster without override changed")
	}
	if a, e := o.Counts(now); a != 2 || e != 1 {
		t.Fatalf("counts %d %d", a, e)
	}
	var nilO *Overrides
	if nilO.For("big", def, now) != def {
		t.Fatal("nil overrides")
	}
}

func TestParseOverridesErrors(t *testing.T) {
	for _, bad := range []string{
		"overrides:\n  a:\n    expires: tomorrow\n",
		"overrides:\n  a:\n    active_series: {max: -1}\n",
		"overrides:\n  a:\n    active_series: {maxx: 1}\n",
		"overrides:\n  a:\n    samples_rate: {per_second: -3}\n",
		"overrides:\n  a:\n    active_series: {window: 0s}\n",
		"overrides:\n  \"\":\n    active_series: {max: 1}\n",
		"nope: 1\n",
	} {
		if _, err := ParseOverrides([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if o, err := ParseOverrides(nil); err != nil || o == nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestLimiterSamplesRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(Options{
		Defaults: Budget{SamplesRate: SamplesRate{PerSecond: 10, Burst: 100, Enforce: true}},
		Now:      func() time.Time { return now },
	})
	ctx := context.Background()
	if d, _ := l.TakeSamples(ctx, "c", 80); !d.OK {
		t.Fatal("80 of 100 refused")
	}
	d, _ := l.TakeSamples(ctx, "c", 30)
	if d.OK || d.Wait != time.Second || d.Limit != 100 || !d.Enforce {
		t.Fatalf("over the bucket: %+v", d)
	}
	now = now.Add(time.Second)
	if d, _ := l.TakeSamples(ctx, "c", 30); !d.OK {
		t.Fatal("refilled bucket refused")
	}
	// A request bigger than the bucket passes on a full bucket, then the
	// debt is paid back before anything else passes.
	if d, _ := l.TakeSamples(ctx, "big", 250); !d.OK {
		t.Fatal("oversized request on a full bucket refused")
	}
	if d, _ := l.TakeSamples(ctx, "big", 1); d.OK {
		t.Fatal("bucket in debt admitted")
	}
	now = now.Add(16 * time.Second)
	if d, _ := l.TakeSamples(ctx, "big", 1); !d.OK {
		t.Fatal("debt not paid back after 16s")
	}
}

func TestLimiterDefaultsAndOverrides(t *testing.T) {
	l := New(Options{UploadInterval: 4*time.Minute + 30*time.Second, Defaults: Budget{SamplesRate: SamplesRate{PerSecond: 2}}})
	b := l.Budget("c", time.Now())
	if b.ActiveSeries.Window != 9*time.Minute || b.SamplesRate.Burst != 540 {
		t.Fatalf("defaults: %+v", b)
	}
	o, _ := ParseOverrides([]byte("overrides:\n  c:\n    active_series: {max: 3}\n"))
	l.SetOverrides(o)
	adm := make([]bool, 5)
	d, err := l.AdmitSeries(context.Background(), "c", []uint64{1, 2, 3, 4, 5}, adm)
	if err != nil || d.Refused != 2 || d.Limit != 3 || d.Enforce {
		t.Fatalf("override budget: %+v %v", d, err)
	}
	d, _ = l.AdmitSeries(context.Background(), "other", []uint64{1, 2, 3, 4, 5}, adm)
	if d.Refused != 0 || countTrue(adm) != 5 {
		t.Fatalf("default budget is off: %+v", d)
	}
}

type failingStore struct{}

var errDown = errors.New("connection refused")

func (failingStore) AdmitSeries(context.Context, string, []uint64, int, time.Duration, time.Time, []bool) (int, error) {
	return 0, errDown
}
func (failingStore) TakeSamples(context.Context, string, int, float64, int, time.Time) (bool, time.Duration, error) {
	return false, 0, errDown
}
func (failingStore) ReserveUpload(context.Context, string, time.Duration, time.Time) (func(bool), time.Duration, bool, error) {
	return nil, 0, false, errDown
}

func TestLimiterStoreFailure(t *testing.T) {
	def := Budget{ActiveSeries: ActiveSeries{Max: 1, Enforce: true}, SamplesRate: SamplesRate{PerSecond: 1, Enforce: true}, UploadInterval: UploadInterval{Enforce: true}}
	ctx := context.Background()
	for _, open := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		l := New(Options{Defaults: def, UploadInterval: time.Minute, Store: failingStore{}, FailOpen: open, Registerer: reg})
		adm := make([]bool, 3)
		d, err := l.AdmitSeries(ctx, "c", []uint64{1, 2, 3}, adm)
		_, rerr := l.TakeSamples(ctx, "c", 5)
		u, uerr := l.ReserveUpload(ctx, "c", time.Now())
		if open {
			if err != nil || rerr != nil || uerr != nil || d.Refused != 0 || countTrue(adm) != 3 || !u.OK {
				t.Fatalf("fail open: %v %v %v %+v", err, rerr, uerr, d)
			}
			if n := value(l.failedOpen.WithLabelValues("active_series")); n != 1 {
				t.Fatalf("failed_open metric %v", n)
			}
		} else {
			if !errors.Is(err, ErrUnavailable) || !errors.Is(rerr, ErrUnavailable) || !errors.Is(uerr, ErrUnavailable) {
				t.Fatalf("fail closed: %v %v %v", err, rerr, uerr)
			}
		}
		if n := value(l.storeErrors.WithLabelValues("samples_rate")); n != 1 {
			t.Fatalf("store errors metric %v", n)
		}
	}
}

func TestOverridesReloader(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	l := New(Options{Defaults: Budget{ActiveSeries: ActiveSeries{Max: 10, Enforce: true}}, Now: func() time.Time { return now }})
	content := "overrides:\n  a:\n    active_series: {max: 20}\n"
	reg := prometheus.NewRegistry()
	r := NewOverridesReloader(l, "overrides.yaml", func() ([]byte, error) { return []byte(content), nil }, nil, reg)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if l.Budget("a", now).ActiveSeries.Max != 20 {
		t.Fatal("override not applied")
	}
	content = "overrides:\n  a:\n    active_series: {max: nope}\n"
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "overrides.yaml") {
		t.Fatalf("bad file: %v", err)
	}
	if l.Budget("a", now).ActiveSeries.Max != 20 || value(r.success) != 0 {
		t.Fatal("bad file replaced the active overrides")
	}
	content = "overrides:\n  a:\n    expires: 2026-06-02\n    active_series: {max: 30}\n"
	r.Reload()
	if l.Budget("a", now).ActiveSeries.Max != 30 || value(r.success) != 1 {
		t.Fatal("reload after fix")
	}
	now = now.Add(24 * time.Hour)
	r.Reload()
	if l.Budget("a", now).ActiveSeries.Max != 10 || value(r.count.WithLabelValues("expired")) != 1 {
		t.Fatal("expired override still applies")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx, time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// FuzzParseOverrides: any file either parses or errors; never panics, and
// a parsed file answers For for any cluster.
func FuzzParseOverrides(f *testing.F) {
	f.Add([]byte(overridesYAML))
	f.Add([]byte("overrides:\n  a: {expires: 2027-01-31T00:00:00Z}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOverrides(data)
		if err != nil {
			return
		}
		for c := range o.entries {
			o.For(c, Budget{}, time.Now())
		}
	})
}
