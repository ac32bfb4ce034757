package limits

import (
	"sync"
	"time"
)

// IntervalLimiter allows one upload per cluster per interval. An upload
// reserves its slot when it starts and gives it back if it fails, so a
// rejected or failed upload can be retried at once.
type IntervalLimiter struct {
	interval time.Duration
	slack    time.Duration

	mu        sync.Mutex
	last      map[string]time.Time
	lastSweep time.Time
}

// NewIntervalLimiter returns a limiter for interval. A zero interval
// allows everything. The slack (a tenth of the interval, at most 30s)
// absorbs jitter in clients that upload exactly on the interval.
func NewIntervalLimiter(interval time.Duration) *IntervalLimiter {
	return &IntervalLimiter{interval: interval, slack: uploadSlack(interval), last: map[string]time.Time{}}
}

// uploadSlack is the jitter an upload interval tolerates: a tenth of it,
// at most 30s.
func uploadSlack(interval time.Duration) time.Duration {
	return min(interval/10, 30*time.Second)
}

// Reserve claims cluster's slot at now. If the cluster uploaded less than
// interval-slack ago it returns ok=false and how long to wait. On ok, call
// release(false) if the upload did not succeed to give the slot back.
func (l *IntervalLimiter) Reserve(cluster string, now time.Time) (release func(succeeded bool), retryAfter time.Duration, ok bool) {
	if l.interval <= 0 {
		return func(bool) {}, 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	prev, seen := l.last[cluster]
	if seen {
		if wait := prev.Add(l.interval - l.slack).Sub(now); wait > 0 {
			return nil, wait, false
		}
	}
	l.last[cluster] = now
	return func(succeeded bool) {
		if succeeded {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.last[cluster].Equal(now) {
			if seen {
				l.last[cluster] = prev
			} else {
				delete(l.last, cluster)
			}
		}
	}, 0, true
}

// Len returns the number of clusters tracked.
func (l *IntervalLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}

// sweep forgets clusters whose last upload is older than the interval, at
// most once per interval, so memory follows the active fleet.
func (l *IntervalLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.interval {
		return
	}
	l.lastSweep = now
	for k, t := range l.last {
		if now.Sub(t) >= l.interval {
			delete(l.last, k)
		}
	}
}
