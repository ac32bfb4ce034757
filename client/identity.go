package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IDFile is the name of the file in the state directory that holds the
// installation ID.
const IDFile = "installation-id"

// DefaultStateDir is where the client keeps its state (the installation
// ID) when state_dir is not set: $STATE_DIRECTORY (systemd's
// StateDirectory=), else $XDG_STATE_HOME/telegate-client, else
// ~/.local/state/telegate-client, else /var/lib/telegate-client.
func DefaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		// systemd may list several, separated by colons.
		return strings.Split(d, ":")[0]
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "telegate-client")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" && h != "/" {
		return filepath.Join(h, ".local", "state", "telegate-client")
	}
	return "/var/lib/telegate-client"
}

// NewUUID returns a random (version 4) UUID in its canonical form.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])         // never fails (crypto/rand panics if it cannot)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// validUUID accepts the canonical 8-4-4-4-12 hex form.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ReadID returns the installation ID kept in dir, or an error wrapping
// fs.ErrNotExist when there is none yet.
func ReadID(dir string) (string, error) {
	path := filepath.Join(dir, IDFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !validUUID(id) {
		return "", fmt.Errorf("%s does not hold a UUID (%q): fix it, or delete it to generate a new installation ID", path, truncate(id, 40))
	}
	return id, nil
}

// LoadOrCreateID returns the installation ID kept in dir, generating and
// storing a random UUID the first time (created is then true). The file is
// written to a temporary name, synced and linked into place, so a crash
// never leaves a partial ID and two clients starting at once agree on one.
func LoadOrCreateID(dir string) (id string, created bool, err error) {
	id, err = ReadID(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("state directory: %w", err)
	}
	id = NewUUID()
	created, err = createOnce(dir, IDFile, id+"\n", 0o644)
	if err != nil {
		return "", false, fmt.Errorf("storing the installation ID: %w", err)
	}
	if !created {
		// Another client created it first: use that one.
		id, err = ReadID(dir)
	}
	return id, created, err
}

// createOnce writes content to dir/name with perm unless the file exists
// (created is then false): a temporary file, synced and linked into
// place, so a crash never leaves a partial file and of two processes
// creating it at once, one wins and the other reads its file.
func createOnce(dir, name, content string, perm os.FileMode) (created bool, err error) {
	tmp, err := writeTemp(dir, content, perm)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	syncDir(dir)
	return true, nil
}

// RotateID replaces the installation ID kept in dir with a new random
// UUID (atomically) and returns it. The gateway then sees a new
// installation; the old ID's series stay under the old ID.
func RotateID(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	id := NewUUID()
	tmp, err := writeTemp(dir, id+"\n", 0o644)
	if err != nil {
		return "", fmt.Errorf("storing the installation ID: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, IDFile)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("storing the installation ID: %w", err)
	}
	syncDir(dir)
	return id, nil
}

// writeTemp writes content to a new temporary file in dir, synced, with
// perm, and returns its name.
func writeTemp(dir, content string, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(content)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	if err := os.Chmod(f.Name(), perm); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
