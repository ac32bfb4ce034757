package load

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// Spec describes one cluster's payload. The zero value is not useful; start
// from DefaultSpec.
type Spec struct {
	// Names is the number of metric names (families).
	Names int
	// SeriesPerName is the number of series of each name.
	SeriesPerName int
	// Seed makes the random label values (instance, pod) reproducible; two
	// specs differing only in Seed describe two clusters with the same
	// metrics on different pods.
	Seed uint64
}

// DefaultSpec is the payload of the performance issue: 1000 series (20 names
// x 50 series), 10 labels each including instance and pod, about 39 KB of
// snappy-compressed remote write.
var DefaultSpec = Spec{Names: 20, SeriesPerName: 50, Seed: 1}

// Series returns Names*SeriesPerName.
func (s Spec) Series() int { return s.Names * s.SeriesPerName }

// metricNames are telemeter-like metric names; names past the list get a
// numeric suffix.
var metricNames = []string{
	"cluster_version", "cluster_operator_up", "cluster_operator_conditions",
	"cluster_installer", "cluster_infrastructure_provider", "cluster_feature_set",
	"node_role_os_version_machine_cpu_seconds", "kube_node_status_condition",
	"kube_pod_container_status_restarts_total", "apiserver_request_total",
	"etcd_server_has_leader", "etcd_disk_wal_fsync_duration_seconds_count",
	"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
	"alerts", "csv_succeeded", "subscription_sync_total", "monitoring_vcpu_count",
	"workload_cpu_usage_cores", "openshift_build_total",
}

// MetricNames returns the spec's metric names, in payload order.
func (s Spec) MetricNames() []string {
	out := make([]string, s.Names)
	for i := range out {
		if i < len(metricNames) {
			out[i] = metricNames[i]
		} else {
			out[i] = fmt.Sprintf("%s_%d", metricNames[i%len(metricNames)], i/len(metricNames))
		}
	}
	return out
}

// AllowedNames returns the half of the names (every other one) that
// AllowlistYAML lets through.
func (s Spec) AllowedNames() []string {
	var out []string
	for i, n := range s.MetricNames() {
		if i%2 == 0 {
			out = append(out, n)
		}
	}
	return out
}

// AllowlistYAML returns an allowlist file (telemeter's `matches:` format)
// keeping exactly AllowedNames.
func (s Spec) AllowlistYAML() []byte {
	var b strings.Builder
	b.WriteString("matches:\n")
	for _, n := range s.AllowedNames() {
		fmt.Fprintf(&b, "# owners: (@telegate/load)\n# Load-test series %s.\n- '{__name__=%q}'\n", n, n)
	}
	return []byte(b.String())
}

var namespaces = []string{
	"openshift-apiserver", "openshift-etcd", "openshift-monitoring", "openshift-ingress",
	"openshift-dns", "openshift-sdn", "openshift-console", "openshift-marketplace",
	"openshift-image-registry", "openshift-machine-api",
}

const alnum = "bcdfghjklmnpqrstvwxz2456789"

func randString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

// labelSet is one series' labels except __name__, sorted by name.
type labelSet [9][2]string

// labelSets returns SeriesPerName label sets. Series of one name differ by
// namespace and reason (so they stay distinct once instance and pod are
// stripped); instance and pod are random per series, like real pods.
func (s Spec) labelSets() []labelSet {
	r := rand.New(rand.NewPCG(s.Seed, 0x7e1e9a7e))
	out := make([]labelSet, s.SeriesPerName)
	for i := range out {
		ns := namespaces[i%len(namespaces)]
		svc := strings.TrimPrefix(ns, "openshift-")
		out[i] = labelSet{
			{"container", svc},
			{"endpoint", "https"},
			{"instance", fmt.Sprintf("10.%d.%d.%d:%d", 128+r.IntN(4), r.IntN(256), r.IntN(256), 8443+r.IntN(3))},
			{"job", svc},
			{"namespace", ns},
			{"pod", svc + "-" + randString(r, 10) + "-" + randString(r, 5)},
			{"prometheus", "openshift-monitoring/k8s"},
			{"reason", fmt.Sprintf("r%d", i/len(namespaces))},
			{"service", svc},
		}
	}
	return out
}

func value(r *rand.Rand) float64 { return float64(r.IntN(1_000_000)) / 8 }

// WriteRequest returns the payload as a remote-write request whose samples
// carry timestamp nowMs. Labels are sorted by name, as Prometheus sends them.
func (s Spec) WriteRequest(nowMs int64) *prompb.WriteRequest {
	sets := s.labelSets()
	r := rand.New(rand.NewPCG(s.Seed, 1))
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, s.Series())}
	for _, name := range s.MetricNames() {
		for _, ls := range sets {
			lbls := make([]prompb.Label, 0, 10)
			lbls = append(lbls, prompb.Label{Name: "__name__", Value: name})
			for _, l := range ls {
				lbls = append(lbls, prompb.Label{Name: l[0], Value: l[1]})
			}
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  lbls,
				Samples: []prompb.Sample{{Value: value(r), Timestamp: nowMs}},
			})
		}
	}
	return wr
}

// Families returns the same series as WriteRequest as telemeter
// MetricFamilies (counters for _total names, gauges otherwise), each
// sample carrying timestamp nowMs, as telemeter-client sends them after
// federating.
func (s Spec) Families(nowMs int64) []*dto.MetricFamily {
	sets := s.labelSets()
	r := rand.New(rand.NewPCG(s.Seed, 1))
	var out []*dto.MetricFamily
	for _, name := range s.MetricNames() {
		mf := &dto.MetricFamily{Name: proto.String(name)}
		counter := strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_count")
		if counter {
			mf.Type = dto.MetricType_COUNTER.Enum()
		} else {
			mf.Type = dto.MetricType_GAUGE.Enum()
		}
		for _, ls := range sets {
			m := &dto.Metric{TimestampMs: proto.Int64(nowMs)}
			for _, l := range ls {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l[0]), Value: proto.String(l[1])})
			}
			v := value(r)
			if counter {
				m.Counter = &dto.Counter{Value: proto.Float64(v)}
			} else {
				m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
			}
			mf.Metric = append(mf.Metric, m)
		}
		out = append(out, mf)
	}
	return out
}

// EncodeRemoteWrite marshals wr and compresses it with snappy's block
// format: a remote write 1.0 body.
func EncodeRemoteWrite(wr *prompb.WriteRequest) ([]byte, error) {
	raw, err := wr.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

// EncodeUpload writes mfs as length-delimited protobuf compressed with the
// snappy framing format: a telemeter /upload body.
func EncodeUpload(mfs []*dto.MetricFamily) ([]byte, error) {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	for _, mf := range mfs {
		if _, err := protodelim.MarshalTo(w, mf); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
