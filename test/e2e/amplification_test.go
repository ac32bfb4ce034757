package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"

	"github.com/telegate/telegate/test/e2e/harness"
)

// pb appends protobuf field num with a length-delimited payload.
func pb(dst []byte, num int, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(num)<<3|2)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// amplificationShapes are request bodies (decoded, before compression)
// that cost little on the wire and much in memory if a decoder pushes
// whatever the bytes describe: the reproductions of the security review,
// sized just under the shipped max_decoded_bytes (8MiB).
func amplificationShapes() map[string]struct {
	upload bool
	raw    []byte
} {
	const decoded = 8<<20 - 64<<10
	name := pb(pb(nil, 1, []byte("__name__")), 2, []byte("cluster_version"))
	shapes := map[string]struct {
		upload bool
		raw    []byte
	}{}

	// One TimeSeries of millions of empty labels.
	ts := pb(nil, 1, name)
	ts = append(ts, bytes.Repeat([]byte{0x0a, 0x00}, (decoded-len(ts))/2)...)
	shapes["rw_empty_labels"] = struct {
		upload bool
		raw    []byte
	}{false, pb(nil, 1, ts)}

	// One TimeSeries of millions of empty samples.
	ts = pb(nil, 1, name)
	ts = append(ts, bytes.Repeat([]byte{0x12, 0x00}, (decoded-len(ts))/2)...)
	shapes["rw_empty_samples"] = struct {
		upload bool
		raw    []byte
	}{false, pb(nil, 1, ts)}

	// The series cap's worth of series, each with as many empty labels
	// as the decoder lets through, and many samples.
	var wr []byte
	one := pb(nil, 1, name)
	one = append(one, bytes.Repeat([]byte{0x0a, 0x00}, 67)...)
	one = append(one, bytes.Repeat([]byte{0x12, 0x00}, 300)...)
	for len(wr)+len(one)+4 < decoded {
		wr = pb(wr, 1, one)
	}
	shapes["rw_many_wide_series"] = struct {
		upload bool
		raw    []byte
	}{false, wr}

	// /upload: a MetricFamily padded by a large unknown field, with one
	// histogram metric of 6,500 empty label pairs and 9,990 empty buckets.
	var metric []byte
	metric = append(metric, bytes.Repeat([]byte{0x0a, 0x00}, 6500)...) // label pairs
	hist := bytes.Repeat([]byte{0x1a, 0x00}, 9990)                     // buckets
	metric = pb(metric, 7, hist)
	mf := pb(nil, 1, []byte("cluster_version"))
	mf = append(mf, 0x18, 4) // type HISTOGRAM
	mf = pb(mf, 4, metric)
	mf = pb(mf, 99, make([]byte, decoded-len(mf)-16)) // unknown field
	shapes["upload_histogram_padding"] = struct {
		upload bool
		raw    []byte
	}{true, append(binary.AppendUvarint(nil, uint64(len(mf))), mf...)}

	// /upload: many small metrics of a histogram family, each with the
	// most labels a series may carry and many buckets: every bucket
	// repeats the metric's labels.
	metric = nil
	for i := 0; i < 60; i++ {
		metric = pb(metric, 1, pb(pb(nil, 1, []byte("l"+strconv.Itoa(i))), 2, []byte("v")))
	}
	metric = pb(metric, 7, bytes.Repeat([]byte{0x1a, 0x00}, 2000))
	mf = pb(nil, 1, []byte("cluster_version"))
	mf = append(mf, 0x18, 4)
	for len(mf)+len(metric)+8 < decoded {
		mf = pb(mf, 4, metric)
	}
	shapes["upload_bucket_fanout"] = struct {
		upload bool
		raw    []byte
	}{true, append(binary.AppendUvarint(nil, uint64(len(mf))), mf...)}
	return shapes
}

// peakRSS is the process's high-water mark of resident memory (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			must(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

// TestAmplificationBoundedE2E sends every amplification shape, 4 at once
// (8 times each) from each of 3 installations (together they may hold three quarters of
// limits.max_inflight_bytes, each its share), to the binary with the shipped default
// limits, while another installation writes every 50ms. Every hostile
// request gets a 4xx (or a 429/503 while the memory budget is in use),
// the gateway's peak RSS stays under 512MiB, and every write of the other
// installation is stored (read back from Prometheus).
func TestAmplificationBoundedE2E(t *testing.T) {
	down := harness.StartPrometheus(t, harness.PrometheusOptions{Name: "downstream", EnableRemoteWriteReceiver: true})
	gw := startBudgetGateway(t, budgetGatewayOpts{downstream: down.RemoteWriteURL(), shippedLimits: true, limits: "  upload_interval: 0s"})
	shapes := amplificationShapes()
	type sent struct {
		shape string
		code  int
		body  string
	}
	var (
		mu      sync.Mutex
		results []sent
		wg      sync.WaitGroup
	)
	for inst := 0; inst < 3; inst++ {
		cluster := "attacker-" + strconv.Itoa(inst)
		jwt, _, status, err := harness.Authorize(context.Background(), gw.url, "fleet-token", cluster)
		if err != nil || status != 200 {
			t.Fatalf("authorize %s: %d %v", cluster, status, err)
		}
		for name, s := range shapes {
			var body []byte
			var url, bearer string
			var headers map[string]string
			if s.upload {
				var buf bytes.Buffer
				zw := snappy.NewBufferedWriter(&buf)
				zw.Write(s.raw)
				zw.Close()
				body, url, bearer = buf.Bytes(), gw.url+"/upload", jwt
				headers = map[string]string{"Content-Type": harness.UploadContentType, "Content-Encoding": "snappy", "Authorization": "Bearer " + bearer}
			} else {
				body, url = snappy.Encode(nil, s.raw), gw.url+"/api/v1/receive"
				headers = rwHeaders(harness.CompositeToken("fleet-token", cluster))
			}
			if len(body) > 4<<20 {
				t.Fatalf("shape %s compresses to %d bytes, over max_request_bytes", name, len(body))
			}
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each sender keeps at it, so the attack lasts
					// while the polite installation writes.
					for round := 0; round < 8; round++ {
						code, _, b := post(t, url, headers, body)
						mu.Lock()
						results = append(results, sent{name, code, b})
						mu.Unlock()
					}
				}()
			}
		}
	}
	// The polite installation writes meanwhile.
	stop := make(chan struct{})
	politeDone := make(chan int)
	go func() {
		n := 0
		defer func() { politeDone <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			code, _, b := post(t, gw.url+"/api/v1/receive", rwHeaders(harness.CompositeToken("fleet-token", "polite")),
				snappy.Encode(nil, mustMarshal(t, versionSeries(time.Now().UnixMilli(), n, 1))))
			if code != 204 {
				t.Errorf("polite write %d during the attack: %d %s", n, code, b)
				continue
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	polite := <-politeDone

	byShape := map[string]map[int]int{}
	for _, r := range results {
		if byShape[r.shape] == nil {
			byShape[r.shape] = map[int]int{}
		}
		byShape[r.shape][r.code]++
		if r.code < 400 || r.code >= 500 && r.code != 503 {
			t.Errorf("shape %s answered %d %s", r.shape, r.code, r.body)
		}
	}
	peak := peakRSS(t, gw.Pid())
	if os.Getenv("AMP_DEBUG") != "" {
		for _, l := range strings.Split(gw.Stderr(), "\n") {
			if strings.HasPrefix(l, "gc ") {
				t.Log(l)
			}
		}
	}
	t.Logf("answers by shape: %v; peak RSS %.1f MiB; polite writes %d", byShape, float64(peak)/(1<<20), polite)
	if peak > 512<<20 {
		t.Errorf("peak RSS %.1f MiB, over 512 MiB", float64(peak)/(1<<20))
	}
	if polite == 0 {
		t.Fatal("the polite installation wrote nothing")
	}
	api := harness.NewPromAPI(down.URL())
	api.QueryEventually(t, `count(cluster_version{_id="polite"})`, func(v model.Vector) bool {
		return len(v) == 1 && int(v[0].Value) == polite
	}, 30*time.Second)
}
