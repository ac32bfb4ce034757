package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// slowBody enforces Fairness.MinBodyRate on a request body: before every
// read it moves the connection's read deadline to the moment the body
// would fall below the minimum average rate (start + grace + received /
// rate), never past the listener's read timeout. A client that sends one
// byte and then holds the connection is cut once the grace is over,
// instead of holding a request slot until web.read_timeout.
type slowBody struct {
	r        io.Reader
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     float64 // bytes per second
	set      time.Time
	n        int64
	deadline time.Time // start + MaxBodyTime, zero for none
	timedOut bool
}

// rateLimitBody wraps body with the minimum body rate, or returns nil
// (and body should be read as is) when there is none.
func (g *Gateway) rateLimitBody(w http.ResponseWriter, body io.Reader, start time.Time) *slowBody {
	f := g.opts.Fairness
	if f.MinBodyRate <= 0 {
		return nil
	}
	s := &slowBody{r: body, rc: http.NewResponseController(w), start: start, grace: f.BodyGrace, rate: f.MinBodyRate}
	if f.MaxBodyTime > 0 {
		s.deadline = start.Add(f.MaxBodyTime)
	}
	return s
}

func (s *slowBody) Read(p []byte) (int, error) {
	d := s.start.Add(s.grace + time.Duration(float64(s.n)/s.rate*float64(time.Second)))
	if !s.deadline.IsZero() && d.After(s.deadline) {
		d = s.deadline
	}
	// Moving a deadline costs a timer update: skip it while it would move
	// by less than 10ms (a body arriving in many small reads).
	if d.Sub(s.set) >= 10*time.Millisecond {
		if err := s.rc.SetReadDeadline(d); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return 0, err
		}
		s.set = d
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		s.timedOut = true
	}
	return n, err
}

// tooSlow returns the 408 to answer when the body was cut by its
// deadline, or nil.
func (s *slowBody) tooSlow() *httpError {
	if s == nil || !s.timedOut {
		return nil
	}
	e := newError(http.StatusRequestTimeout, reasonBodyTooSlow,
		"the request body arrived slower than limits.body_min_rate ("+strconv.FormatFloat(s.rate, 'f', -1, 64)+" bytes/s on average after "+s.grace.String()+") or took longer than web.read_timeout")
	e.limit = int64(s.rate)
	return e
}
