package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "gopkg.in/yaml.v3"
)

// AnyCluster in a token's clusters list allows every cluster ID.
const AnyCluster = "*"

// TokenEntry is one entry of the static tokens file.
type TokenEntry struct {
	Token     string   `yaml:"token"`
	Clusters  []string `yaml:"clusters"`
	AccountID string   `yaml:"account_id,omitempty"`
}

type tokensFile struct {
	Tokens []TokenEntry `yaml:"tokens"`
}

type staticEntry struct {
	clusters  map[string]struct{}
	any       bool
	accountID string
}

// StaticTokens authenticates against a fixed set of tokens, each allowed for
// a list of cluster IDs (or every cluster with "*"). Tokens are held only as
// SHA-256 digests, so lookups do not compare secret bytes. It is immutable
// and safe for concurrent use; reload by building a new one.
type StaticTokens struct {
	byHash map[[sha256.Size]byte]staticEntry
}

// LoadTokensFile reads and parses a static tokens file (see ParseTokens).
func LoadTokensFile(path string) (*StaticTokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading tokens file: %w", err)
	}
	s, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseTokens parses a static tokens document:
//
//	tokens:
//	- token: "secret"
//	  clusters: ["cluster-a", "*"]
//	  account_id: "optional"
//
// A top-level list of entries is accepted too. Unknown keys, empty tokens,
// duplicate tokens, entries without clusters and empty cluster IDs are
// errors, reported with their line. Errors never contain token values.
func ParseTokens(data []byte) (*StaticTokens, error) {
	var root yaml3.Node
	if err := yaml3.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return NewStaticTokens(nil)
	}
	doc := root.Content[0]
	var (
		entries []TokenEntry
		seq     *yaml3.Node
	)
	switch doc.Kind {
	case yaml3.SequenceNode:
		if err := yaml2.UnmarshalStrict(data, &entries); err != nil {
			return nil, sanitizeYAMLError(err)
		}
		seq = doc
	case yaml3.MappingNode:
		var f tokensFile
		if err := yaml2.UnmarshalStrict(data, &f); err != nil {
			return nil, sanitizeYAMLError(err)
		}
		entries = f.Tokens
		for i := 0; i+1 < len(doc.Content); i += 2 {
			if doc.Content[i].Value == "tokens" {
				seq = doc.Content[i+1]
			}
		}
	case yaml3.ScalarNode:
		if doc.Tag == "!!null" {
			return NewStaticTokens(nil)
		}
		fallthrough
	default:
		return nil, fmt.Errorf("line %d: expected a mapping with a tokens list, or a list of tokens", doc.Line)
	}
	lineOf := func(i int) int {
		if seq != nil && seq.Kind == yaml3.SequenceNode && i < len(seq.Content) {
			return seq.Content[i].Line
		}
		return 0
	}
	return newStaticTokens(entries, lineOf)
}

var (
	yamlQuotedValue = regexp.MustCompile(" `[^`]*`")
	yamlTypeNames   = strings.NewReplacer("type authn.TokenEntry", "token entry", "type authn.tokensFile", "tokens file", "authn.TokenEntry", "token entry")
)

// sanitizeYAMLError drops the scalar values yaml quotes in type errors (a
// token written in the wrong place must not reach the logs) and replaces Go
// type names with the names used in the documentation.
func sanitizeYAMLError(err error) error {
	msg := yamlQuotedValue.ReplaceAllString(err.Error(), "")
	return errors.New(yamlTypeNames.Replace(msg))
}

// NewStaticTokens builds StaticTokens from entries, validating them like
// ParseTokens (errors name the entry index instead of a line).
func NewStaticTokens(entries []TokenEntry) (*StaticTokens, error) {
	return newStaticTokens(entries, func(int) int { return 0 })
}

func newStaticTokens(entries []TokenEntry, lineOf func(int) int) (*StaticTokens, error) {
	where := func(i int) string {
		if l := lineOf(i); l > 0 {
			return fmt.Sprintf("line %d", l)
		}
		return fmt.Sprintf("token entry %d", i+1)
	}
	s := &StaticTokens{byHash: make(map[[sha256.Size]byte]staticEntry, len(entries))}
	firstSeen := make(map[[sha256.Size]byte]int, len(entries))
	var errs []error
	for i, e := range entries {
		if e.Token == "" {
			errs = append(errs, fmt.Errorf("%s: empty token", where(i)))
			continue
		}
		if strings.TrimSpace(e.Token) != e.Token {
			errs = append(errs, fmt.Errorf("%s: token has leading or trailing whitespace", where(i)))
			continue
		}
		h := sha256.Sum256([]byte(e.Token))
		if j, dup := firstSeen[h]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate token (same as %s)", where(i), where(j)))
			continue
		}
		firstSeen[h] = i
		if len(e.Clusters) == 0 {
			errs = append(errs, fmt.Errorf("%s: no clusters listed (use %q to allow any cluster)", where(i), AnyCluster))
			continue
		}
		se := staticEntry{clusters: make(map[string]struct{}, len(e.Clusters)), accountID: e.AccountID}
		for _, c := range e.Clusters {
			switch {
			case c == "":
				errs = append(errs, fmt.Errorf("%s: empty cluster ID", where(i)))
			case c == AnyCluster:
				se.any = true
			default:
				se.clusters[c] = struct{}{}
			}
		}
		s.byHash[h] = se
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Len returns the number of tokens.
func (s *StaticTokens) Len() int { return len(s.byHash) }

// Authenticate implements Authenticator. An unknown token is Unauthorized; a
// known token not allowed for clusterID is Forbidden.
func (s *StaticTokens) Authenticate(_ context.Context, token, clusterID string) (Identity, error) {
	if err := checkRequest(token, clusterID); err != nil {
		return Identity{}, err
	}
	e, ok := s.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Identity{}, NewUnauthorized("unknown authorization token")
	}
	if _, listed := e.clusters[clusterID]; !listed && !e.any {
		return Identity{}, NewForbidden("token is not allowed for this cluster ID")
	}
	return NewIdentity(clusterID, e.accountID), nil
}
