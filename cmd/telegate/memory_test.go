package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
)

func TestContainerMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2 := write("v2", "1073741824\n")
	unlimited := write("max", "max\n")
	v1none := write("v1", "9223372036854771712\n")
	for _, tc := range []struct {
		files []string
		want  int64
	}{
		{[]string{v2}, 1 << 30},
		{[]string{filepath.Join(dir, "missing"), v2}, 1 << 30},
		{[]string{unlimited, v2}, 0},
		{[]string{v1none}, 0},
		{nil, 0},
	} {
		if got := containerMemoryLimit(tc.files); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.files, got, tc.want)
		}
	}
}

// gatewayOptions are the gateway options the shipped defaults give.
func defaultOptions(t *testing.T) gateway.Options {
	c := config.Default()
	return gateway.Options{
		Limits: gateway.Limits{
			MaxRequestBytes:     int64(c.Limits.MaxRequestBytes),
			MaxDecodedBytes:     int(c.Limits.MaxDecodedBytes),
			MaxSeriesPerRequest: c.Limits.MaxSeriesPerRequest,
		},
		MaxConcurrentRequests: c.Limits.MaxConcurrentRequests,
		ExplainCacheBytes:     int64(c.Allowlist.ExplainCacheBytes),
		MaxForwardBytes:       int(c.Forward.MaxRequestBytes),
		Fairness:              gateway.Fairness{MaxInflightBytes: int64(c.Limits.MaxInflightBytes)},
	}
}

// TestDefaultsFitTheShippedMemoryLimit: the worst case of the shipped
// defaults (requests in flight plus the baseline) fits half the
// Deployment's 1GiB, so the heap can double between collections.
func TestDefaultsFitTheShippedMemoryLimit(t *testing.T) {
	o := defaultOptions(t)
	bound := o.MemoryBound()
	if bound <= 0 || bound+baselineMemory > 512<<20 {
		t.Fatalf("worst case %d + baseline %d does not fit 512MiB", bound, baselineMemory)
	}
	// Without the in-flight budget the concurrency limit alone allows
	// far more than the shipped limit: the warning must say so.
	o.Fairness.MaxInflightBytes = 0
	unbudgeted := o.MemoryBound()
	if unbudgeted < 1<<30 {
		t.Fatalf("128 requests of max_decoded_bytes without an in-flight budget: %d", unbudgeted)
	}
	var buf bytes.Buffer
	checkMemoryBound(log.NewLogfmtLogger(&buf), unbudgeted, 1<<30, "test")
	if !strings.Contains(buf.String(), "does not fit the memory limit") {
		t.Fatalf("no warning: %s", buf.String())
	}
	buf.Reset()
	checkMemoryBound(log.NewLogfmtLogger(&buf), bound, 1<<30, "test")
	if strings.Contains(buf.String(), "does not fit") {
		t.Fatalf("warning for the defaults: %s", buf.String())
	}
	o.MaxConcurrentRequests = 0
	if o.MemoryBound() != -1 {
		t.Fatal("no concurrency limit and no in-flight budget is unbounded")
	}
}
