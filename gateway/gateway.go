package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/authn"
	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway/decode"
	"github.com/telegate/telegate/limits"
	"github.com/telegate/telegate/privacy"
	"github.com/telegate/telegate/relabel"
)

const (
	maxClusterIDLength = 256
	// allowlistHashHeader names the allowlist version a request met.
	allowlistHashHeader = "X-Telegate-Allowlist-Hash"
)

// Issuer issues and verifies the tokens /authorize hands out.
type Issuer interface {
	Issue(id authn.Identity) (token string, expiresIn time.Duration, err error)
	Verify(token string) (authn.Identity, error)
}

// Forwarder sends one snappy-compressed remote-write body of a cluster
// downstream. A nil error means the body is accepted: forwarded, or
// durably spooled for replay (forward.Durable). The cluster ID keeps a
// cluster's data in order and replay fair across clusters.
type Forwarder interface {
	Send(ctx context.Context, clusterID string, body []byte) error
}

// BlockForwarder is a Forwarder that also takes a remote write 1.0 body
// as a trusted block (forward.Durable, forward.Direct): a snappy block the
// gateway compressed from a request it encoded (forward.Blocks), which a
// forward.Coalescer joins with other requests' blocks without checking
// it. The gateway prefers it for remote write 1.0: it encodes and
// compresses a request's parts, gives the request's batch and buffers
// back to their pools, and only then sends, so a request waiting behind a
// send in flight holds its compressed parts only and the next request
// reuses the buffers while they are in the cache. block is valid only
// during the call.
type BlockForwarder interface {
	SendBlock(ctx context.Context, clusterID string, block []byte) error
}

// BatchForwarder is a Forwarder that takes a request's processed series
// directly, without the remote-write encoding (the embedded store). The
// gateway prefers it when the Forwarder implements it and hands it the
// whole request at once: MaxForwardBytes does not split it. The series'
// strings may alias the request buffer, which is reused once AppendWritten
// returns: anything kept must be copied. A nil error means the series
// are durably stored.
// AppendWritten returns what was stored, for remote write 2.0's written
// headers: with a non-recoverable error too (a partial write, e.g. the
// embedded store refusing some samples for good and storing the rest),
// where it is what was durably stored all the same.
type BatchForwarder interface {
	AppendWritten(ctx context.Context, clusterID string, series []batch.Series) (forward.Written, error)
}

// Limits are the per-request caps.
type Limits struct {
	MaxRequestBytes     int64
	MaxDecodedBytes     int
	MaxSeriesPerRequest int
	// MaxLabelsPerSeries is limits.max_labels_per_series (0 = off). The
	// decoders refuse a series with more labels than this plus the labels
	// the pipeline strips and the cluster-ID label (relabel applies the
	// exact rule), so one series cannot carry millions of labels.
	MaxLabelsPerSeries int
	// UploadInterval allows one /upload per cluster per interval.
	UploadInterval time.Duration
}

// Options wire a Gateway.
type Options struct {
	Logger log.Logger
	// DebugRequests logs every request at debug level (handler, code,
	// duration). Set it only when Logger writes debug lines: a line the
	// level filter drops is built all the same (its caller, timestamp
	// and values), about 1% of a saturated gateway's CPU.
	DebugRequests bool
	Registerer    prometheus.Registerer
	Authenticator authn.Authenticator
	Issuer        Issuer
	Allowlist     *allowlist.Allowlist
	Pipeline      *relabel.Pipeline
	// Privacy is the PII guard, run after the allowlist and before the
	// pipeline; nil or disabled skips it.
	Privacy *privacy.Guard
	// OptOuts are the installations that opted out: every request of
	// theirs is 403 opted_out once authenticated. nil = none.
	OptOuts *privacy.OptOuts
	// Deletions are the installations' deletion requests: POST /deletion
	// records one, and a requested ID is 403 deleted. nil = POST
	// /deletion answers 404.
	Deletions Deletions
	Forwarder Forwarder
	Limits    Limits
	// ClientTimestamps keeps /upload samples' own timestamps instead of
	// the server's clock.
	ClientTimestamps bool
	// MaxRetryTime bounds the time a request spends forwarding.
	MaxRetryTime time.Duration
	// MaxForwardBytes splits a request's series into remote writes of at
	// most this many uncompressed bytes; 0 = forward.DefaultMaxRequestBytes.
	MaxForwardBytes int
	// ForwardMessage is the remote write version the Forwarder speaks,
	// by its protobuf message (forward.MessageV1, the default, or
	// forward.MessageV2): the bodies are encoded as that.
	ForwardMessage string
	// Budgets are the per-cluster budgets (active series, samples rate,
	// upload interval); nil enforces only the upload interval, in memory.
	Budgets *limits.Limiter
	// DropExemplars and DropMetadata keep exemplars and metric metadata
	// from being forwarded (forward.send_exemplars, send_metadata false).
	DropExemplars, DropMetadata bool
	// AllowlistShadow runs the allowlist in shadow mode: what it would
	// drop is counted and forwarded.
	AllowlistShadow bool
	// MaxConcurrentRequests bounds in-flight requests; more get 503 at
	// once. 0 = unbounded.
	MaxConcurrentRequests int
	// FailedAuth rate-limits failed authentications per source.
	FailedAuth FailedAuthLimit
	// Fairness bounds one installation's share of requests in flight and
	// of their memory, and the slowest body a request may send.
	Fairness Fairness
	// ExplainCacheBytes bounds the memory kept for GET /explain (each
	// cluster's last decoded /upload); 0 disables the endpoint.
	ExplainCacheBytes int64
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
	// ClientCertificates, if set, identifies remote-write senders by their
	// verified TLS client certificate (mTLS): a request without an
	// Authorization header is accepted as the certificate's cluster, and
	// a bearer token for another cluster than the certificate's is 403.
	ClientCertificates *authn.CertAuthenticator
	// MaxInstallations bounds the installations whose activity the
	// console is shown (0: DefaultMaxInstallations).
	MaxInstallations int
}

// Gateway serves the public API.
type Gateway struct {
	opts      Options
	logger    log.Logger
	debug     log.Logger // level.Debug(logger), built once: not per request
	allowlist atomic.Pointer[allowlist.Allowlist]
	filter    atomic.Pointer[allowlistFilter] // nameFilter's cache
	scratch   sync.Pool
	ready     atomic.Bool
	metrics   *metrics
	budgets   *budgetState
	protect   *protection
	admission *admission
	// lastUploads feeds GET /explain; nil when disabled.
	lastUploads *lastUploads
	// decodeLabels is decode.Limits.MaxLabelsPerSeries (see
	// Limits.MaxLabelsPerSeries).
	decodeLabels int
	// activity is what the console shows (activity.go).
	activity *activity
}

// New returns a Gateway.
func New(o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budgets == nil {
		o.Budgets = limits.New(limits.Options{
			UploadInterval: o.Limits.UploadInterval,
			Defaults:       limits.Budget{UploadInterval: limits.UploadInterval{Enforce: true}},
			Registerer:     o.Registerer,
		})
	}
	g := &Gateway{
		opts:    o,
		logger:  o.Logger,
		debug:   level.Debug(o.Logger),
		scratch: sync.Pool{New: func() any { return new(relabel.Scratch) }},
		metrics: newMetrics(o.Registerer),
		budgets: newBudgetState(o.Registerer),
		protect: newProtection(o, o.Registerer),
	}
	g.admission = newAdmission(o.Fairness, o.Registerer)
	if m := o.Limits.MaxLabelsPerSeries; m > 0 {
		g.decodeLabels = m + len(o.Pipeline.DropLabels()) + 1
	}
	g.metrics.dropped.WithLabelValues(reasonBudget)
	if o.ExplainCacheBytes > 0 {
		g.lastUploads = newLastUploads(o.ExplainCacheBytes)
	}
	g.activity = newActivity(o.MaxInstallations, o.Now())
	g.activity.setAllowlist(o.Allowlist, o.Now())
	g.allowlist.Store(o.Allowlist)
	g.ready.Store(true)
	return g
}

// SetAllowlist swaps the allowlist atomically; in-flight requests finish
// with the one they started with.
func (g *Gateway) SetAllowlist(a *allowlist.Allowlist) {
	g.activity.setAllowlist(a, g.opts.Now())
	g.allowlist.Store(a)
}

// SetReady flips the readiness probe (false while shutting down).
func (g *Gateway) SetReady(ready bool) { g.ready.Store(ready) }

// Handler returns the public API routes.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/authorize", g.instrument("authorize", http.MethodPost, g.handleAuthorize))
	mux.Handle("/upload", g.instrument("upload", http.MethodPost, g.handleUpload))
	mux.Handle("/api/v1/receive", g.instrument("receive", http.MethodPost, g.handleReceive))
	mux.Handle("/metrics/v1/receive", g.instrument("receive", http.MethodPost, g.handleReceive))
	push := []string{http.MethodPost, http.MethodPut}
	mux.Handle(pushPath, g.instrumentMethods("push", g.handlePush, push...))
	pushgateway := []string{http.MethodPost, http.MethodPut, http.MethodDelete}
	mux.Handle(pushgatewayPrefix, g.instrumentMethods("push", g.handlePush, pushgateway...))
	mux.Handle(pushgateway64Prefix, g.instrumentMethods("push", g.handlePush, pushgateway...))
	mux.Handle("/allowlist", g.instrument("allowlist", http.MethodGet, g.handleAllowlist))
	mux.Handle("/explain", g.instrument("explain", http.MethodGet, g.handleExplain))
	mux.Handle("/deletion", g.instrument("deletion", http.MethodPost, g.handleDeletion))
	g.health(mux)
	return g.limitConcurrency(mux)
}

// InternalHandler returns health probes; the caller adds /metrics and
// pprof, which belong to the process rather than the gateway.
func (g *Gateway) health(mux *http.ServeMux) {
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "telegate is healthy\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !g.ready.Load() {
			http.Error(w, "telegate is not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "telegate is ready\n")
	})
}

// RegisterHealth adds /-/healthy and /-/ready to mux (the internal listener).
func (g *Gateway) RegisterHealth(mux *http.ServeMux) { g.health(mux) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) int

func (g *Gateway) instrument(name, method string, h handlerFunc) http.Handler {
	return g.instrumentMethods(name, h, method)
}

// instrumentMethods is instrument for a route taking several methods.
func (g *Gateway) instrumentMethods(name string, h handlerFunc, methods ...string) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		att := &authAttempt{src: g.protect.authSource(r)}
		var code int
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			code = g.writeError(w, r, newError(http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow))
		} else if he := g.authLimited(att.src); he != nil {
			code = g.writeError(w, r, he)
		} else {
			// The handler's authentication step marks att (settleAuth);
			// a failed attempt is charged whatever it was answered, a
			// client that hung up included.
			code = h(w, r.WithContext(withAttempt(r.Context(), att)))
			if att.charged(code) {
				g.authFailed(att.src)
			}
			if att.out.cluster != "" {
				g.activity.record(name, code, &att.out, g.opts.Now())
			}
		}
		g.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		g.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if g.opts.DebugRequests {
			g.debug.Log("handler", name, "code", code, "duration", time.Since(start))
		}
	})
}

// authorizeResponse is telemeter's /authorize answer.
type authorizeResponse struct {
	Version          int               `json:"version"`
	Token            string            `json:"token"`
	ExpiresInSeconds int64             `json:"expiresInSeconds"`
	Labels           map[string]string `json:"labels"`
}

func (g *Gateway) handleAuthorize(w http.ResponseWriter, r *http.Request) int {
	token, ok := authn.BearerToken(r)
	if !ok {
		return g.writeError(w, r, g.settleAuth(r, newError(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer header")))
	}
	clusterID := r.URL.Query().Get("id")
	if err := checkClusterID(clusterID); err != nil {
		return g.writeError(w, r, err)
	}
	id, err := g.authenticate(r, token, clusterID)
	if err != nil {
		return g.writeError(w, r, err)
	}
	noteCluster(r, id.ClusterID)
	id = g.identity(id)
	jwt, exp, err := g.opts.Issuer.Issue(id)
	if err != nil {
		return g.writeError(w, r, err)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(authorizeResponse{Version: 1, Token: jwt, ExpiresInSeconds: int64(exp / time.Second), Labels: id.Labels})
	return http.StatusOK
}

// identity makes sure the identity's labels carry the configured cluster
// ID label and nothing claims another ID.
func (g *Gateway) identity(id authn.Identity) authn.Identity {
	lbl := g.opts.Pipeline.ClusterIDLabel()
	labels := make(map[string]string, len(id.Labels)+1)
	for k, v := range id.Labels {
		if k == authn.ClusterIDLabel || k == lbl {
			continue
		}
		labels[k] = v
	}
	labels[lbl] = id.ClusterID
	id.Labels = labels
	return id
}

func checkClusterID(id string) error {
	switch {
	case id == "":
		return newError(http.StatusBadRequest, "missing_cluster_id", "the id query parameter (cluster ID) is required")
	case len(id) > maxClusterIDLength || !utf8.ValidString(id):
		return newError(http.StatusBadRequest, "invalid_cluster_id", "the cluster ID must be valid UTF-8 of at most 256 bytes")
	}
	return nil
}

// allowlistResponse is GET /allowlist: the selectors the gateway keeps, so
// a client can federate exactly those (--match-from-gateway).
type allowlistResponse struct {
	Version int      `json:"version"`
	Hash    string   `json:"hash"`
	Matches []string `json:"matches"`
}

// verifyJWT authenticates the endpoints a telemeter client reaches with
// the token /authorize issued (/upload, /allowlist, /explain).
func (g *Gateway) verifyJWT(r *http.Request) (authn.Identity, error) {
	token, ok := authn.BearerToken(r)
	if !ok {
		return authn.Identity{}, g.settleAuth(r, newError(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer header; call /authorize first"))
	}
	id, err := g.opts.Issuer.Verify(token)
	if err = g.settleAuth(r, err); err != nil {
		return id, err
	}
	return id, g.optedOut(id.ClusterID)
}

// optedOut answers 403 opted_out for an installation on the opt-out
// list. It runs once the credentials are accepted, so it is not a failed
// attempt and says nothing to someone without them.
func (g *Gateway) optedOut(id string) error {
	if _, ok := g.opts.OptOuts.Contains(id); ok {
		return newError(http.StatusForbidden, "opted_out", "this installation has opted out of telemetry: send nothing more (the gateway refuses it)")
	}
	if g.opts.Deletions != nil && g.opts.Deletions.Deleted(id) {
		return newError(http.StatusForbidden, "deleted", "this installation asked for its data to be deleted: send nothing more (the gateway refuses it)")
	}
	return nil
}

// authenticate checks token for clusterID on behalf of r's source and
// settles r's attempt (settleAuth). The source's calls to the upstream
// authorizer count against FailedAuthLimit.MaxConcurrentPerSource.
func (g *Gateway) authenticate(r *http.Request, token, clusterID string) (authn.Identity, error) {
	ctx := r.Context()
	if a := attemptOf(ctx); a != nil {
		if gate := g.protect.callGate(a.src); gate != nil {
			ctx = authn.WithCallGate(ctx, gate)
		}
	}
	id, err := g.opts.Authenticator.Authenticate(ctx, token, clusterID)
	if err = g.settleAuth(r, err); err != nil {
		return id, err
	}
	return id, g.optedOut(id.ClusterID)
}

// settleAuth records the outcome of r's authentication for instrument,
// which charges a failure to r's source whatever its status (401, 403,
// the authorizer's 404/409/429, 503 for a timeout or a client that hung
// up), and returns err as the gateway answers it. A refusal for the
// authorizer's total bound is the gateway's load, not the source's
// doing: it is not charged.
func (g *Gateway) settleAuth(r *http.Request, err error) error {
	a := attemptOf(r.Context())
	switch {
	case err == nil:
		a.mark(authPassed)
		return nil
	case errors.Is(err, authn.ErrSourceBusy):
		a.mark(authRejected)
		g.protect.upstreamRefused.WithLabelValues(refusedPerSource).Inc()
		e := newError(http.StatusTooManyRequests, "auth_concurrency_limited", "too many authentications in flight from this address; retry shortly")
		e.retryAfter = time.Second
		e.limit = int64(g.protect.auth.MaxConcurrentPerSource)
		return e
	case errors.Is(err, authn.ErrBusy):
		g.protect.upstreamRefused.WithLabelValues(refusedTotal).Inc()
		e := newError(http.StatusServiceUnavailable, "authorizer_overloaded", "too many authorizer calls in flight; retry shortly")
		e.retryAfter = time.Second
		return e
	}
	a.mark(authRejected)
	return err
}

// handleAllowlist serves the active allowlist to authenticated clients
// (the JWT of /authorize, like /upload).
func (g *Gateway) handleAllowlist(w http.ResponseWriter, r *http.Request) int {
	if _, err := g.verifyJWT(r); err != nil {
		return g.writeError(w, r, err)
	}
	al := g.allowlist.Load()
	resp := allowlistResponse{Version: 1, Matches: []string{}}
	if al != nil {
		resp.Hash, resp.Matches = al.Hash(), al.Selectors()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(allowlistHashHeader, resp.Hash)
	json.NewEncoder(w).Encode(resp)
	return http.StatusOK
}

func (g *Gateway) handleUpload(w http.ResponseWriter, r *http.Request) int {
	start := time.Now()
	id, err := g.verifyJWT(r)
	if err != nil {
		return g.writeError(w, r, err)
	}
	noteCluster(r, id.ClusterID)
	if err := decode.CheckUploadContentType(r.Header.Get("Content-Type")); err != nil {
		return g.writeError(w, r, err)
	}
	t, err := g.admission.admit(id.ClusterID)
	if err != nil {
		return g.writeError(w, r, err)
	}
	defer t.done()
	// The interval slot is taken before the body is read: a second upload
	// inside the interval, or one while the first is still in flight,
	// costs no decoding. A refused upload gives the slot back, as before.
	now := g.opts.Now()
	release, shadowSlot, err := g.reserveUpload(r.Context(), id.ClusterID, now)
	if err != nil {
		return g.writeError(w, r, err)
	}
	succeeded := false
	defer func() { release(succeeded) }()
	body, sb, err := g.limitBody(w, r, start)
	if err != nil {
		return g.writeError(w, r, err)
	}
	h := held{b: batch.Get()}
	defer h.release()
	b := h.b
	if err := t.add(cap(b.Buf)); err != nil {
		return g.writeError(w, r, err)
	}
	b.Buf, err = decode.UploadBody(b.Buf[:0], body, r.Header.Get("Content-Encoding"), g.opts.Limits.MaxDecodedBytes, t.growth(cap(b.Buf)))
	if err != nil {
		if e := sb.tooSlow(); e != nil {
			err = e // writeError closes the connection
		}
		return g.writeError(w, r, err)
	}
	al := g.allowlist.Load() // one version for decoding and filtering, as in handleReceive
	lim := g.decodeLimits(decode.UploadBudget(len(b.Buf)), t)
	if _, err := decode.UnmarshalMetricFamiliesFiltered(b.Buf, b, now.UnixMilli(), !g.opts.ClientTimestamps, lim, g.nameFilter(al)); err != nil {
		return g.writeError(w, r, err)
	}
	if shadowSlot {
		g.budgets.shadowSamples.WithLabelValues(reasonUploadInterval).Add(float64(b.Samples()))
	}
	g.lastUploads.put(id.ClusterID, b.Buf, now)
	code, _, err := g.ingest(w, r, "upload", id, al, &h, now, false, t)
	if err != nil {
		return g.writeError(w, r, err)
	}
	succeeded = true
	w.WriteHeader(code)
	return code
}

// Headers of every answer to a remote write 2.0 request: what was
// written (forwarded or durably spooled), by kind.
const (
	writtenSamplesHeader    = "X-Prometheus-Remote-Write-Samples-Written"
	writtenHistogramsHeader = "X-Prometheus-Remote-Write-Histograms-Written"
	writtenExemplarsHeader  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// setWritten sets the written headers of a 2.0 answer: float samples,
// native histogram samples and exemplars forwarded or durably spooled.
func setWritten(h http.Header, w forward.Written) {
	// The keys are canonical; "0" is shared (a slice of capacity 1: an
	// Add copies it), so a 2.0 answer costs one allocation more than 1.0.
	h[writtenSamplesHeader] = count(w.Samples)
	h[writtenHistogramsHeader] = count(w.Histograms)
	h[writtenExemplarsHeader] = count(w.Exemplars)
}

func count(n int) []string {
	if n == 0 {
		return headerZero
	}
	return []string{strconv.Itoa(n)}
}

var headerZero = []string{"0"}

func (g *Gateway) handleReceive(w http.ResponseWriter, r *http.Request) int {
	start := time.Now()
	// The message type is known from the headers alone: a 2.0 request is
	// answered with the written headers whatever the outcome (0 until its
	// series are forwarded).
	msg, headerErr := decode.CheckRemoteWriteHeaders(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	if msg == decode.WriteV2 {
		setWritten(w.Header(), forward.Written{})
	}
	id, err := g.receiveIdentity(r)
	if err != nil {
		return g.writeError(w, r, err)
	}
	noteCluster(r, id.ClusterID)
	if headerErr != nil {
		return g.writeError(w, r, headerErr)
	}
	t, err := g.admission.admit(id.ClusterID)
	if err != nil {
		return g.writeError(w, r, err)
	}
	defer t.done()
	body, sb, err := g.limitBody(w, r, start)
	if err != nil {
		return g.writeError(w, r, err)
	}
	// Read the compressed body into the tail of the batch buffer's
	// capacity is not possible (decode writes there), so use a pooled one.
	h := held{b: batch.Get(), cb: getBuf()}
	defer h.release()
	b, cb := h.b, h.cb
	if err := t.add(cap(cb.b) + cap(b.Buf)); err != nil {
		return g.writeError(w, r, err)
	}
	// body is capped at max_request_bytes (http.MaxBytesReader): a 413
	// from the read is that cap, whatever decode calls it.
	cb.b, err = decode.ReadAllCapped(cb.b[:0], body, int(g.opts.Limits.MaxRequestBytes), t.growth(cap(cb.b)))
	if err != nil {
		if e := sb.tooSlow(); e != nil {
			err = e // writeError closes the connection
		} else if decode.StatusOf(err) == http.StatusRequestEntityTooLarge && !isHTTPError(err) {
			err = tooLarge("max_request_bytes", g.opts.Limits.MaxRequestBytes, 0)
		}
		return g.writeError(w, r, err)
	}
	// The snappy header says how large the decoded body is: refuse or
	// reserve it before it is allocated.
	n, err := decode.DecodedLen(cb.b)
	if err != nil {
		return g.writeError(w, r, err)
	}
	if n <= g.opts.Limits.MaxDecodedBytes || g.opts.Limits.MaxDecodedBytes <= 0 {
		if err := t.add(n - cap(b.Buf)); err != nil {
			return g.writeError(w, r, err)
		}
	}
	b.Buf, err = decode.DecodeBlock(b.Buf[:0], cb.b, g.opts.Limits.MaxDecodedBytes)
	if err != nil {
		return g.writeError(w, r, err)
	}
	// One allowlist for decoding and filtering: a reload in between must
	// not judge a series the decoder skimmed by a list that keeps it.
	al := g.allowlist.Load()
	if msg == decode.WriteV2 {
		_, err = decode.UnmarshalWriteRequestV2(b.Buf, b, g.decodeLimits(decode.RemoteWriteV2Budget(len(b.Buf)), t), g.nameFilter(al))
	} else {
		_, err = decode.UnmarshalWriteRequestFiltered(b.Buf, b, g.decodeLimits(decode.RemoteWriteBudget(len(b.Buf)), t), g.nameFilter(al))
	}
	if err != nil {
		return g.writeError(w, r, err)
	}
	code, written, err := g.ingest(w, r, "receive", id, al, &h, g.opts.Now(), true, t)
	if err != nil {
		// A forward that failed part way may have written some parts:
		// the answer (5xx, or 4xx for what downstream refused) reports
		// none, so a sender never counts a sample that may be lost. A
		// request with invalid series wrote the valid ones, and the
		// embedded store's partial refusal stored the rest: their 400
		// says how many (written is zero otherwise).
		if msg == decode.WriteV2 {
			setWritten(w.Header(), written)
		}
		return g.writeError(w, r, err)
	}
	if msg == decode.WriteV2 {
		setWritten(w.Header(), written)
	}
	w.WriteHeader(code)
	return code
}

// partialError is a request with invalid series whose valid series were
// written: 400 for the invalid ones.
type partialError struct{ err error }

func (e *partialError) Error() string { return e.err.Error() }
func (e *partialError) Unwrap() error { return e.err }

// isHTTPError reports whether err is an answer the gateway decided on
// (e.g. a memory reservation refused while reading).
func isHTTPError(err error) bool {
	var he *httpError
	return errors.As(err, &he)
}

// decodeLimits are the decoders' limits for a request allowed maxBatchBytes
// of batch (decode.RemoteWriteBudget or decode.UploadBudget of its decoded
// size), reserving what the batch holds from t as it grows (t nil: no
// reservation).
func (g *Gateway) decodeLimits(maxBatchBytes int, t *ticket) decode.Limits {
	l := decode.Limits{
		MaxSeries:          g.opts.Limits.MaxSeriesPerRequest,
		MaxLabelsPerSeries: g.decodeLabels,
		MaxBatchBytes:      maxBatchBytes,
	}
	if t != nil {
		// Twice the decoder's charge: while an arena grows, its old and
		// new arrays are both alive.
		l.Reserve = func(n int) error { return t.add(2 * n) }
	}
	return l
}

// receiveIdentity authenticates a remote write: by the composite bearer
// token, or by the verified client certificate (ClientCertificates) when
// the request carries no Authorization header. When both are present they
// must name the same cluster.
//
// Every outcome settles the request's failed-auth attempt except a
// malformed cluster ID (400), which is refused before any check.
func (g *Gateway) receiveIdentity(r *http.Request) (authn.Identity, error) {
	certID, fromCert, err := g.opts.ClientCertificates.Identify(r.TLS)
	if err != nil {
		return authn.Identity{}, g.settleAuth(r, err)
	}
	bearer, ok := authn.BearerToken(r)
	if !ok {
		if fromCert && r.Header.Get("Authorization") == "" {
			if err := g.settleAuth(r, nil); err != nil {
				return certID, err
			}
			return certID, g.optedOut(certID.ClusterID)
		}
		return authn.Identity{}, g.settleAuth(r, newError(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer header (base64 of {\"authorization_token\":...,\"cluster_id\":...})"))
	}
	token, clusterID, err := authn.ParseCompositeToken(bearer)
	if err != nil {
		return authn.Identity{}, g.settleAuth(r, err)
	}
	if err := checkClusterID(clusterID); err != nil {
		return authn.Identity{}, err
	}
	id, err := g.authenticate(r, token, clusterID)
	if err != nil {
		return authn.Identity{}, err
	}
	if fromCert && certID.ClusterID != id.ClusterID {
		return authn.Identity{}, g.settleAuth(r, authn.NewForbidden("the bearer token is for another cluster than the client certificate"))
	}
	return id, nil
}

// ingest runs a decoded batch (h.b) through identity check, allowlist,
// relabel and forwarding. It returns the success status to answer and what
// was written, also with the error of a partial write (invalid series, or
// the embedded store refusing some samples for good); zero with any other
// error. remoteWrite is false for /upload, whose timestamps come from the
// server clock and are not bounds-checked. h may be released on the way
// (see held): the caller must not read the batch after ingest.
func (g *Gateway) ingest(w http.ResponseWriter, r *http.Request, protocol string, id authn.Identity, al *allowlist.Allowlist, h *held, now time.Time, remoteWrite bool, t *ticket) (int, forward.Written, error) {
	b := h.b
	g.metrics.received.WithLabelValues(protocol).Add(float64(b.Points()))
	shadow := map[string]int{}
	var deniedSeries, deniedSamples int
	// invalid is the first invalid series: the valid ones are still
	// written, then the request is answered 400 (a partialError).
	var invalid error
	var invalidSeries, invalidSamples int
	tally := offenderTally{o: g.budgets.offenders}
	var rules *ruleTally
	if al != nil {
		rules = getRuleTally(len(al.Entries))
	}
	var m allowlist.Matcher
	if al != nil {
		m = al.Matcher()
	}
	// Stamping copies a series' labels (plus the cluster ID) when they
	// have no room: reserved for every series, before the pass that
	// filters them.
	if err := t.add(pipelineBytes(b.Series)); err != nil {
		return 0, forward.Written{}, err
	}
	// One pass over the series: the identity check, the allowlist, then
	// for what it keeps the PII guard (before stamping) and the relabel
	// pipeline, while the series' labels are in the cache. The pipeline
	// checks the identity of what it is given as it strips; the series it
	// is not given are checked here.
	guard := g.opts.Privacy
	useGuard := guard.Enabled()
	var pst privacy.Stats
	sc := g.scratch.Get().(*relabel.Scratch)
	defer g.scratch.Put(sc)
	run := g.opts.Pipeline.Begin(b, id.ClusterID, now, remoteWrite, sc)
	for i := range b.Series {
		s := &b.Series[i]
		name := s.Name()
		if name == "" {
			if err := g.opts.Pipeline.CheckIdentity(s, id.ClusterID); err != nil {
				return 0, forward.Written{}, err
			}
			// Invalid whatever the allowlist says (a series needs a
			// name); counted by Process with the other invalid series.
			invalidSeries++
			invalidSamples += s.Points()
			if invalid == nil {
				invalid = &relabel.InvalidError{Msg: "series without a metric name (__name__)"}
			}
			continue
		}
		denied := false
		if al == nil || !m.MatchName(name) {
			denied = g.allowlistDenies(s, shadow, &tally)
		} else if e, ok := m.Match(name, s.Labels); !ok {
			denied = g.allowlistDenies(s, shadow, &tally)
		} else {
			rules.add(e, name, s.Points())
		}
		if denied {
			deniedSeries++
			deniedSamples += s.Points()
		}
		if denied || useGuard && guard.ApplySeries(s, &pst) {
			// Not given to the pipeline: its identity is checked here.
			if err := g.opts.Pipeline.CheckIdentity(s, id.ClusterID); err != nil {
				return 0, forward.Written{}, err
			}
			continue
		}
		run.Add(*s)
	}
	st, err := run.Finish()
	if idErr := run.Identity(); idErr != nil {
		return 0, forward.Written{}, idErr
	}
	// Only a request whose identity holds is counted.
	tally.flush()
	if rules != nil {
		rules.flush(g.activity, al, id.ClusterID, now)
	}
	privacyDropped := pst.DroppedSamples
	if invalid == nil {
		invalid = err
	}
	st.Series[relabel.ReasonInvalid] += invalidSeries
	st.Samples[relabel.ReasonInvalid] += invalidSamples
	dropped := map[string]int{}
	if deniedSamples > 0 {
		dropped["allowlist"] = deniedSamples
	}
	if privacyDropped > 0 {
		dropped[reasonPrivacy] = privacyDropped
	}
	for reason := relabel.Reason(0); reason < relabel.NumReasons; reason++ {
		if n := st.Samples[reason]; n > 0 {
			dropped[reason.String()] = n
		}
	}
	if err := g.applyBudgets(r.Context(), id.ClusterID, b, dropped, shadow); err != nil {
		return 0, forward.Written{}, err
	}
	if n := shadow[reasonAllowlist]; n > 0 {
		g.budgets.shadowSamples.WithLabelValues(reasonAllowlist).Add(float64(n))
	}
	for reason, n := range dropped {
		g.metrics.dropped.WithLabelValues(reason).Add(float64(n))
	}
	if g.opts.DropExemplars {
		for i := range b.Series {
			b.Series[i].Exemplars = nil
		}
	}
	if g.opts.DropMetadata {
		b.Metadata = b.Metadata[:0]
	} else if len(b.Metadata) > 0 {
		b.Metadata = keptMetadata(b.Metadata, al, g.opts.AllowlistShadow)
	}
	var written forward.Written
	// The batch may be released while it is forwarded (see held).
	accepted, points := len(b.Series), b.Points()
	if len(b.Series) > 0 || len(b.Metadata) > 0 {
		if _, ok := g.opts.Forwarder.(BatchForwarder); !ok {
			// For a BlockForwarder the compressed parts outgrow the
			// snappy half of this when a request is split into many,
			// but the batch, whose reservation is held to the end,
			// is free by then.
			if err := t.add(forwardReserveOf(g.opts.MaxForwardBytes, encodedBytes(b.Series)+metadataBytes(b.Metadata))); err != nil {
				return 0, forward.Written{}, err
			}
		}
		written, err = g.forward(r.Context(), id.ClusterID, b.Series, b.Metadata, h)
		if err != nil {
			return 0, written, err
		}
		g.metrics.forwarded.Add(float64(points))
	}
	if a := attemptOf(r.Context()); a != nil {
		a.out.acceptedSeries, a.out.acceptedSamples = accepted, points
		a.out.setDropped(dropped)
	}
	setDroppedHeaders(w.Header(), dropped)
	setShadowHeaders(w.Header(), shadow)
	if al != nil {
		w.Header().Set(allowlistHashHeader, al.Hash())
	}
	if invalid != nil {
		return 0, written, &partialError{err: invalid}
	}
	if remoteWrite {
		return http.StatusNoContent, written, nil
	}
	return http.StatusOK, written, nil
}

// keptMetadata keeps the metadata of the families the allowlist takes by
// name (the family's name, or it with a histogram's, summary's or
// counter's suffix): what it drops leaves no help text behind. Remote
// write 1.0 senders send metadata in requests of their own, so the
// request's series cannot be the judge. Without an allowlist, or in
// shadow mode, everything is kept.
func keptMetadata(md []batch.Metadata, al *allowlist.Allowlist, shadow bool) []batch.Metadata {
	if al == nil || shadow {
		return md
	}
	out := md[:0]
	for _, m := range md {
		for _, suffix := range [...]string{"", "_bucket", "_count", "_sum", "_total", "_created", "_info"} {
			if al.MatchName(m.Family + suffix) {
				out = append(out, m)
				break
			}
		}
	}
	clear(md[len(out):])
	return out
}

// nameFilter lets the decoders skim the series al drops by name: their
// labels past __name__ are not pushed (the cluster-ID label is, for
// CheckIdentity). Nil (decode everything) without an allowlist or when the
// allowlist is in shadow mode, where denied series are forwarded whole.
// The filter is built once per allowlist version.
func (g *Gateway) nameFilter(al *allowlist.Allowlist) *decode.NameFilter {
	if al == nil || g.opts.AllowlistShadow {
		return nil
	}
	if c := g.filter.Load(); c != nil && c.al == al {
		return c.f
	}
	c := &allowlistFilter{al: al, f: &decode.NameFilter{Wanted: al.MatchName, KeepLabel: g.opts.Pipeline.ClusterIDLabel()}}
	g.filter.Store(c)
	return c.f
}

// allowlistFilter is the decode.NameFilter of one allowlist version.
type allowlistFilter struct {
	al *allowlist.Allowlist
	f  *decode.NameFilter
}

// forward sends series in order, with the metadata of their families,
// split below MaxForwardBytes (a BatchForwarder gets the series whole,
// unencoded, and no metadata). A failure stops at that part; the parts
// before it are already accepted. It may release h (a BlockForwarder's
// parts are sent after it), so series and md are not to be read after.
func (g *Gateway) forward(ctx context.Context, clusterID string, series []batch.Series, md []batch.Metadata, h *held) (forward.Written, error) {
	ctx, cancel := context.WithTimeout(ctx, g.opts.MaxRetryTime)
	defer cancel()
	start := time.Now()
	written, err := g.forwardDown(ctx, clusterID, series, md, h)
	g.activity.downstreamDone(g.opts.Now(), time.Since(start), err)
	return written, err
}

// forwardDown is forward's write downstream.
func (g *Gateway) forwardDown(ctx context.Context, clusterID string, series []batch.Series, md []batch.Metadata, h *held) (forward.Written, error) {
	if bf, ok := g.opts.Forwarder.(BatchForwarder); ok {
		if len(series) == 0 {
			return forward.Written{}, nil // metadata only: not stored
		}
		written, err := bf.AppendWritten(ctx, clusterID, series)
		if fe := (*forward.Error)(nil); err != nil && (!errors.As(err, &fe) || fe.Recoverable) {
			// Only a partial write's refusal says what is stored anyway.
			written = forward.Written{}
		}
		return written, err
	}
	if bf, ok := g.opts.Forwarder.(BlockForwarder); ok && g.opts.ForwardMessage != forward.MessageV2 {
		return g.forwardBlocks(ctx, bf, clusterID, series, md, h)
	}
	bufs := forward.GetBuffers()
	defer forward.PutBuffers(bufs)
	err := bufs.EncodeSplitMessage(g.opts.ForwardMessage, series, md, g.opts.MaxForwardBytes, func(body []byte) error {
		return g.opts.Forwarder.Send(ctx, clusterID, body)
	})
	if err != nil {
		return forward.Written{}, err
	}
	return forward.WrittenOf(series), nil
}

// forwardBlocks is forwardDown for a BlockForwarder (remote write 1.0):
// every part is encoded and compressed first, then h is released, then
// the parts are sent in order.
func (g *Gateway) forwardBlocks(ctx context.Context, bf BlockForwarder, clusterID string, series []batch.Series, md []batch.Metadata, h *held) (forward.Written, error) {
	bl := forward.GetBlocks()
	defer forward.PutBlocks(bl)
	bufs := forward.GetBuffers()
	err := bufs.EncodeBlocks(bl, series, md, g.opts.MaxForwardBytes)
	forward.PutBuffers(bufs)
	if err != nil {
		return forward.Written{}, err
	}
	written := forward.WrittenOf(series)
	h.release()
	for i := range bl.Len() {
		if err := bf.SendBlock(ctx, clusterID, bl.Block(i)); err != nil {
			return forward.Written{}, err
		}
	}
	return written, nil
}

// setDroppedHeaders tells the client what was dropped, by reason:
// X-Telegate-Dropped-Samples: allowlist=12, collision=1.
func setDroppedHeaders(h http.Header, dropped map[string]int) {
	if len(dropped) == 0 {
		return
	}
	parts := make([]string, 0, len(dropped))
	for _, reason := range []string{"allowlist", "privacy", "budget", "relabel", "collision", "too_old", "too_new", "invalid"} {
		if n := dropped[reason]; n > 0 {
			parts = append(parts, reason+"="+strconv.Itoa(n))
		}
	}
	h.Set("X-Telegate-Dropped-Samples", strings.Join(parts, ", "))
}

// limitBody refuses bodies whose declared length is over the cap, caps
// the rest while reading, and applies the minimum body rate: it returns
// the body to read and its rate guard (nil when there is none, and the
// nil guard's tooSlow says so).
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request, start time.Time) (io.Reader, *slowBody, error) {
	max := g.opts.Limits.MaxRequestBytes
	if r.ContentLength > max {
		return nil, nil, tooLarge("max_request_bytes", max, r.ContentLength)
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, max)
	sb := g.rateLimitBody(w, body, start)
	if sb != nil {
		body = sb
	}
	return body, sb, nil
}

func tooLarge(limit string, max, seen int64) *httpError {
	msg := "request body exceeds " + limit + " (" + strconv.FormatInt(max, 10) + " bytes)"
	if seen > 0 {
		msg += ": Content-Length is " + strconv.FormatInt(seen, 10)
	}
	return &httpError{status: http.StatusRequestEntityTooLarge, reason: limit, msg: msg, limit: max}
}
