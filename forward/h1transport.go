package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of the synchronous HTTP/1.1 transport.
const (
	h1MaxIdlePerHost = 64
	h1IdleTimeout    = 90 * time.Second
	h1DialTimeout    = 30 * time.Second
	h1KeepAlive      = 30 * time.Second
	h1BufferSize     = 64 << 10
)

// aLongTimeAgo is a deadline in the past: setting it on a connection makes
// every blocked and future read and write on it fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// errH1Closed is what a response body reads after Close.
var errH1Closed = errors.New("forward: read on closed response body")

// h1Transport is a synchronous HTTP/1.1 http.RoundTripper: RoundTrip writes
// the request and reads the answer's head on the calling goroutine, and the
// caller reads the body on its own goroutine too. net/http's Transport hands
// each request to two goroutines per connection (writeLoop, readLoop),
// which costs several thread wake-ups per request when requests come one
// at a time; this transport costs none beyond the netpoller's.
//
// Connections are kept alive in a bounded LIFO pool per scheme and host. A
// connection goes back to the pool only when its response body was read to
// the end and closed, the answer did not ask to close it, and nothing
// failed; any error closes it. The request's context bounds everything:
// its deadline becomes the connection's, and its cancellation fails
// blocked reads and writes at once. There is no proxy, HTTP/2 or
// compression support: New uses it only where none is wanted.
type h1Transport struct {
	dialer      net.Dialer
	tlsConfig   *tls.Config // for https; cloned per dial
	maxIdle     int         // per host
	idleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*h1Conn // by connKey, most recently used last
}

func newH1Transport(tlsConfig *tls.Config) *h1Transport {
	return &h1Transport{
		dialer:      net.Dialer{Timeout: h1DialTimeout, KeepAlive: h1KeepAlive},
		tlsConfig:   tlsConfig,
		maxIdle:     h1MaxIdlePerHost,
		idleTimeout: h1IdleTimeout,
		idle:        make(map[string][]*h1Conn),
	}
}

// h1Conn is one connection with its buffers.
type h1Conn struct {
	t    *h1Transport
	key  string
	conn net.Conn // *tls.Conn for https
	raw  net.Conn // the TCP connection
	tls  *tls.ConnectionState
	br   *bufio.Reader
	bw   *bufio.Writer
	w    h1Writer

	idleSince time.Time
	idleTimer *time.Timer
}

// h1Writer hides the *bufio.Writer type from http.Request.Write, which
// would otherwise flush the headers in a write of their own before a body
// that is not a bytes.Reader or the like: this way headers and body leave
// in one write when they fit in the buffer.
type h1Writer struct{ bw *bufio.Writer }

func (w h1Writer) Write(p []byte) (int, error)       { return w.bw.Write(p) }
func (w h1Writer) WriteString(s string) (int, error) { return w.bw.WriteString(s) }
func (w h1Writer) WriteByte(c byte) error            { return w.bw.WriteByte(c) }

// ReadFrom reads r into the buffer and flushes it when full: unlike
// bufio.Writer.ReadFrom it never hands r to the connection's ReadFrom,
// which would allocate a copy buffer per request for bodies larger than
// the buffer.
func (w h1Writer) ReadFrom(r io.Reader) (n int64, err error) {
	for {
		if w.bw.Available() == 0 {
			if err := w.bw.Flush(); err != nil {
				return n, err
			}
		}
		buf := w.bw.AvailableBuffer()
		buf = buf[:cap(buf)]
		m, rerr := r.Read(buf)
		if m > 0 {
			// Writing the buffer's own free space back is a copy onto
			// itself: bufio's documented AvailableBuffer pattern.
			if _, err := w.bw.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// connKey returns the pool key and the dial address of u's scheme and host.
func connKey(req *http.Request) (key, addr string, err error) {
	u := req.URL
	if u == nil {
		return "", "", errors.New("forward: request has no URL")
	}
	var port string
	switch u.Scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return "", "", fmt.Errorf("forward: unsupported protocol scheme %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return "", "", errors.New("forward: request URL has no host")
	}
	if p := u.Port(); p != "" {
		port = p
	}
	addr = net.JoinHostPort(host, port)
	return u.Scheme + "://" + addr, addr, nil
}

// RoundTrip implements http.RoundTripper. A request that fails on a
// kept-alive connection before any byte of an answer arrived (the server
// closed the idle connection as it was taken) is sent once more on a new
// connection, as net/http does, when its body can be had again (GetBody).
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key, addr, err := connKey(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	r := req
	for fresh := false; ; fresh = true {
		var pc *h1Conn
		if !fresh {
			pc = t.get(key)
		}
		reused := pc != nil
		if !reused {
			pc, err = t.dial(ctx, key, addr, req.URL.Hostname())
			if err != nil {
				closeBody(r)
				return nil, ctxErr(ctx, err)
			}
		}
		resp, err := pc.roundTrip(ctx, r, req)
		if err == nil {
			return resp, nil
		}
		hasBody := req.Body != nil && req.Body != http.NoBody
		if !reused || !errors.Is(err, errNoAnswer) || ctx.Err() != nil || hasBody && req.GetBody == nil {
			return nil, ctxErr(ctx, err)
		}
		r = req.Clone(ctx)
		if hasBody {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// errNoAnswer marks a failure on a connection before any byte of the
// answer arrived: writing failed, or the connection ended at once.
var errNoAnswer = errors.New("connection closed before any answer")

// roundTrip writes r and reads the answer's head on pc; the answer's
// Request is orig. On error pc is closed.
func (pc *h1Conn) roundTrip(ctx context.Context, r, orig *http.Request) (*http.Response, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = pc.conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.close()
		return nil, err
	}

	err := r.Write(pc.w) // closes r.Body
	if err == nil {
		err = pc.bw.Flush()
	}
	if err != nil {
		if isTimeout(err) || ctx.Err() != nil {
			return fail(err)
		}
		// A server may answer before it read the whole request (413,
		// 401) and close: that answer is the one to return.
		d := time.Now().Add(earlyAnswerWait)
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
		_ = pc.conn.SetReadDeadline(d)
		resp, rerr := pc.readResponse(orig)
		if rerr != nil {
			return fail(fmt.Errorf("%w: writing the request: %w", errNoAnswer, err))
		}
		dl, _ := ctx.Deadline() // zero without one
		_ = pc.conn.SetReadDeadline(dl)
		return pc.wrap(ctx, resp, stop, false), nil
	}
	// Peek first so that a connection the server closed while it was idle
	// is told apart from one that failed mid-answer.
	if _, err := pc.br.Peek(1); err != nil {
		if isTimeout(err) {
			return fail(err)
		}
		return fail(fmt.Errorf("%w: %w", errNoAnswer, err))
	}
	resp, err := pc.readResponse(orig)
	if err != nil {
		return fail(err)
	}
	return pc.wrap(ctx, resp, stop, !resp.Close && !orig.Close), nil
}

// earlyAnswerWait bounds the wait for an answer after writing a request
// failed.
const earlyAnswerWait = 50 * time.Millisecond

// readResponse reads the answer's head, skipping 1xx answers.
func (pc *h1Conn) readResponse(req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("forward: unexpected 101 Switching Protocols")
		}
		// Other 1xx (100 Continue, 103 Early Hints) have no body; the
		// final answer follows.
	}
}

// wrap gives resp the body that returns pc to the pool (when keep allows)
// and stops watching ctx on Close.
func (pc *h1Conn) wrap(ctx context.Context, resp *http.Response, stop func() bool, keep bool) *http.Response {
	resp.TLS = pc.tls
	b := &h1Body{pc: pc, ctx: ctx, body: resp.Body, stop: stop, keep: keep}
	if resp.Body == http.NoBody {
		b.eof = true
	}
	resp.Body = b
	return resp
}

// h1Body is a response body that returns its connection to the pool on
// Close when it was read to the end without error.
type h1Body struct {
	pc     *h1Conn
	ctx    context.Context
	body   io.ReadCloser
	stop   func() bool
	keep   bool // the answer allows keep-alive
	eof    bool
	failed bool
	closed bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errH1Closed
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.failed = true
		err = ctxErr(b.ctx, err)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop is false when the context's cancellation already fired, or is
	// firing: the connection's deadline is then in the past.
	stopped := b.stop()
	pc := b.pc
	if b.keep && b.eof && !b.failed && stopped && pc.br.Buffered() == 0 {
		if err := pc.conn.SetDeadline(time.Time{}); err == nil {
			pc.t.put(pc)
			return nil
		}
	}
	pc.close()
	return nil
}

// get takes the most recently used live idle connection for key, or nil.
func (t *h1Transport) get(key string) *h1Conn {
	now := time.Now()
	var expired []*h1Conn
	var pc *h1Conn
	t.mu.Lock()
	for conns := t.idle[key]; len(conns) > 0; conns = t.idle[key] {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[key] = conns[:len(conns)-1]
		c.idleTimer.Stop()
		if now.Sub(c.idleSince) < t.idleTimeout {
			pc = c
			break
		}
		expired = append(expired, c) // its timer is late
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return pc
}

// put returns pc to the idle pool, or closes it when the pool is full.
func (t *h1Transport) put(pc *h1Conn) {
	pc.idleSince = time.Now()
	t.mu.Lock()
	conns := t.idle[pc.key]
	if len(conns) >= t.maxIdle {
		t.mu.Unlock()
		pc.close()
		return
	}
	t.idle[pc.key] = append(conns, pc)
	if pc.idleTimer == nil {
		pc.idleTimer = time.AfterFunc(t.idleTimeout, pc.expire)
	} else {
		pc.idleTimer.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// expire closes pc if it is still idle (its idle timer fired).
func (pc *h1Conn) expire() {
	t := pc.t
	t.mu.Lock()
	conns := t.idle[pc.key]
	for i, c := range conns {
		if c == pc {
			t.idle[pc.key] = append(conns[:i], conns[i+1:]...)
			conns[len(conns)-1] = nil
			t.mu.Unlock()
			pc.close()
			return
		}
	}
	t.mu.Unlock() // taken meanwhile
}

// CloseIdleConnections closes every idle connection. Connections in use
// return to the pool afterwards as usual.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	var all []*h1Conn
	for key, conns := range t.idle {
		all = append(all, conns...)
		delete(t.idle, key)
	}
	t.mu.Unlock()
	for _, pc := range all {
		pc.idleTimer.Stop()
		pc.close()
	}
}

// close closes the TCP connection. For TLS it does not send close_notify
// first: that write could block on a peer that stopped reading, and every
// answer is delimited without it.
func (pc *h1Conn) close() { _ = pc.raw.Close() }

// dial opens a connection to addr (TLS for https, verifying serverName
// unless the TLS config names another), bounded by ctx.
func (t *h1Transport) dial(ctx context.Context, key, addr, serverName string) (*h1Conn, error) {
	conn, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{t: t, key: key, conn: conn, raw: conn}
	if strings.HasPrefix(key, "https:") {
		var cfg *tls.Config
		if t.tlsConfig != nil {
			cfg = t.tlsConfig.Clone()
		} else {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = serverName
		}
		tc := tls.Client(conn, cfg)
		if d, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(d)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		_ = conn.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		pc.conn, pc.tls = tc, &st
	}
	pc.br = bufio.NewReaderSize(pc.conn, 4<<10)
	pc.bw = bufio.NewWriterSize(pc.conn, h1BufferSize)
	pc.w = h1Writer{pc.bw}
	return pc, nil
}

// ctxErr is ctx's error once ctx is done or its deadline passed (the
// connection's deadline or the cancellation cut err short), else err.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if d, ok := ctx.Deadline(); ok && isTimeout(err) && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
