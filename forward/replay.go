package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log/level"
)

// BodySender sends one snappy remote-write body downstream; *Sender is
// one.
type BodySender interface {
	Send(ctx context.Context, body []byte) error
}

// MessageSender is a BodySender that can send a body as a given protobuf
// message (MessageV1, MessageV2; "" is MessageV1) whatever it is
// configured for; *Sender is one. Replay uses it to send a spooled body as
// it was encoded, so changing protobuf_message does not send old bodies
// with the wrong Content-Type (a 1.0 receiver would take a 2.0 body for an
// empty 1.0 request).
type MessageSender interface {
	BodySender
	SendMessage(ctx context.Context, body []byte, msg string) error
}

// ReplayOptions tune Spool.Replay. Zero fields take the defaults.
type ReplayOptions struct {
	// Concurrency is how many clusters are replayed at once (each
	// cluster's objects are always sent one at a time, in order).
	// Default 4.
	Concurrency int
	// Timeout bounds one object's send, including the sender's own
	// retries. Default 30s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed replay
	// (downstream or bucket unavailable); it doubles per consecutive
	// failure and resets after a success. Defaults 1s and 1m.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Interval is how often an idle replayer looks again even without a
	// wake-up. Default 5s.
	Interval time.Duration
	// ConflictRetries is how many times an object the downstream refuses
	// as out of order (ErrOutOfOrder) is tried again before it is
	// dead-lettered as DeadConflict; the first try is not counted.
	// Meanwhile its cluster waits (its later objects and new requests
	// queue behind it), other clusters go on. Retrying helps when the
	// downstream changes under the gateway (an out-of-order window rolled
	// out, a hashring member catching up); a receiver without an
	// out-of-order window refuses the same samples every time. Default
	// 5; negative means none (dead-letter at once).
	ConflictRetries int
	// ConflictBackoff is the wait before the first retry of a conflict;
	// it doubles for each further one (the defaults: 10s, 20s, 40s, 80s,
	// 160s, about 5 minutes in all). Default 10s.
	ConflictBackoff time.Duration
	// DeadSweepInterval is how often dead/ is listed again (to notice
	// dead letters removed by hand) and the ones older than
	// SpoolOptions.DeadRetention are deleted. Default 1m.
	DeadSweepInterval time.Duration
}

// Replay defaults.
const (
	DefaultReplayConcurrency = 4
	DefaultReplayTimeout     = 30 * time.Second
	DefaultReplayMinBackoff  = time.Second
	DefaultReplayMaxBackoff  = time.Minute
	DefaultReplayInterval    = 5 * time.Second
	DefaultDeadSweepInterval = time.Minute
	DefaultConflictRetries   = 5
	DefaultConflictBackoff   = 10 * time.Second
)

func (o *ReplayOptions) setDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultReplayConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultReplayTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultReplayMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultReplayMaxBackoff, o.MinBackoff)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultReplayInterval
	}
	if o.DeadSweepInterval <= 0 {
		o.DeadSweepInterval = DefaultDeadSweepInterval
	}
	switch {
	case o.ConflictRetries == 0:
		o.ConflictRetries = DefaultConflictRetries
	case o.ConflictRetries < 0:
		o.ConflictRetries = 0
	}
	if o.ConflictBackoff <= 0 {
		o.ConflictBackoff = DefaultConflictBackoff
	}
}

// conflictWait is the wait before retry number n (1-based) of an object
// refused as out of order.
func (o *ReplayOptions) conflictWait(n int) time.Duration {
	w := o.ConflictBackoff
	for i := 1; i < n && w < time.Hour; i++ {
		w *= 2
	}
	return min(w, time.Hour)
}

// replayer is the shared state of Replay's workers: the pause after a
// failure applies to all of them (the downstream is one).
type replayer struct {
	s    *Spool
	down BodySender
	o    ReplayOptions

	mu       sync.Mutex
	failures int
	until    time.Time
}

// Replay drains the spool into down until ctx is cancelled: oldest object
// first within a cluster, clusters in turn, at most one object per cluster
// in flight. An object is deleted only after down answered 2xx; one the
// downstream refuses for good (400, 409, 413, 422, other 4xx except
// 401/403/404/408, which mean the gateway is misconfigured or the
// downstream busy) or whose samples are all older than MaxSampleAge is
// moved to dead/ with the reason. A refusal of samples as out of order
// (ErrOutOfOrder) is counted in telegate_spool_replay_conflicts_total and
// retried ConflictRetries times, its cluster waiting, before it is
// dead-lettered as DeadConflict. Anything else leaves the object in place
// and pauses replay with exponential backoff. Alongside, it sweeps dead/
// every DeadSweepInterval (see DeadRetention). It returns nil when ctx is
// cancelled; an object being sent then stays for the next run.
func (s *Spool) Replay(ctx context.Context, down BodySender, o ReplayOptions) error {
	o.setDefaults()
	r := &replayer{s: s, down: down, o: o}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sweepDeadEvery(ctx, o.DeadSweepInterval)
	}()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (r *replayer) work(ctx context.Context) {
	for ctx.Err() == nil {
		if wait := r.pause(); wait > 0 {
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		key, e, conflicts, ok := r.s.next()
		if !ok {
			t := time.NewTimer(r.o.Interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-r.s.wake:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		// There may be more to do than this worker: wake another idle one
		// (it goes back to sleep if not). Only a worker that found work
		// passes the signal on, so idle workers never spin.
		r.s.signal()
		removed, conflict, err := r.replayOne(ctx, e, conflicts)
		if conflict {
			// The downstream is up; only this cluster waits.
			wait := r.o.conflictWait(conflicts + 1)
			r.s.postpone(key, wait)
			r.succeeded()
			level.Warn(r.s.logger).Log("msg", "downstream refused spooled samples as out of order; retrying later. Give the receivers an out-of-order window at least as long as the spool keeps data (Thanos Receive --tsdb.out-of-order.time-window)",
				"object", e.name, "attempt", conflicts+1, "of", r.o.ConflictRetries+1, "retry_in", wait, "err", err)
			continue
		}
		r.s.done(key, removed)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.s.m.replayErrs.Inc()
			wait := r.failed()
			level.Warn(r.s.logger).Log("msg", "spool replay failed, pausing", "object", e.name, "pause", wait, "err", err)
			continue
		}
		r.succeeded()
		if removed {
			// This cluster's next object is free for any worker.
			r.s.signal()
		}
	}
}

// replayOne sends one object, which the downstream refused as out of
// order conflicts times before. removed says the object left the spool;
// conflict that it was refused as out of order again and is to be retried
// later (err says how); otherwise a non-nil error means try again later.
func (r *replayer) replayOne(ctx context.Context, e entry, conflicts int) (removed, conflict bool, err error) {
	s := r.s
	rc, err := s.bkt.Get(ctx, e.name)
	if err != nil {
		if s.bkt.IsObjNotFoundErr(err) {
			level.Warn(s.logger).Log("msg", "spooled object vanished; dropping it from the index", "object", e.name)
			return true, false, nil
		}
		return false, false, fmt.Errorf("reading %s: %w", e.name, err)
	}
	raw, err := readAllLimit(rc, maxObjectBytes)
	rc.Close()
	if err != nil {
		return false, false, fmt.Errorf("reading %s: %w", e.name, err)
	}
	h, body, derr := decodeObject(raw)
	if derr != nil {
		if err := s.deadLetter(ctx, e.name, raw, nil, nil, DeadCorrupt, derr.Error()); err != nil {
			return false, false, err
		}
		return true, false, nil
	}
	if age := s.opts.MaxSampleAge; age > 0 && h.Samples > 0 && h.MaxTS < s.opts.Now().Add(-age).UnixMilli() {
		msg := fmt.Sprintf("newest sample %s is older than max_sample_age %s", time.UnixMilli(h.MaxTS).UTC().Format(time.RFC3339), age)
		if err := s.deadLetter(ctx, e.name, raw, h, body, DeadTooOld, msg); err != nil {
			return false, false, err
		}
		return true, false, nil
	}

	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	if ms, ok := r.down.(MessageSender); ok {
		// As it was encoded, whatever protobuf_message says now.
		err = ms.SendMessage(sctx, body, h.Proto)
	} else {
		err = r.down.Send(sctx, body)
	}
	cancel()
	if err == nil {
		if derr := s.bkt.Delete(ctx, e.name); derr != nil && !s.bkt.IsObjNotFoundErr(derr) {
			// Sent but still there: the next attempt resends it, which
			// the downstream ignores (identical samples).
			return false, false, fmt.Errorf("deleting replayed %s: %w", e.name, derr)
		}
		s.m.replayed.Inc()
		return true, false, nil
	}
	reason := deadReason(err)
	if reason == "" {
		return false, false, err
	}
	msg := err.Error()
	if errors.Is(err, ErrOutOfOrder) {
		s.m.conflicts.Inc()
		if conflicts < r.o.ConflictRetries {
			return false, true, err
		}
		msg = fmt.Sprintf("refused as out of order %d times: %s", conflicts+1, msg)
	}
	if derr := s.deadLetter(ctx, e.name, raw, h, body, reason, msg); derr != nil {
		return false, false, derr
	}
	return true, false, nil
}

// sweepDeadEvery runs sweepDead now and every interval until ctx is done.
func (s *Spool) sweepDeadEvery(ctx context.Context, interval time.Duration) {
	for {
		if err := s.sweepDead(ctx); err != nil && ctx.Err() == nil {
			level.Warn(s.logger).Log("msg", "sweeping spool dead letters failed; retrying later", "err", err)
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

// deadReason returns the dead-letter reason for a send error the
// downstream will repeat forever, or "" when retrying may help.
func deadReason(err error) string {
	var fe *Error
	if !errors.As(err, &fe) || fe.Recoverable {
		return ""
	}
	if errors.Is(err, ErrUnsupported) {
		return DeadUnsupported
	}
	switch fe.Status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return DeadBadRequest
	case http.StatusConflict:
		return DeadConflict
	case http.StatusRequestEntityTooLarge:
		return DeadTooLarge
	case 0, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout:
		// The gateway's credentials or URL are wrong, or no answer: fix
		// the config, the data is fine.
		return ""
	}
	if fe.Status >= 400 && fe.Status < 500 {
		return DeadRejected
	}
	return ""
}

func (r *replayer) pause() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Until(r.until)
}

func (r *replayer) failed() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	ceil := r.o.MinBackoff
	for i := 0; i < r.failures && ceil < r.o.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, r.o.MaxBackoff)
	r.failures++
	wait := ceil/2 + rand.N(ceil/2+1)
	if t := time.Now().Add(wait); t.After(r.until) {
		r.until = t
	}
	return wait
}

func (r *replayer) succeeded() {
	r.mu.Lock()
	r.failures = 0
	r.mu.Unlock()
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readAllLimit reads at most limit bytes of r; more is an error.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("object larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}
