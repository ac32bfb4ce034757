package gateway

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/gateway/decode"
)

// Push routes: the endpoint of its own and the Pushgateway's path form,
// /metrics/job/<JOB>{/<LABEL>/<VALUE>} (job@base64 and <LABEL>@base64
// for base64url values).
const (
	pushPath            = "/metrics/v1/push"
	pushgatewayPrefix   = "/metrics/job/"
	pushgateway64Prefix = "/metrics/job@base64/"
	base64Suffix        = "@base64"
	// maxGroupingLabels bounds the labels a push path may carry: each is
	// added to every series of the request.
	maxGroupingLabels = 32
	labelBytes        = int(unsafe.Sizeof(batch.Label{}))
)

// handlePush serves pushes of text exposition: POST or PUT of a
// Prometheus text, OpenMetrics 1.0 or delimited-protobuf body to
// /metrics/v1/push or the Pushgateway's path form, whose grouping labels
// (job included) are added to every series, replacing a pushed label of
// the same name as the Pushgateway does. Nothing is kept per group: PUT
// and POST are the same, and DELETE on the path form is answered 202
// (there is no group to delete) so client libraries' Delete helpers
// succeed. It authenticates as remote write does and runs the batch
// through the same pipeline; timestamps are the server's when a sample
// has none and go through remote write's timestamp bounds otherwise. The
// answer is 200 (what Pushgateway clients expect) with the dropped
// samples in X-Telegate-Dropped-Samples.
func (g *Gateway) handlePush(w http.ResponseWriter, r *http.Request) int {
	start := time.Now()
	var (
		grouping []batch.Label
		reqErr   error
	)
	if r.URL.Path != pushPath {
		grouping, reqErr = parseGroupingPath(r.URL.EscapedPath())
	}
	format, ctErr := decode.CheckPushContentType(r.Header.Get("Content-Type"))
	enc, ceErr := decode.CheckPushEncoding(r.Header.Get("Content-Encoding"))
	id, err := g.receiveIdentity(r)
	if err != nil {
		return g.writeError(w, r, err)
	}
	noteCluster(r, id.ClusterID)
	if reqErr != nil {
		return g.writeError(w, r, reqErr)
	}
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusAccepted)
		return http.StatusAccepted
	}
	for _, err := range []error{ctErr, ceErr} {
		if err != nil {
			return g.writeError(w, r, err)
		}
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
	h := held{b: batch.Get()}
	defer h.release()
	b := h.b
	maxDecoded := g.opts.Limits.MaxDecodedBytes
	if enc == decode.PushIdentity {
		if err := t.add(cap(b.Buf)); err != nil {
			return g.writeError(w, r, err)
		}
		b.Buf, err = decode.ReadAllCapped(b.Buf[:0], body, maxDecoded, t.growth(cap(b.Buf)))
		if err != nil {
			if e := sb.tooSlow(); e != nil {
				err = e // writeError closes the connection
			}
			return g.writeError(w, r, err)
		}
	} else {
		h.cb = getBuf()
		cb := h.cb
		if err := t.add(cap(cb.b) + cap(b.Buf)); err != nil {
			return g.writeError(w, r, err)
		}
		cb.b, err = decode.ReadAllCapped(cb.b[:0], body, int(g.opts.Limits.MaxRequestBytes), t.growth(cap(cb.b)))
		if err != nil {
			if e := sb.tooSlow(); e != nil {
				err = e
			} else if decode.StatusOf(err) == http.StatusRequestEntityTooLarge && !isHTTPError(err) {
				err = tooLarge("max_request_bytes", g.opts.Limits.MaxRequestBytes, 0)
			}
			return g.writeError(w, r, err)
		}
		b.Buf, err = decode.DecodePushBody(b.Buf[:0], cb.b, enc, maxDecoded, t.growth(cap(b.Buf)))
		if err != nil {
			return g.writeError(w, r, err)
		}
	}
	al := g.allowlist.Load() // one version for decoding and filtering, as in handleReceive
	now := g.opts.Now()
	if format == decode.PushProtobuf {
		_, err = decode.UnmarshalPushedFamilies(b.Buf, b, now.UnixMilli(), g.decodeLimits(decode.UploadBudget(len(b.Buf)), t), g.nameFilter(al))
	} else {
		if len(b.Buf) == cap(b.Buf) {
			// The text parsers append a newline: give them the byte.
			if err := t.add(len(b.Buf) + 1); err != nil {
				return g.writeError(w, r, err)
			}
			b.Buf = append(b.Buf, '\n')[:len(b.Buf)]
		}
		_, err = decode.UnmarshalText(b.Buf, b, format, now.UnixMilli(), g.decodeLimits(decode.TextBudget(len(b.Buf)), t), g.nameFilter(al))
	}
	if err != nil {
		return g.writeError(w, r, err)
	}
	if len(grouping) > 0 {
		if err := t.add(groupedBytes(b.Series, grouping)); err != nil {
			return g.writeError(w, r, err)
		}
		addGrouping(b.Series, grouping)
	}
	if _, _, err := g.ingest(w, r, "push", id, al, &h, now, true, t); err != nil {
		return g.writeError(w, r, err)
	}
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// parseGroupingPath reads the grouping labels of a Pushgateway path,
// /metrics/job/<JOB>{/<LABEL>/<VALUE>} (escaped as it arrived, so a %2F
// stays inside its component), as the Pushgateway does: a name with the
// @base64 suffix has a base64url value (padding optional, "=" alone is
// the empty value), label names are legacy Prometheus names not starting
// with "__", the job is not empty. Unlike the Pushgateway, a name given
// twice is refused.
func parseGroupingPath(escaped string) ([]batch.Label, error) {
	rest, ok := strings.CutPrefix(escaped, "/metrics/")
	if !ok {
		return nil, groupingError("the path must be " + pushPath + " or /metrics/job/<JOB>{/<LABEL>/<VALUE>}")
	}
	parts := strings.Split(rest, "/")
	if len(parts)%2 != 0 {
		return nil, groupingError("odd number of components in the push path " + quote(escaped) + ": want /metrics/job/<JOB>{/<LABEL>/<VALUE>}")
	}
	if len(parts)/2 > maxGroupingLabels {
		return nil, groupingError("more than 32 grouping labels in the push path")
	}
	out := make([]batch.Label, 0, len(parts)/2)
	for i := 0; i < len(parts); i += 2 {
		name, err := url.PathUnescape(parts[i])
		if err != nil {
			return nil, groupingError("invalid escape in the push path: " + err.Error())
		}
		value, err := url.PathUnescape(parts[i+1])
		if err != nil {
			return nil, groupingError("invalid escape in the push path: " + err.Error())
		}
		if n, ok := strings.CutSuffix(name, base64Suffix); ok {
			name = n
			v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
			if err != nil {
				return nil, groupingError("invalid base64url value for grouping label " + quote(name) + ": " + err.Error())
			}
			value = string(v)
		}
		if i == 0 && name != "job" {
			return nil, groupingError("the push path must start with /metrics/job/<JOB>")
		}
		if !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, model.ReservedLabelPrefix) {
			return nil, groupingError("improper grouping label name " + quote(name))
		}
		if !utf8.ValidString(value) {
			return nil, groupingError("grouping label " + name + " has a value that is not valid UTF-8")
		}
		if name == "job" && value == "" {
			return nil, groupingError("the job name is required")
		}
		for _, l := range out {
			if l.Name == name {
				return nil, groupingError("grouping label " + quote(name) + " given twice")
			}
		}
		out = append(out, batch.Label{Name: name, Value: value})
	}
	return out, nil
}

func groupingError(msg string) error { return newError(http.StatusBadRequest, "invalid_grouping", msg) }

// quote quotes s for an error message, cut short.
func quote(s string) string {
	if len(s) > 128 {
		s = strings.ToValidUTF8(s[:128], "") + "..."
	}
	return `"` + s + `"`
}

// groupedBytes is the heap addGrouping allocates.
func groupedBytes(series []batch.Series, grouping []batch.Label) int {
	n := 0
	for i := range series {
		n += len(series[i].Labels) + len(grouping)
	}
	return n * labelBytes
}

// addGrouping gives every series the grouping labels, replacing its
// labels of the same names, in one new label arena.
func addGrouping(series []batch.Series, grouping []batch.Label) {
	arena := make([]batch.Label, 0, groupedBytes(series, grouping)/labelBytes)
	for i := range series {
		s := &series[i]
		start := len(arena)
	labels:
		for _, l := range s.Labels {
			for _, gl := range grouping {
				if l.Name == gl.Name {
					continue labels
				}
			}
			arena = append(arena, l)
		}
		arena = append(arena, grouping...)
		s.Labels = arena[start:len(arena):len(arena)]
	}
}
