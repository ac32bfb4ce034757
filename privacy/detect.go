package privacy

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strings"
	"unsafe"
)

// Detector names one kind of personal data the guard finds in a label
// value.
type Detector uint8

// The detectors, in the order a value is tested: the first that matches
// decides what happens to it.
const (
	URLCredentials Detector = iota // scheme://user[:password]@host
	Email                          // local@domain.tld
	MAC                            // 00:1a:2b:3c:4d:5e, 00-1a-..., 001a.2b3c.4d5e
	IP                             // an IPv4 or IPv6 address
	Hostname                       // a name under one of HostnameSuffixes
	Token                          // a long, mixed-case, secret-looking run
	NumDetectors
)

var detectorNames = [NumDetectors]string{"url_credentials", "email", "mac", "ip", "hostname", "token"}

// String returns the detector's name as configuration and metrics spell it.
func (d Detector) String() string {
	if d < NumDetectors {
		return detectorNames[d]
	}
	return "unknown"
}

// ParseDetector returns the detector named s.
func ParseDetector(s string) (Detector, bool) {
	for d, n := range detectorNames {
		if n == s {
			return Detector(d), true
		}
	}
	return 0, false
}

// Character classes, one table lookup per byte.
const (
	cDigit = 1 << iota
	cLower
	cUpper
	cHexLetter
	cLocal  // allowed in an e-mail local part besides letters and digits
	cDomain // allowed in a host name besides letters and digits: . -
	cToken  // allowed in a token besides letters and digits: + / = _ -
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] |= cDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] |= cLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= cUpper
	}
	for _, c := range "abcdefABCDEF" {
		class[c] |= cHexLetter
	}
	for _, c := range "._%+-" {
		class[c] |= cLocal
	}
	for _, c := range ".-" {
		class[c] |= cDomain
	}
	for _, c := range "+/=_-" {
		class[c] |= cToken
	}
}

func isAlnum(c byte) bool { return class[c]&(cDigit|cLower|cUpper) != 0 }
func isHex(c byte) bool   { return class[c]&(cDigit|cHexLetter) != 0 }

// detector holds what the detectors need beyond the value.
type detector struct {
	on            [NumDetectors]bool
	suffixes      []string // lower case, each with its leading dot
	suffixDots    int      // the fewest dots of a name under a suffix
	tokenMinLen   int
	minTrigger    int // shortest value worth a closer look
	tokenDetector bool
}

// Separator indexes of the pre-scan.
const (
	sOther = iota
	sAt
	sColon
	sDot
	sDash
	numSep
)

var sep [256]uint8

func init() {
	sep['@'], sep[':'], sep['.'], sep['-'] = sAt, sColon, sDot, sDash
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasSeparator reports whether v holds '@', ':' or '.', the separators
// every detector but the dashed MAC's and the token's needs. Eight bytes
// at a time, the last word overlapping the one before it; a word has a
// byte c when (x-ones)&^x&highs is non-zero for x = word XOR c repeated
// (the classic zero-byte test, exact as a yes/no answer).
func hasSeparator(v string) bool {
	if len(v) < 8 {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c == '@' || c == ':' || c == '.' {
				return true
			}
		}
		return false
	}
	b := unsafe.Slice(unsafe.StringData(v), len(v))
	n := len(b)
	// The first and the last word (they overlap when n < 16), then the
	// words between: values are mostly 8 to 24 bytes, so no loop at all.
	w, z := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	a1, c1, d1 := w^(ones*'@'), w^(ones*':'), w^(ones*'.')
	a2, c2, d2 := z^(ones*'@'), z^(ones*':'), z^(ones*'.')
	acc := (a1-ones)&^a1 | (c1-ones)&^c1 | (d1-ones)&^d1 | (a2-ones)&^a2 | (c2-ones)&^c2 | (d2-ones)&^d2
	for i := 8; i < n-8; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		x, y, z := w^(ones*'@'), w^(ones*':'), w^(ones*'.')
		acc |= (x-ones)&^x | (y-ones)&^y | (z-ones)&^z
	}
	return acc&highs != 0
}

// suspicious reports whether v may hold anything a detector finds: the
// cheap test every label value takes. Ordinary values ("openshift-
// monitoring", "https", "r12") stop here.
func (d *detector) suspicious(v string) bool {
	if len(v) < d.minTrigger {
		return false
	}
	if d.tokenDetector && len(v) >= d.tokenMinLen {
		return true
	}
	if len(v) >= 17 && d.on[MAC] {
		// Long enough for a dash-separated MAC (17 bytes, five dashes).
		return separatorOrDashes(v)
	}
	return hasSeparator(v)
}

// separatorOrDashes is hasSeparator(v) || v has five dashes or more, in
// one pass over v (at least 8 bytes long) a word at a time. Dashes are
// counted exactly (the exact zero-byte test of the word XOR '-' in every
// lane, popcounted); the last word overlaps the one before, and its lanes
// already counted are shifted off.
func separatorOrDashes(v string) bool {
	b := unsafe.Slice(unsafe.StringData(v), len(v))
	n := len(b)
	var acc uint64
	count, i := 0, 0
	for ; i+8 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		x, y, z := w^(ones*'@'), w^(ones*':'), w^(ones*'.')
		acc |= (x-ones)&^x | (y-ones)&^y | (z-ones)&^z
		count += bits.OnesCount64(dashLanes(w))
	}
	if i < n {
		w := binary.LittleEndian.Uint64(b[n-8:])
		x, y, z := w^(ones*'@'), w^(ones*':'), w^(ones*'.')
		acc |= (x-ones)&^x | (y-ones)&^y | (z-ones)&^z
		count += bits.OnesCount64(dashLanes(w) >> (8 * (8 - (n - i))))
	}
	return acc&highs != 0 || count >= 5
}

// dashLanes has the high bit of each lane of w that holds '-', and no
// other bit.
func dashLanes(w uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	x := w ^ (ones * '-')
	return ^(((x & low7) + low7) | x) & highs
}

// find returns the first detector that matches v in the label named
// label, if any. One pass counts the separators every detector needs;
// a detector whose separators are missing is not run, so ordinary values
// ("openshift-monitoring", "4.14.0", "https") cost that pass alone.
func (d *detector) find(label, v string) (Detector, bool) {
	if len(v) < d.minTrigger {
		return 0, false
	}
	var n [numSep]int
	for i := 0; i < len(v); i++ {
		n[sep[v[i]]]++
	}
	urlCred := d.on[URLCredentials] && n[sAt] > 0 && n[sColon] > 0
	email := d.on[Email] && n[sAt] > 0 && n[sDot] > 0
	mac := d.on[MAC] && (n[sColon] >= 5 || n[sDash] >= 5 || n[sDot] >= 2)
	ip := d.on[IP] && (n[sDot] >= 3 || n[sColon] >= 2)
	host := d.on[Hostname] && n[sDot] >= d.suffixDots
	token := d.tokenDetector && len(v) >= d.tokenMinLen
	if !(urlCred || email || mac || ip || host || token) || ownOutput(v) {
		return 0, false
	}
	switch {
	case urlCred && hasURLCredentials(v):
		return URLCredentials, true
	case email && hasEmail(v):
		return Email, true
	case mac && hasMAC(v):
		return MAC, true
	case ip && hasIP(label, v, n[sDot], n[sColon]):
		return IP, true
	case host && d.hasHostname(v):
		return Hostname, true
	case token && hasToken(v, d.tokenMinLen):
		return Token, true
	}
	return 0, false
}

// hasURLCredentials reports whether v holds scheme://userinfo@host.
func hasURLCredentials(v string) bool {
	for i := 0; ; {
		j := strings.Index(v[i:], "://")
		if j < 0 {
			return false
		}
		start := i + j + 3
		k := start
		for k < len(v) && v[k] != '/' && v[k] != '?' && v[k] != '#' && v[k] != ' ' {
			if v[k] == '@' && k > start {
				return true
			}
			k++
		}
		i = start
	}
}

// hasEmail reports whether v holds local@domain.tld.
func hasEmail(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] != '@' {
			continue
		}
		l := i
		for l > 0 && (isAlnum(v[l-1]) || class[v[l-1]]&cLocal != 0) {
			l--
		}
		if l == i {
			continue
		}
		r := i + 1
		for r < len(v) && (isAlnum(v[r]) || class[v[r]]&cDomain != 0) {
			r++
		}
		if validDomain(strings.TrimRight(v[i+1:r], ".")) {
			return true
		}
	}
	return false
}

// validDomain reports whether s is a DNS name of two or more labels whose
// last label (the TLD) is at least two letters.
func validDomain(s string) bool {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || len(s)-dot-1 < 2 {
		return false
	}
	for i := dot + 1; i < len(s); i++ {
		if class[s[i]]&(cLower|cUpper) == 0 {
			return false
		}
	}
	prev := byte('.')
	for i := 0; i < dot; i++ {
		c := s[i]
		if c == '.' && (prev == '.' || prev == '-') || c == '-' && prev == '.' {
			return false
		}
		prev = c
	}
	return prev != '-' && prev != '.'
}

// hasMAC reports whether v holds six hex pairs separated by ':' or '-'
// (one separator throughout), or Cisco's three dot-separated quads.
func hasMAC(v string) bool {
	for i := 0; i+14 <= len(v); i++ {
		if i > 0 && (isHex(v[i-1]) || v[i-1] == ':' || v[i-1] == '-' || v[i-1] == '.') {
			continue
		}
		if i+17 <= len(v) && (v[i+2] == ':' || v[i+2] == '-') {
			sep, ok := v[i+2], true
			for g := 0; g < 6 && ok; g++ {
				p := i + 3*g
				ok = isHex(v[p]) && isHex(v[p+1]) && (g == 5 || v[p+2] == sep)
			}
			if ok && (i+17 == len(v) || !isHex(v[i+17]) && v[i+17] != sep) {
				return true
			}
		}
		if v[i+4] == '.' && v[i+9] == '.' {
			ok := true
			for g := 0; g < 3 && ok; g++ {
				p := i + 5*g
				ok = isHex(v[p]) && isHex(v[p+1]) && isHex(v[p+2]) && isHex(v[p+3])
			}
			if ok && (i+14 == len(v) || !isHex(v[i+14]) && v[i+14] != '.') {
				return true
			}
		}
	}
	return false
}

// hasIP reports whether v holds an IPv4 or IPv6 address. A label whose
// name says it holds a version is not searched for IPv4: 1.2.3.4 there is
// a version.
func hasIP(label, v string, dots, colons int) bool {
	if dots >= 3 && !strings.Contains(strings.ToLower(label), "version") && hasIPv4(v) {
		return true
	}
	return colons >= 2 && hasIPv6(v)
}

func hasIPv4(v string) bool {
	for i := 0; i < len(v); {
		if class[v[i]]&cDigit == 0 || i > 0 && (isAlnum(v[i-1]) || v[i-1] == '.') {
			i++
			continue
		}
		j := i
		for j < len(v) && (class[v[j]]&cDigit != 0 || v[j] == '.') {
			j++
		}
		if (j == len(v) || !isAlnum(v[j])) && dottedQuad(v[i:j]) {
			return true
		}
		i = j
	}
	return false
}

// dottedQuad reports whether s is exactly four decimal octets.
func dottedQuad(s string) bool {
	parts := 0
	for len(s) > 0 {
		n, k := 0, 0
		for k < len(s) && s[k] != '.' {
			n = n*10 + int(s[k]-'0')
			k++
		}
		if k == 0 || k > 3 || n > 255 || k > 1 && s[0] == '0' {
			return false
		}
		parts++
		if k == len(s) {
			break
		}
		s = s[k+1:]
		if len(s) == 0 {
			return false
		}
	}
	return parts == 4
}

func hasIPv6(v string) bool {
	for i := 0; i < len(v); {
		c := v[i]
		if !(isHex(c) || c == ':') || i > 0 && (isAlnum(v[i-1]) || v[i-1] == ':' || v[i-1] == '.') {
			i++
			continue
		}
		j, colons, hex := i, 0, 0
		for j < len(v) && (isHex(v[j]) || v[j] == ':' || v[j] == '.') {
			if v[j] == ':' {
				colons++
			} else if v[j] != '.' {
				hex++
			}
			j++
		}
		if colons >= 2 && hex > 0 && (j == len(v) || !isAlnum(v[j])) {
			if a, err := netip.ParseAddr(strings.TrimRight(v[i:j], ".")); err == nil && a.Is6() {
				return true
			}
		}
		i = j
	}
	return false
}

// hasHostname reports whether v holds a name with at least one label
// before one of the configured suffixes (matched on a label boundary,
// without regard to case).
func (d *detector) hasHostname(v string) bool {
	for i := 0; i < len(v); {
		if !isAlnum(v[i]) {
			i++
			continue
		}
		j := i
		for j < len(v) && (isAlnum(v[j]) || class[v[j]]&cDomain != 0) {
			j++
		}
		name := strings.TrimRight(v[i:j], ".")
		for _, suf := range d.suffixes {
			if len(name) > len(suf) && strings.EqualFold(name[len(name)-len(suf):], suf) {
				return true
			}
		}
		i = j
	}
	return false
}

// hasToken reports whether v holds a run of at least minLen token
// characters with digits, lower- and upper-case letters and at least 16
// distinct characters: API keys and bearer tokens look like that; UUIDs,
// hex digests (commit IDs), words and versions do not.
func hasToken(v string, minLen int) bool {
	for i := 0; i < len(v); {
		if !isAlnum(v[i]) && class[v[i]]&cToken == 0 {
			i++
			continue
		}
		j := i
		var seen [4]uint64
		distinct, kinds := 0, uint8(0)
		for j < len(v) && (isAlnum(v[j]) || class[v[j]]&cToken != 0) {
			c := v[j]
			if seen[c>>6]&(1<<(c&63)) == 0 {
				seen[c>>6] |= 1 << (c & 63)
				distinct++
			}
			kinds |= class[c] & (cDigit | cLower | cUpper)
			j++
		}
		if j-i >= minLen && distinct >= 16 && kinds == cDigit|cLower|cUpper {
			return true
		}
		i = j
	}
	return false
}

// ownOutput reports whether v is a value the guard wrote: "pii:" and a
// detector's name, then ":" and either hashLen lower-case hex digits or
// "redacted". Such a value cannot carry anything else, so a value hashed
// on the client is not hashed again on the gateway.
func ownOutput(v string) bool {
	rest, ok := strings.CutPrefix(v, outputPrefix)
	if !ok {
		return false
	}
	name, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return false
	}
	if _, ok := ParseDetector(name); !ok {
		return false
	}
	if rest == redacted {
		return true
	}
	if len(rest) != hashLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if class[rest[i]]&(cDigit) == 0 && (rest[i] < 'a' || rest[i] > 'f') {
			return false
		}
	}
	return true
}
