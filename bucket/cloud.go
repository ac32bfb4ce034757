package bucket

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-kit/log"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/s3"
	"go.yaml.in/yaml/v2"
)

// cloudProviders are the object stores besides FILESYSTEM the spool can
// use, configured exactly as in every Thanos component. Their uploads are
// atomic by the stores' own semantics (an object is visible only once
// complete), which is what the spool relies on.
var cloudProviders = map[string]func(logger log.Logger, conf []byte) (objstore.Bucket, error){
	string(objstore.S3): func(logger log.Logger, conf []byte) (objstore.Bucket, error) {
		return s3.NewBucket(logger, conf, "telegate-spool", nil)
	},
	string(objstore.GCS): func(logger log.Logger, conf []byte) (objstore.Bucket, error) {
		return gcs.NewBucket(context.Background(), logger, conf, "telegate-spool", nil)
	},
	string(objstore.AZURE): func(logger log.Logger, conf []byte) (objstore.Bucket, error) {
		return azure.NewBucket(logger, conf, "telegate-spool", nil)
	},
}

// checkCloudConfig decodes the provider's config strictly (a typo in a
// key is an error) and checks the fields it cannot work without, without
// contacting the store or any credential source.
func (c Config) checkCloudConfig() error {
	t := strings.ToUpper(c.Type)
	if strings.Contains(c.Prefix, "..") {
		return fmt.Errorf("bucket: prefix %q must not contain \"..\"", c.Prefix)
	}
	raw, err := yaml.Marshal(c.Config)
	if err != nil {
		return fmt.Errorf("bucket: config: %w", err)
	}
	var missing []string
	switch t {
	case string(objstore.S3):
		var sc s3.Config
		if err = yaml.UnmarshalStrict(raw, &sc); err == nil {
			if sc.Bucket == "" {
				missing = append(missing, "bucket")
			}
			if sc.Endpoint == "" {
				missing = append(missing, "endpoint")
			}
		}
	case string(objstore.GCS):
		var gc gcs.Config
		if err = yaml.UnmarshalStrict(raw, &gc); err == nil && gc.Bucket == "" {
			missing = append(missing, "bucket")
		}
	case string(objstore.AZURE):
		var ac azure.Config
		if err = yaml.UnmarshalStrict(raw, &ac); err == nil {
			if ac.StorageAccountName == "" {
				missing = append(missing, "storage_account")
			}
			if ac.ContainerName == "" {
				missing = append(missing, "container")
			}
		}
	}
	if err != nil {
		return fmt.Errorf("bucket: %s config: %w", t, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("bucket: %s config needs %s", t, strings.Join(missing, " and "))
	}
	return nil
}

// isCloud reports whether c names one of cloudProviders.
func (c Config) isCloud() bool {
	_, ok := cloudProviders[strings.ToUpper(c.Type)]
	return ok
}

// newCloudBucket opens a cloud bucket. Its provider checks the config;
// nothing is written until the spool's first Put.
func newCloudBucket(c Config, logger log.Logger) (objstore.Bucket, error) {
	if err := c.checkCloudConfig(); err != nil {
		return nil, err
	}
	raw, err := yaml.Marshal(c.Config)
	if err != nil {
		return nil, fmt.Errorf("bucket: config: %w", err)
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	b, err := cloudProviders[strings.ToUpper(c.Type)](logger, raw)
	if err != nil {
		return nil, fmt.Errorf("bucket: %s: %w", strings.ToUpper(c.Type), err)
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		return objstore.NewPrefixedBucket(b, p), nil
	}
	return b, nil
}
