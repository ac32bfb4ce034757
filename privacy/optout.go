package privacy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v2"
)

// OptOut is one installation that asked to send nothing more.
type OptOut struct {
	ID     string `yaml:"id" json:"id"`
	Reason string `yaml:"reason,omitempty" json:"reason,omitempty"`
	// Since is when it was decided (free text, e.g. a date), for people.
	Since string `yaml:"since,omitempty" json:"since,omitempty"`
}

// optOutFile is the opt-out file: a list of installations, each an ID or
// an {id, reason, since} entry.
//
//	installations:
//	- 0d4f8e2a-9c7b-4e1f-8a3d-6b5c4d3e2f1a
//	- {id: c2, reason: "ticket 1234", since: 2026-11-30}
type optOutFile struct {
	Installations []optOutEntry `yaml:"installations"`
}

type optOutEntry struct{ OptOut }

// UnmarshalYAML takes a plain ID or a mapping.
func (e *optOutEntry) UnmarshalYAML(unmarshal func(any) error) error {
	var id string
	if err := unmarshal(&id); err == nil {
		e.ID = id
		return nil
	}
	type plain OptOut
	return unmarshal((*plain)(&e.OptOut))
}

// ParseOptOuts parses an opt-out file.
func ParseOptOuts(data []byte) ([]OptOut, error) {
	var f optOutFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]OptOut, 0, len(f.Installations))
	for i, e := range f.Installations {
		id := strings.TrimSpace(e.ID)
		if id == "" || len(id) > 256 || !utf8.ValidString(id) {
			return nil, fmt.Errorf("installations[%d]: the ID must be 1 to 256 bytes of UTF-8", i)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		e.ID = id
		out = append(out, e.OptOut)
	}
	return out, nil
}

// OptOuts is the set of opted-out installations the gateway refuses (403
// opted_out), replaced as a whole on reload. The zero value is empty and
// ready; a nil *OptOuts contains nothing.
type OptOuts struct {
	cur atomic.Pointer[optOutSet]
}

type optOutSet struct {
	byID   map[string]OptOut
	list   []OptOut
	hash   string
	loaded time.Time
}

// Set replaces the set with list (as ParseOptOuts returns it).
func (o *OptOuts) Set(list []OptOut, now time.Time) {
	s := &optOutSet{byID: make(map[string]OptOut, len(list)), list: slices.Clone(list), loaded: now}
	h := sha256.New()
	for _, e := range list {
		s.byID[e.ID] = e
		h.Write([]byte(e.ID))
		h.Write([]byte{0})
	}
	s.hash = hex.EncodeToString(h.Sum(nil))[:16]
	o.cur.Store(s)
}

// Contains returns the opt-out of installation id, if any.
func (o *OptOuts) Contains(id string) (OptOut, bool) {
	if o == nil {
		return OptOut{}, false
	}
	s := o.cur.Load()
	if s == nil || len(s.byID) == 0 {
		return OptOut{}, false
	}
	e, ok := s.byID[id]
	return e, ok
}

// List returns every opt-out, the set's hash and when it was loaded.
func (o *OptOuts) List() (list []OptOut, hash string, loaded time.Time) {
	if o == nil {
		return nil, "", time.Time{}
	}
	s := o.cur.Load()
	if s == nil {
		return nil, "", time.Time{}
	}
	return slices.Clone(s.list), s.hash, s.loaded
}
