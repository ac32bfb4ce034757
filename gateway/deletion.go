package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/telegate/telegate/authn"
)

// Deletions records installations' requests to have all their data
// removed (package privacy/deletion): their data is refused from then on.
type Deletions interface {
	// Deleted reports whether id asked for deletion.
	Deleted(id string) bool
	// RequestDeletion records a request by the installation itself,
	// durably; created is false when one was already recorded.
	RequestDeletion(ctx context.Context, id string) (state string, requestedAt time.Time, created bool, err error)
}

// deletionResponse answers POST /deletion.
type deletionResponse struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	RequestedAt time.Time `json:"requested_at"`
	Created     bool      `json:"created"`
}

// handleDeletion is POST /deletion: an installation asks, with its own
// credentials (the JWT of /authorize, or remote write's composite token),
// for all its data to be removed. The request is recorded durably before
// the 202; from then on every request of the installation is 403
// deleted. Asking again answers the same request. An installation that
// opted out may still ask.
func (g *Gateway) handleDeletion(w http.ResponseWriter, r *http.Request) int {
	if g.opts.Deletions == nil {
		return g.writeError(w, r, newError(http.StatusNotFound, "not_found", "deletion requests are not configured on this gateway"))
	}
	bearer, ok := authn.BearerToken(r)
	if !ok {
		return g.writeError(w, r, g.settleAuth(r, newError(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer header (the JWT of /authorize, or remote write's composite token)")))
	}
	var (
		id  authn.Identity
		err error
	)
	if strings.Count(bearer, ".") == 2 {
		id, err = g.verifyJWT(r)
	} else {
		var token, clusterID string
		token, clusterID, err = authn.ParseCompositeToken(bearer)
		if err != nil {
			err = g.settleAuth(r, err)
		} else if err = checkClusterID(clusterID); err == nil {
			id, err = g.authenticate(r, token, clusterID)
		}
	}
	var he *httpError
	if err != nil && !(errors.As(err, &he) && (he.reason == "opted_out" || he.reason == "deleted")) {
		return g.writeError(w, r, err)
	}
	noteCluster(r, id.ClusterID)
	state, at, created, err := g.opts.Deletions.RequestDeletion(r.Context(), id.ClusterID)
	if err != nil {
		e := newError(http.StatusServiceUnavailable, "deletion_unavailable", "the deletion request could not be recorded; retry")
		e.retryAfter = 10 * time.Second
		return g.writeError(w, r, e)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(deletionResponse{ID: id.ClusterID, State: state, RequestedAt: at, Created: created})
	return http.StatusAccepted
}
