package main

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// baselineMemory is the gateway's memory besides its requests in flight at
// the shipped defaults: the Go runtime, the allowlist, the authorizer and
// JWT caches, the budgets' state of a 10,000-cluster fleet (about 95 MiB
// of RSS measured in docs/capacity.md, requests included).
const baselineMemory = 96 << 20

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// containerMemoryLimit reads the cgroup memory limit of the process, or 0
// when there is none (or it is not readable).
func containerMemoryLimit(files []string) int64 {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "no limit" as a huge page-rounded number.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0
		}
		return n
	}
	return 0
}

// setMemoryLimit gives the Go runtime a soft memory limit when GOMEMLIMIT
// is not set, so the garbage collector works harder before memory runs
// out: without one the heap may grow to twice the live memory between
// collections. In a container it is 90% of the container's limit;
// elsewhere one and a half times the worst case of the requests in flight
// (bound, see gateway.Options.MemoryBound) plus the baseline, so a burst of
// hostile requests does not double into garbage. GOMEMLIMIT (including
// "off") is always respected. It returns the limit the worst case must fit
// under and where it came from; 0 when there is none.
func setMemoryLimit(logger log.Logger, files []string, bound int64) (limit int64, source string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			return l, "GOMEMLIMIT"
		}
		return 0, ""
	}
	if limit = containerMemoryLimit(files); limit > 0 {
		soft := limit / 10 * 9
		debug.SetMemoryLimit(soft)
		level.Info(logger).Log("msg", "set the Go soft memory limit to 90% of the container's memory limit (set GOMEMLIMIT to choose another)", "container_limit_bytes", limit, "soft_limit_bytes", soft)
		return limit, "container memory limit"
	}
	if bound > 0 {
		soft := (bound + baselineMemory) / 2 * 3
		debug.SetMemoryLimit(soft)
		level.Info(logger).Log("msg", "set the Go soft memory limit to 1.5x the worst case of the requests in flight plus the baseline (set GOMEMLIMIT to choose another, or GOMEMLIMIT=off for none)", "soft_limit_bytes", soft)
	}
	return 0, ""
}

// checkMemoryBound warns when the worst case of the requests in flight
// (bound, see gateway.Options.MemoryBound) plus the baseline does not fit
// under limit.
func checkMemoryBound(logger log.Logger, bound, limit int64, source string) {
	switch {
	case bound < 0:
		level.Warn(logger).Log("msg", "nothing bounds the memory of requests in flight: set limits.max_concurrent_requests and limits.max_inflight_bytes")
	case limit > 0 && bound+baselineMemory > limit:
		level.Warn(logger).Log("msg", "the worst case of the requests in flight does not fit the memory limit: a burst of large or hostile requests may get the gateway OOM-killed; lower limits.max_inflight_bytes (or limits.max_concurrent_requests, max_decoded_bytes) or raise the limit",
			"worst_case_bytes", bound+baselineMemory, "requests_bytes", bound, "baseline_bytes", int64(baselineMemory), "limit_bytes", limit, "limit_from", source)
	default:
		level.Info(logger).Log("msg", "memory of requests in flight is bounded", "worst_case_bytes", bound+baselineMemory, "limit_bytes", limit, "limit_from", source)
	}
}
