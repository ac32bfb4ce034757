package client

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-kit/log/level"

	"github.com/telegate/telegate/privacy"
)

// PIIKeyFile is the file in the state directory holding the key of the
// PII guard's hash when no anonymize salt is configured.
const PIIKeyFile = "pii-key"

// piiGuard builds the PII guard of pii_guard: the default detectors
// (e-mail, IP and MAC addresses, URLs with credentials) with that action,
// keyed by the anonymize salt when there is one, else by a random key kept
// in the state directory (so a value hashes the same across restarts).
// Labels the client elides are not inspected.
func (c *Client) piiGuard(cfg *Config, salt string) (*privacy.Guard, error) {
	if cfg.PIIGuard == "off" || cfg.PIIGuard == "" {
		return nil, nil
	}
	act, ok := privacy.ParseAction(cfg.PIIGuard)
	if !ok {
		return nil, fmt.Errorf("pii_guard: unknown action %q", cfg.PIIGuard)
	}
	var actions [privacy.NumDetectors]privacy.Action
	for d, a := range privacy.Defaults() {
		if a != privacy.Off {
			actions[d] = act
		}
	}
	key := []byte(salt)
	if len(key) == 0 && act == privacy.Hash {
		k, err := loadOrCreateKey(cfg.StateDirPath())
		if err != nil {
			// A read-only state directory: hashes are stable only until
			// the next start.
			level.Warn(c.logger).Log("msg", "PII guard: cannot keep its key in the state directory; using a key for this run only", "err", err)
			k = make([]byte, 32)
			rand.Read(k)
		}
		key = k
	}
	return privacy.New(privacy.Options{
		Actions:      actions,
		Key:          key,
		ExemptLabels: append([]string{"_id"}, cfg.ElideLabel...),
		Findings:     c.metrics.piiFindings,
	})
}

// loadOrCreateKey returns the key in dir/PIIKeyFile, creating a random one
// the first time (written to a temporary file and linked into place, like
// the installation ID).
func loadOrCreateKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, PIIKeyFile)
	read := func() ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) < 16 {
			return nil, fmt.Errorf("%s does not hold a hex key of at least 16 bytes: delete it to generate a new one", path)
		}
		return k, nil
	}
	k, err := read()
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k = make([]byte, 32)
	rand.Read(k)
	created, err := createOnce(dir, PIIKeyFile, hex.EncodeToString(k)+"\n", 0o600)
	if err != nil {
		return nil, err
	}
	if !created {
		return read()
	}
	return k, nil
}
