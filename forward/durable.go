package forward

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// DurableOptions configure a Durable forwarder.
type DurableOptions struct {
	// SendDeadline bounds how long a request tries the downstream (with
	// the sender's retries) before its body is spooled instead. The
	// caller's own deadline, minus WriteReserve, bounds it too. Default
	// 10s.
	SendDeadline time.Duration
	// WriteReserve is the time kept for the spool write out of the
	// caller's deadline; the write itself may take up to WriteTimeout.
	// Default 2s.
	WriteReserve time.Duration
	// WriteTimeout bounds one spool write. Default 10s.
	WriteTimeout time.Duration
	// FullRetryAfter is the Retry-After answered while the spool is full.
	// Default 30s.
	FullRetryAfter time.Duration
	Logger         log.Logger
}

// Durable forwarder defaults.
const (
	DefaultSendDeadline   = 10 * time.Second
	DefaultWriteReserve   = 2 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultFullRetryAfter = 30 * time.Second
)

// Durable forwards a body downstream and, when the downstream cannot take
// it now, writes it to the spool for replay. A nil error means the body is
// either accepted downstream or durably spooled: the gateway may answer
// 2xx.
type Durable struct {
	down  BodySender
	spool *Spool
	o     DurableOptions
}

// NewDurable returns a Durable sending through down and spooling to spool.
func NewDurable(down BodySender, spool *Spool, o DurableOptions) *Durable {
	if o.SendDeadline <= 0 {
		o.SendDeadline = DefaultSendDeadline
	}
	if o.WriteReserve <= 0 {
		o.WriteReserve = DefaultWriteReserve
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.FullRetryAfter <= 0 {
		o.FullRetryAfter = DefaultFullRetryAfter
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	return &Durable{down: down, spool: spool, o: o}
}

// Send delivers body for clusterID:
//
//   - if the cluster has objects waiting in the spool, body is spooled
//     behind them (sending it first would make the older samples out of
//     order downstream);
//   - else it is sent; a 2xx returns nil, a rejection of the data itself
//     (400, 409, 413, 422, other 4xx) returns the *Error unchanged;
//   - a downstream that is unreachable, failing (5xx, 429), slow past the
//     deadline, or refusing the gateway's credentials (401, 403, 404)
//     makes Send spool body and return nil.
//
// When the spool is full or cannot be written, Send returns a recoverable
// *Error with a Retry-After, which the gateway answers as 503.
func (d *Durable) Send(ctx context.Context, clusterID string, body []byte) error {
	return d.send(ctx, clusterID, body, bodyUntrusted)
}

// SendBlock is Send for a trusted block (Blocks'): it goes to the
// downstream sender's SendBlock when it has one (a Coalescer, which joins
// it without checking it), else to its Send, and is spooled as it is.
func (d *Durable) SendBlock(ctx context.Context, clusterID string, block []byte) error {
	return d.send(ctx, clusterID, block, bodyBlock)
}

// SendProto is Send for an uncompressed prometheus.WriteRequest
// (Buffers.EncodeSplitProto's): it goes to the downstream sender's
// SendProto when it has one (a Coalescer), else compressed to its Send,
// and is compressed for the spool when spooled.
func (d *Durable) SendProto(ctx context.Context, clusterID string, proto []byte) error {
	return d.send(ctx, clusterID, proto, bodyProto)
}

// send is Send, SendBlock or SendProto, as kind says.
func (d *Durable) send(ctx context.Context, clusterID string, body []byte, kind bodyKind) error {
	if !d.spool.HasBacklog(clusterID) {
		sctx, cancel := context.WithTimeout(ctx, d.o.SendDeadline)
		if dl, ok := ctx.Deadline(); ok {
			sctx, cancel = withEarlierDeadline(sctx, cancel, dl.Add(-d.o.WriteReserve))
		}
		err := sendTo(sctx, d.down, body, kind)
		cancel()
		if err == nil || !spoolable(err) {
			return err
		}
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The client went away: no one to acknowledge.
			return err
		}
		level.Debug(d.o.Logger).Log("msg", "downstream unavailable, spooling", "cluster_id", clusterID, "err", err)
	}
	if kind == bodyProto {
		bufs := GetBuffers()
		defer PutBuffers(bufs)
		var err error
		if body, err = bufs.compress(body); err != nil {
			return &Error{Msg: err.Error(), err: err}
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.WriteTimeout)
	defer cancel()
	switch err := d.spool.Put(wctx, clusterID, body); {
	case err == nil:
		return nil
	case errors.Is(err, ErrSpoolFull):
		return &Error{Msg: "downstream unavailable and spool full", Recoverable: true, RetryAfter: d.o.FullRetryAfter, err: err}
	default:
		level.Error(d.o.Logger).Log("msg", "spool write failed", "cluster_id", clusterID, "err", err)
		return &Error{Msg: "downstream unavailable and spool write failed: " + err.Error(), Recoverable: true, RetryAfter: d.o.FullRetryAfter, err: err}
	}
}

// withEarlierDeadline tightens ctx to dl if dl is earlier than its
// deadline.
func withEarlierDeadline(ctx context.Context, cancel context.CancelFunc, dl time.Time) (context.Context, context.CancelFunc) {
	if cur, ok := ctx.Deadline(); ok && !dl.Before(cur) {
		return ctx, cancel
	}
	c2, cancel2 := context.WithDeadline(ctx, dl)
	return c2, func() { cancel2(); cancel() }
}

// spoolable reports whether a send error means "not now" rather than "not
// this data".
func spoolable(err error) bool {
	var fe *Error
	if !errors.As(err, &fe) {
		return true
	}
	if fe.Recoverable {
		return true
	}
	switch fe.Status {
	case 0, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout:
		return true
	}
	return false
}

// ProtoSender is a BodySender that also takes uncompressed
// prometheus.WriteRequests (remote write 1.0) and compresses them itself;
// *Coalescer is one.
type ProtoSender interface {
	BodySender
	SendProto(ctx context.Context, proto []byte) error
}

// sendTo sends body through down as kind says: an uncompressed request
// to down's SendProto if it is a ProtoSender, else compressed to its
// Send; a trusted block to its SendBlock if it is a BlockSender; anything
// else to its Send.
func sendTo(ctx context.Context, down BodySender, body []byte, kind bodyKind) error {
	switch kind {
	case bodyProto:
		if ps, ok := down.(ProtoSender); ok {
			return ps.SendProto(ctx, body)
		}
		return sendProto(ctx, down, body)
	case bodyBlock:
		if bs, ok := down.(BlockSender); ok {
			return bs.SendBlock(ctx, body)
		}
	}
	return down.Send(ctx, body)
}

// Direct adapts a BodySender to the cluster-aware Send (and SendProto,
// SendBlock) of Durable, for a gateway running without a spool: every
// failure goes back to the client.
func Direct(s BodySender) interface {
	Send(ctx context.Context, clusterID string, body []byte) error
	SendProto(ctx context.Context, clusterID string, proto []byte) error
	SendBlock(ctx context.Context, clusterID string, block []byte) error
} {
	return direct{s}
}

type direct struct{ s BodySender }

func (d direct) Send(ctx context.Context, _ string, body []byte) error { return d.s.Send(ctx, body) }

func (d direct) SendProto(ctx context.Context, _ string, proto []byte) error {
	return sendTo(ctx, d.s, proto, bodyProto)
}

func (d direct) SendBlock(ctx context.Context, _ string, block []byte) error {
	return sendTo(ctx, d.s, block, bodyBlock)
}
