package authn

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestParseCompositeToken(t *testing.T) {
	// Characters chosen so the encodings differ between alphabets and need padding.
	raw := `{"authorization_token":"tok?>~~","cluster_id":"c-1","extra":true}`
	for name, enc := range map[string]*base64.Encoding{
		"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
		"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
	} {
		b := enc.EncodeToString([]byte(raw))
		tok, cluster, err := ParseCompositeToken(b)
		if err != nil || tok != "tok?>~~" || cluster != "c-1" {
			t.Fatalf("%s (%s): %q %q %v", name, b, tok, cluster, err)
		}
	}
	if !strings.ContainsAny(base64.URLEncoding.EncodeToString([]byte(raw)), "-_") ||
		!strings.HasSuffix(base64.StdEncoding.EncodeToString([]byte(raw)), "=") {
		t.Fatal("fixture no longer exercises both alphabets and padding")
	}
}

func TestParseCompositeTokenErrors(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for name, bearer := range map[string]string{
		"empty":         "",
		"not base64":    "!!!not-base64***",
		"not json":      enc("secret-value"),
		"json array":    enc(`["secret-value"]`),
		"no token":      enc(`{"cluster_id":"c"}`),
		"no cluster":    enc(`{"authorization_token":"secret-value"}`),
		"wrong types":   enc(`{"authorization_token":1,"cluster_id":"c"}`),
		"too long":      strings.Repeat("A", maxCompositeToken+4),
		"plain token":   "secret-value",
		"trailing junk": enc(`{"authorization_token":"secret-value","cluster_id":"c"}`) + "@@",
	} {
		_, _, err := ParseCompositeToken(bearer)
		if KindOf(err) != Unauthorized {
			t.Fatalf("%s: err = %v", name, err)
		}
		if !strings.HasPrefix(err.Error(), "malformed remote-write token") || strings.Contains(err.Error(), "secret-value") {
			t.Fatalf("%s: message %q", name, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"Bearerabc", "", false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got, ok := BearerToken(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("BearerToken(%q) = %q, %v", tc.header, got, ok)
		}
	}
}
