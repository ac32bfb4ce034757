package config

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/publicview"
)

// PublicView configures the public aggregate view (package publicview):
// an optional listener serving OpenMetrics text of PromQL aggregations in
// which every group is backed by at least K installations.
type PublicView struct {
	// ListenAddress serves the view; "" = off.
	ListenAddress string `yaml:"listen_address"`
	// QueryURL is the query API the view reads (Thanos Query); "" = the
	// embedded store (single-binary mode only).
	QueryURL string `yaml:"query_url"`
	// K is the fewest distinct installations a published group needs.
	K int `yaml:"k"`
	// CacheTTL is how long an answer is served again.
	CacheTTL model.Duration `yaml:"cache_ttl"`
	// RequestsPerSecond and Burst bound the listener's requests (429).
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	// Aggregations are the published families.
	Aggregations []PublicAggregation `yaml:"aggregations"`
}

// PublicAggregation is one published family.
type PublicAggregation struct {
	Name  string `yaml:"name"`
	Query string `yaml:"query"`
	Help  string `yaml:"help"`
}

func defaultPublicView() PublicView {
	return PublicView{K: 10, CacheTTL: model.Duration(30 * time.Second), RequestsPerSecond: 1, Burst: 10}
}

// validatePublicView checks the public view: k of at least 2, every
// aggregation compiles (sum, count, avg or group by labels other than the
// installation label), a source to query.
func (c *Config) validatePublicView(add addFunc) {
	p := c.PublicView
	if p.ListenAddress == "" {
		return
	}
	if p.K < 2 {
		add("public_view.k", "must be at least 2 (1 would publish single installations)")
	}
	if p.CacheTTL < model.Duration(time.Second) || p.RequestsPerSecond <= 0 || p.Burst < 1 {
		add("public_view", "cache_ttl must be at least 1s, requests_per_second above 0 and burst at least 1")
	}
	if len(p.Aggregations) == 0 {
		add("public_view.aggregations", "listen_address is set but there is nothing to publish")
	}
	for i, a := range p.Aggregations {
		if _, _, err := publicview.Compile(publicview.Aggregation{Name: a.Name, Query: a.Query}, c.Authn.ClusterIDLabel); err != nil {
			add(fmt.Sprintf("public_view.aggregations[%d]", i), "%v", err)
		}
	}
	if p.QueryURL == "" && !c.EmbeddedStorage() {
		add("public_view.query_url", "required when forwarding (forward.url is set): the Thanos Query URL to aggregate over")
	}
}
