package gateway

import (
	"container/list"
	"net/http"
	"sync"
	"time"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
)

// lastUploads keeps each cluster's last decoded /upload body (the
// delimited MetricFamilies, one copy) so GET /explain can answer "why is my
// metric not showing up?" for it. It is bounded by total bytes; the least
// recently uploading clusters are evicted first.
type lastUploads struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // of *lastUpload, most recent at the front
	byID  map[string]*list.Element
}

type lastUpload struct {
	cluster string
	at      time.Time
	data    []byte
}

func newLastUploads(maxBytes int64) *lastUploads {
	return &lastUploads{max: maxBytes, order: list.New(), byID: map[string]*list.Element{}}
}

// put stores a copy of data as cluster's last upload. Bodies larger than
// a quarter of the budget are not kept (one cluster must not evict all).
func (l *lastUploads) put(cluster string, data []byte, at time.Time) {
	if l == nil || int64(len(data)) > l.max/4 {
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
	token, ok := authn.BearerToken(r)
	if !ok {
		return g.writeError(w, r, newError(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer header; call /authorize first"))
	}
	id, err := g.opts.Issuer.Verify(token)
	if err != nil {
		return g.writeError(w, r, err)
	}
	if g.lastUploads == nil {
		return g.writeError(w, r, newError(http.StatusNotFound, "explain_disabled", "explain is disabled on this gateway (allowlist.explain_cache_bytes: 0)"))
	}
	last, ok := g.lastUploads.get(id.ClusterID)
	if !ok {
		return g.writeError(w, r, newError(http.StatusNotFound, "no_upload", "no /upload from this cluster since the gateway started (or it was evicted); upload, then ask again"))
	}
	b := batch.Get()
	defer batch.Put(b)
	if _, err := decode.UnmarshalMetricFamilies(last.data, b, last.at.UnixMilli(), true, 0); err != nil {
		return g.writeError(w, r, err)
	}
	series := make([][]batch.Label, len(b.Series))
	for i := range b.Series {
		series[i] = b.Series[i].Labels
	}
	rep := allowlist.Explain(g.allowlist.Load(), series, allowlist.ExplainOptions{DropLabels: g.opts.Pipeline.DropLabels()})
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
