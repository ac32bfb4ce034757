package load

import (
	"encoding/json"
	"io"
	"maps"
)

// ResultJSON is the machine-readable form of a Result (`telegate load
// --output json`), for scripts such as scripts/compare.sh. Durations are
// in seconds; Target is absent without a MetricsURL.
type ResultJSON struct {
	Protocol        string         `json:"protocol"`
	Path            string         `json:"path"`
	Clusters        int            `json:"clusters"`
	Senders         int            `json:"senders"`
	ElapsedSeconds  float64        `json:"elapsed_seconds"`
	ExpectedRate    float64        `json:"expected_rate"`
	AchievedRate    float64        `json:"achieved_rate"`
	Writes          int            `json:"writes"`
	AcceptedWrites  int            `json:"accepted_writes"`
	Authorizes      int            `json:"authorizes"`
	Codes           map[string]int `json:"codes"`
	LatencySeconds  LatencyJSON    `json:"latency_seconds"`
	SamplesAccepted int            `json:"samples_accepted"`
	Target          *TargetJSON    `json:"target,omitempty"`
	Sink            *SinkCounts    `json:"sink,omitempty"`
}

// LatencyJSON holds the write latency percentiles in seconds.
type LatencyJSON struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// TargetJSON holds the figures read from the target's /metrics: process
// CPU seconds over the run, per accepted write, samples accepted per
// CPU-second, memory at the end.
type TargetJSON struct {
	CPUSeconds          float64 `json:"cpu_seconds"`
	CPUSecondsPerWrite  float64 `json:"cpu_seconds_per_write"`
	SamplesPerCPUSecond float64 `json:"samples_per_cpu_second"`
	RSSBytes            float64 `json:"rss_bytes"`
	PeakRSSBytes        float64 `json:"peak_rss_bytes"`
	HeapInuseBytes      float64 `json:"heap_inuse_bytes"`
	Error               string  `json:"error,omitempty"`
}

// JSON returns r's machine-readable form.
func (r *Result) JSON() ResultJSON {
	out := ResultJSON{
		Protocol:        r.Protocol,
		Path:            r.Path,
		Clusters:        r.Clusters,
		Senders:         r.Senders,
		ElapsedSeconds:  r.Elapsed.Seconds(),
		ExpectedRate:    r.Expected,
		AchievedRate:    r.Achieved,
		Writes:          r.Writes,
		AcceptedWrites:  r.Accepted,
		Authorizes:      r.Authorizes,
		Codes:           maps.Clone(r.Codes),
		LatencySeconds:  LatencyJSON{P50: r.P50.Seconds(), P90: r.P90.Seconds(), P99: r.P99.Seconds(), Max: r.Max.Seconds()},
		SamplesAccepted: r.SamplesSent,
		Sink:            r.Sink,
	}
	if out.Codes == nil {
		out.Codes = map[string]int{}
	}
	if r.GatewayCPU > 0 || r.RSS > 0 || r.GatewayMetricsError != "" {
		t := &TargetJSON{
			CPUSeconds:         r.GatewayCPU,
			CPUSecondsPerWrite: r.CPUPerWrite,
			RSSBytes:           r.RSS,
			PeakRSSBytes:       r.PeakRSS,
			HeapInuseBytes:     r.Heap,
			Error:              r.GatewayMetricsError,
		}
		if r.GatewayCPU > 0 {
			t.SamplesPerCPUSecond = float64(r.SamplesSent) / r.GatewayCPU
		}
		out.Target = t
	}
	return out
}

// WriteJSON writes r.JSON() as one indented JSON document.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.JSON())
}
