package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/telegate/telegate/batch"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/internal/kitslog"
)

// Defaults of Options.
const (
	DefaultRetention = 15 * 24 * time.Hour
	// maxBlockDuration caps compacted blocks, as Prometheus does (31d).
	maxBlockDuration = 31 * 24 * time.Hour
	// DefaultMaxExemplars is the size of the exemplar buffer when
	// Options.MaxExemplars is 0 (Prometheus' default).
	DefaultMaxExemplars = 100000
	// maxBodyBytes bounds a decompressed remote-write body given to Send.
	maxBodyBytes = 256 << 20
)

// Options configure Open.
type Options struct {
	// Retention deletes blocks older than this; 0 = no time limit (but
	// see RetentionSize). Both 0: DefaultRetention.
	Retention time.Duration
	// RetentionSize deletes the oldest blocks while the blocks, WAL and
	// head chunks take more bytes than this; 0 = no size limit.
	RetentionSize int64
	// OutOfOrderTimeWindow accepts samples up to this far behind a
	// series' newest sample; 0 refuses every out-of-order sample (400).
	OutOfOrderTimeWindow time.Duration
	// NoWALFsync skips the fsync after each commit: a 2xx then survives a
	// crash of the process (the WAL is written to the kernel before the
	// answer) but not of the machine. Prometheus itself runs this way.
	NoWALFsync bool
	// MaxExemplars is how many exemplars the TSDB keeps, over all series,
	// in one circular buffer in memory (written to the WAL, so they survive
	// a restart, but not to blocks): the oldest are overwritten. 0 means
	// DefaultMaxExemplars; negative turns exemplar storage off (exemplars
	// are dropped, /api/v1/query_exemplars answers none).
	MaxExemplars int64
	Logger       log.Logger
	// Registerer receives prometheus_tsdb_* and telegate_store_*. One
	// Registerer can hold one open Store.
	Registerer prometheus.Registerer
}

// Store is the embedded TSDB. It is safe for concurrent use.
type Store struct {
	db     *tsdb.DB
	dir    string
	logger log.Logger
	o      Options
	m      *metrics

	// mu guards closed; appends and queries hold it shared, Close
	// exclusively, so Close waits for in-flight appends.
	mu     sync.RWMutex
	closed bool
	// done is closed by Close; queries in flight are cancelled.
	done chan struct{}

	sync walSyncer
}

// Open opens (creating if needed) the TSDB in dir and replays its WAL.
func Open(dir string, o Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: empty storage path")
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Retention < 0 || o.RetentionSize < 0 || o.OutOfOrderTimeWindow < 0 {
		return nil, errors.New("store: retention and out-of-order window must not be negative")
	}
	if o.Retention == 0 && o.RetentionSize == 0 {
		o.Retention = DefaultRetention
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = o.Retention.Milliseconds()
	opts.MaxBytes = o.RetentionSize
	opts.OutOfOrderTimeWindow = o.OutOfOrderTimeWindow.Milliseconds()
	opts.WALCompression = compression.Snappy
	if o.MaxExemplars == 0 {
		o.MaxExemplars = DefaultMaxExemplars
	}
	if o.MaxExemplars > 0 {
		opts.EnableExemplarStorage = true
		opts.MaxExemplars = o.MaxExemplars
	}
	// Blocks span at most a tenth of the retention (and 31d), so
	// retention deletes in small steps, as Prometheus does.
	maxBlock := maxBlockDuration
	if o.Retention > 0 && o.Retention/10 < maxBlock {
		maxBlock = o.Retention / 10
	}
	if mb := maxBlock.Milliseconds(); mb > opts.MinBlockDuration {
		opts.MaxBlockDuration = mb
	} else {
		opts.MaxBlockDuration = opts.MinBlockDuration
	}
	m := newMetrics(o.Registerer)
	db, err := tsdb.Open(dir, kitslog.New(log.With(o.Logger, "component", "tsdb")), o.Registerer, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("store: opening TSDB in %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, logger: o.Logger, o: o, m: m, done: make(chan struct{})}
	s.sync.dirs = []string{filepath.Join(dir, "wal")}
	if o.OutOfOrderTimeWindow > 0 {
		// Out-of-order samples go to the write-behind log.
		s.sync.dirs = append(s.sync.dirs, filepath.Join(dir, wlog.WblDirName))
	}
	s.sync.lastSeg = map[string]int{}
	s.sync.m = m
	level.Info(o.Logger).Log("msg", "embedded storage ready", "path", dir, "retention", o.Retention, "retention_size", o.RetentionSize,
		"head_series", db.Head().NumSeries(), "wal_fsync", !o.NoWALFsync)
	return s, nil
}

// Dir returns the storage directory.
func (s *Store) Dir() string { return s.dir }

// Queryable returns the TSDB for queries.
func (s *Store) Queryable() storage.Queryable { return s.db }

// Close waits for in-flight appends, then flushes and closes the TSDB.
// Appends after Close fail with a recoverable error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	return s.db.Close()
}

// refusal names why the TSDB refuses a sample for good.
func refusal(err error) (string, bool) {
	var he histogram.Error
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return "out_of_order", true
	case errors.Is(err, storage.ErrOutOfBounds):
		return "out_of_bounds", true
	case errors.Is(err, storage.ErrTooOldSample):
		return "too_old", true
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return "duplicate", true
	case errors.Is(err, tsdb.ErrInvalidSample), errors.Is(err, errRawHistogram), errors.As(err, &he):
		return "invalid", true
	}
	return "", false
}

// exemplarRefusal names why the TSDB refused an exemplar.
func exemplarRefusal(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderExemplar):
		return "out_of_order"
	case errors.Is(err, storage.ErrExemplarLabelLength):
		return "label_length"
	}
	return "invalid"
}

// Written counts what one append stored, by kind: float samples, native
// histogram samples and exemplars (the values of remote write 2.0's
// X-Prometheus-Remote-Write-*-Written headers).
type Written = forward.Written

// Append stores the processed series of one request of clusterID in one
// TSDB transaction: float samples, native histogram samples and
// exemplars. It is AppendWritten without the counts.
func (s *Store) Append(ctx context.Context, clusterID string, series []batch.Series) error {
	_, err := s.AppendWritten(ctx, clusterID, series)
	return err
}

// AppendWritten stores the processed series of one request of clusterID
// in one TSDB transaction and returns what it stored. It returns a nil
// error after the transaction is committed (and, unless NoWALFsync, the
// WAL fsynced); a *forward.Error with status 400 when the TSDB refused
// some samples or histograms for good (the others are stored, and counted
// in Written); a recoverable *forward.Error when storage failed (nothing
// of the request is acknowledged and Written is zero; re-sending it is
// safe, identical samples are accepted again).
//
// Exemplars the TSDB refuses (out of order, labels too long, no sample
// of the series ever stored) are counted in
// telegate_store_refused_exemplars_total and left out of Written but do
// not fail the request, as Prometheus' remote write 1.0 receiver does;
// a duplicate of a stored exemplar is accepted and not stored twice. With
// exemplar storage off (MaxExemplars < 0) exemplars are not stored and
// Written.Exemplars is 0.
func (s *Store) AppendWritten(ctx context.Context, clusterID string, series []batch.Series) (Written, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Written{}, &forward.Error{Msg: "embedded storage is shutting down", Recoverable: true, RetryAfter: 5 * time.Second}
	}
	if err := ctx.Err(); err != nil {
		return Written{}, err
	}
	a := appendState{s: s, app: s.db.Appender(ctx)}
	a.getRef, _ = a.app.(storage.GetRef)
	for i := range series {
		if err := a.series(&series[i]); err != nil {
			_ = a.app.Rollback()
			s.m.failures.Inc()
			level.Error(s.logger).Log("msg", "embedded storage append failed", "cluster_id", clusterID, "err", err)
			return Written{}, &forward.Error{Msg: "embedded storage append failed: " + err.Error(), Recoverable: true, RetryAfter: 30 * time.Second}
		}
	}
	if err := a.app.Commit(); err != nil {
		s.m.failures.Inc()
		level.Error(s.logger).Log("msg", "embedded storage commit failed", "cluster_id", clusterID, "err", err)
		return Written{}, &forward.Error{Msg: "embedded storage commit failed: " + err.Error(), Recoverable: true, RetryAfter: 30 * time.Second}
	}
	w := a.written
	if w != (Written{}) && !s.o.NoWALFsync {
		if err := s.sync.sync(); err != nil {
			s.m.failures.Inc()
			level.Error(s.logger).Log("msg", "embedded storage WAL fsync failed", "err", err)
			return Written{}, &forward.Error{Msg: "embedded storage WAL fsync failed: " + err.Error(), Recoverable: true, RetryAfter: 30 * time.Second}
		}
	}
	s.m.appended.Add(float64(w.Samples + w.Histograms))
	s.m.appendedHistograms.Add(float64(w.Histograms))
	s.m.appendedExemplars.Add(float64(w.Exemplars))
	for r, n := range a.refusedExemplars {
		s.m.refusedExemplars.WithLabelValues(r).Add(float64(n))
	}
	if len(a.refusedExemplars) > 0 {
		level.Debug(s.logger).Log("msg", "embedded storage refused exemplars", "cluster_id", clusterID, "example", a.exemplarExample)
	}
	if len(a.refused) == 0 {
		return w, nil
	}
	reasons := make([]string, 0, len(a.refused))
	total := 0
	for r, n := range a.refused {
		s.m.refused.WithLabelValues(r).Add(float64(n))
		reasons = append(reasons, r+"="+strconv.Itoa(n))
		total += n
	}
	sort.Strings(reasons)
	level.Debug(s.logger).Log("msg", "embedded storage refused samples", "cluster_id", clusterID, "refused", strings.Join(reasons, ","), "example", a.examples[0])
	return w, &forward.Error{
		Status: http.StatusBadRequest,
		Msg: fmt.Sprintf("embedded storage refused %d of %d samples (%s), the rest is stored: %s",
			total, total+w.Samples+w.Histograms, strings.Join(reasons, ", "), strings.Join(a.examples, "; ")),
	}
}

// appendState is one AppendWritten's transaction and tallies.
type appendState struct {
	s       *Store
	app     storage.Appender
	getRef  storage.GetRef
	sb      labels.ScratchBuilder
	written Written
	// refused counts samples and histograms refused for good, by reason;
	// examples are the first few refusals.
	refused  map[string]int
	examples []string
	// refusedExemplars counts refused exemplars by reason.
	refusedExemplars map[string]int
	exemplarExample  string
}

// series appends one series' samples, histograms and exemplars. An error
// is a storage failure: the transaction must be rolled back.
func (a *appendState) series(sr *batch.Series) error {
	exemplars := sr.Exemplars
	if a.s.o.MaxExemplars < 0 {
		exemplars = nil
	}
	if len(sr.Samples) == 0 && len(sr.Histograms) == 0 && len(exemplars) == 0 {
		return nil
	}
	// The batch's strings may alias the pooled request buffer and the
	// TSDB keeps the labels of a new series: those are cloned
	// (ScratchBuilder copies them only in the default stringlabels build,
	// not with -tags slicelabels).
	sb := &a.sb
	sb.Reset()
	for _, l := range sr.Labels {
		sb.Add(l.Name, l.Value)
	}
	sb.Sort()
	lset := sb.Labels()
	var ref storage.SeriesRef
	if a.getRef != nil {
		var stored labels.Labels
		if ref, stored = a.getRef.GetRef(lset, lset.Hash()); ref != 0 {
			lset = stored
		}
	}
	if ref == 0 {
		lset = cloneLabels(sb, sr.Labels)
	}
	for _, smp := range sr.Samples {
		r, err := a.app.Append(ref, lset, smp.Timestamp, smp.Value)
		if err != nil {
			if err := a.refuse(err, lset); err != nil {
				return err
			}
			continue
		}
		ref = r
		a.written.Samples++
	}
	for _, hs := range sr.Histograms {
		h, fh, err := decodeHistogram(hs.Raw)
		if err == nil {
			var r storage.SeriesRef
			if r, err = a.app.AppendHistogram(ref, lset, hs.Timestamp, h, fh); err == nil {
				ref = r
				a.written.Histograms++
				continue
			}
		}
		if err := a.refuse(err, lset); err != nil {
			return err
		}
	}
	for _, ex := range exemplars {
		e := exemplar.Exemplar{Labels: cloneLabels(sb, ex.Labels), Value: ex.Value, Ts: ex.Timestamp, HasTs: true}
		r, err := a.app.AppendExemplar(ref, lset, e)
		if err != nil {
			if a.refusedExemplars == nil {
				a.refusedExemplars = map[string]int{}
			}
			a.refusedExemplars[exemplarRefusal(err)]++
			if a.exemplarExample == "" {
				a.exemplarExample = fmt.Sprintf("%v for series %s", err, lset.String())
			}
			continue
		}
		if r != 0 {
			ref = r
		}
		a.written.Exemplars++
	}
	return nil
}

// refuse counts a sample or histogram the TSDB refused for good; any other
// error is returned.
func (a *appendState) refuse(err error, lset labels.Labels) error {
	reason, ok := refusal(err)
	if !ok {
		return err
	}
	if a.refused == nil {
		a.refused = map[string]int{}
	}
	a.refused[reason]++
	if len(a.examples) < 3 {
		a.examples = append(a.examples, fmt.Sprintf("%v for series %s", err, lset.String()))
	}
	return nil
}

// cloneLabels builds labels that own their strings.
func cloneLabels(sb *labels.ScratchBuilder, ls []batch.Label) labels.Labels {
	sb.Reset()
	for _, l := range ls {
		sb.Add(strings.Clone(l.Name), strings.Clone(l.Value))
	}
	sb.Sort()
	return sb.Labels()
}

// Send stores one snappy-compressed remote-write 1.0 body (the gateway's
// Forwarder contract; spool replay uses it too): its samples, native
// histograms and exemplars (metadata is not stored). Errors are those of
// Append; a body that does not decode is refused with status 400.
func (s *Store) Send(ctx context.Context, clusterID string, body []byte) error {
	n, err := snappy.DecodedLen(body)
	if err != nil || n > maxBodyBytes {
		return &forward.Error{Status: http.StatusBadRequest, Msg: "embedded storage: body is not a snappy block of at most 256MiB"}
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return &forward.Error{Status: http.StatusBadRequest, Msg: "embedded storage: snappy: " + err.Error()}
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		return &forward.Error{Status: http.StatusBadRequest, Msg: "embedded storage: WriteRequest: " + err.Error()}
	}
	series := make([]batch.Series, 0, len(wr.Timeseries))
	for _, ts := range wr.Timeseries {
		bs := batch.Series{Labels: make([]batch.Label, len(ts.Labels)), Samples: make([]batch.Sample, len(ts.Samples))}
		for i, l := range ts.Labels {
			bs.Labels[i] = batch.Label{Name: l.Name, Value: l.Value}
		}
		for i, smp := range ts.Samples {
			bs.Samples[i] = batch.Sample{Timestamp: smp.Timestamp, Value: smp.Value}
		}
		for _, h := range ts.Histograms {
			raw, err := h.Marshal()
			if err != nil {
				return &forward.Error{Status: http.StatusBadRequest, Msg: "embedded storage: Histogram: " + err.Error()}
			}
			bs.Histograms = append(bs.Histograms, batch.Histogram{Timestamp: h.Timestamp, Raw: raw})
		}
		for _, e := range ts.Exemplars {
			ex := batch.Exemplar{Labels: make([]batch.Label, len(e.Labels)), Value: e.Value, Timestamp: e.Timestamp}
			for i, l := range e.Labels {
				ex.Labels[i] = batch.Label{Name: l.Name, Value: l.Value}
			}
			bs.Exemplars = append(bs.Exemplars, ex)
		}
		series = append(series, bs)
	}
	return s.Append(ctx, clusterID, series)
}

// walSyncer fsyncs the WAL after commits. Concurrent callers share one
// fsync: a caller returns once an fsync that started after its commit has
// finished.
type walSyncer struct {
	dirs      []string // the WAL, and the WBL when out-of-order is on
	m         *metrics
	mu        sync.Mutex
	requested atomic.Uint64 // commits that asked for a sync
	synced    uint64        // highest request number covered (under mu)
	// lastSeg is, per directory, the newest segment whose directory
	// entry was synced.
	lastSeg map[string]int
}

func (w *walSyncer) sync() error {
	me := w.requested.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.synced >= me {
		return nil
	}
	// Every request numbered up to target committed before this fsync
	// starts.
	target := w.requested.Load()
	start := time.Now()
	for _, dir := range w.dirs {
		if err := w.syncDir(dir); err != nil {
			return err
		}
	}
	w.synced = target
	w.m.fsyncs.Inc()
	w.m.fsyncDuration.Observe(time.Since(start).Seconds())
	return nil
}

func (w *walSyncer) syncDir(dir string) error {
	first, last, err := wlog.Segments(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // no WBL until the first out-of-order sample
		}
		return err
	}
	if last < 0 {
		return nil
	}
	// The previous segment too: the WAL fsyncs a segment it rotated away
	// from in the background, which may not have finished.
	for seg := max(first, last-1); seg <= last; seg++ {
		err := fsyncFile(wlog.SegmentName(dir, seg))
		if err != nil && !(seg < last && errors.Is(err, os.ErrNotExist)) {
			// An older segment may be gone: WAL truncation deletes
			// only segments a fsynced checkpoint holds.
			return err
		}
	}
	if prev, ok := w.lastSeg[dir]; !ok || prev != last {
		// A new segment's directory entry must be durable too.
		if err := fsyncFile(dir); err != nil {
			return err
		}
		w.lastSeg[dir] = last
	}
	return nil
}

func fsyncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DeleteSeries deletes every sample of the series whose label name has
// value (an installation's data, on its deletion request) and cleans the
// tombstones, so the samples are gone from the blocks on disk, not only
// hidden from queries.
func (s *Store) DeleteSeries(ctx context.Context, name, value string) error {
	m, err := labels.NewMatcher(labels.MatchEqual, name, value)
	if err != nil {
		return err
	}
	if err := s.db.Delete(ctx, math.MinInt64, math.MaxInt64, m); err != nil {
		return fmt.Errorf("store: deleting %s=%q: %w", name, value, err)
	}
	if err := s.db.CleanTombstones(); err != nil {
		return fmt.Errorf("store: cleaning tombstones: %w", err)
	}
	return nil
}
