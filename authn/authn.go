package authn

import (
	"context"
	"maps"
)

// ClusterIDLabel is the label that carries the cluster ID on every series
// and in every Identity's labels (telemeter compatible).
const ClusterIDLabel = "_id"

// Identity is an authenticated cluster.
type Identity struct {
	// ClusterID is the cluster ID the credentials were verified for.
	ClusterID string
	// AccountID is the owning account, if the source knows it.
	AccountID string
	// Labels are returned by /authorize and stamped on the cluster's series.
	// They always include ClusterIDLabel=ClusterID.
	Labels map[string]string
}

// NewIdentity returns an Identity for clusterID whose labels hold only the
// cluster ID label.
func NewIdentity(clusterID, accountID string) Identity {
	return Identity{
		ClusterID: clusterID,
		AccountID: accountID,
		Labels:    map[string]string{ClusterIDLabel: clusterID},
	}
}

// clone returns a deep copy so callers may modify the labels freely.
func (id Identity) clone() Identity {
	id.Labels = maps.Clone(id.Labels)
	return id
}

// Authenticator verifies that a pull-secret token may act for a cluster ID.
// Implementations fail closed and return only *Error values.
type Authenticator interface {
	Authenticate(ctx context.Context, token, clusterID string) (Identity, error)
}

// AuthenticatorFunc adapts a function to the Authenticator interface.
type AuthenticatorFunc func(ctx context.Context, token, clusterID string) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token, clusterID string) (Identity, error) {
	return f(ctx, token, clusterID)
}

// checkRequest rejects empty credentials before any lookup.
func checkRequest(token, clusterID string) error {
	if token == "" {
		return NewUnauthorized("missing authorization token")
	}
	if clusterID == "" {
		return NewUnauthorized("missing cluster ID")
	}
	return nil
}

// Chain returns an Authenticator that asks each source in order. A source
// answering Unauthorized (token unknown to it) hands over to the next one;
// any other answer, allow or error, is final. Typical use is
// Chain(staticTokens, cachedUpstream): a Forbidden from a known static token
// is never overridden by the upstream authorizer. Nil entries are skipped.
// With no sources every request is Unauthorized.
func Chain(auths ...Authenticator) Authenticator {
	list := make([]Authenticator, 0, len(auths))
	for _, a := range auths {
		if a != nil {
			list = append(list, a)
		}
	}
	return chain(list)
}

type chain []Authenticator

func (c chain) Authenticate(ctx context.Context, token, clusterID string) (Identity, error) {
	var err error = NewUnauthorized("unknown authorization token")
	for _, a := range c {
		var id Identity
		id, err = a.Authenticate(ctx, token, clusterID)
		if err == nil {
			return id, nil
		}
		if KindOf(err) != Unauthorized {
			return Identity{}, asAuthError(err, 0)
		}
	}
	return Identity{}, err
}
