package bucket

import (
	"errors"
	"fmt"
	"strings"

	"github.com/thanos-io/objstore"
	"go.yaml.in/yaml/v2"
)

// Config is an object storage configuration in the format every
// Thanos component reads (--objstore.config): a provider type, its own
// config section, and an optional prefix all objects live under.
type Config struct {
	Type   string         `yaml:"type"`
	Config map[string]any `yaml:"config"`
	Prefix string         `yaml:"prefix,omitempty"`
}

// DefaultDirectory is where the default FILESYSTEM spool lives,
// relative to the working directory.
const DefaultDirectory = "./data/spool"

// DefaultConfig is the spool bucket used when none is configured.
func DefaultConfig() Config {
	return Config{Type: string(objstore.FILESYSTEM), Config: map[string]any{"directory": DefaultDirectory}}
}

// fsConfig is the FILESYSTEM provider's config section.
type fsConfig struct {
	Directory string `yaml:"directory"`
}

// Validate checks the provider type and its config without touching
// storage.
func (c Config) Validate() error {
	if c.isCloud() {
		return c.checkCloudConfig()
	}
	_, err := c.fsConfig()
	return err
}

func (c Config) fsConfig() (fsConfig, error) {
	switch strings.ToUpper(c.Type) {
	case string(objstore.FILESYSTEM):
	case "":
		return fsConfig{}, errors.New("bucket: type is required (FILESYSTEM, S3, GCS or AZURE)")
	default:
		return fsConfig{}, fmt.Errorf("bucket: type %q is not supported; supported: FILESYSTEM, S3, GCS, AZURE", c.Type)
	}
	raw, err := yaml.Marshal(c.Config)
	if err != nil {
		return fsConfig{}, fmt.Errorf("bucket: config: %w", err)
	}
	var fc fsConfig
	if err := yaml.UnmarshalStrict(raw, &fc); err != nil {
		return fsConfig{}, fmt.Errorf("bucket: FILESYSTEM config: %w", err)
	}
	if fc.Directory == "" {
		return fsConfig{}, errors.New("bucket: FILESYSTEM config.directory is required")
	}
	if strings.Contains(c.Prefix, "..") {
		return fsConfig{}, fmt.Errorf("bucket: prefix %q must not contain \"..\"", c.Prefix)
	}
	return fc, nil
}

// New opens the bucket c describes. For FILESYSTEM it is a
// crash-safe bucket (see Filesystem), created if missing; S3, GCS and AZURE
// use the Thanos objstore providers.
func New(c Config) (objstore.Bucket, error) {
	if c.isCloud() {
		return newCloudBucket(c, nil)
	}
	fc, err := c.fsConfig()
	if err != nil {
		return nil, err
	}
	b, err := NewFilesystem(fc.Directory)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		return objstore.NewPrefixedBucket(b, p), nil
	}
	return b, nil
}
