package config

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
)

// Relabel configures label stripping, relabeling and timestamp policy.
type Relabel struct {
	DropLabels     []string          `yaml:"drop_labels"`
	RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
	// UploadTimestamps is "server" (default: telemeter clients' clocks
	// drift) or "client" for /upload.
	UploadTimestamps string `yaml:"upload_timestamps"`
	// MaxSampleAge and MaxFutureSkew bound client timestamps on remote
	// write; samples outside are dropped and counted. 0 disables a bound.
	MaxSampleAge  model.Duration `yaml:"max_sample_age"`
	MaxFutureSkew model.Duration `yaml:"max_future_skew"`
}

// defaultRelabel returns the relabel section's built-in defaults.
func defaultRelabel() Relabel {
	return Relabel{
		DropLabels:       []string{"instance", "pod", "prometheus_replica"},
		UploadTimestamps: "server",
		MaxSampleAge:     model.Duration(time.Hour),
		MaxFutureSkew:    model.Duration(10 * time.Minute),
	}
}

// validateRelabel checks relabel's label and timestamp keys
// (relabel_configs: validateRelabelConfigs).
func (c *Config) validateRelabel(add addFunc) {
	for _, l := range c.Relabel.DropLabels {
		if !labelNameRE.MatchString(l) {
			add("relabel.drop_labels", "%q is not a valid label name", l)
		}
		if l == c.Authn.ClusterIDLabel || l == "__name__" {
			add("relabel.drop_labels", "must not drop %q", l)
		}
	}
	switch c.Relabel.UploadTimestamps {
	case "server", "client":
	default:
		add("relabel.upload_timestamps", "%q must be \"server\" or \"client\"", c.Relabel.UploadTimestamps)
	}
	if c.Relabel.MaxSampleAge < 0 || c.Relabel.MaxFutureSkew < 0 {
		add("relabel", "max_sample_age and max_future_skew must not be negative")
	}
}

// validateRelabelConfigs checks relabel.relabel_configs.
func (c *Config) validateRelabelConfigs(add addFunc) {
	for i, rc := range c.Relabel.RelabelConfigs {
		if rc == nil {
			add(fmt.Sprintf("relabel.relabel_configs[%d]", i), "empty entry")
			continue
		}
		if err := rc.Validate(model.LegacyValidation); err != nil {
			add(fmt.Sprintf("relabel.relabel_configs[%d]", i), "%v", err)
		}
	}
}
