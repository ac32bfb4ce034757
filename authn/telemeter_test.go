package authn

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// telemeterFixture is one /authorize answer of the real telemeter-server,
// kept in testdata/telemeter/tokens.json (how they were minted:
// testdata/telemeter/README.md).
type telemeterFixture struct {
	Name     string `json:"name"`
	Response struct {
		Token            string            `json:"token"`
		ExpiresInSeconds int64             `json:"expiresInSeconds"`
		Labels           map[string]string `json:"labels"`
	} `json:"response"`
}

func telemeterFixtures(t *testing.T) map[string]telemeterFixture {
	t.Helper()
	data, err := os.ReadFile("testdata/telemeter/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tokens []telemeterFixture `json:"tokens"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]telemeterFixture)
	for _, f := range doc.Tokens {
		out[f.Name] = f
	}
	return out
}

// telemeterSharedKey is the --shared-key the fixtures were signed with.
func telemeterSharedKey(t *testing.T) []Key {
	t.Helper()
	keys, err := LoadSigningKeyFile("testdata/telemeter/shared-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// rawClaims decodes a JWT's payload without verifying it.
func rawClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// issuedAt is the fixture token's "iat".
func issuedAt(t *testing.T, token string) time.Time {
	t.Helper()
	return time.Unix(int64(rawClaims(t, token)["iat"].(float64)), 0)
}

func telemeterSigner(t *testing.T, tc TelemeterCompat, keys ...Key) *Signer {
	t.Helper()
	s, err := NewSignerWithOptions(keys, SignerOptions{Expiry: time.Hour, Telemeter: tc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifyRealTelemeterTokens verifies tokens minted by the real
// telemeter-server's /authorize with the same --shared-key.
func TestVerifyRealTelemeterTokens(t *testing.T) {
	fx := telemeterFixtures(t)
	keys := telemeterSharedKey(t)
	for _, tc := range []struct {
		fixture   string
		partition string
		want      Identity
		reason    string // Unauthorized reason, "" = accepted
	}{
		{fixture: "tollbooth", want: Identity{ClusterID: "cluster-a", AccountID: "acct-42",
			Labels: map[string]string{"_id": "cluster-a", "region": "eu-west"}}},
		{fixture: "stub_authorizer", want: Identity{ClusterID: "cluster-b", AccountID: "c4v8i4g77232l",
			Labels: map[string]string{"_id": "cluster-b"}}},
		{fixture: "partition_label", partition: "cluster_id", want: Identity{ClusterID: "cluster-c", AccountID: "acct-42",
			Labels: map[string]string{"_id": "cluster-c", "cluster_id": "cluster-c"}}},
		// The partition label telegate expects is missing: not a cluster.
		{fixture: "partition_label", reason: "token has no cluster ID label"},
		// Signed by another telemeter-server's key.
		{fixture: "other_key", reason: "invalid token signature"},
		// RS256: the RSA key is not among the keys.
		{fixture: "rsa", reason: "unsupported token algorithm"},
	} {
		t.Run(tc.fixture+"/"+tc.partition, func(t *testing.T) {
			f, ok := fx[tc.fixture]
			if !ok {
				t.Fatalf("no fixture %q", tc.fixture)
			}
			s := telemeterSigner(t, TelemeterCompat{Accept: true, PartitionLabel: tc.partition}, keys...)
			at(s, issuedAt(t, f.Response.Token).Add(time.Minute))
			id, err := s.Verify(f.Response.Token)
			if tc.reason != "" {
				expectUnauthorized(t, s, f.Response.Token, tc.reason)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(id, tc.want) {
				t.Fatalf("identity = %+v, want %+v", id, tc.want)
			}
		})
	}
}

func TestRealTelemeterTokenChecks(t *testing.T) {
	f := telemeterFixtures(t)["tollbooth"]
	keys := telemeterSharedKey(t)
	iat := issuedAt(t, f.Response.Token)
	exp := iat.Add(time.Duration(f.Response.ExpiresInSeconds) * time.Second)

	t.Run("accept off", func(t *testing.T) {
		s := telemeterSigner(t, TelemeterCompat{}, keys...)
		at(s, iat.Add(time.Minute))
		expectUnauthorized(t, s, f.Response.Token, "telemeter-server tokens are not accepted")
	})
	t.Run("expired", func(t *testing.T) {
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, keys...)
		at(s, exp.Add(TokenLeeway+time.Second))
		expectUnauthorized(t, s, f.Response.Token, "token expired")
	})
	t.Run("not yet valid", func(t *testing.T) {
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, keys...)
		at(s, iat.Add(-TokenLeeway-time.Second))
		expectUnauthorized(t, s, f.Response.Token, "token not valid yet")
	})
	t.Run("labels tampered", func(t *testing.T) {
		parts := strings.Split(f.Response.Token, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), "cluster-a", "cluster-z", 1)
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, keys...)
		at(s, iat.Add(time.Minute))
		expectUnauthorized(t, s, strings.Join(parts, "."), "invalid token signature")
	})
	t.Run("forged algorithms", func(t *testing.T) {
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, keys...)
		at(s, iat.Add(time.Minute))
		parts := strings.Split(f.Response.Token, ".")
		enc := base64.RawURLEncoding.EncodeToString
		// alg none, no signature.
		expectUnauthorized(t, s, enc([]byte(`{"alg":"none"}`))+"."+parts[1]+".", "unsupported token algorithm")
		// HS256 keyed with the public key (algorithm confusion).
		der, err := x509.MarshalPKIXPublicKey(keys[0].Public())
		if err != nil {
			t.Fatal(err)
		}
		var claims tokenClaims
		if _, _, err := jwt.NewParser().ParseUnverified(f.Response.Token, &claims); err != nil {
			t.Fatal(err)
		}
		expectUnauthorized(t, s, craft(t, jwt.SigningMethodHS256, der, "", claims), "unsupported token algorithm")
	})
	t.Run("RS256 from an RSA shared key", func(t *testing.T) {
		rsaKeys, err := LoadSigningKeyFile("testdata/telemeter/rsa-key.pem")
		if err != nil {
			t.Fatal(err)
		}
		f := telemeterFixtures(t)["rsa"]
		// With the EC key first (signing) and the RSA key verifying, as
		// after moving off telemeter-server's RSA key.
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, append(keys, rsaKeys...)...)
		at(s, issuedAt(t, f.Response.Token).Add(time.Minute))
		id, err := s.Verify(f.Response.Token)
		if err != nil || id.ClusterID != "cluster-r" || id.AccountID != "acct-42" {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
		// Signing with it, telemeter-server's verification accepts the
		// token as RS256.
		s = telemeterSigner(t, TelemeterCompat{Accept: true, Issue: true}, rsaKeys...)
		tok, _, err := s.Issue(NewIdentity("cluster-r2", "a"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"`))[:16]) {
			t.Fatalf("token header is not RS256: %s", tok)
		}
		if _, err := s.Verify(tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rotated: shared key verifies only", func(t *testing.T) {
		// The gateway signs with a new key; the shared key stays as a
		// verification key until the fleet's telemeter tokens expire.
		pub := mustKey(t, keys[0].Public())
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, mustKey(t, testECKey(t)), pub)
		at(s, iat.Add(time.Minute))
		if _, err := s.Verify(f.Response.Token); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("native tokens still verify", func(t *testing.T) {
		s := telemeterSigner(t, TelemeterCompat{Accept: true}, keys...)
		tok, _, err := s.Issue(NewIdentity("cluster-n", "acct"))
		if err != nil {
			t.Fatal(err)
		}
		if rawClaims(t, tok)["iss"] != TokenIssuer {
			t.Fatalf("issuer %v, want %s", rawClaims(t, tok)["iss"], TokenIssuer)
		}
		id, err := s.Verify(tok)
		if err != nil || id.ClusterID != "cluster-n" || id.AccountID != "acct" {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
	})
}

// verifyAsTelemeter checks token the way telemeter-server's /upload does
// (pkg/authorize/jwt: signature by the shared key whatever the header says
// beyond "alg", "iss" exactly TelemeterIssuer, "nbf"/"exp"/"iat" with a
// minute of leeway, "aud" containing TelemeterAudience as a string or a
// list, then the partition label from the TelemeterClaim's labels), written
// independently of Signer so that a Signer bug cannot hide itself.
func verifyAsTelemeter(t *testing.T, token string, pub *ecdsa.PublicKey, now time.Time, partition string) (subject string, labels map[string]string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "ES256" {
		t.Fatalf("alg %v, want ES256", h["alg"])
	}
	if _, crit := h["crit"]; crit {
		t.Fatal("crit header: go-jose would refuse it")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature does not verify with the shared key")
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iss       string          `json:"iss"`
		Sub       string          `json:"sub"`
		Aud       json.RawMessage `json:"aud"`
		Exp       *float64        `json:"exp"`
		Nbf       *float64        `json:"nbf"`
		Iat       *float64        `json:"iat"`
		Telemeter struct {
			Labels map[string]string `json:"labels"`
		} `json:"telemeter.openshift.io"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if c.Iss != TelemeterIssuer {
		t.Fatalf("iss %q, want %q", c.Iss, TelemeterIssuer)
	}
	leeway := time.Minute
	unix := func(f *float64) time.Time { return time.Unix(int64(*f), 0) }
	if c.Exp == nil || now.Add(-leeway).After(unix(c.Exp)) {
		t.Fatal("expired or no exp")
	}
	if c.Nbf != nil && now.Add(leeway).Before(unix(c.Nbf)) {
		t.Fatal("not valid yet")
	}
	if c.Iat != nil && now.Add(leeway).Before(unix(c.Iat)) {
		t.Fatal("issued in the future")
	}
	var auds []string
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		auds = []string{one}
	} else if err := json.Unmarshal(c.Aud, &auds); err != nil {
		t.Fatalf("aud %s: %v", c.Aud, err)
	}
	if !slices.Contains(auds, TelemeterAudience) {
		t.Fatalf("aud %v lacks %q", auds, TelemeterAudience)
	}
	if c.Telemeter.Labels[partition] == "" {
		t.Fatalf("labels %v lack the partition label %q", c.Telemeter.Labels, partition)
	}
	return c.Sub, c.Telemeter.Labels
}

// TestIssueTelemeterTokens: with Issue on, /authorize's tokens are what
// telemeter-server accepts, so traffic can move back to it.
func TestIssueTelemeterTokens(t *testing.T) {
	keys := telemeterSharedKey(t)
	pub := keys[0].Public().(*ecdsa.PublicKey)
	for _, tc := range []struct {
		partition string
		id        Identity
		wantSub   string
		want      map[string]string
	}{
		{id: Identity{ClusterID: "cluster-a", AccountID: "acct-42", Labels: map[string]string{"_id": "cluster-a", "region": "eu-west"}},
			wantSub: "acct-42", want: map[string]string{"_id": "cluster-a", "region": "eu-west"}},
		{id: Identity{ClusterID: "cluster-b", Labels: map[string]string{"_id": "cluster-b"}},
			wantSub: "", want: map[string]string{"_id": "cluster-b"}},
		{partition: "cluster_id", id: Identity{ClusterID: "cluster-c", AccountID: "a", Labels: map[string]string{"cluster_id": "cluster-c"}},
			wantSub: "a", want: map[string]string{"cluster_id": "cluster-c"}},
	} {
		t.Run(tc.id.ClusterID, func(t *testing.T) {
			s := telemeterSigner(t, TelemeterCompat{Accept: true, Issue: true, PartitionLabel: tc.partition}, keys...)
			at(s, t0)
			tok, exp, err := s.Issue(tc.id)
			if err != nil || exp != time.Hour {
				t.Fatalf("Issue: %v, %v", exp, err)
			}
			partition := tc.partition
			if partition == "" {
				partition = ClusterIDLabel
			}
			sub, labels := verifyAsTelemeter(t, tok, pub, t0.Add(30*time.Minute), partition)
			if sub != tc.wantSub || !reflect.DeepEqual(labels, tc.want) {
				t.Fatalf("telemeter sees sub %q labels %v, want %q %v", sub, labels, tc.wantSub, tc.want)
			}
			// And telegate accepts its own telemeter-format tokens.
			id, err := s.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.ClusterID != tc.id.ClusterID || id.AccountID != tc.id.AccountID {
				t.Fatalf("Verify = %+v, want %+v", id, tc.id)
			}
			for k, v := range tc.want {
				if id.Labels[k] != v {
					t.Fatalf("labels %v, want %v", id.Labels, tc.want)
				}
			}
		})
	}
}

// TestTelemeterIssueWithoutAccept: a Signer issuing telemeter tokens but
// not accepting them would refuse its own tokens: a constructor error.
func TestTelemeterIssueWithoutAccept(t *testing.T) {
	_, err := NewSignerWithOptions(telemeterSharedKey(t), SignerOptions{Expiry: time.Hour, Telemeter: TelemeterCompat{Issue: true}})
	if err == nil || !strings.Contains(err.Error(), "accept") {
		t.Fatalf("err = %v, want an error naming accept", err)
	}
}

func ExampleTelemeterCompat() {
	fmt.Println(TelemeterIssuer, TelemeterAudience, TelemeterClaim)
	// Output: telemeter.selfsigned telemeter-client telemeter.openshift.io
}

// FuzzVerifyTelemeter: whatever the token, Verify with telemeter tokens
// accepted answers Unauthorized or an identity with a cluster ID; it never
// panics.
func FuzzVerifyTelemeter(f *testing.F) {
	data, err := os.ReadFile("testdata/telemeter/tokens.json")
	if err != nil {
		f.Fatal(err)
	}
	var doc struct {
		Tokens []telemeterFixture `json:"tokens"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		f.Fatal(err)
	}
	for _, tok := range doc.Tokens {
		f.Add(tok.Response.Token)
	}
	keys, err := LoadSigningKeyFile("testdata/telemeter/shared-key.pem")
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSignerWithOptions(keys, SignerOptions{Expiry: time.Hour, Telemeter: TelemeterCompat{Accept: true, Issue: true}})
	if err != nil {
		f.Fatal(err)
	}
	s.now = func() time.Time { return time.Unix(1796300400, 0) }
	f.Fuzz(func(t *testing.T, token string) {
		id, err := s.Verify(token)
		if err != nil {
			if KindOf(err) != Unauthorized {
				t.Fatalf("error kind %v: %v", KindOf(err), err)
			}
			return
		}
		if id.ClusterID == "" {
			t.Fatalf("accepted %q without a cluster ID", token)
		}
	})
}
