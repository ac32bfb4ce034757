package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// Selector is one parsed series selector (a match[] of federation): a
// series matches when every matcher does.
type Selector []*labels.Matcher

// Matches tells whether the series with labels ls (its name in __name__)
// is selected.
func (s Selector) Matches(ls labels.Labels) bool {
	for _, m := range s {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Selectors is a list of selectors; a series is selected when any of them
// matches (the union, as /federate's match[] and the gateway's allowlist).
type Selectors []Selector

// Matches tells whether any selector matches ls.
func (s Selectors) Matches(ls labels.Labels) bool {
	for _, sel := range s {
		if sel.Matches(ls) {
			return true
		}
	}
	return false
}

// ParseSelectors parses each of sels with ParseSelector.
func ParseSelectors(sels []string) (Selectors, error) {
	out := make(Selectors, 0, len(sels))
	var errs []error
	for _, s := range sels {
		sel, err := ParseSelector(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sel)
	}
	return out, errors.Join(errs...)
}

// ParseSelector parses a PromQL series selector as /federate's match[]
// and the gateway's allowlist take it: an optional metric name, then
// optional braces holding label matchers (=, !=, =~, !~) separated by
// commas, values in double, single or back quotes; a quoted name alone in
// the braces is the metric name. Regular expressions are anchored.
//
// The client cannot link PromQL (see cmd/telegate-client/deps_test.go), so
// this is a small parser of the selector syntax alone, used to apply the
// selectors to scraped series on the client. Like the gateway, it refuses a
// selector every matcher of which matches the empty string (it would
// select everything).
func ParseSelector(s string) (Selector, error) {
	p := &selParser{in: s}
	sel, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", s, err)
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("selector %q: empty", s)
	}
	empty := true
	for _, m := range sel {
		if !m.Matches("") {
			empty = false
		}
	}
	if empty {
		return nil, fmt.Errorf("selector %q: need at least one matcher that does not match the empty string", s)
	}
	return sel, nil
}

type selParser struct {
	in  string
	pos int
}

// skipSpace skips white space and # comments (to the end of the line), as
// PromQL does.
func (p *selParser) skipSpace() {
	for p.pos < len(p.in) {
		switch c := p.in[p.pos]; {
		case strings.IndexByte(" \t\r\n", c) >= 0:
			p.pos++
		case c == '#':
			for p.pos < len(p.in) && p.in[p.pos] != '\n' && p.in[p.pos] != '\r' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *selParser) peek() byte {
	if p.pos < len(p.in) {
		return p.in[p.pos]
	}
	return 0
}

func (p *selParser) parse() (Selector, error) {
	var sel Selector
	p.skipSpace()
	if name := p.ident(true); name != "" {
		m, err := labels.NewMatcher(labels.MatchEqual, labels.MetricName, name)
		if err != nil {
			return nil, err
		}
		sel = append(sel, m)
		p.skipSpace()
	}
	if p.peek() == '{' {
		p.pos++
		for {
			p.skipSpace()
			if p.peek() == '}' {
				p.pos++
				break
			}
			m, err := p.matcher()
			if err != nil {
				return nil, err
			}
			sel = append(sel, m)
			p.skipSpace()
			switch p.peek() {
			case ',':
				p.pos++
				continue
			case '}':
				p.pos++
			default:
				return nil, fmt.Errorf("at offset %d: expected ',' or '}'", p.pos)
			}
			break
		}
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return nil, fmt.Errorf("at offset %d: unexpected %q", p.pos, p.in[p.pos:])
	}
	return sel, nil
}

// ident reads a metric name (colons allowed) or a label name.
func (p *selParser) ident(metric bool) string {
	start := p.pos
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || metric && c == ':' || p.pos > start && c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.in[start:p.pos]
}

func (p *selParser) matcher() (*labels.Matcher, error) {
	var name string
	if c := p.peek(); c == '"' || c == '\'' || c == '`' {
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if c := p.peek(); c == ',' || c == '}' {
			// {"metric.name"}: a quoted metric name.
			return labels.NewMatcher(labels.MatchEqual, labels.MetricName, s)
		}
		name = s
	} else if name = p.ident(false); name == "" {
		return nil, fmt.Errorf("at offset %d: expected a label name", p.pos)
	}
	p.skipSpace()
	var t labels.MatchType
	switch {
	case strings.HasPrefix(p.in[p.pos:], "=~"):
		t, p.pos = labels.MatchRegexp, p.pos+2
	case strings.HasPrefix(p.in[p.pos:], "!~"):
		t, p.pos = labels.MatchNotRegexp, p.pos+2
	case strings.HasPrefix(p.in[p.pos:], "!="):
		t, p.pos = labels.MatchNotEqual, p.pos+2
	case strings.HasPrefix(p.in[p.pos:], "="):
		t, p.pos = labels.MatchEqual, p.pos+1
	default:
		return nil, fmt.Errorf("at offset %d: expected =, !=, =~ or !~ after label %q", p.pos, name)
	}
	p.skipSpace()
	v, err := p.str()
	if err != nil {
		return nil, err
	}
	m, err := labels.NewMatcher(t, name, v)
	if err != nil {
		return nil, fmt.Errorf("label %q: %w", name, err)
	}
	return m, nil
}

// str reads a string literal: Go syntax in double quotes, raw in back
// quotes, and in single quotes the same escapes as double quotes.
func (p *selParser) str() (string, error) {
	q := p.peek()
	if q != '"' && q != '\'' && q != '`' {
		return "", fmt.Errorf("at offset %d: expected a quoted string", p.pos)
	}
	start := p.pos
	i := p.pos + 1
	for ; i < len(p.in); i++ {
		if p.in[i] == '\\' && q != '`' {
			i++
			continue
		}
		if p.in[i] == q {
			break
		}
	}
	if i >= len(p.in) {
		return "", fmt.Errorf("at offset %d: unterminated string", start)
	}
	p.pos = i + 1
	lit := p.in[start:p.pos]
	if !utf8.ValidString(lit) {
		return "", fmt.Errorf("at offset %d: invalid UTF-8", start)
	}
	if q == '\'' {
		// Re-quote as a double-quoted literal: \' stays an escaped quote,
		// a bare " needs escaping.
		body := lit[1 : len(lit)-1]
		var b strings.Builder
		b.WriteByte('"')
		for j := 0; j < len(body); j++ {
			switch c := body[j]; {
			case c == '\\' && j+1 < len(body) && body[j+1] == '\'':
				b.WriteByte('\'')
				j++
			case c == '\\' && j+1 < len(body):
				b.WriteByte(c)
				b.WriteByte(body[j+1])
				j++
			case c == '"':
				b.WriteString(`\"`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		lit = b.String()
	}
	s, err := strconv.Unquote(lit)
	if err != nil {
		return "", fmt.Errorf("at offset %d: invalid string %s: %w", start, lit, err)
	}
	// An escape may still spell invalid UTF-8 ("\x80"): PromQL takes it
	// (such a value matches no valid label), and so does the client.
	return s, nil
}
