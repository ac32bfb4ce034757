package decode

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// after is a > b for label names.
func TestAfter(t *testing.T) {
	names := []string{"", "a", "b", "ab", "aa", "__name__", "_id", "job", "jobs", "z", "\xff", "a\x00"}
	for _, a := range names {
		for _, b := range names {
			if got := after(a, b); got != (a > b) {
				t.Errorf("after(%q, %q) = %v", a, b, got)
			}
		}
	}
}

// refBudget is budget.take as the obvious reading of its rule: charge n if
// left, then ask reserve for the charge past the grant.
type refBudget struct {
	left, limit, granted int
	reserve              func(int) error
}

func (b *refBudget) take(n int) bool {
	if n > b.left {
		return false
	}
	b.left -= n
	base := b.limit
	if base == 0 {
		base = unlimited
	}
	used := base - b.left
	if b.reserve != nil && used > b.granted {
		step := max(ReserveStep, used-b.granted)
		if b.limit > 0 {
			step = min(step, b.limit-b.granted)
		}
		if b.reserve(step) != nil {
			b.left += n
			return false
		}
		b.granted += step
	}
	return true
}

// budget.take charges, refuses and asks Limits.Reserve exactly as
// refBudget does, with and without a limit and a reserve.
func TestBudgetTakeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 400 {
		limit := []int{0, 1000, 300 << 10, 3 << 20}[iter%4]
		var asked, refAsked []int
		refuseAfter := r.IntN(4 << 20)
		var reserve, refReserve func(int) error
		if iter%5 != 0 {
			mk := func(log *[]int) func(int) error {
				total := 0
				return func(n int) error {
					*log = append(*log, n)
					if total+n > refuseAfter {
						return fmt.Errorf("refused")
					}
					total += n
					return nil
				}
			}
			reserve, refReserve = mk(&asked), mk(&refAsked)
		}
		b := newBudget(Limits{MaxBatchBytes: limit, Reserve: reserve}, 100)
		ref := refBudget{left: b.left, limit: b.limit, reserve: refReserve}
		for k := range 200 {
			n := r.IntN(100)
			if r.IntN(20) == 0 {
				n = r.IntN(600 << 10)
			}
			if got, want := b.take(n), ref.take(n); got != want || b.left != ref.left || b.granted != ref.granted {
				t.Fatalf("iteration %d take %d (%d): %v left %d granted %d, reference %v left %d granted %d",
					iter, k, n, got, b.left, b.granted, want, ref.left, ref.granted)
			}
		}
		if fmt.Sprint(asked) != fmt.Sprint(refAsked) {
			t.Fatalf("iteration %d: reserve asked %v, reference %v", iter, asked, refAsked)
		}
	}
}
