package allowlist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// Error is one problem in an allowlist file, located by line. Parse returns
// either a single *Error or, when several entries are invalid, all of them
// joined with errors.Join.
type Error struct {
	File string
	Line int // 1-based; 0 if the problem has no line
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// configMapKeys are the data keys looked for when a ConfigMap holds several.
var configMapKeys = []string{"metrics.yaml", "metrics.yml", "allowlist.yaml", "allowlist.yml"}

// LoadFile reads and parses the allowlist file at path.
func LoadFile(path string) (*Allowlist, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read allowlist: %w", err)
	}
	return Parse(data, path)
}

// Parse parses an allowlist document; filename is used in error messages.
//
// data is either a plain document whose only top-level key is "matches",
// a list of selector strings, or a Kubernetes ConfigMap whose "data" holds
// such a document under its only key or under one of metrics.yaml,
// metrics.yml, allowlist.yaml, allowlist.yml. For a ConfigMap written with
// a literal block scalar ("|"), lines are those of the ConfigMap file;
// otherwise they are relative to the embedded document, reported as
// "file:key:line".
//
// An empty list ("matches: []", or "matches:" with nothing after it) is
// valid and yields an allowlist that denies every series. A missing
// "matches" key is an error.
func Parse(data []byte, filename string) (*Allowlist, error) {
	d, err := parseDocument(data, filename)
	if err != nil {
		return nil, err
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	a := newAllowlist(d.entries, d.hash)
	a.file = d.name
	return a, nil
}

// document is a parsed allowlist document before indexing: the valid
// entries and one *Error per invalid entry, so lint can report every
// problem and still check the valid entries.
type document struct {
	name    string // file name as used in messages (may be "file:key")
	hash    string
	entries []Entry
	errs    []error
}

// parseDocument parses data like Parse but keeps going past invalid
// entries. The error is set only when the document as a whole is unusable
// (YAML syntax, wrong shape).
func parseDocument(data []byte, filename string) (*document, error) {
	if filename == "" {
		filename = "allowlist"
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:8])

	top, err := decodeMapping(data, filename, 0)
	if err != nil {
		return nil, err
	}
	name, off := filename, 0
	if kind := mapValue(top, "kind"); kind != nil {
		if kind.Kind != yaml.ScalarNode || kind.Value != "ConfigMap" {
			return nil, &Error{filename, kind.Line, fmt.Sprintf("unsupported kind %q: want a ConfigMap or a document with a top-level \"matches\" list", kind.Value)}
		}
		inner, key, line, err := configMapData(top, filename)
		if err != nil {
			return nil, err
		}
		if line > 0 {
			off = line
		} else {
			name = filename + ":" + key
		}
		top, err = decodeMapping([]byte(inner), name, off)
		if err != nil {
			return nil, err
		}
	}
	entries, errs, err := parseMatches(top, name, off)
	if err != nil {
		return nil, err
	}
	return &document{name: name, hash: hash, entries: entries, errs: errs}, nil
}

// decodeMapping decodes a single YAML document that must be a mapping.
func decodeMapping(data []byte, name string, off int) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{name, 0, `empty document: want a top-level "matches" list`}
		}
		return nil, yamlError(err, name, off)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{name, extra.Line + off, "more than one YAML document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(err, name, off)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{name, top.Line + off, fmt.Sprintf(`want a mapping with a top-level "matches" list, got %s`, describe(top))}
	}
	return top, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError rewrites a yaml.v3 syntax error as a line-located Error.
func yamlError(err error, name string, off int) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &Error{name, n + off, m[2]}
		}
	}
	return &Error{name, 0, strings.TrimPrefix(msg, "yaml: ")}
}

// configMapData returns the embedded allowlist document of a ConfigMap, its
// data key, and the line offset of its content if it maps 1:1 onto the
// ConfigMap's lines (a literal block scalar), else 0.
func configMapData(top *yaml.Node, filename string) (string, string, int, error) {
	data := mapValue(top, "data")
	if data == nil {
		return "", "", 0, &Error{filename, top.Line, `ConfigMap has no "data"`}
	}
	if data.Kind != yaml.MappingNode || len(data.Content) == 0 {
		return "", "", 0, &Error{filename, data.Line, fmt.Sprintf(`ConfigMap "data" must be a non-empty mapping, got %s`, describe(data))}
	}
	var k, v *yaml.Node
	if len(data.Content) == 2 {
		k, v = data.Content[0], data.Content[1]
	} else {
		for _, want := range configMapKeys {
			for i := 0; i+1 < len(data.Content); i += 2 {
				if data.Content[i].Value == want {
					k, v = data.Content[i], data.Content[i+1]
					break
				}
			}
			if k != nil {
				break
			}
		}
		if k == nil {
			var keys []string
			for i := 0; i < len(data.Content); i += 2 {
				keys = append(keys, strconv.Quote(data.Content[i].Value))
			}
			return "", "", 0, &Error{filename, data.Line, fmt.Sprintf("ConfigMap data has several keys (%s) and none is one of %s", strings.Join(keys, ", "), strings.Join(configMapKeys, ", "))}
		}
	}
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		return "", "", 0, &Error{filename, v.Line, fmt.Sprintf("ConfigMap data %q must be a string holding the allowlist document, got %s", k.Value, describe(v))}
	}
	line := 0
	if v.Style&yaml.LiteralStyle != 0 {
		// The content starts on the line after the "|" indicator (v.Line).
		line = v.Line
	}
	return v.Value, k.Value, line, nil
}

// parseMatches checks the top-level keys of a plain document and parses its
// "matches" list. It returns the valid entries and an error per invalid
// one; the last result is set when the document's shape is wrong.
func parseMatches(top *yaml.Node, name string, off int) ([]Entry, []error, error) {
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch {
		case k.Value != "matches":
			return nil, nil, &Error{name, k.Line + off, fmt.Sprintf(`unknown field %q: the only top-level field is "matches"`, k.Value)}
		case list != nil:
			return nil, nil, &Error{name, k.Line + off, `duplicate field "matches"`}
		}
		list = v
	}
	if list == nil {
		return nil, nil, &Error{name, top.Line + off, `missing top-level "matches" list`}
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, nil, &Error{name, list.Line + off, fmt.Sprintf(`"matches" must be a list of selector strings, got %s`, describe(list))}
	}

	p := parser.NewParser(parser.Options{})
	entries := make([]Entry, 0, len(list.Content))
	var errs []error
	for _, item := range list.Content {
		line := item.Line + off
		if item.Kind != yaml.ScalarNode {
			errs = append(errs, &Error{name, line, fmt.Sprintf("entry must be a selector string, got %s", describe(item))})
			continue
		}
		if item.Tag == "!!null" {
			errs = append(errs, &Error{name, line, "empty entry"})
			continue
		}
		ms, err := p.ParseMetricSelector(item.Value)
		if err != nil {
			errs = append(errs, &Error{name, line, fmt.Sprintf("invalid selector %q: %v", item.Value, err)})
			continue
		}
		if matchesEverything(ms) {
			errs = append(errs, &Error{name, line, fmt.Sprintf("invalid selector %q: need at least one matcher that does not match the empty string, or it would allow every series", item.Value)})
			continue
		}
		owners, desc, directives := parseComment(item.HeadComment, item.LineComment)
		entries = append(entries, Entry{
			Selector:    item.Value,
			Line:        line,
			Matchers:    ms,
			Owners:      owners,
			Description: desc,
			Lint:        directives,
		})
	}
	return entries, errs, nil
}

// matchesEverything reports whether every matcher accepts the empty string,
// so the selector would match any series (Prometheus rejects such vector
// selectors in queries, but ParseMetricSelector accepts "{}").
func matchesEverything(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return false
		}
	}
	return true
}

var (
	ownersRE = regexp.MustCompile(`(?i)^owners:\s*(.*)$`)
	lintRE   = regexp.MustCompile(`(?i)^lint:\s*(.*)$`)
)

// parseComment splits the comment block above an entry into owners and
// description. Only the last paragraph of the head comment counts: a
// comment separated from the entry by a blank line is a section header, not
// documentation of the entry. The entry's own line comment is appended to
// the description. Lines "lint: allow-x, allow-y" are lint directives, not
// description.
func parseComment(head, inline string) ([]string, string, []string) {
	if i := strings.LastIndex(head, "\n\n"); i >= 0 {
		head = head[i+2:]
	}
	// yaml.v3 ends the head comment with a newline when a blank line
	// separates it from the entry (first item of the list; later items see
	// such a block as the previous item's foot comment): not documentation.
	if strings.HasSuffix(head, "\n") {
		head = ""
	}
	var owners, desc, directives []string
	lines := strings.Split(head, "\n")
	if inline != "" {
		lines = append(lines, inline)
	}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if m := ownersRE.FindStringSubmatch(l); m != nil {
			v := strings.TrimSpace(m[1])
			v = strings.TrimSuffix(strings.TrimPrefix(v, "("), ")")
			owners = append(owners, strings.FieldsFunc(v, func(r rune) bool {
				return r == ',' || unicode.IsSpace(r)
			})...)
			continue
		}
		if m := lintRE.FindStringSubmatch(l); m != nil {
			directives = append(directives, strings.FieldsFunc(m[1], func(r rune) bool {
				return r == ',' || unicode.IsSpace(r)
			})...)
			continue
		}
		// Empty comment lines separate paragraphs; keep one, not at the ends.
		if l == "" && (len(desc) == 0 || desc[len(desc)-1] == "") {
			continue
		}
		desc = append(desc, l)
	}
	for len(desc) > 0 && desc[len(desc)-1] == "" {
		desc = desc[:len(desc)-1]
	}
	return owners, strings.Join(desc, "\n"), directives
}

// mapValue returns the value of key in mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// describe names a node's type for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "nothing"
}
