package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCoalesceMaxRequests is the default cap on the requests one
// coalesced remote write carries.
const DefaultCoalesceMaxRequests = 64

// CoalesceOptions configure a Coalescer.
type CoalesceOptions struct {
	// MaxBytes caps the uncompressed size of a coalesced body
	// (forward.max_request_bytes); a single body larger than it is sent
	// alone. Default DefaultMaxRequestBytes.
	MaxBytes int
	// MaxRequests caps how many bodies one coalesced body carries.
	// Default DefaultCoalesceMaxRequests.
	MaxRequests int
	// MaxInFlight is how many sends may be in flight at once before
	// Sends queue to be coalesced: 1 (the default) coalesces the most;
	// more keep more downstream requests running in parallel, a shorter
	// wait behind a slow downstream for fewer coalesced requests.
	MaxInFlight int
	// Registerer registers the telegate_forward_coalesce_* metrics; nil
	// registers none.
	Registerer prometheus.Registerer
}

// Coalescer is a BodySender (and BlockSender, ProtoSender) that coalesces concurrent
// sends into one remote write (group commit). A Send that finds no send of the
// Coalescer in flight sends its body at once, unchanged: the first
// request of a group never waits for others, and at low rates nothing is
// coalesced. Sends that arrive while a send is in flight queue; when it
// ends, the queued bodies (in arrival order, up to MaxRequests and
// MaxBytes uncompressed) are joined into one body, sent once, and every
// member gets the shared outcome. Each member's body is a snappy block
// (Send's as it came, checked to decode alone; SendBlock's trusted as it
// came; SendProto's compressed by its own caller before it queues), and the group's body is the blocks'
// elements one after the other under their total length: the snappy block
// of the members' requests concatenated, with nothing decompressed and
// nothing copied uncompressed.
// That is sound for remote write 1.0 because a prometheus.WriteRequest is
// its repeated fields one after the other: two encoded requests
// concatenated are the request holding both. Remote write 2.0 bodies each
// carry their own symbols table, so a Coalescer over a 2.0 sender
// (ProtobufMessage() MessageV2) passes every Send through.
//
// Outcomes: a 2xx is every member's 2xx. A failure that is not about the
// data (network error, 5xx, 429, 401/403/404, the deadline) is every
// member's error, so a Durable above it spools each member's own body
// under its own cluster. A refusal of the data (any other 4xx: 400, 409,
// 413, 422, ...) may be about one member's samples only (a partial
// rejection): then each member sends its own body again, alone, and gets
// its own answer; innocent requests are not failed and the guilty one
// gets the downstream's message about its data. (The other series of a
// partially refused body were written the first time; sending them again
// writes the same samples again, which a TSDB takes as duplicates.) A
// 415 (ErrUnsupported) is every member's: it is about the protocol.
//
// The combined send runs until the earliest of its members' deadlines; a
// member whose context ends while it is still queued leaves the queue
// with a recoverable error (its caller spools or answers 503), one
// already taken into a group waits for the group's outcome (the body is
// being read). Sends queue only while MaxInFlight sends (default 1) are
// in flight on the Coalescer (one per downstream): the wait a queued
// request adds is at most the end of a send in flight plus its own
// group's send.
type Coalescer struct {
	down   BodySender
	bypass bool
	o      CoalesceOptions
	m      *coalesceMetrics

	mu       sync.Mutex
	inFlight int // sends in flight, at most o.MaxInFlight
	queue    []*waiter
}

type coalesceMetrics struct {
	sends    prometheus.Counter
	members  prometheus.Counter
	alone    prometheus.Counter
	wait     prometheus.Histogram
	requests prometheus.Counter
}

func newCoalesceMetrics(reg prometheus.Registerer) (*coalesceMetrics, error) {
	m := &coalesceMetrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_coalesce_requests_total",
			Help: "Bodies handed to the coalescer (one per forwarded remote write the gateway encoded).",
		}),
		sends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_coalesced_sends_total",
			Help: "Remote writes that carried the bodies of more than one request (group commits).",
		}),
		members: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_coalesced_requests_total",
			Help: "Request bodies sent as part of a coalesced remote write.",
		}),
		alone: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegate_forward_coalesce_resent_alone_total",
			Help: "Request bodies sent again alone because the downstream refused the coalesced remote write they were in with a 4xx.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "telegate_forward_coalesce_wait_seconds",
			Help:    "Time a request body waited for the send in flight before its coalesced remote write started (0 for a body sent at once is not observed).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.sends, m.members, m.alone, m.wait} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("forward: registering coalesce metrics: %w", err)
			}
		}
	}
	return m, nil
}

// waiter is a queued Send.
type waiter struct {
	ctx context.Context
	// body is the member's snappy block: the caller's (Send) or its
	// proto compressed into z (SendProto); hdr is the length of the
	// block's header (the varint decoded length n), so body[hdr:] is the
	// block's elements.
	body []byte
	hdr  int
	n    int // decoded length
	z    []byte
	enq  time.Time
	// ready receives true when the waiter leads group, false when err
	// holds its outcome.
	ready chan bool
	group []*waiter
	err   error
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ready: make(chan bool, 1)} }}

// errAlone tells a member to send its body again alone.
var errAlone = errors.New("forward: coalesced body refused, send alone")

// NewCoalescer returns a Coalescer sending through down. If down has a
// ProtobufMessage method that answers MessageV2, Send passes through.
func NewCoalescer(down BodySender, o CoalesceOptions) (*Coalescer, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxRequestBytes
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = DefaultCoalesceMaxRequests
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1
	}
	m, err := newCoalesceMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Coalescer{down: down, o: o, m: m}
	if pm, ok := down.(interface{ ProtobufMessage() string }); ok && pm.ProtobufMessage() == MessageV2 {
		c.bypass = true
	}
	return c, nil
}

// ProtobufMessage returns the message of the sender below, so a
// Coalescer can stand where a *Sender does.
func (c *Coalescer) ProtobufMessage() string {
	if pm, ok := c.down.(interface{ ProtobufMessage() string }); ok {
		return pm.ProtobufMessage()
	}
	return MessageV1
}

// Send delivers body, alone or coalesced with concurrent Sends, and
// returns its outcome (see Coalescer). Like Sender.Send it does not
// retain body after it returns.
func (c *Coalescer) Send(ctx context.Context, body []byte) error {
	if c.bypass {
		return c.down.Send(ctx, body)
	}
	return c.send(ctx, body, bodyUntrusted)
}

// SendProto is Send for an uncompressed prometheus.WriteRequest
// (Buffers.EncodeSplitProto's): it is compressed on the caller's
// goroutine, while it is still in that core's cache, and never
// decompressed again. It does not retain proto after it returns.
func (c *Coalescer) SendProto(ctx context.Context, proto []byte) error {
	if c.bypass {
		return sendProto(ctx, c.down, proto)
	}
	return c.send(ctx, proto, bodyProto)
}

// SendBlock is Send for a trusted block (Blocks'): compressed by this
// process from a request it encoded, so it is joined into a group without
// the check that a body from Send (read back from the spool, say) decodes
// alone. It does not retain block after it returns.
func (c *Coalescer) SendBlock(ctx context.Context, block []byte) error {
	if c.bypass {
		return c.down.Send(ctx, block)
	}
	return c.send(ctx, block, bodyBlock)
}

// sendProto compresses proto and sends it through down.
func sendProto(ctx context.Context, down BodySender, proto []byte) error {
	bufs := GetBuffers()
	defer PutBuffers(bufs)
	body, err := bufs.compress(proto)
	if err != nil {
		return &Error{Msg: err.Error(), err: err}
	}
	return down.Send(ctx, body)
}

// bodyKind is what a body handed to the Coalescer is.
type bodyKind uint8

const (
	// bodyUntrusted is a snappy block from elsewhere (Send): checked to
	// decode alone before it is joined into a group.
	bodyUntrusted bodyKind = iota
	// bodyBlock is a snappy block this process compressed (SendBlock).
	bodyBlock
	// bodyProto is an uncompressed request (SendProto).
	bodyProto
)

// prepare makes w.body the snappy block of b: b itself when it is one
// already, else (bodyProto) b compressed into w.z, here, on the caller's
// goroutine while b is still in its cache. A group's body is then its
// members' blocks joined (see joinBlocks): nothing is decompressed or
// copied uncompressed. joinable is false for a compressed body whose
// header is not a length; one that has a length must still pass
// validBlock before it is joined (send checks it only then: a body sent
// at once, alone, is the downstream's to judge).
func (w *waiter) prepare(b []byte, kind bodyKind) (joinable bool, err error) {
	if kind == bodyProto {
		n := s2.MaxEncodedLen(len(b))
		if n < 0 {
			return false, &Error{Msg: ErrTooLarge.Error(), err: ErrTooLarge}
		}
		if cap(w.z) < n {
			w.z = make([]byte, n)
		}
		w.body = s2.EncodeSnappy(w.z[:cap(w.z)], b)
		w.n, w.hdr = len(b), uvarintLen(uint64(len(b)))
		return true, nil
	}
	w.body = b
	n, hdr := binary.Uvarint(b)
	if hdr <= 0 || n > math.MaxInt32 {
		return false, nil
	}
	w.n, w.hdr = int(n), hdr
	return true, nil
}

// validBlock reports whether b is a snappy block that decodes to n bytes
// on its own (a spooled body read back from disk, say): joined into a
// group, a block whose copies reach back past its own start would decode
// into the neighbour's bytes instead of failing.
func validBlock(b []byte, n int) bool {
	bufs := GetBuffers()
	defer PutBuffers(bufs)
	if cap(bufs.proto) < n {
		bufs.proto = make([]byte, n)
	}
	out, err := s2.Decode(bufs.proto[:n], b)
	return err == nil && len(out) == n
}

// joinBlocks appends to dst the snappy block of the members' data one
// after the other: the total length, then each member's elements as they
// are. A snappy block is its decoded length followed by literals and
// copies whose offsets count back from where they are decoded, so
// elements that reach only into their own block's bytes decode the same
// anywhere after them.
func joinBlocks(dst []byte, group []*waiter) []byte {
	total := 0
	for _, m := range group {
		total += m.n
	}
	dst = binary.AppendUvarint(dst, uint64(total))
	for _, m := range group {
		dst = append(dst, m.body[m.hdr:]...)
	}
	return dst
}

func (c *Coalescer) send(ctx context.Context, b []byte, kind bodyKind) error {
	c.m.requests.Inc()
	w := waiterPool.Get().(*waiter)
	defer c.putWaiter(w)
	joinable, err := w.prepare(b, kind)
	if err != nil {
		return err
	}
	if c.startIfIdle() {
		return c.sendStarted(ctx, w.body)
	}
	if !joinable || w.n > c.o.MaxBytes || c.o.MaxRequests == 1 || kind == bodyUntrusted && !validBlock(w.body, w.n) {
		// Cannot share the body: send it alone, next to the one in flight.
		return c.down.Send(ctx, w.body)
	}
	c.mu.Lock()
	if c.inFlight < c.o.MaxInFlight {
		// The send in flight ended meanwhile (and found no queue).
		c.inFlight++
		c.mu.Unlock()
		return c.sendStarted(ctx, w.body)
	}
	w.ctx, w.enq = ctx, time.Now()
	c.queue = append(c.queue, w)
	c.mu.Unlock()

	var lead bool
	select {
	case lead = <-w.ready:
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.queue, w); i >= 0 {
			c.queue = slices.Delete(c.queue, i, i+1)
			c.mu.Unlock()
			err := ctx.Err()
			return &Error{Msg: err.Error(), Recoverable: true, err: err}
		}
		c.mu.Unlock()
		lead = <-w.ready // taken into a group: its body is being read
	}
	if lead {
		err = c.lead(w)
	} else {
		err = w.err
	}
	if err == errAlone {
		c.m.alone.Inc()
		err = c.down.Send(ctx, w.body)
	}
	return err
}

// sendStarted sends body as the send in flight startIfIdle (or send)
// counted, then hands off to the queue.
func (c *Coalescer) sendStarted(ctx context.Context, body []byte) error {
	err := c.down.Send(ctx, body)
	c.handOff()
	return err
}

// startIfIdle counts a send in flight and reports true if fewer than
// MaxInFlight were; false means the caller may queue.
func (c *Coalescer) startIfIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inFlight < c.o.MaxInFlight {
		c.inFlight++
		return true
	}
	return false
}

func (c *Coalescer) putWaiter(w *waiter) {
	clear(w.group)
	w.ctx, w.body, w.group, w.err = nil, nil, w.group[:0], nil
	if cap(w.z) > maxPooledBufferBytes {
		w.z = nil
	}
	waiterPool.Put(w)
}

// handOff ends a send: the next queued group, if any, is handed to its
// first member to send; else the Coalescer is idle.
func (c *Coalescer) handOff() {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.inFlight--
		c.mu.Unlock()
		return
	}
	k, total := 0, 0
	for k < len(c.queue) && k < c.o.MaxRequests {
		if k > 0 && total+c.queue[k].n > c.o.MaxBytes {
			break
		}
		total += c.queue[k].n
		k++
	}
	leader := c.queue[0]
	leader.group = append(leader.group[:0], c.queue[:k]...)
	rest := copy(c.queue, c.queue[k:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	c.mu.Unlock()
	leader.ready <- true
}

// lead sends w.group (w first) as one body, hands the next group off,
// gives every other member its outcome and returns w's.
func (c *Coalescer) lead(w *waiter) error {
	group := w.group
	now := time.Now()
	for _, m := range group {
		c.m.wait.Observe(now.Sub(m.enq).Seconds())
	}
	if len(group) == 1 {
		return c.sendStarted(w.ctx, w.body)
	}

	// The group's context: not cancelled by any one client going away,
	// ended by the earliest member deadline.
	gctx := context.WithoutCancel(w.ctx)
	var dl time.Time
	for _, m := range group {
		if d, ok := m.ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
			dl = d
		}
	}
	cancel := context.CancelFunc(func() {})
	if !dl.IsZero() {
		gctx, cancel = context.WithDeadline(gctx, dl)
	}

	bufs := GetBuffers()
	bufs.snappy = joinBlocks(bufs.snappy[:0], group)
	err := c.down.Send(gctx, bufs.snappy)
	cancel()
	PutBuffers(bufs)
	c.m.sends.Inc()
	c.m.members.Add(float64(len(group)))
	if err != nil && refusesData(err) {
		err = errAlone
	}
	c.handOff()
	for _, m := range group[1:] {
		m.err = err
		m.ready <- false // m may be reused from here on
	}
	return err
}

// refusesData reports whether err is a downstream refusal that may be
// about some of a coalesced body's data: a 4xx that is not about the
// credentials, the path, the protocol or the time.
func refusesData(err error) bool {
	var fe *Error
	if !errors.As(err, &fe) || fe.Recoverable || fe.Status < 400 || fe.Status >= 500 || errors.Is(err, ErrUnsupported) {
		return false
	}
	switch fe.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusProxyAuthRequired, http.StatusRequestTimeout:
		return false
	}
	return true
}
