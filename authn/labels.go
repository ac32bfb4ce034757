package authn

import (
	"context"
	"maps"
)

// WithLabels returns an Authenticator that adds labels to every Identity
// a allows, as telemeter-server's --required-label did: /authorize returns
// them, clients stamp them on their series, and tokens carry them. They
// override labels of the same name from a; ClusterIDLabel is never
// overridden (the caller checks that labels does not name it). With no
// labels it returns a.
func WithLabels(a Authenticator, labels map[string]string) Authenticator {
	if len(labels) == 0 {
		return a
	}
	labels = maps.Clone(labels)
	delete(labels, ClusterIDLabel)
	return AuthenticatorFunc(func(ctx context.Context, token, clusterID string) (Identity, error) {
		id, err := a.Authenticate(ctx, token, clusterID)
		if err != nil {
			return id, err
		}
		id = id.clone()
		if id.Labels == nil {
			id.Labels = make(map[string]string, len(labels)+1)
		}
		maps.Copy(id.Labels, labels)
		return id, nil
	})
}
