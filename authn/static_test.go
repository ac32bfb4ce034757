package authn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tokensYAML = `tokens:
- token: "alpha-secret"
  clusters: ["c1", "c2"]
  account_id: "acct-1"
- token: beta-secret
  clusters: ["*"]
`

func TestParseTokensAuthenticate(t *testing.T) {
	s, err := ParseTokens([]byte(tokensYAML))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d", s.Len())
	}
	ctx := context.Background()

	id, err := s.Authenticate(ctx, "alpha-secret", "c2")
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterID != "c2" || id.AccountID != "acct-1" || id.Labels[ClusterIDLabel] != "c2" || len(id.Labels) != 1 {
		t.Fatalf("identity = %+v", id)
	}

	if _, err := s.Authenticate(ctx, "alpha-secret", "c3"); KindOf(err) != Forbidden {
		t.Fatalf("known token, unlisted cluster: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alpha-secreT", "c1"); KindOf(err) != Unauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if id, err := s.Authenticate(ctx, "beta-secret", "anything"); err != nil || id.ClusterID != "anything" || id.AccountID != "" {
		t.Fatalf("wildcard: %+v %v", id, err)
	}
	if _, err := s.Authenticate(ctx, "", "c1"); KindOf(err) != Unauthorized {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alpha-secret", ""); KindOf(err) != Unauthorized {
		t.Fatalf("empty cluster: %v", err)
	}
}

func TestParseTokensTopLevelList(t *testing.T) {
	s, err := ParseTokens([]byte("- token: a\n  clusters: [x]\n- token: b\n  clusters: [y]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(context.Background(), "b", "y"); err != nil {
		t.Fatal(err)
	}
}

func TestParseTokensEmpty(t *testing.T) {
	for _, doc := range []string{"", "tokens: []\n", "~\n", "# nothing\n"} {
		s, err := ParseTokens([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if s.Len() != 0 {
			t.Fatalf("%q: Len = %d", doc, s.Len())
		}
		if _, err := s.Authenticate(context.Background(), "t", "c"); KindOf(err) != Unauthorized {
			t.Fatalf("%q: empty set must deny: %v", doc, err)
		}
	}
}

func TestParseTokensErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown key", "tokens:\n- token: a\n  clusters: [x]\n  acount_id: z\n", []string{"line 4", "acount_id"}},
		{"unknown top-level key", "tokens: []\nextra: 1\n", []string{"line 2", "extra"}},
		{"unknown key in list form", "- token: a\n  cluster: [x]\n", []string{"line 2", "cluster"}},
		{"wrong type", "tokens:\n- token: a\n  clusters: x\n", []string{"line 3"}},
		{"syntax", "tokens:\n- token: a\n clusters: [x\n", []string{"line"}},
		{"empty token", "tokens:\n- token: a\n  clusters: [x]\n- token: \"\"\n  clusters: [x]\n", []string{"line 4: empty token"}},
		{"missing token", "tokens:\n- clusters: [x]\n", []string{"line 2: empty token"}},
		{"whitespace", "tokens:\n- token: \" a\"\n  clusters: [x]\n", []string{"line 2", "whitespace"}},
		{"duplicate", "tokens:\n- token: dup-secret\n  clusters: [x]\n- token: dup-secret\n  clusters: [y]\n", []string{"line 4: duplicate token (same as line 2)"}},
		{"no clusters", "tokens:\n- token: a\n", []string{"line 2: no clusters"}},
		{"empty cluster", "tokens:\n- token: a\n  clusters: [\"\"]\n", []string{"line 2: empty cluster ID"}},
		{"scalar root", "hello\n", []string{"line 1", "expected"}},
		{"several errors", "- token: \"\"\n  clusters: [x]\n- token: b\n", []string{"line 1: empty token", "line 3: no clusters"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokens([]byte(tc.doc))
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "dup-secret") {
				t.Fatalf("error leaks the token: %q", err)
			}
		})
	}
}

func TestNewStaticTokensIndexErrors(t *testing.T) {
	_, err := NewStaticTokens([]TokenEntry{{Token: "a", Clusters: []string{"x"}}, {Token: "a", Clusters: []string{"y"}}})
	if err == nil || !strings.Contains(err.Error(), "token entry 2: duplicate token (same as token entry 1)") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadTokensFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte(tokensYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadTokensFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d", s.Len())
	}
	if _, err := LoadTokensFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file must fail")
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tokens:\n- token: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokensFile(bad); err == nil || !strings.Contains(err.Error(), bad+": line 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseTokensErrorsDoNotEchoValues(t *testing.T) {
	for _, doc := range []string{"tokens: sup3r\n", "tokens:\n- token: a\n  clusters: sup3r\n", "- token: a\n  clusters: sup3r\n"} {
		_, err := ParseTokens([]byte(doc))
		if err == nil {
			t.Fatalf("%q: expected an error", doc)
		}
		if strings.Contains(err.Error(), "sup3r") || strings.Contains(err.Error(), "authn.") {
			t.Fatalf("%q: error %q echoes a value or a Go type", doc, err)
		}
		if !strings.Contains(err.Error(), "line ") {
			t.Fatalf("%q: error %q has no line", doc, err)
		}
	}
}
