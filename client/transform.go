package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Reasons a sample is filtered out by Transform.
const (
	FilterInvalid   = "invalid"   // bad name, bad label, missing value
	FilterStale     = "stale"     // Prometheus staleness marker
	FilterTooOld    = "too_old"   // timestamp older than the max age
	FilterDuplicate = "duplicate" // same labels twice after the transforms
	FilterConflict  = "conflict"  // a rename met a family of another type
	// FilterUnselected counts scraped samples no selector matched (scrape
	// mode applies the selectors on the client; Transform never does).
	FilterUnselected = "unselected"
)

// FilterReasons lists every reason, for metrics.
var FilterReasons = []string{FilterInvalid, FilterStale, FilterTooOld, FilterDuplicate, FilterConflict, FilterUnselected}

// staleNaN is the bit pattern Prometheus uses for staleness markers.
const staleNaN uint64 = 0x7ff0000000000002

// AnonymizedLength is the number of hex characters an anonymized value
// keeps (128 bits of HMAC-SHA256).
const AnonymizedLength = 32

// Transformer turns a federated snapshot into what is sent. The zero value
// only validates, sorts and de-duplicates.
type Transformer struct {
	// Rename maps family names (exact) to new names.
	Rename map[string]string
	// Labels are set on every metric, replacing a label of the same name.
	Labels map[string]string
	// Elide names labels removed from every metric.
	Elide []string
	// Anonymize names labels whose values are replaced by
	// Anonymize(Salt, value).
	Anonymize []string
	Salt      string
	// MaxAge drops samples whose timestamp is older than now-MaxAge
	// (0: no bound).
	MaxAge time.Duration
}

// TransformStats counts samples (series as federation exposes them: one per
// counter/gauge/untyped, buckets+2 per classic histogram, one per native
// histogram plus its buckets+2 if it also has classic buckets, quantiles+2
// per summary).
type TransformStats struct {
	In       int
	Out      int
	Filtered map[string]int
}

// Anonymize is the hash applied to the values of anonymized labels: the
// first AnonymizedLength hex characters of HMAC-SHA256 keyed with salt.
// The same salt and value always give the same result.
func Anonymize(salt, value string) string {
	m := hmac.New(sha256.New, []byte(salt))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))[:AnonymizedLength]
}

// Transform applies, in order: validation (families with invalid names,
// metrics without the value their type needs, invalid or duplicate label
// names, invalid UTF-8, staleness markers and samples older than MaxAge
// are dropped; empty label values are removed, as they mean "absent"),
// elision, renames, extra labels and anonymization, then merges families
// that now share a name (same type) and drops duplicate label sets
// (keeping the newest sample). Output is sorted by family name and label
// set. fams is not modified; the output shares its sample values (the
// Gauge, Counter, ... messages), which nothing modifies, rather than
// copying them.
func (t *Transformer) Transform(fams []*dto.MetricFamily, now time.Time) ([]*dto.MetricFamily, TransformStats) {
	st := TransformStats{Filtered: map[string]int{}}
	elide := set(t.Elide)
	anon := set(t.Anonymize)
	// The added labels, built once and shared by every series.
	extra := make([]*dto.LabelPair, 0, len(t.Labels))
	for name, value := range t.Labels {
		if anon[name] {
			value = Anonymize(t.Salt, value)
		}
		extra = append(extra, &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)})
	}
	var minTs int64 = math.MinInt64
	if t.MaxAge > 0 {
		minTs = now.Add(-t.MaxAge).UnixMilli()
	}
	byName := map[string]*dto.MetricFamily{}
	for _, in := range fams {
		if in == nil {
			continue
		}
		n := 0
		for _, m := range in.Metric {
			n += sampleCount(in.GetType(), m)
		}
		st.In += n
		name := in.GetName()
		if !isMetricName(name) || !knownType(in.GetType()) {
			st.Filtered[FilterInvalid] += n
			continue
		}
		if to, ok := t.Rename[name]; ok {
			name = to
		}
		out := byName[name]
		if out == nil {
			out = &dto.MetricFamily{Name: proto.String(name), Help: in.Help, Type: in.Type, Unit: in.Unit}
		} else if out.GetType() != in.GetType() {
			st.Filtered[FilterConflict] += n
			continue
		}
		for _, m := range in.Metric {
			c := sampleCount(in.GetType(), m)
			if m == nil {
				continue
			}
			if reason := checkMetric(in.GetType(), m, minTs); reason != "" {
				st.Filtered[reason] += c
				continue
			}
			labels, ok := t.labels(m.Label, elide, anon, extra)
			if !ok {
				st.Filtered[FilterInvalid] += c
				continue
			}
			out.Metric = append(out.Metric, shallowMetric(m, labels))
		}
		byName[name] = out
	}
	result := make([]*dto.MetricFamily, 0, len(byName))
	for _, f := range byName {
		f.Metric = dedupe(f, st.Filtered)
		if len(f.Metric) == 0 {
			continue
		}
		for _, m := range f.Metric {
			st.Out += sampleCount(f.GetType(), m)
		}
		result = append(result, f)
	}
	sort.Slice(result, func(i, j int) bool { return result[i].GetName() < result[j].GetName() })
	for reason, n := range st.Filtered {
		if n == 0 {
			delete(st.Filtered, reason)
		}
	}
	return result, st
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

func knownType(t dto.MetricType) bool {
	switch t {
	case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED, dto.MetricType_SUMMARY,
		dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return true
	}
	return false
}

// sampleCount is how many series m contributes in the exposition format.
func sampleCount(t dto.MetricType, m *dto.Metric) int {
	if m == nil {
		return 0
	}
	switch t {
	case dto.MetricType_SUMMARY:
		return len(m.GetSummary().GetQuantile()) + 2
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.GetHistogram()
		bs := h.GetBucket()
		n := len(bs)
		if isNative(h) {
			if n == 0 {
				return 1 // the native histogram only
			}
			n++
		}
		if n == 0 || !math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
			n++ // the +Inf bucket
		}
		return n + 2
	}
	return 1
}

// isNative tells whether Prometheus (and the gateway) take h as a native
// histogram: it has spans (an empty "no-op" one marks a native histogram
// without observations), a zero threshold or a zero count. Its classic
// series are then exposed only if it has classic buckets.
func isNative(h *dto.Histogram) bool {
	return len(h.GetPositiveSpan()) > 0 || len(h.GetNegativeSpan()) > 0 || h.GetZeroThreshold() > 0 || h.GetZeroCount() > 0
}

// checkMetric returns why m must be dropped, or "".
func checkMetric(t dto.MetricType, m *dto.Metric, minTs int64) string {
	var v *float64
	switch t {
	case dto.MetricType_COUNTER:
		if m.Counter == nil {
			return FilterInvalid
		}
		v = m.Counter.Value
	case dto.MetricType_GAUGE:
		if m.Gauge == nil {
			return FilterInvalid
		}
		v = m.Gauge.Value
	case dto.MetricType_UNTYPED:
		if m.Untyped == nil {
			return FilterInvalid
		}
		v = m.Untyped.Value
	case dto.MetricType_SUMMARY:
		if m.Summary == nil {
			return FilterInvalid
		}
		v = m.Summary.SampleSum
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		if m.Histogram == nil {
			return FilterInvalid
		}
		v = m.Histogram.SampleSum
	}
	if v != nil && math.Float64bits(*v) == staleNaN {
		return FilterStale
	}
	if m.TimestampMs != nil && m.GetTimestampMs() < minTs {
		return FilterTooOld
	}
	return ""
}

// labels builds the output label set of one metric, sorted by name, from
// in and the added labels extra; ok is false when the input labels are
// invalid. A label kept as it is shares in's pair rather than copying it.
func (t *Transformer) labels(in []*dto.LabelPair, elide, anon map[string]bool, extra []*dto.LabelPair) ([]*dto.LabelPair, bool) {
	out := make([]*dto.LabelPair, 0, len(in)+len(extra))
	var seen map[string]bool // only for many labels; few are compared pairwise
	if len(in) > 16 {
		seen = make(map[string]bool, len(in))
	}
	for i, l := range in {
		if l == nil {
			continue
		}
		name, value := l.GetName(), l.GetValue()
		if !isLabelName(name) || !utf8.ValidString(value) || repeated(in[:i], name, seen) {
			return nil, false
		}
		if value == "" || elide[name] || name == "__name__" {
			continue
		}
		if _, overridden := t.Labels[name]; overridden {
			continue
		}
		if anon[name] {
			l = &dto.LabelPair{Name: l.Name, Value: proto.String(Anonymize(t.Salt, value))}
		}
		out = append(out, l)
	}
	out = append(out, extra...)
	sortLabels(out)
	return out, true
}

func sortLabels(ls []*dto.LabelPair) {
	slices.SortFunc(ls, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
}

// repeated reports whether name is among the labels before it: a pairwise
// scan of before, or, when seen is not nil, a lookup in seen (which it
// then records name in).
func repeated(before []*dto.LabelPair, name string, seen map[string]bool) bool {
	if seen != nil {
		if seen[name] {
			return true
		}
		seen[name] = true
		return false
	}
	for _, l := range before {
		if l != nil && l.GetName() == name {
			return true
		}
	}
	return false
}

// isMetricName is metricNameRE without the regexp engine: the hot path
// checks every family of every federate response.
func isMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isLabelName is labelNameRE without the regexp engine (every label of
// every series).
func isLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// shallowMetric is m with labels in place of its own: a new message that
// shares m's sample value, so neither the values nor m are copied.
func shallowMetric(m *dto.Metric, labels []*dto.LabelPair) *dto.Metric {
	return &dto.Metric{
		Label:       labels,
		Gauge:       m.Gauge,
		Counter:     m.Counter,
		Summary:     m.Summary,
		Untyped:     m.Untyped,
		Histogram:   m.Histogram,
		TimestampMs: m.TimestampMs,
	}
}

// signature identifies a sorted label set.
func signature(ls []*dto.LabelPair) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.GetName())
		b.WriteByte(0xff)
		b.WriteString(l.GetValue())
		b.WriteByte(0xfe)
	}
	return b.String()
}

// dedupe keeps one metric per label set (the newest) and sorts them.
func dedupe(f *dto.MetricFamily, filtered map[string]int) []*dto.Metric {
	type keyed struct {
		sig string
		m   *dto.Metric
	}
	bySig := make(map[string]int, len(f.Metric))
	kept := make([]keyed, 0, len(f.Metric))
	for _, m := range f.Metric {
		sig := signature(m.Label)
		if i, ok := bySig[sig]; ok {
			old := kept[i].m
			if m.GetTimestampMs() > old.GetTimestampMs() {
				kept[i].m = m
				m = old
			}
			filtered[FilterDuplicate] += sampleCount(f.GetType(), m)
			continue
		}
		bySig[sig] = len(kept)
		kept = append(kept, keyed{sig, m})
	}
	// Each signature is built once, not once per comparison.
	slices.SortFunc(kept, func(a, b keyed) int { return strings.Compare(a.sig, b.sig) })
	out := make([]*dto.Metric, len(kept))
	for i, k := range kept {
		out[i] = k.m
	}
	return out
}

// WithLabels returns a copy of fams with labels set on every metric,
// replacing labels of the same name (the token labels of /authorize: the
// identity comes from the credentials, never from the data). fams is not
// modified: the families, metrics and label slices are new; the label
// pairs and sample values, which nothing modifies, are shared.
func WithLabels(fams []*dto.MetricFamily, labels map[string]string) []*dto.MetricFamily {
	add := make([]*dto.LabelPair, 0, len(labels))
	for k, v := range labels {
		add = append(add, &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)})
	}
	out := make([]*dto.MetricFamily, len(fams))
	for i, f := range fams {
		nf := &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit, Metric: make([]*dto.Metric, len(f.Metric))}
		for j, m := range f.Metric {
			ls := m.Label
			if len(add) > 0 {
				ls = make([]*dto.LabelPair, 0, len(m.Label)+len(add))
				for _, l := range m.Label {
					if _, ok := labels[l.GetName()]; !ok {
						ls = append(ls, l)
					}
				}
				ls = append(ls, add...)
				sortLabels(ls)
			} else {
				ls = append([]*dto.LabelPair(nil), ls...)
			}
			nf.Metric[j] = shallowMetric(m, ls)
		}
		out[i] = nf
	}
	return out
}

// CountSamples counts the exposition-format samples of fams.
func CountSamples(fams []*dto.MetricFamily) int {
	n := 0
	for _, f := range fams {
		for _, m := range f.Metric {
			n += sampleCount(f.GetType(), m)
		}
	}
	return n
}
