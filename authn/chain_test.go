package authn

import (
	"context"
	"errors"
	"testing"
)

func TestChain(t *testing.T) {
	static, err := ParseTokens([]byte("tokens:\n- token: static-tok\n  clusters: [c1]\n  account_id: static\n"))
	if err != nil {
		t.Fatal(err)
	}
	upstream := &countingAuth{answer: func(token, clusterID string) (Identity, error) {
		if token == "upstream-tok" {
			return NewIdentity(clusterID, "upstream"), nil
		}
		return Identity{}, NewPassthrough(401, "no", 0)
	}}
	a := Chain(static, nil, upstream)
	ctx := context.Background()

	id, err := a.Authenticate(ctx, "static-tok", "c1")
	if err != nil || id.AccountID != "static" || upstream.calls.Load() != 0 {
		t.Fatalf("static allow: %+v %v, upstream calls %d", id, err, upstream.calls.Load())
	}
	if _, err := a.Authenticate(ctx, "static-tok", "c2"); KindOf(err) != Forbidden || upstream.calls.Load() != 0 {
		t.Fatalf("forbidden from a known static token must be final: %v, upstream calls %d", err, upstream.calls.Load())
	}
	id, err = a.Authenticate(ctx, "upstream-tok", "c9")
	if err != nil || id.AccountID != "upstream" || upstream.calls.Load() != 1 {
		t.Fatalf("unknown static token must fall through: %+v %v", id, err)
	}
	if _, err := a.Authenticate(ctx, "nobody", "c9"); KindOf(err) != Passthrough {
		t.Fatalf("last answer wins: %v", err)
	}
}

func TestChainAllUnauthorizedAndEmpty(t *testing.T) {
	deny := AuthenticatorFunc(func(context.Context, string, string) (Identity, error) {
		return Identity{}, NewUnauthorized("second says no")
	})
	s, _ := NewStaticTokens(nil)
	if _, err := Chain(s, deny).Authenticate(context.Background(), "t", "c"); err == nil || err.Error() != "second says no" {
		t.Fatalf("err = %v", err)
	}
	if _, err := Chain().Authenticate(context.Background(), "t", "c"); KindOf(err) != Unauthorized {
		t.Fatalf("empty chain: %v", err)
	}
}

func TestChainFailsClosed(t *testing.T) {
	s, _ := NewStaticTokens(nil)
	broken := AuthenticatorFunc(func(context.Context, string, string) (Identity, error) {
		return Identity{}, errors.New("boom")
	})
	after := &countingAuth{answer: allowAll}
	_, err := Chain(s, broken, after).Authenticate(context.Background(), "t", "c")
	if KindOf(err) != Unavailable || after.calls.Load() != 0 {
		t.Fatalf("a failing source must stop the chain as Unavailable: %v", err)
	}
}
