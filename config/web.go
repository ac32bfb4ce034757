package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Web configures the two listeners.
type Web struct {
	ListenAddress         string         `yaml:"listen_address"`
	InternalListenAddress string         `yaml:"internal_listen_address"`
	ReadHeaderTimeout     model.Duration `yaml:"read_header_timeout"`
	ReadTimeout           model.Duration `yaml:"read_timeout"`
	WriteTimeout          model.Duration `yaml:"write_timeout"`
	IdleTimeout           model.Duration `yaml:"idle_timeout"`
	ShutdownTimeout       model.Duration `yaml:"shutdown_timeout"`
}

// defaultWeb returns the web section's built-in defaults.
func defaultWeb() Web {
	return Web{
		ListenAddress:         "0.0.0.0:9003",
		InternalListenAddress: "127.0.0.1:9004",
		ReadHeaderTimeout:     model.Duration(10 * time.Second),
		ReadTimeout:           model.Duration(time.Minute),
		WriteTimeout:          model.Duration(2 * time.Minute),
		IdleTimeout:           model.Duration(2 * time.Minute),
		ShutdownTimeout:       model.Duration(30 * time.Second),
	}
}

// validateWeb checks the web section.
func (c *Config) validateWeb(add addFunc) {
	if c.Web.ListenAddress == "" {
		add("web.listen_address", "must not be empty")
	}
	if c.Web.InternalListenAddress == "" {
		add("web.internal_listen_address", "must not be empty")
	}
}
