package authn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey returns a 2048-bit RSA key, generated once per test binary.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func testECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKey(t *testing.T, k any) Key {
	t.Helper()
	key, err := NewKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func mustSigner(t *testing.T, expiry time.Duration, keys ...Key) *Signer {
	t.Helper()
	s, err := NewSigner(keys, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func at(s *Signer, t time.Time) { s.now = func() time.Time { return t } }

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// validClaims returns claims a Signer would issue at t0.
func validClaims(clusterID string) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   clusterID,
			Audience:  jwt.ClaimStrings{TokenAudience},
			IssuedAt:  jwt.NewNumericDate(t0),
			NotBefore: jwt.NewNumericDate(t0),
			ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
		},
		Telegate: &identityClaim{Labels: map[string]string{ClusterIDLabel: clusterID}},
	}
}

// craft signs claims with method and signing key, setting kid when not empty.
func craft(t *testing.T, method jwt.SigningMethod, signKey any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func expectUnauthorized(t *testing.T, s *Signer, token, reason string) {
	t.Helper()
	_, err := s.Verify(token)
	if KindOf(err) != Unauthorized {
		t.Fatalf("Verify: err = %v, want Unauthorized", err)
	}
	if err.Error() != reason {
		t.Fatalf("Verify: reason %q, want %q", err.Error(), reason)
	}
}

func TestSignerRoundTrip(t *testing.T) {
	for name, priv := range map[string]any{"ES256": testECKey(t), "RS256": testRSAKey(t)} {
		t.Run(name, func(t *testing.T) {
			key := mustKey(t, priv)
			if key.Algorithm() != name {
				t.Fatalf("Algorithm = %s", key.Algorithm())
			}
			s := mustSigner(t, 2*time.Hour, key)
			at(s, t0)
			in := Identity{ClusterID: "cluster-1", AccountID: "acct", Labels: map[string]string{"region": "eu", ClusterIDLabel: "spoofed"}}
			token, expiresIn, err := s.Issue(in)
			if err != nil {
				t.Fatal(err)
			}
			if expiresIn != 2*time.Hour {
				t.Fatalf("expiresIn = %v", expiresIn)
			}
			if in.Labels[ClusterIDLabel] != "spoofed" {
				t.Fatal("Issue mutated the caller's labels")
			}

			parts := strings.Split(token, ".")
			var header map[string]any
			var claims map[string]any
			hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
			cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
				t.Fatal("token parts are not JSON")
			}
			if header["alg"] != name || header["kid"] != key.ID() {
				t.Fatalf("header = %v", header)
			}
			if claims["iss"] != "telegate" || claims["sub"] != "cluster-1" || !audIs(claims["aud"], "telegate-upload") ||
				claims["iat"] != float64(t0.Unix()) || claims["nbf"] != float64(t0.Unix()) || claims["exp"] != float64(t0.Add(2*time.Hour).Unix()) {
				t.Fatalf("claims = %v", claims)
			}

			at(s, t0.Add(time.Hour))
			id, err := s.Verify(token)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{ClusterIDLabel: "cluster-1", "region": "eu"}
			if id.ClusterID != "cluster-1" || id.AccountID != "acct" || len(id.Labels) != 2 || id.Labels["region"] != "eu" || id.Labels[ClusterIDLabel] != "cluster-1" {
				t.Fatalf("identity = %+v, want labels %v", id, want)
			}
		})
	}
}

// audIs accepts the aud claim as a string or a one-element array (RFC 7519).
func audIs(aud any, want string) bool {
	if s, ok := aud.(string); ok {
		return s == want
	}
	l, ok := aud.([]any)
	return ok && len(l) == 1 && l[0] == want
}

func TestSignerTimeChecks(t *testing.T) {
	s := mustSigner(t, time.Hour, mustKey(t, testECKey(t)))
	at(s, t0)
	token, _, err := s.Issue(NewIdentity("c", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		now    time.Time
		reason string
	}{
		{"fresh", t0, ""},
		{"expired within leeway", t0.Add(time.Hour + 30*time.Second), ""},
		{"expired", t0.Add(time.Hour + TokenLeeway + time.Second), "token expired"},
		{"not yet valid within leeway", t0.Add(-30 * time.Second), ""},
		{"not yet valid", t0.Add(-TokenLeeway - time.Second), "token not valid yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at(s, tc.now)
			if tc.reason == "" {
				if _, err := s.Verify(token); err != nil {
					t.Fatal(err)
				}
				return
			}
			expectUnauthorized(t, s, token, tc.reason)
		})
	}
}

func TestSignerRotation(t *testing.T) {
	oldPriv, newPriv := testECKey(t), testECKey(t)
	oldKey, newKey := mustKey(t, oldPriv), mustKey(t, newPriv)
	oldPub := mustKey(t, &oldPriv.PublicKey)
	if oldPub.ID() != oldKey.ID() || oldPub.CanSign() || !oldKey.CanSign() {
		t.Fatal("public and private halves must share the key ID")
	}

	oldSigner := mustSigner(t, time.Hour, oldKey)
	token, _, err := oldSigner.Issue(NewIdentity("c", ""))
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustSigner(t, time.Hour, newKey, oldPub)
	if rotated.ActiveKeyID() != newKey.ID() {
		t.Fatal("first key must sign")
	}
	if ids := rotated.KeyIDs(); len(ids) != 2 || ids[0] != newKey.ID() || ids[1] != oldKey.ID() {
		t.Fatalf("KeyIDs = %v", ids)
	}
	if id, err := rotated.Verify(token); err != nil || id.ClusterID != "c" {
		t.Fatalf("token of the previous key: %+v %v", id, err)
	}
	newToken, _, _ := rotated.Issue(NewIdentity("c", ""))
	if _, err := oldSigner.Verify(newToken); err == nil {
		t.Fatal("old signer accepted a token of a key it does not know")
	}
	expectUnauthorized(t, mustSigner(t, time.Hour, newKey), token, "token signed by an unknown key")
}

func TestSignerRejectsForgedTokens(t *testing.T) {
	ecPriv, rsaPriv := testECKey(t), testRSAKey(t)
	ecKey, rsaK := mustKey(t, ecPriv), mustKey(t, rsaPriv)
	s := mustSigner(t, time.Hour, ecKey, rsaK)
	at(s, t0)
	good := craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), validClaims("c"))
	if _, err := s.Verify(good); err != nil {
		t.Fatalf("baseline token rejected: %v", err)
	}

	pubDER, _ := x509.MarshalPKIXPublicKey(&ecPriv.PublicKey)
	noExp := validClaims("c")
	noExp.ExpiresAt = nil
	wrongIss := validClaims("c")
	wrongIss.Issuer = "telemeter"
	wrongAud := validClaims("c")
	wrongAud.Audience = jwt.ClaimStrings{"someone-else"}
	noSub := validClaims("")
	noSub.Telegate = nil
	spoofed := validClaims("c")
	spoofed.Telegate.Labels[ClusterIDLabel] = "other"

	parts := strings.Split(good, ".")
	otherClaims, _ := json.Marshal(validClaims("other-cluster"))
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(otherClaims) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 0xff
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	for _, tc := range []struct {
		name, token, reason string
	}{
		{"alg none", craft(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ecKey.ID(), validClaims("c")), "unsupported token algorithm"},
		{"HS256 with the public key as secret", craft(t, jwt.SigningMethodHS256, pubDER, ecKey.ID(), validClaims("c")), "unsupported token algorithm"},
		{"RS256 header on an EC kid", craft(t, jwt.SigningMethodRS256, rsaPriv, ecKey.ID(), validClaims("c")), "token algorithm does not match its key"},
		{"no kid", craft(t, jwt.SigningMethodES256, ecPriv, "", validClaims("c")), "token has no key ID"},
		{"unknown kid", craft(t, jwt.SigningMethodES256, ecPriv, "0123456789abcdef", validClaims("c")), "token signed by an unknown key"},
		{"signed by another key", craft(t, jwt.SigningMethodES256, testECKey(t), ecKey.ID(), validClaims("c")), "invalid token signature"},
		{"tampered payload", tamperedPayload, "invalid token signature"},
		{"tampered signature", tamperedSig, "invalid token signature"},
		{"wrong issuer", craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), wrongIss), "wrong token issuer"},
		{"wrong audience", craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), wrongAud), "wrong token audience"},
		{"no exp", craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), noExp), "token is missing a required claim"},
		{"no subject", craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), noSub), "token has no subject"},
		{"labels contradict subject", craft(t, jwt.SigningMethodES256, ecPriv, ecKey.ID(), spoofed), "token labels do not match its subject"},
		{"garbage", "not-a-jwt", "malformed token"},
		{"empty", "", "malformed token"},
		{"unknown alg", "eyJhbGciOiJYWVoiLCJraWQiOiJ4In0.e30.c2ln", "unsupported token algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectUnauthorized(t, s, tc.token, tc.reason) })
	}
}

func TestSignerIssueAndConstructorErrors(t *testing.T) {
	priv := testECKey(t)
	key, pub := mustKey(t, priv), mustKey(t, &priv.PublicKey)
	s := mustSigner(t, time.Minute, key)
	if _, _, err := s.Issue(Identity{}); err == nil {
		t.Fatal("empty cluster ID issued")
	}
	if s.Expiry() != time.Minute {
		t.Fatal("Expiry")
	}
	for name, tc := range map[string]struct {
		keys   []Key
		expiry time.Duration
	}{
		"no keys":           {nil, time.Minute},
		"public key first":  {[]Key{pub, key}, time.Minute},
		"zero expiry":       {[]Key{key}, 0},
		"uninitialized key": {[]Key{key, {}}, time.Minute},
	} {
		if _, err := NewSigner(tc.keys, tc.expiry); err == nil {
			t.Fatalf("%s: NewSigner succeeded", name)
		}
	}
	// Duplicates are tolerated (e.g. the active key also listed as a public key).
	if d := mustSigner(t, time.Minute, key, pub); len(d.KeyIDs()) != 1 {
		t.Fatalf("KeyIDs = %v", d.KeyIDs())
	}
}

func TestEphemeralSigner(t *testing.T) {
	s, err := NewEphemeralSigner(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Issue(NewIdentity("c", ""))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Verify(tok); err != nil || id.ClusterID != "c" {
		t.Fatalf("%+v %v", id, err)
	}
	other, _ := NewEphemeralSigner(time.Minute)
	if other.ActiveKeyID() == s.ActiveKeyID() {
		t.Fatal("ephemeral keys must differ")
	}
	if _, err := other.Verify(tok); err == nil {
		t.Fatal("another ephemeral signer accepted the token")
	}
}

func TestNewKey(t *testing.T) {
	ec := testECKey(t)
	if a, b := mustKey(t, ec), mustKey(t, ec); a.ID() != b.ID() || len(a.ID()) != 16 {
		t.Fatalf("kid not stable: %q %q", a.ID(), b.ID())
	}
	for curve, alg := range map[elliptic.Curve]string{elliptic.P384(): "ES384", elliptic.P521(): "ES512"} {
		k, _ := ecdsa.GenerateKey(curve, rand.Reader)
		if got := mustKey(t, k).Algorithm(); got != alg {
			t.Fatalf("%s: %s", curve.Params().Name, got)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, k := range map[string]any{
		"RSA 1024": small, "P-224": p224, "ed25519": edPriv, "string": "x", "nil ecdsa": (*ecdsa.PublicKey)(nil), "nil rsa": (*rsa.PublicKey)(nil),
	} {
		if _, err := NewKey(k); err == nil {
			t.Fatalf("%s accepted", name)
		}
	}
}

func pemBlock(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestPEMFormats(t *testing.T) {
	ec, rs := testECKey(t), testRSAKey(t)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecSEC1, _ := x509.MarshalECPrivateKey(ec)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rs)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	wantEC, wantRSA := mustKey(t, ec).ID(), mustKey(t, rs).ID()

	for _, tc := range []struct {
		name    string
		pem     []byte
		wantID  string
		canSign bool
	}{
		{"PKCS8 EC", pemBlock(t, "PRIVATE KEY", ecPKCS8), wantEC, true},
		{"SEC1 EC", pemBlock(t, "EC PRIVATE KEY", ecSEC1), wantEC, true},
		{"openssl ecparam output", append(ecParams, pemBlock(t, "EC PRIVATE KEY", ecSEC1)...), wantEC, true},
		{"PKCS1 RSA", pemBlock(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rs)), wantRSA, true},
		{"PKCS8 RSA", pemBlock(t, "PRIVATE KEY", rsaPKCS8), wantRSA, true},
		{"PKIX public", pemBlock(t, "PUBLIC KEY", ecPub), wantEC, false},
		{"PKCS1 RSA public", pemBlock(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rs.PublicKey)), wantRSA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeysPEM(tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0].ID() != tc.wantID || keys[0].CanSign() != tc.canSign {
				t.Fatalf("keys = %+v", keys)
			}
		})
	}

	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	for name, data := range map[string][]byte{
		"no PEM":          []byte("hello"),
		"only parameters": ecParams,
		"unknown type":    pemBlock(t, "OPENSSH PRIVATE KEY", []byte{1, 2, 3}),
		"corrupt":         pemBlock(t, "EC PRIVATE KEY", []byte{1, 2, 3}),
		"ed25519":         pemBlock(t, "PRIVATE KEY", edPKCS8),
	} {
		if _, err := ParseKeysPEM(data); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
}

func TestLoadSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	active, previous := testECKey(t), testRSAKey(t)
	activeDER, _ := x509.MarshalPKCS8PrivateKey(active)
	prevPub, _ := x509.MarshalPKIXPublicKey(&previous.PublicKey)
	data := append(pemBlock(t, "PRIVATE KEY", activeDER), pemBlock(t, "PUBLIC KEY", prevPub)...)
	path := filepath.Join(dir, "signing.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadSigningKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].CanSign() || keys[0].ID() != mustKey(t, active).ID() || keys[1].ID() != mustKey(t, previous).ID() {
		t.Fatalf("keys = %+v", keys)
	}
	s := mustSigner(t, time.Hour, keys...)
	prevToken := craft(t, jwt.SigningMethodRS256, previous, keys[1].ID(), validClaims("c"))
	at(s, t0)
	if _, err := s.Verify(prevToken); err != nil {
		t.Fatalf("token of the verify-only key: %v", err)
	}

	pubFirst := filepath.Join(dir, "public-first.pem")
	os.WriteFile(pubFirst, append(pemBlock(t, "PUBLIC KEY", prevPub), pemBlock(t, "PRIVATE KEY", activeDER)...), 0o600)
	if _, err := LoadSigningKeyFile(pubFirst); err == nil || !strings.Contains(err.Error(), "first PEM block must be a private key") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadKeysFile(pubFirst); err != nil {
		t.Fatalf("LoadKeysFile must accept public keys: %v", err)
	}
	if _, err := LoadSigningKeyFile(filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("missing file accepted")
	}
}
