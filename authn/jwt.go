package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// TokenIssuer is the "iss" claim of tokens issued by a Signer.
	TokenIssuer = "telegate"
	// TokenAudience is the "aud" claim of tokens issued by a Signer.
	TokenAudience = "telegate-upload"
	// TokenLeeway is the clock skew tolerated when checking exp, nbf and iat.
	TokenLeeway = time.Minute
)

// identityClaim is the custom claim carrying the Identity.
type identityClaim struct {
	AccountID string            `json:"account_id,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Telegate *identityClaim `json:"telegate,omitempty"`
	// Telemeter is telemeter-server's private claim (TelemeterClaim).
	Telemeter *telemeterClaim `json:"telemeter.openshift.io,omitempty"`
}

// Signer issues the JWTs returned by /authorize and verifies the ones
// presented on /upload. The first key signs; every key verifies, selected by
// the token's "kid" header. A Signer is safe for concurrent use; its keys
// never change (rotation is a new Signer), and it remembers the tokens it
// verified until they expire (see verifiedTokens).
type Signer struct {
	active    Key
	byID      map[string]Key
	ids       []string
	methods   []string
	expiry    time.Duration
	telemeter TelemeterCompat
	now       func() time.Time
	verified  *verifiedTokens
}

// NewSigner returns a Signer issuing tokens valid for expiry. keys[0] must be
// a private key and signs; all keys verify. Keys with the same ID are
// deduplicated (the first wins). It issues and accepts only telegate's own
// token format; NewSignerWithOptions adds telemeter-server compatibility.
func NewSigner(keys []Key, expiry time.Duration) (*Signer, error) {
	return NewSignerWithOptions(keys, SignerOptions{Expiry: expiry})
}

// SignerOptions configure NewSignerWithOptions.
type SignerOptions struct {
	// Expiry is the lifetime of issued tokens; it must be positive.
	Expiry time.Duration
	// Telemeter makes the Signer compatible with telemeter-server's tokens.
	Telemeter TelemeterCompat
}

// NewSignerWithOptions is NewSigner with telemeter-server compatibility
// (see TelemeterCompat).
func NewSignerWithOptions(keys []Key, o SignerOptions) (*Signer, error) {
	expiry := o.Expiry
	if len(keys) == 0 {
		return nil, errors.New("signer: no keys")
	}
	if !keys[0].CanSign() {
		return nil, errors.New("signer: the first key must be a private key")
	}
	if expiry <= 0 {
		return nil, errors.New("signer: token expiry must be positive")
	}
	tc := o.Telemeter
	if tc.Issue && !tc.Accept {
		return nil, errors.New("signer: issuing telemeter-server tokens requires accepting them")
	}
	if tc.PartitionLabel == "" {
		tc.PartitionLabel = ClusterIDLabel
	}
	s := &Signer{active: keys[0], byID: make(map[string]Key, len(keys)), expiry: expiry, telemeter: tc, now: time.Now,
		verified: newVerifiedTokens(DefaultVerifiedTokens)}
	seenAlg := make(map[string]bool)
	for i, k := range keys {
		if k.method == nil || k.id == "" {
			return nil, fmt.Errorf("signer: key %d is not initialized (use NewKey or ParseKeysPEM)", i+1)
		}
		if _, dup := s.byID[k.id]; dup {
			continue
		}
		s.byID[k.id] = k
		s.ids = append(s.ids, k.id)
		if alg := k.method.Alg(); !seenAlg[alg] {
			seenAlg[alg] = true
			s.methods = append(s.methods, alg)
		}
	}
	return s, nil
}

// NewEphemeralSigner returns a Signer with a freshly generated ES256 key that
// lives only in memory: tokens it issues stop verifying when the process
// restarts and are not accepted by other replicas.
func NewEphemeralSigner(expiry time.Duration) (*Signer, error) {
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	k, err := NewKey(pk)
	if err != nil {
		return nil, err
	}
	return NewSigner([]Key{k}, expiry)
}

// ActiveKeyID returns the ID of the signing key.
func (s *Signer) ActiveKeyID() string { return s.active.id }

// KeyIDs returns the IDs of all verification keys in the order given to
// NewSigner, signing key first.
func (s *Signer) KeyIDs() []string { return slices.Clone(s.ids) }

// Expiry returns the lifetime of issued tokens.
func (s *Signer) Expiry() time.Duration { return s.expiry }

// Telemeter returns the signer's telemeter-server compatibility, its
// PartitionLabel filled in.
func (s *Signer) Telemeter() TelemeterCompat { return s.telemeter }

// Issue signs a token for id, valid from now for the signer's expiry. The
// token's labels always include ClusterIDLabel=id.ClusterID (in the
// telemeter format: TelemeterCompat.PartitionLabel=id.ClusterID).
func (s *Signer) Issue(id Identity) (token string, expiresIn time.Duration, err error) {
	if id.ClusterID == "" {
		return "", 0, errors.New("issue token: empty cluster ID")
	}
	if s.telemeter.Issue {
		return s.issueTelemeter(id)
	}
	labels := maps.Clone(id.Labels)
	if labels == nil {
		labels = make(map[string]string, 1)
	}
	labels[ClusterIDLabel] = id.ClusterID
	now := s.now()
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   id.ClusterID,
			Audience:  jwt.ClaimStrings{TokenAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.expiry)),
		},
		Telegate: &identityClaim{AccountID: id.AccountID, Labels: labels},
	}
	return s.sign(claims)
}

// sign signs claims with the active key, naming it in the "kid" header.
func (s *Signer) sign(claims tokenClaims) (string, time.Duration, error) {
	t := jwt.NewWithClaims(s.active.method, claims)
	t.Header["kid"] = s.active.id
	signed, err := t.SignedString(s.active.private)
	if err != nil {
		return "", 0, fmt.Errorf("signing token: %w", err)
	}
	return signed, s.expiry, nil
}

var (
	errNoKid          = errors.New("token has no key ID")
	errTelemeterOff   = errors.New("telemeter-server tokens are not accepted")
	errUnknownKid     = errors.New("token signed by an unknown key")
	errAlgKeyMismatch = errors.New("token algorithm does not match its key")
)

// Verify checks a token issued by a Signer sharing one of this signer's keys
// and returns the Identity it carries. Every failure is Unauthorized with a
// short reason: malformed token, unsupported algorithm (including "none"),
// unknown key, bad signature, expired, not yet valid, wrong issuer or
// audience, or missing claims.
//
// A token verified before is recognised by its SHA-256 and not parsed
// again while it is valid.
func (s *Signer) Verify(token string) (Identity, error) {
	now := s.now()
	key := tokenKey(token)
	if id, ok := s.verified.get(key, now); ok {
		return id, nil
	}
	id, from, until, err := s.verify(token)
	if err != nil {
		return Identity{}, err
	}
	s.verified.put(key, id, from, until, now)
	return id, nil
}

// verify is the full verification; it also returns the interval in which
// the token verifies: from its nbf and iat to its exp, widened by the
// leeway.
func (s *Signer) verify(token string) (id Identity, from, until time.Time, err error) {
	var claims tokenClaims
	// The issuer and audience are checked by tokenIdentity: which pair is
	// valid depends on the token's format. The issuer is checked after
	// the signature, so only a signature by one of our keys reaches it.
	t, err := jwt.ParseWithClaims(token, &claims, s.keyFunc,
		jwt.WithValidMethods(s.methods),
		jwt.WithLeeway(TokenLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return Identity{}, from, until, NewUnauthorized(s.reason(t, err))
	}
	if id, err = s.tokenIdentity(&claims); err != nil {
		return Identity{}, from, until, err
	}
	if claims.NotBefore != nil {
		from = claims.NotBefore.Time
	}
	if claims.IssuedAt != nil && claims.IssuedAt.After(from) {
		from = claims.IssuedAt.Time
	}
	return id, from.Add(-TokenLeeway), claims.ExpiresAt.Add(TokenLeeway), nil
}

// tokenIdentity checks the issuer, audience and claims of a token whose
// signature and times are valid and returns its Identity.
func (s *Signer) tokenIdentity(claims *tokenClaims) (Identity, error) {
	switch {
	case claims.Issuer == TokenIssuer:
	case claims.Issuer == TelemeterIssuer && s.telemeter.Accept:
		if !slices.Contains(claims.Audience, TelemeterAudience) {
			return Identity{}, NewUnauthorized("wrong token audience")
		}
		return s.telemeterIdentity(claims)
	default:
		return Identity{}, NewUnauthorized("wrong token issuer")
	}
	if !slices.Contains(claims.Audience, TokenAudience) {
		return Identity{}, NewUnauthorized("wrong token audience")
	}
	if claims.Subject == "" {
		return Identity{}, NewUnauthorized("token has no subject")
	}
	id := NewIdentity(claims.Subject, "")
	if claims.Telegate != nil {
		id.AccountID = claims.Telegate.AccountID
		if v, ok := claims.Telegate.Labels[ClusterIDLabel]; ok && v != claims.Subject {
			return Identity{}, NewUnauthorized("token labels do not match its subject")
		}
		for k, v := range claims.Telegate.Labels {
			id.Labels[k] = v
		}
	}
	return id, nil
}

func (s *Signer) keyFunc(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if (!ok || kid == "") && s.acceptsWithoutKid(t) {
		if set := s.keySet(t); len(set.Keys) > 0 {
			return set, nil
		}
		return nil, errUnknownKid
	}
	if !ok || kid == "" {
		if c, isOurs := t.Claims.(*tokenClaims); isOurs && c.Issuer == TelemeterIssuer {
			return nil, errTelemeterOff
		}
		return nil, errNoKid
	}
	k, ok := s.byID[kid]
	if !ok {
		return nil, errUnknownKid
	}
	if t.Method == nil || t.Method.Alg() != k.method.Alg() {
		return nil, errAlgKeyMismatch
	}
	return k.public, nil
}

// reason turns a jwt error into a short client-facing message.
func (s *Signer) reason(t *jwt.Token, err error) string {
	switch {
	case errors.Is(err, errNoKid):
		return errNoKid.Error()
	case errors.Is(err, errTelemeterOff):
		return errTelemeterOff.Error()
	case errors.Is(err, errUnknownKid):
		return errUnknownKid.Error()
	case errors.Is(err, errAlgKeyMismatch):
		return errAlgKeyMismatch.Error()
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && !s.validAlg(t.Header["alg"]) {
			return "unsupported token algorithm"
		}
		return "invalid token signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong token issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong token audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token is missing a required claim"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unsupported token algorithm"
	default:
		return "invalid token"
	}
}

func (s *Signer) validAlg(alg any) bool {
	a, _ := alg.(string)
	for _, m := range s.methods {
		if m == a {
			return true
		}
	}
	return false
}
