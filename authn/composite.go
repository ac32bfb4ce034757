package authn

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// maxCompositeToken bounds the size of a remote-write bearer token.
const maxCompositeToken = 16 << 10

type compositeToken struct {
	AuthorizationToken string `json:"authorization_token"`
	ClusterID          string `json:"cluster_id"`
}

// ParseCompositeToken decodes the bearer token used by remote write:
// base64(JSON{"authorization_token":T,"cluster_id":ID}), in the standard or
// URL-safe alphabet, with or without padding. Both fields are required.
// Errors are Unauthorized and never echo the token.
func ParseCompositeToken(bearer string) (token, clusterID string, err error) {
	const malformed = "malformed remote-write token"
	bearer = strings.TrimSpace(bearer)
	if bearer == "" {
		return "", "", NewUnauthorized(malformed + ": empty")
	}
	if len(bearer) > maxCompositeToken {
		return "", "", NewUnauthorized(malformed + ": too long")
	}
	raw, ok := decodeBase64Any(bearer)
	if !ok {
		return "", "", NewUnauthorized(malformed + ": not base64")
	}
	var ct compositeToken
	if err := json.Unmarshal(raw, &ct); err != nil {
		return "", "", NewUnauthorized(malformed + ": not a JSON object")
	}
	if ct.AuthorizationToken == "" {
		return "", "", NewUnauthorized(malformed + ": missing authorization_token")
	}
	if ct.ClusterID == "" {
		return "", "", NewUnauthorized(malformed + ": missing cluster_id")
	}
	return ct.AuthorizationToken, ct.ClusterID, nil
}

// decodeBase64Any decodes standard or URL-safe base64, padded or not.
func decodeBase64Any(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

// BearerToken returns the credentials of an "Authorization: Bearer X"
// header. The scheme is case-insensitive; ok is false when the header is
// missing, uses another scheme or carries an empty token.
func BearerToken(r *http.Request) (token string, ok bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	return rest, rest != ""
}
