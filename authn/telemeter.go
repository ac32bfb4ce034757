package authn

import (
	"maps"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token format of OpenShift's telemeter-server: what its /authorize
// signs with --shared-key and its /upload verifies.
const (
	// TelemeterIssuer is the "iss" claim of telemeter-server's tokens.
	TelemeterIssuer = "telemeter.selfsigned"
	// TelemeterAudience is the "aud" claim of telemeter-server's tokens
	// (it verifies that "aud" contains it).
	TelemeterAudience = "telemeter-client"
	// TelemeterClaim is the private claim holding the labels:
	// {"telemeter.openshift.io": {"labels": {"_id": "<cluster ID>", ...}}}.
	TelemeterClaim = "telemeter.openshift.io"
)

// TelemeterCompat makes a Signer interchangeable with a telemeter-server
// holding the same private key (its --shared-key), so traffic can move
// between the two, either way, without any client re-authorizing.
//
// telemeter-server's tokens carry no "kid" header; "sub" is the account
// the upstream authorizer answered (or, with no authorizer, a hash of the
// pull secret); the cluster ID is the partition label (--partition-label,
// default "_id") in the labels of the TelemeterClaim; every label there
// is one telemeter-server requires on each uploaded series, and the client
// stamps them from /authorize's answer.
type TelemeterCompat struct {
	// Accept makes Verify also accept tokens in telemeter-server's format
	// (issuer TelemeterIssuer, audience TelemeterAudience, no "kid": every
	// key of the token's algorithm is tried). The Identity is: ClusterID
	// from the partition label, AccountID from "sub", Labels the claim's
	// labels. A token without the partition label is Unauthorized.
	Accept bool
	// Issue makes Issue write telemeter-server's format instead of
	// telegate's: issuer TelemeterIssuer, audience TelemeterAudience,
	// "sub" the account ID (omitted when empty), the Identity's labels
	// (plus PartitionLabel=ClusterID) in the TelemeterClaim, and a "kid"
	// header, which telemeter-server ignores. Such tokens verify at
	// telemeter-server and at this Signer. It requires Accept.
	Issue bool
	// PartitionLabel is the label holding the cluster ID in the
	// TelemeterClaim (telemeter-server's --partition-label); "" means
	// ClusterIDLabel.
	PartitionLabel string
}

// telemeterClaim is the value of TelemeterClaim.
type telemeterClaim struct {
	Labels map[string]string `json:"labels,omitempty"`
}

// issueTelemeter signs a token in telemeter-server's format.
func (s *Signer) issueTelemeter(id Identity) (string, time.Duration, error) {
	labels := maps.Clone(id.Labels)
	if labels == nil {
		labels = make(map[string]string, 1)
	}
	labels[s.telemeter.PartitionLabel] = id.ClusterID
	now := s.now()
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TelemeterIssuer,
			Subject:   id.AccountID,
			Audience:  jwt.ClaimStrings{TelemeterAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.expiry)),
		},
		Telemeter: &telemeterClaim{Labels: labels},
	}
	return s.sign(claims)
}

// telemeterIdentity is the Identity of a verified token in
// telemeter-server's format.
func (s *Signer) telemeterIdentity(claims *tokenClaims) (Identity, error) {
	var labels map[string]string
	if claims.Telemeter != nil {
		labels = claims.Telemeter.Labels
	}
	clusterID := labels[s.telemeter.PartitionLabel]
	if clusterID == "" {
		return Identity{}, NewUnauthorized("token has no cluster ID label")
	}
	if v, ok := labels[ClusterIDLabel]; ok && v != clusterID {
		return Identity{}, NewUnauthorized("token labels do not match its cluster ID")
	}
	id := NewIdentity(clusterID, claims.Subject)
	maps.Copy(id.Labels, labels)
	return id, nil
}

// acceptsWithoutKid reports whether t may be verified without a "kid"
// header: a telemeter-server token while Accept is on. keyFunc runs after
// the claims are decoded (not yet trusted: the issuer only selects the
// keys to try, all of them ours).
func (s *Signer) acceptsWithoutKid(t *jwt.Token) bool {
	c, ok := t.Claims.(*tokenClaims)
	return ok && s.telemeter.Accept && c.Issuer == TelemeterIssuer
}

// keySet returns every verification key of t's algorithm, in order.
func (s *Signer) keySet(t *jwt.Token) jwt.VerificationKeySet {
	var set jwt.VerificationKeySet
	for _, id := range s.ids {
		if k := s.byID[id]; t.Method != nil && t.Method.Alg() == k.method.Alg() {
			set.Keys = append(set.Keys, k.public)
		}
	}
	return set
}
