package load

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// gatewayStats are the process figures read from the gateway's /metrics.
type gatewayStats struct {
	cpu, rss, heap float64
}

// scrapeGateway reads process_cpu_seconds_total,
// process_resident_memory_bytes and go_memstats_heap_inuse_bytes.
func scrapeGateway(ctx context.Context, client *http.Client, u string) (gatewayStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return gatewayStats{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return gatewayStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gatewayStats{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return parseGatewayStats(io.LimitReader(resp.Body, 16<<20))
}

func parseGatewayStats(r io.Reader) (gatewayStats, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return gatewayStats{}, fmt.Errorf("parsing metrics: %w", err)
	}
	val := func(name string) (float64, bool) {
		mf, ok := mfs[name]
		if !ok || len(mf.Metric) == 0 {
			return 0, false
		}
		m := mf.Metric[0]
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	var s gatewayStats
	var ok bool
	if s.cpu, ok = val("process_cpu_seconds_total"); !ok {
		return s, fmt.Errorf("no process_cpu_seconds_total: is this the gateway's internal /metrics?")
	}
	s.rss, _ = val("process_resident_memory_bytes")
	s.heap, _ = val("go_memstats_heap_inuse_bytes")
	return s, nil
}
