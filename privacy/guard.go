package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/batch"
)

// Action is what the guard does with a value a detector matched.
type Action uint8

const (
	// Off: the detector is not run.
	Off Action = iota
	// Shadow: the finding is counted and the value passes unchanged.
	Shadow
	// Hash replaces the value with pii:<detector>:<hex of its keyed
	// HMAC-SHA256>, so equal values still group and count.
	Hash
	// Redact replaces the value with pii:<detector>:redacted.
	Redact
	// Drop removes the series (an exemplar: the exemplar).
	Drop
	numActions
)

var actionNames = [numActions]string{"off", "shadow", "hash", "redact", "drop"}

// String returns the action's name as configuration and metrics spell it.
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return "unknown"
}

// ParseAction returns the action named s.
func ParseAction(s string) (Action, bool) {
	for a, n := range actionNames {
		if n == s {
			return Action(a), true
		}
	}
	return 0, false
}

const (
	outputPrefix = "pii:"
	redacted     = "redacted"
	// hashLen hex digits (80 bits) of the HMAC are kept: collisions among
	// the values of one label are out of reach, the value is not.
	hashLen = 20
)

// Defaults are the actions of a guard nobody configured: e-mail
// addresses, IP and MAC addresses and URLs with credentials are hashed;
// host names (which need their domains) and tokens are off.
func Defaults() [NumDetectors]Action {
	var a [NumDetectors]Action
	a[URLCredentials], a[Email], a[MAC], a[IP] = Hash, Hash, Hash, Hash
	return a
}

// Options configure a Guard.
type Options struct {
	// Actions is the action per detector.
	Actions [NumDetectors]Action
	// Metrics overrides Actions for the series of one metric name.
	Metrics map[string]map[Detector]Action
	// Shadow turns every action but Off into Shadow: count what would
	// happen, change nothing.
	Shadow bool
	// Key keys the HMAC of Hash; required when any action is Hash.
	Key []byte
	// HostnameSuffixes are the domains whose host names the Hostname
	// detector finds ("corp.example.com" finds "db1.corp.example.com").
	HostnameSuffixes []string
	// TokenMinLength is the shortest run the Token detector looks at
	// (default 32).
	TokenMinLength int
	// ExemptLabels are never inspected, besides __name__, le and quantile
	// (the cluster ID label is stamped after the guard runs; pass it here
	// so a client-sent one is not inspected either).
	ExemptLabels []string
	// Registerer, when set, receives telegate_privacy_findings_total.
	Registerer prometheus.Registerer
	// MetricsPrefix names the findings counter (default "telegate").
	MetricsPrefix string
	// Findings, when set, is the counter to count in instead of one
	// registered with Registerer: a caller that rebuilds its guard on
	// reload keeps one counter (NewFindingsCounter).
	Findings *prometheus.CounterVec
}

// NewFindingsCounter returns the findings counter, named
// <prefix>_privacy_findings_total, unregistered.
func NewFindingsCounter(prefix string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: prefix + "_privacy_findings_total",
		Help: "Label values the PII guard found, by metric name (at most 1000, then \"other\"), detector and the action taken (shadow: counted only).",
	}, []string{"metric", "detector", "action"})
}

// Guard applies Options to batches. It is safe for concurrent use.
type Guard struct {
	det      detector
	actions  [NumDetectors]Action
	byMetric map[string][NumDetectors]Action
	exempt   map[string]struct{}
	// exemptList holds the exempt names when they are few: comparing
	// lengths first beats hashing the name (the instance label, whose IP
	// address makes it suspicious, comes with every series).
	exemptList []string
	// exemptStart holds the first bytes of the exempt names: isExempt
	// tells a name that starts with another byte by one lookup.
	exemptStart [256]bool
	key         []byte
	macs        sync.Pool
	findings    *prometheus.CounterVec
	// names bounds the metric label of findings: past maxMetricNames
	// distinct names, findings count as "other".
	namesMu sync.Mutex
	names   map[string]struct{}
}

// maxMetricNames bounds the findings counter's metric label.
const maxMetricNames = 1000

// New returns a Guard for o.
func New(o Options) (*Guard, error) {
	g := &Guard{
		actions:  o.Actions,
		byMetric: map[string][NumDetectors]Action{},
		exempt:   map[string]struct{}{batch.MetricName: {}, "le": {}, "quantile": {}},
		key:      append([]byte(nil), o.Key...),
		names:    map[string]struct{}{},
	}
	for _, l := range o.ExemptLabels {
		g.exempt[l] = struct{}{}
	}
	if len(g.exempt) <= 16 {
		for l := range g.exempt {
			g.exemptList = append(g.exemptList, l)
		}
	}
	for l := range g.exempt {
		if l != "" {
			g.exemptStart[l[0]] = true
		}
	}
	for name, m := range o.Metrics {
		a := o.Actions
		for d, act := range m {
			if d >= NumDetectors || act >= numActions {
				return nil, fmt.Errorf("privacy: metric %q: unknown detector or action", name)
			}
			a[d] = act
		}
		g.byMetric[name] = a
	}
	if o.Shadow {
		shadow := func(a *[NumDetectors]Action) {
			for d := range a {
				if a[d] != Off {
					a[d] = Shadow
				}
			}
		}
		shadow(&g.actions)
		for name, a := range g.byMetric {
			shadow(&a)
			g.byMetric[name] = a
		}
	}
	needKey := false
	all := append([][NumDetectors]Action{g.actions}, mapValues(g.byMetric)...)
	for _, a := range all {
		for d, act := range a {
			if act >= numActions {
				return nil, fmt.Errorf("privacy: detector %s: unknown action", Detector(d))
			}
			if act != Off {
				g.det.on[d] = true
			}
			if act == Hash {
				needKey = true
			}
		}
	}
	if needKey && len(g.key) == 0 {
		return nil, errors.New("privacy: the hash action needs a key")
	}
	for _, s := range o.HostnameSuffixes {
		s = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
		if s == "" {
			continue
		}
		if !strings.HasPrefix(s, ".") {
			s = "." + s
		}
		if !validDomain(s[1:]) {
			return nil, fmt.Errorf("privacy: hostname suffix %q is not a DNS name", s[1:])
		}
		g.det.suffixes = append(g.det.suffixes, s)
	}
	if g.det.on[Hostname] && len(g.det.suffixes) == 0 {
		return nil, errors.New("privacy: the hostname detector needs hostname_suffixes")
	}
	g.det.tokenMinLen = o.TokenMinLength
	if g.det.tokenMinLen <= 0 {
		g.det.tokenMinLen = 32
	}
	g.det.tokenDetector = g.det.on[Token]
	g.det.suffixDots = 1 << 30
	for _, suf := range g.det.suffixes {
		g.det.suffixDots = min(g.det.suffixDots, strings.Count(suf, "."))
	}
	// The shortest value any detector can match: a@b.cc (6), 1.2.3.4 (7),
	// a::1 (4, IPv6), x://u@ (6); the token detector's minimum otherwise.
	g.det.minTrigger = 4
	g.macs.New = func() any { return hmac.New(sha256.New, g.key) }
	g.findings = o.Findings
	if g.findings == nil && o.Registerer != nil {
		prefix := o.MetricsPrefix
		if prefix == "" {
			prefix = "telegate"
		}
		g.findings = NewFindingsCounter(prefix)
		if err := o.Registerer.Register(g.findings); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func mapValues(m map[string][NumDetectors]Action) [][NumDetectors]Action {
	out := make([][NumDetectors]Action, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// isExempt reports whether the label named name is never inspected.
func (g *Guard) isExempt(name string) bool {
	if name != "" && !g.exemptStart[name[0]] {
		return false
	}
	if g.exemptList != nil {
		for _, e := range g.exemptList {
			if len(e) == len(name) && e == name {
				return true
			}
		}
		return false
	}
	_, ok := g.exempt[name]
	return ok
}

// Enabled reports whether any detector runs.
func (g *Guard) Enabled() bool {
	if g == nil {
		return false
	}
	for _, on := range g.det.on {
		if on {
			return true
		}
	}
	return false
}

// Finding is one label value a detector matched, and what was done.
type Finding struct {
	Metric, Label string
	Detector      Detector
	Action        Action
}

// Stats counts what Apply did to a batch.
type Stats struct {
	// Findings counts label values found, per action taken.
	Findings [numActions]int
	// DroppedSeries and DroppedSamples count series removed by Drop
	// (samples: float and histogram points).
	DroppedSeries, DroppedSamples int
	// DroppedExemplars counts exemplars removed by Drop.
	DroppedExemplars int
}

// Found returns the number of values found, whatever was done with them.
func (s Stats) Found() int {
	n := 0
	for _, c := range s.Findings {
		n += c
	}
	return n
}

func (g *Guard) actionsFor(metric string) *[NumDetectors]Action {
	if len(g.byMetric) > 0 {
		if a, ok := g.byMetric[metric]; ok {
			return &a
		}
	}
	return &g.actions
}

// Apply inspects every series of b in place: values found are hashed or
// redacted, series (or exemplars) dropped, findings counted. A value it
// replaces is a new string; the batch's other strings are untouched.
func (g *Guard) Apply(b *batch.Batch) Stats {
	var st Stats
	if !g.Enabled() {
		return st
	}
	w := 0
	for i := range b.Series {
		s := &b.Series[i]
		if g.ApplySeries(s, &st) {
			continue
		}
		if w != i {
			b.Series[w] = *s
		}
		w++
	}
	clear(b.Series[w:])
	b.Series = b.Series[:w]
	return st
}

// ApplySeries is Apply for one series, for a caller that walks the batch
// itself: it rewrites s's labels and exemplars in place, adds to st, and
// reports whether s must be dropped. The guard must be Enabled.
func (g *Guard) ApplySeries(s *batch.Series, st *Stats) (drop bool) {
	metric := ""
	acts := &g.actions
	if len(g.byMetric) > 0 {
		metric = s.Name()
		acts = g.actionsFor(metric)
	}
	if g.labels(s.Labels, s.Labels, metric, acts, st) {
		st.DroppedSeries++
		st.DroppedSamples += s.Points()
		return true
	}
	if len(s.Exemplars) > 0 {
		ex := s.Exemplars[:0]
		for j := range s.Exemplars {
			if g.labels(s.Exemplars[j].Labels, s.Labels, metric, acts, st) {
				st.DroppedExemplars++
				continue
			}
			ex = append(ex, s.Exemplars[j])
		}
		s.Exemplars = ex
	}
	return false
}

// labels applies acts to ls, labels of the series named by series' labels
// (for the metric name, looked up only when something is found), and
// reports whether the owner must be dropped.
func (g *Guard) labels(ls, series []batch.Label, metric string, acts *[NumDetectors]Action, st *Stats) bool {
	drop := false
	for i := range ls {
		l := &ls[i]
		// check, inline: an exempt label (the metric name, the stripped
		// ones, ...; see New) is told by its name before its value is
		// scanned, and most values stop at the cheap test.
		if g.isExempt(l.Name) || !g.det.suspicious(l.Value) {
			continue
		}
		d, act, ok := g.classify(l.Name, l.Value, acts)
		if !ok {
			continue
		}
		st.Findings[act]++
		if metric == "" {
			metric = nameOf(series)
		}
		g.count(metric, d, act)
		if act == Drop {
			drop = true
			continue
		}
		l.Value = g.rewrite(d, act, l.Value)
	}
	return drop
}

// check returns the detector that finds v in the label named name and the
// action acts gives it; ok is false when there is nothing to do. The
// exemption is told by the name (mostly one table lookup), most values
// are not suspicious, and both are cheaper than finding.
func (g *Guard) check(name, v string, acts *[NumDetectors]Action) (Detector, Action, bool) {
	if g.isExempt(name) || !g.det.suspicious(v) {
		return 0, Off, false
	}
	return g.classify(name, v, acts)
}

// classify is check for a label that is not exempt and whose value is
// suspicious.
func (g *Guard) classify(name, v string, acts *[NumDetectors]Action) (Detector, Action, bool) {
	d, found := g.det.find(name, v)
	if !found || acts[d] == Off {
		// Off: a detector on for another metric only.
		return 0, Off, false
	}
	return d, acts[d], true
}

// rewrite returns v as act leaves it: hashed, redacted, or as it is
// (shadow; drop removes the owner instead).
func (g *Guard) rewrite(d Detector, act Action, v string) string {
	switch act {
	case Hash:
		return g.hash(d, v)
	case Redact:
		return outputPrefix + d.String() + ":" + redacted
	}
	return v
}

func nameOf(ls []batch.Label) string {
	for _, l := range ls {
		if l.Name == batch.MetricName {
			return l.Value
		}
	}
	return ""
}

// Value applies the guard to one label value of a series of metric, for
// callers that do not hold a batch (the client's transformer): the value
// to keep and whether the series must be dropped. Findings are counted.
func (g *Guard) Value(metric, label, value string) (string, bool) {
	if !g.Enabled() {
		return value, false
	}
	d, act, ok := g.check(label, value, g.actionsFor(metric))
	if !ok {
		return value, false
	}
	g.count(metric, d, act)
	if act == Drop {
		return value, true
	}
	return g.rewrite(d, act, value), false
}

// Inspect returns what Apply would find in ls, for explain; it changes
// nothing and counts nothing.
func (g *Guard) Inspect(ls []batch.Label) []Finding {
	if !g.Enabled() {
		return nil
	}
	var out []Finding
	metric := nameOf(ls)
	acts := g.actionsFor(metric)
	for _, l := range ls {
		if d, act, ok := g.check(l.Name, l.Value, acts); ok {
			out = append(out, Finding{Metric: metric, Label: l.Name, Detector: d, Action: act})
		}
	}
	return out
}

// hash returns the keyed hash of v as the guard writes it.
func (g *Guard) hash(d Detector, v string) string {
	m := g.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(v))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	g.macs.Put(m)
	var buf [len(outputPrefix) + 16 + 1 + hashLen]byte
	out := append(buf[:0], outputPrefix...)
	out = append(out, d.String()...)
	out = append(out, ':')
	out = hex.AppendEncode(out, sum[:hashLen/2])
	return string(out)
}

func (g *Guard) count(metric string, d Detector, a Action) {
	if g.findings == nil {
		return
	}
	g.namesMu.Lock()
	if _, ok := g.names[metric]; !ok {
		if len(g.names) >= maxMetricNames {
			metric = "other"
		} else {
			g.names[metric] = struct{}{}
		}
	}
	g.namesMu.Unlock()
	g.findings.WithLabelValues(metric, d.String(), a.String()).Inc()
}
