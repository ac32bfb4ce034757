package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits is the smallest RSA modulus accepted for signing or verifying.
const minRSABits = 2048

// Key is a JWT signing or verification key. Keys with a private part can
// sign; every key can verify. A key's ID (the JWT "kid") is the first 16 hex
// characters of the SHA-256 of its PKIX-encoded public key, so it is stable
// across restarts and replicas.
type Key struct {
	id      string
	method  jwt.SigningMethod
	private crypto.Signer // nil for verification-only keys
	public  crypto.PublicKey
}

// NewKey wraps an *ecdsa.PrivateKey, *rsa.PrivateKey, *ecdsa.PublicKey or
// *rsa.PublicKey. ECDSA P-256, P-384 and P-521 keys use ES256, ES384 and
// ES512; RSA keys (at least 2048 bits) use RS256.
func NewKey(k any) (Key, error) {
	var (
		priv crypto.Signer
		pub  crypto.PublicKey
	)
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		priv, pub = k, &k.PublicKey
	case *rsa.PrivateKey:
		priv, pub = k, &k.PublicKey
	case *ecdsa.PublicKey, *rsa.PublicKey:
		pub = k
	default:
		return Key{}, fmt.Errorf("unsupported key type %T (want ECDSA or RSA)", k)
	}
	var method jwt.SigningMethod
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p == nil || p.Curve == nil {
			return Key{}, errors.New("invalid ECDSA key")
		}
		switch p.Curve {
		case elliptic.P256():
			method = jwt.SigningMethodES256
		case elliptic.P384():
			method = jwt.SigningMethodES384
		case elliptic.P521():
			method = jwt.SigningMethodES512
		default:
			return Key{}, fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if p == nil || p.N == nil {
			return Key{}, errors.New("invalid RSA key")
		}
		if p.N.BitLen() < minRSABits {
			return Key{}, fmt.Errorf("RSA key has %d bits, want at least %d", p.N.BitLen(), minRSABits)
		}
		method = jwt.SigningMethodRS256
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return Key{id: hex.EncodeToString(sum[:])[:16], method: method, private: priv, public: pub}, nil
}

// ID returns the key ID used as the JWT "kid" header.
func (k Key) ID() string { return k.id }

// Algorithm returns the JWT algorithm of the key (ES256, RS256, ...).
func (k Key) Algorithm() string {
	if k.method == nil {
		return ""
	}
	return k.method.Alg()
}

// CanSign reports whether the key has a private part.
func (k Key) CanSign() bool { return k.private != nil }

// Public returns the public part of the key.
func (k Key) Public() crypto.PublicKey { return k.public }

// ParseKeysPEM parses every PEM block in data, in order. Private keys may be
// PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE
// KEY"); public keys may be PKIX ("PUBLIC KEY"), PKCS#1 ("RSA PUBLIC KEY")
// or a certificate. "EC PARAMETERS" blocks, as written by openssl ecparam,
// are skipped. Data without any key is an error.
func ParseKeysPEM(data []byte) ([]Key, error) {
	var keys []Key
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				k = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d: unsupported type %q", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		key, err := NewKey(k)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded key found")
	}
	return keys, nil
}

// LoadKeysFile reads every key of a PEM file (see ParseKeysPEM). Use it for
// extra verification-only keys, e.g. the public keys of retired signers.
func LoadKeysFile(path string) ([]Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	keys, err := ParseKeysPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// LoadSigningKeyFile reads a PEM file holding one or more keys. The first
// must be a private key: it signs. The others (private or public) only
// verify, which lets a rotation keep accepting tokens signed by the previous
// key until they expire.
func LoadSigningKeyFile(path string) ([]Key, error) {
	keys, err := LoadKeysFile(path)
	if err != nil {
		return nil, err
	}
	if !keys[0].CanSign() {
		return nil, fmt.Errorf("%s: the first PEM block must be a private key", path)
	}
	return keys, nil
}
