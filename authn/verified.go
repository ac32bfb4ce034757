package authn

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// DefaultVerifiedTokens is how many verified upload tokens a Signer
// remembers. A cluster presents the same token on every upload until it
// expires, so one entry per cluster served by the replica is enough; an
// entry costs about 100 bytes.
const DefaultVerifiedTokens = 1 << 16

// verifiedTokens remembers the tokens a Signer has verified, keyed by their
// SHA-256, until they expire: a cluster's next upload with the same token
// skips the JSON decoding and the signature check (ES256 verification was
// about 5% of the gateway's CPU under fleet load, and most of the per-request
// allocations of /upload). Only successful verifications are remembered, and
// an entry is only used while its token would still verify (between nbf
// and exp, widened by the leeway), so the outcome is exactly that of a
// full verification.
type verifiedTokens struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]verifiedToken
	max int
}

type verifiedToken struct {
	id          Identity // read-only once stored: callers never write to Labels
	from, until time.Time
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{m: make(map[[sha256.Size]byte]verifiedToken), max: max}
}

func tokenKey(token string) [sha256.Size]byte {
	// The digest only reads the token's bytes: no copy needed.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// get returns the identity of a token verified earlier that is still valid
// at now.
func (c *verifiedTokens) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || now.Before(v.from) || !now.Before(v.until) {
		return Identity{}, false
	}
	return v.id, true
}

// put remembers a token that verifies from from until until. When full it
// first drops the expired entries and, if none were, an eighth of the
// entries (map order: arbitrary), so a burst of new clusters costs
// amortised O(1) per insert.
func (c *verifiedTokens) put(key [sha256.Size]byte, id Identity, from, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, v := range c.m {
			if !now.Before(v.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = verifiedToken{id: id, from: from, until: until}
}

// len is the number of remembered tokens.
func (c *verifiedTokens) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
