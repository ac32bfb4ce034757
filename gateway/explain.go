package gateway

import (
	"container/list"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/privacy"
)

// lastUploads keeps the last decoded /upload body (the delimited
// MetricFamilies, one copy) of the clusters someone asked GET /explain
// about, so it can answer "why is my metric not showing up?". Copying every
// cluster's body would cost memory and GC on the hot path for a question
// few clusters ask: a cluster is armed by its first GET /explain, and only
// armed clusters' uploads are kept. Bounded by total bytes (least recently
// uploading evicted first) and by the number of armed clusters.
type lastUploads struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // of *lastUpload, most recent at the front
	byID  map[string]*list.Element
	armed map[string]time.Time // cluster -> when it was armed
}

const (
	maxArmed = 1024
	armedTTL = time.Hour
)

// arm makes put keep cluster's next uploads for the next hour.
func (l *lastUploads) arm(cluster string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.armed) >= maxArmed {
		for id, at := range l.armed {
			if now.Sub(at) > armedTTL {
				delete(l.armed, id)
			}
		}
		if len(l.armed) >= maxArmed {
			return
		}
	}
	l.armed[cluster] = now
}

// wants reports, without copying anything, whether put would keep an
// upload of cluster.
func (l *lastUploads) wants(cluster string, now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.armed[cluster]
	if ok && now.Sub(at) > armedTTL {
		delete(l.armed, cluster)
		return false
	}
	return ok
}

type lastUpload struct {
	cluster string
	at      time.Time
	data    []byte
}

func newLastUploads(maxBytes int64) *lastUploads {
	return &lastUploads{max: maxBytes, order: list.New(), byID: map[string]*list.Element{}, armed: map[string]time.Time{}}
}

// put stores a copy of data as cluster's last upload. Bodies larger than
// a quarter of the budget are not kept (one cluster must not evict all).
func (l *lastUploads) put(cluster string, data []byte, at time.Time) {
	if !l.wants(cluster, at) || int64(len(data)) > l.max/4 {
		return
	}
	cp := append([]byte(nil), data...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byID[cluster]; ok {
		u := e.Value.(*lastUpload)
		l.size += int64(len(cp) - len(u.data))
		u.data, u.at = cp, at
		l.order.MoveToFront(e)
	} else {
		l.byID[cluster] = l.order.PushFront(&lastUpload{cluster: cluster, at: at, data: cp})
		l.size += int64(len(cp))
	}
	for l.size > l.max {
		e := l.order.Back()
		u := e.Value.(*lastUpload)
		l.order.Remove(e)
		delete(l.byID, u.cluster)
		l.size -= int64(len(u.data))
	}
}

func (l *lastUploads) get(cluster string) (lastUpload, bool) {
	if l == nil {
		return lastUpload{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byID[cluster]
	if !ok {
		return lastUpload{}, false
	}
	return *e.Value.(*lastUpload), true
}

// handleExplain is GET /explain: for the authenticated cluster (the JWT of
// /authorize), what the active allowlist and label stripping did to its
// last /upload, metric by metric. ?format=text gives the same report as
// `telegate allowlist explain`.
func (g *Gateway) handleExplain(w http.ResponseWriter, r *http.Request) int {
	id, err := g.verifyJWT(r)
	if err != nil {
		return g.writeError(w, r, err)
	}
	if g.lastUploads == nil {
		return g.writeError(w, r, newError(http.StatusNotFound, "explain_disabled", "explain is disabled on this gateway (allowlist.explain_cache_bytes: 0)"))
	}
	now := g.opts.Now()
	g.lastUploads.arm(id.ClusterID, now)
	last, ok := g.lastUploads.get(id.ClusterID)
	if !ok {
		return g.writeError(w, r, newError(http.StatusNotFound, "no_upload", "no upload recorded for this cluster yet: the gateway now keeps its next uploads for an hour; ask again after the next /upload"))
	}
	// Decoding the stored upload takes memory like an upload does.
	t, err := g.admission.admit(id.ClusterID)
	if err != nil {
		return g.writeError(w, r, err)
	}
	defer t.done()
	b := batch.Get()
	defer batch.Put(b)
	// The stored upload was accepted under these limits, but they may
	// have been lowered since (a reload): decode it under the same bounds.
	if _, err := decode.UnmarshalMetricFamilies(last.data, b, last.at.UnixMilli(), true, g.decodeLimits(decode.UploadBudget(len(last.data)), t)); err != nil {
		return g.writeError(w, r, err)
	}
	series := make([][]batch.Label, len(b.Series))
	for i := range b.Series {
		series[i] = b.Series[i].Labels
	}
	rep := allowlist.Explain(g.allowlist.Load(), series, allowlist.ExplainOptions{DropLabels: g.opts.Pipeline.DropLabels(), PII: g.piiFindings()})
	w.Header().Set("X-Telegate-Upload-Time", last.at.UTC().Format(time.RFC3339))
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rep.WriteText(w)
		return http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	rep.WriteJSON(w)
	return http.StatusOK
}

// guardFindings is what the PII guard finds in a series' labels, leaving
// out the labels the gateway strips (they never reach storage).
func (g *Gateway) guardFindings(ls []batch.Label) []privacy.Finding {
	drop := g.opts.Pipeline.DropLabels()
	var out []privacy.Finding
	for _, f := range g.opts.Privacy.Inspect(ls) {
		if !slices.Contains(drop, f.Label) {
			out = append(out, f)
		}
	}
	return out
}

// findingText is how reports show a finding: "label: detector (action)".
func findingText(f privacy.Finding) string {
	return f.Label + ": " + f.Detector.String() + " (" + f.Action.String() + ")"
}

// piiFindings is the PII guard's view of a series for explain reports;
// nil when the guard is off.
func (g *Gateway) piiFindings() func([]batch.Label) []string {
	if !g.opts.Privacy.Enabled() {
		return nil
	}
	return func(ls []batch.Label) []string {
		var out []string
		for _, f := range g.guardFindings(ls) {
			out = append(out, findingText(f))
		}
		return out
	}
}
