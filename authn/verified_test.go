package authn

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestVerifyRemembersVerifiedTokens(t *testing.T) {
	s := mustSigner(t, time.Hour, mustKey(t, testECKey(t)))
	at(s, t0)
	tok, _, err := s.Issue(Identity{ClusterID: "c1", AccountID: "acct", Labels: map[string]string{"region": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.verified.len(); n != 1 {
		t.Fatalf("%d remembered tokens after one verification, want 1", n)
	}
	again, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if again.ClusterID != "c1" || again.AccountID != "acct" || again.Labels["region"] != "eu" || again.Labels[ClusterIDLabel] != "c1" {
		t.Fatalf("remembered identity %+v, first %+v", again, first)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = s.Verify(tok) }); allocs != 0 {
		t.Fatalf("%.0f allocations verifying a remembered token, want 0", allocs)
	}

	// Within the leeway after exp the token still verifies; past it, the
	// remembered entry is not used and the full check says expired.
	at(s, t0.Add(time.Hour+TokenLeeway-time.Second))
	if _, err := s.Verify(tok); err != nil {
		t.Fatalf("inside the leeway: %v", err)
	}
	at(s, t0.Add(time.Hour+TokenLeeway+time.Second))
	_, err = s.Verify(tok)
	var u *Error
	if !errors.As(err, &u) || u.Kind != Unauthorized || u.Msg != "token expired" {
		t.Fatalf("expired remembered token: err %v, want Unauthorized", err)
	}
}

func TestVerifyDoesNotRememberFailures(t *testing.T) {
	s := mustSigner(t, time.Hour, mustKey(t, testECKey(t)))
	at(s, t0)
	other := mustSigner(t, time.Hour, mustKey(t, testECKey(t)))
	at(other, t0)
	tok, _, err := other.Issue(NewIdentity("c1", ""))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Verify(tok); err == nil {
			t.Fatal("token of an unknown key verified")
		}
	}
	good, _, _ := s.Issue(NewIdentity("c1", ""))
	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		tampered = good[:len(good)-4] + "BBBB"
	}
	if _, err := s.Verify(tampered); err == nil {
		t.Fatal("tampered token verified")
	}
	if n := s.verified.len(); n != 0 {
		t.Fatalf("%d tokens remembered after failed verifications, want 0", n)
	}
	if _, err := s.Verify(good); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tampered); err == nil {
		t.Fatal("tampered token verified once the genuine one was remembered")
	}
}

func TestVerifiedTokensBounded(t *testing.T) {
	s := mustSigner(t, time.Hour, mustKey(t, testECKey(t)))
	at(s, t0)
	s.verified = newVerifiedTokens(16)
	var toks []string
	for i := range 100 {
		tok, _, err := s.Issue(NewIdentity(fmt.Sprintf("c%d", i), ""))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		if _, err := s.Verify(tok); err != nil {
			t.Fatal(err)
		}
		if n := s.verified.len(); n > 16 {
			t.Fatalf("%d remembered tokens, bound 16", n)
		}
	}
	// Evicted or not, every token still verifies to its own cluster.
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() {
			id, err := s.Verify(tok)
			if err != nil || id.ClusterID != fmt.Sprintf("c%d", i) {
				t.Errorf("token %d: %+v %v", i, id, err)
			}
		})
	}
	wg.Wait()
}
