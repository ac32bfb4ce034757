package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v2"
)

// Config is the gateway's whole configuration file.
type Config struct {
	Web        Web        `yaml:"web"`
	Authn      Authn      `yaml:"authn"`
	Allowlist  Allowlist  `yaml:"allowlist"`
	Privacy    Privacy    `yaml:"privacy"`
	Relabel    Relabel    `yaml:"relabel"`
	Limits     Limits     `yaml:"limits"`
	Forward    Forward    `yaml:"forward"`
	Storage    Storage    `yaml:"storage"`
	PublicView PublicView `yaml:"public_view"`

	// source reads the files the config points at: relative to the config
	// file's directory, or from the embedded example set.
	source fs.FS
	// dir is the directory relative paths are resolved against ("" for the
	// embedded set).
	dir string
	// Origin names where the config came from, for logs.
	Origin string `yaml:"-"`
}

// Default returns the built-in defaults every file is layered over.
func Default() *Config {
	return &Config{
		Web:        defaultWeb(),
		Authn:      defaultAuthn(),
		Allowlist:  defaultAllowlist(),
		Relabel:    defaultRelabel(),
		Privacy:    defaultPrivacy(),
		Limits:     defaultLimits(),
		Forward:    defaultForward(),
		Storage:    defaultStorage(),
		PublicView: defaultPublicView(),
	}
}

// Parse reads a config document over the defaults. name is used in errors;
// files it references are read from source, relative to dir.
func Parse(data []byte, name string, source fs.FS, dir string) (*Config, error) {
	c := Default()
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	c.source, c.dir, c.Origin = source, dir, name
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// LoadFile reads the config file at path. Relative file references resolve
// against the file's directory.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	c, err := Parse(data, path, osFS{}, dir)
	if err != nil {
		return nil, err
	}
	c.Forward.Sender.HTTPClientConfig.SetDirectory(dir)
	c.Authn.Authorizer.HTTPClientConfig.SetDirectory(dir)
	if c.Limits.Redis.TLSConfig != nil {
		c.Limits.Redis.TLSConfig.SetDirectory(dir)
	}
	return c, nil
}

// LoadEmbedded reads the config named name from an embedded file set
// (examples); its references resolve inside the same set.
func LoadEmbedded(fsys fs.FS, name string) (*Config, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return Parse(data, "embedded:"+name, fsys, "")
}

// ReadFile reads a file the config references (tokens, allowlist, keys).
func (c *Config) ReadFile(name string) ([]byte, error) {
	return fs.ReadFile(c.source, c.Path(name))
}

// Path resolves a referenced file name the way ReadFile will.
func (c *Config) Path(name string) string {
	if _, ok := c.source.(osFS); ok {
		if !filepath.IsAbs(name) {
			return filepath.Join(c.dir, name)
		}
		return name
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(name)), "./")
}

// Embedded reports whether the config and its files come from the binary.
func (c *Config) Embedded() bool {
	_, ok := c.source.(osFS)
	return c.source != nil && !ok
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// addFunc records one validation error for a key ("section.key: ...").
type addFunc func(key, format string, args ...any)

// Validate checks values that parse but cannot work. Each section checks
// its own keys; the order of the checks is the order of the errors.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	c.validateWeb(add)
	c.validateAuthn(add)
	c.validateAllowlist(add)
	c.validateRelabel(add)
	c.validatePrivacy(add)
	c.validatePublicView(add)
	c.validateLimits(add)
	if c.Forward.Sender.URL != "" {
		if err := c.Forward.Sender.Validate(); err != nil {
			errs = append(errs, err)
		}
	} else {
		c.validateStorage(add)
	}
	c.validateRelabelConfigs(add)
	c.validateBudgets(add)
	c.validateForward(add)
	return errors.Join(errs...)
}

// cleanYAMLError drops the library's noise ("yaml: unmarshal errors:\n  ")
// and keeps the "line N: field X not found in type Y" lines.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if j := strings.Index(l, " not found in type "); j >= 0 {
			l = l[:j] + " is not a known key"
		}
		lines[i] = l
	}
	return errors.New(strings.Join(lines, "; "))
}

// osFS reads from the real filesystem with absolute or relative paths.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// ReadFile implements fs.ReadFileFS so paths need not be fs.ValidPath.
func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
