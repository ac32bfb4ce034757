package limits

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// Budget is what one cluster may send. A zero limit is no limit.
type Budget struct {
	ActiveSeries   ActiveSeries
	SamplesRate    SamplesRate
	UploadInterval UploadInterval
}

// ActiveSeries bounds the series a cluster has sent within Window.
type ActiveSeries struct {
	Max    int
	Window time.Duration
	// Enforce false is shadow mode: count what would be dropped, keep it.
	Enforce bool
}

// SamplesRate is a token bucket of samples per second.
type SamplesRate struct {
	PerSecond float64
	Burst     int
	Enforce   bool
}

// UploadInterval is the one-/upload-per-interval rule; the interval itself
// is global (limits.upload_interval).
type UploadInterval struct {
	Enforce bool
}

// Overrides are per-cluster budgets from the overrides file, each with an
// optional expiry.
type Overrides struct {
	entries map[string]override
	hash    string
}

type override struct {
	expires        time.Time // zero: never
	activeSeries   *activeSeriesYAML
	samplesRate    *samplesRateYAML
	uploadInterval *uploadIntervalYAML
}

type overridesFile struct {
	Overrides map[string]overrideYAML `yaml:"overrides"`
}

type overrideYAML struct {
	Expires        string              `yaml:"expires"`
	ActiveSeries   *activeSeriesYAML   `yaml:"active_series"`
	SamplesRate    *samplesRateYAML    `yaml:"samples_rate"`
	UploadInterval *uploadIntervalYAML `yaml:"upload_interval"`
}

type activeSeriesYAML struct {
	Max     *int            `yaml:"max"`
	Window  *model.Duration `yaml:"window"`
	Enforce *bool           `yaml:"enforce"`
}

type samplesRateYAML struct {
	PerSecond *float64 `yaml:"per_second"`
	Burst     *int     `yaml:"burst"`
	Enforce   *bool    `yaml:"enforce"`
}

type uploadIntervalYAML struct {
	Enforce *bool `yaml:"enforce"`
}

// ParseOverrides reads an overrides file:
//
//	overrides:
//	  cluster-a:
//	    expires: 2027-01-31          # optional; from 00:00 UTC that day the override no longer applies
//	    active_series: {max: 20000, window: 10m, enforce: true}
//	    samples_rate: {per_second: 100, burst: 30000, enforce: false}
//	    upload_interval: {enforce: false}
//
// Every field is optional; unset fields keep the global default. Unknown
// keys are errors.
func ParseOverrides(data []byte) (*Overrides, error) {
	var f overridesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, errors.New(strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n ", ""), "yaml: "))
	}
	sum := sha256.Sum256(data)
	o := &Overrides{entries: make(map[string]override, len(f.Overrides)), hash: fmt.Sprintf("%x", sum[:8])}
	var errs []error
	for cluster, y := range f.Overrides {
		if cluster == "" || len(cluster) > 256 || !utf8.ValidString(cluster) {
			errs = append(errs, fmt.Errorf("overrides: %q is not a valid cluster ID", cluster))
			continue
		}
		var ov override
		if y.Expires != "" {
			t, err := parseExpiry(y.Expires)
			if err != nil {
				errs = append(errs, fmt.Errorf("overrides.%s.expires: %w", cluster, err))
			}
			ov.expires = t
		}
		if a := y.ActiveSeries; a != nil {
			if a.Max != nil && *a.Max < 0 {
				errs = append(errs, fmt.Errorf("overrides.%s.active_series.max: must not be negative", cluster))
			}
			if a.Window != nil && *a.Window <= 0 {
				errs = append(errs, fmt.Errorf("overrides.%s.active_series.window: must be positive", cluster))
			}
		}
		if s := y.SamplesRate; s != nil {
			if s.PerSecond != nil && !(*s.PerSecond >= 0) {
				errs = append(errs, fmt.Errorf("overrides.%s.samples_rate.per_second: must not be negative", cluster))
			}
			if s.Burst != nil && *s.Burst < 0 {
				errs = append(errs, fmt.Errorf("overrides.%s.samples_rate.burst: must not be negative", cluster))
			}
		}
		ov.activeSeries, ov.samplesRate, ov.uploadInterval = y.ActiveSeries, y.SamplesRate, y.UploadInterval
		o.entries[cluster] = ov
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// parseExpiry accepts a date (2027-01-31, meaning 00:00 UTC that day) or
// an RFC 3339 time.
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2027-01-31) nor an RFC 3339 time", s)
	}
	return t, nil
}

// Hash identifies the file content the overrides came from.
func (o *Overrides) Hash() string {
	if o == nil {
		return ""
	}
	return o.hash
}

// Counts returns how many overrides apply at now and how many expired.
func (o *Overrides) Counts(now time.Time) (active, expired int) {
	if o == nil {
		return 0, 0
	}
	for _, ov := range o.entries {
		if ov.expired(now) {
			expired++
		} else {
			active++
		}
	}
	return active, expired
}

// Expired returns the clusters whose override expired at now, sorted.
func (o *Overrides) Expired(now time.Time) []string {
	if o == nil {
		return nil
	}
	var out []string
	for c, ov := range o.entries {
		if ov.expired(now) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

func (ov override) expired(now time.Time) bool {
	return !ov.expires.IsZero() && !now.Before(ov.expires)
}

// For returns def with cluster's override applied, if it has one that has
// not expired at now.
func (o *Overrides) For(cluster string, def Budget, now time.Time) Budget {
	if o == nil {
		return def
	}
	ov, ok := o.entries[cluster]
	if !ok || ov.expired(now) {
		return def
	}
	b := def
	if a := ov.activeSeries; a != nil {
		set(&b.ActiveSeries.Max, a.Max)
		if a.Window != nil {
			b.ActiveSeries.Window = time.Duration(*a.Window)
		}
		set(&b.ActiveSeries.Enforce, a.Enforce)
	}
	if s := ov.samplesRate; s != nil {
		set(&b.SamplesRate.PerSecond, s.PerSecond)
		set(&b.SamplesRate.Burst, s.Burst)
		set(&b.SamplesRate.Enforce, s.Enforce)
	}
	if u := ov.uploadInterval; u != nil {
		set(&b.UploadInterval.Enforce, u.Enforce)
	}
	return b
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// sameContent reports whether data is what o was parsed from.
func (o *Overrides) sameContent(data []byte) bool {
	if o == nil {
		return false
	}
	sum := sha256.Sum256(data)
	return bytes.Equal([]byte(o.hash), []byte(fmt.Sprintf("%x", sum[:8])))
}
