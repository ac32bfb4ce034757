package deletion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thanos-io/objstore"
)

// State of a request.
const (
	Pending = "pending"
	Done    = "done"
)

// Who asked.
const (
	ByInstallation = "installation" // with its own credentials
	ByOperator     = "operator"     // through the admin API
)

// Event is one line of a request's audit trail.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// Request is one installation's deletion request.
type Request struct {
	ID          string    `json:"id"`
	RequestedAt time.Time `json:"requested_at"`
	By          string    `json:"by"`
	State       string    `json:"state"`
	Audit       []Event   `json:"audit"`
}

// dir is where the requests live in the bucket.
const dir = "deletions/"

// maxAudit bounds a request's audit trail (the oldest events go).
const maxAudit = 100

func objectName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return dir + hex.EncodeToString(sum[:]) + ".json"
}

// Log is the set of deletion requests on a bucket. It is safe for
// concurrent use.
type Log struct {
	bkt objstore.Bucket
	now func() time.Time

	mu   sync.RWMutex
	byID map[string]*Request
}

// Open reads every request in bkt.
func Open(ctx context.Context, bkt objstore.Bucket, now func() time.Time) (*Log, error) {
	if now == nil {
		now = time.Now
	}
	l := &Log{bkt: bkt, now: now, byID: map[string]*Request{}}
	return l, l.Refresh(ctx)
}

// Refresh re-reads the bucket, so requests made at other replicas count.
func (l *Log) Refresh(ctx context.Context) error {
	fresh := map[string]*Request{}
	err := l.bkt.Iter(ctx, dir, func(name string) error {
		if !strings.HasSuffix(name, ".json") {
			return nil
		}
		r, err := l.read(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fresh[r.ID] = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("deletion requests: %w", err)
	}
	l.mu.Lock()
	l.byID = fresh
	l.mu.Unlock()
	return nil
}

func (l *Log) read(ctx context.Context, name string) (*Request, error) {
	rc, err := l.bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r Request
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&r); err != nil {
		return nil, err
	}
	if r.ID == "" || objectName(r.ID) != name {
		return nil, errors.New("the request does not name the installation its object is for")
	}
	return &r, nil
}

// write stores r durably (before the caller's answer).
func (l *Log) write(ctx context.Context, r *Request) error {
	if len(r.Audit) > maxAudit {
		r.Audit = r.Audit[len(r.Audit)-maxAudit:]
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return l.bkt.Upload(ctx, objectName(r.ID), bytes.NewReader(b))
}

// Deleted reports whether id asked for its data to be removed (pending or
// done): its data is refused from then on.
func (l *Log) Deleted(id string) bool {
	if l == nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.byID[id]
	return ok
}

// Request records a deletion request for id, durably; created is false
// when one was already recorded (the request is idempotent).
func (l *Log) Request(ctx context.Context, id, by string) (Request, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.byID[id]; ok {
		return cloneRequest(r), false, nil
	}
	now := l.now().UTC()
	r := &Request{ID: id, RequestedAt: now, By: by, State: Pending, Audit: []Event{{At: now, What: "requested by the " + by}}}
	if err := l.write(ctx, r); err != nil {
		return Request{}, false, err
	}
	l.byID[id] = r
	return cloneRequest(r), true, nil
}

// Note appends an event to id's audit trail; done also marks it done.
func (l *Log) Note(ctx context.Context, id, what string, done bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byID[id]
	if !ok {
		return fmt.Errorf("no deletion request for %q", id)
	}
	next := cloneRequest(r)
	next.Audit = append(next.Audit, Event{At: l.now().UTC(), What: what})
	if done {
		next.State = Done
	}
	if err := l.write(ctx, &next); err != nil {
		return err
	}
	l.byID[id] = &next
	return nil
}

// List returns every request, oldest first.
func (l *Log) List() []Request {
	l.mu.RLock()
	out := make([]Request, 0, len(l.byID))
	for _, r := range l.byID {
		out = append(out, cloneRequest(r))
	}
	l.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.Before(out[j].RequestedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Pending returns the IDs of requests not done yet.
func (l *Log) Pending() []string {
	var ids []string
	for _, r := range l.List() {
		if r.State == Pending {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func cloneRequest(r *Request) Request {
	c := *r
	c.Audit = slices.Clone(r.Audit)
	return c
}

// RewriteConfig returns the pending requests as the deletion config of
// thanos tools bucket rewrite (--rewrite.to-delete-config): one entry per
// installation, matching every series whose label is its ID.
func (l *Log) RewriteConfig(label string) []byte {
	var b bytes.Buffer
	b.WriteString("# Deletion requests pending in telegate: thanos tools bucket rewrite --rewrite.to-delete-config-file=<this file>\n")
	ids := l.Pending()
	if len(ids) == 0 {
		b.WriteString("[]\n")
	}
	for _, id := range ids {
		matcher := "{" + label + "=" + strconv.Quote(id) + "}"
		b.WriteString("- matchers: " + strconv.Quote(matcher) + "\n")
	}
	return b.Bytes()
}
