package relabel

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/batch"
)

// Every byte of a string, at every length, moves its hash: a hash that
// skipped a byte (a tail, the middle of a short string) would make series
// that differ only there look alike to the collision check.
func TestHashStringCoversEveryByte(t *testing.T) {
	base := "abcdefghijklmnopqrstuvwxyz0123456789"
	for n := 0; n <= len(base); n++ {
		s := base[:n]
		h := hashString(1, s)
		if n > 0 && h == hashString(1, s[:n-1]) {
			t.Errorf("len %d: same hash as its prefix", n)
		}
		for i := 0; i < n; i++ {
			flipped := s[:i] + "#" + s[i+1:]
			if hashString(1, flipped) == h {
				t.Errorf("len %d: byte %d does not change the hash", n, i)
			}
		}
	}
	if hashString(hashString(1, "ab"), "c") == hashString(hashString(1, "a"), "bc") {
		t.Error(`("ab", "c") and ("a", "bc") hash alike`)
	}
}

// hashStringOr's OR sees a high bit wherever it is, at every length, and
// its hash is hashString's.
func TestHashStringOrFindsHighBitAnywhere(t *testing.T) {
	or := func(s string) uint64 { _, o := hashStringOr(7, s); return o }
	for n := 0; n <= 40; n++ {
		s := strings.Repeat("a", n)
		if or(s)&0x8080808080808080 != 0 {
			t.Errorf("len %d: ASCII string reported non-ASCII", n)
		}
		for i := 0; i < n; i++ {
			hi := s[:i] + "\xc3" + s[i+1:]
			if or(hi)&0x8080808080808080 == 0 {
				t.Errorf("len %d: byte >= 0x80 at %d missed", n, i)
			}
			if h, _ := hashStringOr(7, hi); h != hashString(7, hi) {
				t.Errorf("len %d: hash differs from hashString", n)
			}
		}
	}
}

// Invalid UTF-8 is refused in any position of the value, and valid
// multi-byte UTF-8 is kept.
func TestProcessChecksUTF8OfEveryValue(t *testing.T) {
	p := New(defaultOpts())
	for _, v := range []string{"\xff", "abcdefgh\xff", "abcdefghi\xc3", "ok\xc3("} {
		if _, err := p.Process(mk([]string{"__name__", "up", "job", "x", "zone", v}), "c1", time.Now(), false, &Scratch{}); err == nil {
			t.Errorf("value %q accepted", v)
		}
	}
	b := mk([]string{"__name__", "up", "job", "zürich-ñ-東京"})
	if _, err := p.Process(b, "c1", time.Now(), false, &Scratch{}); err != nil || len(b.Series) != 1 {
		t.Fatalf("valid UTF-8: %v (%d series)", err, len(b.Series))
	}
}

// Two different label sets with the same hash are both kept, and a later
// duplicate of the first is still found: a collision costs a probe, never
// a series or a missed duplicate.
func TestSeenBeforeSurvivesHashCollision(t *testing.T) {
	p := New(defaultOpts())
	a := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "a"}}}
	b := batch.Series{Labels: []batch.Label{{Name: "__name__", Value: "b"}}}
	var seen seenTable
	seen.reset(0)
	var kept []batch.Series
	const h = 42 // the same hash for both, as if they collided
	for _, s := range []batch.Series{a, b} {
		if _, dup := p.seenBefore(&seen, h, kept, &s); dup {
			t.Fatalf("%v reported as seen", s.Labels)
		}
		kept = append(kept, s)
	}
	for i, s := range []batch.Series{a, b} {
		if j, dup := p.seenBefore(&seen, h, kept, &s); !dup || j != i {
			t.Errorf("duplicate of %v not found after a collision (%d, %v)", s.Labels, j, dup)
		}
	}
}

// seenTable agrees with a map: keys that share slots, more entries than
// reset was told of (it grows), and reuse after reset.
func TestSeenTableAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab seenTable
	for round, n := range []int{0, 5, 1000, 3, 5000} {
		tab.reset(n / 2)
		want := map[uint64]int{}
		for j := range n {
			h := rng.Uint64()
			if j%7 == 0 {
				h = uint64(j % 13) // small keys: runs of neighbouring slots
			}
			if _, ok := want[h]; ok {
				continue
			}
			if _, ok := tab.get(h); ok {
				t.Fatalf("round %d: %d found before it was put", round, h)
			}
			want[h] = j
			tab.put(h, j)
		}
		for h, j := range want {
			if got, ok := tab.get(h); !ok || got != j {
				t.Fatalf("round %d: get(%d) = %d, %v; want %d", round, h, got, ok, j)
			}
		}
		for range 100 {
			h := rng.Uint64()
			if _, in := want[h]; !in {
				if _, ok := tab.get(h); ok {
					t.Fatalf("round %d: %d found, never put", round, h)
				}
			}
		}
	}
}
