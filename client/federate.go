package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protodelim"
)

// FederateAccept asks for the delimited protobuf format, falling back to
// the text format (what Prometheus' own scrapes send).
const FederateAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"

// maxCountBeyondLimit bounds how much of an over-limit response is read
// just to report its size.
const maxCountBeyondLimit = 64 << 20

// TooLargeError is returned when a federate (or scrape) response exceeds
// the limit.
type TooLargeError struct {
	Limit int64
	Seen  int64
	// AtLeast is true when Seen is a lower bound (the rest was not read).
	AtLeast bool
	// Source is the scraped endpoint in scrape mode; empty for /federate.
	Source string
}

func (e *TooLargeError) Error() string {
	s := fmt.Sprintf("%d bytes", e.Seen)
	if e.AtLeast {
		s = "at least " + s
	}
	if e.Source != "" {
		return fmt.Sprintf("scrape of %s: response of %s exceeds --limit-bytes=%d: raise the limit", e.Source, s, e.Limit)
	}
	return fmt.Sprintf("federate response of %s exceeds --limit-bytes=%d: federate fewer series or raise the limit", s, e.Limit)
}

// Federator fetches a snapshot from a Prometheus /federate endpoint.
type Federator struct {
	Client *http.Client
	// URL is the /federate endpoint.
	URL string
	// Limit caps the (decompressed) response size.
	Limit int64
}

// Federate asks for the series matching any of matches and returns them
// with the response size in bytes.
func (f *Federator) Federate(ctx context.Context, matches []string) ([]*dto.MetricFamily, int64, error) {
	if len(matches) == 0 {
		return nil, 0, errors.New("no match[] selectors")
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return nil, 0, err
	}
	q := u.Query()
	for _, m := range matches {
		q.Add("match[]", m)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", FederateAccept)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("federate: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, 0, fmt.Errorf("federate: %s answered %s: %s", redact(f.URL), resp.Status, strings.TrimSpace(string(b)))
	}
	if resp.ContentLength > f.Limit {
		return nil, resp.ContentLength, &TooLargeError{Limit: f.Limit, Seen: resp.ContentLength}
	}
	// Decoded as it arrives (the body is never held whole), through a
	// reader that stops one byte past the limit and counts.
	body := &countingReader{r: io.LimitReader(resp.Body, f.Limit+1)}
	fams, decErr := decodeFamilies(body, expfmt.ResponseFormat(resp.Header))
	if decErr != nil && body.err == nil {
		// A decode error before the limit may hide an over-limit body:
		// count the rest up to the limit, as a whole read would have.
		io.Copy(io.Discard, body)
	}
	if body.err != nil {
		return nil, body.n, fmt.Errorf("federate: reading response: %w", body.err)
	}
	if body.n > f.Limit {
		rest, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxCountBeyondLimit))
		return nil, body.n + rest, &TooLargeError{Limit: f.Limit, Seen: body.n + rest, AtLeast: err != nil || rest == maxCountBeyondLimit}
	}
	if decErr != nil {
		return nil, body.n, fmt.Errorf("federate: %w", decErr)
	}
	return fams, body.n, nil
}

// countingReader counts the bytes read through it and keeps the first
// read error other than io.EOF (a decoder may hide it in its own).
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// DecodeFamilies parses a federate body in the delimited protobuf or the
// text format. Names are not validated here (Transform drops invalid
// ones); malformed input is an error.
func DecodeFamilies(body []byte, format expfmt.Format) ([]*dto.MetricFamily, error) {
	return decodeFamilies(bytes.NewReader(body), format)
}

func decodeFamilies(body io.Reader, format expfmt.Format) ([]*dto.MetricFamily, error) {
	switch format.FormatType() {
	case expfmt.TypeProtoDelim:
		var out []*dto.MetricFamily
		r := bufio.NewReader(body)
		for {
			mf := &dto.MetricFamily{}
			err := protodelim.UnmarshalFrom(r, mf)
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("decoding protobuf family %d: %w", len(out), err)
			}
			out = append(out, mf)
		}
	case expfmt.TypeTextPlain:
		p := expfmt.NewTextParser(model.UTF8Validation)
		m, err := p.TextToMetricFamilies(body)
		if err != nil {
			return nil, fmt.Errorf("decoding text format: %w", err)
		}
		out := make([]*dto.MetricFamily, 0, len(m))
		for _, f := range m {
			out = append(out, f)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, nil
	}
	return nil, fmt.Errorf("unsupported response format %q", format)
}

// redact drops credentials from a URL for logs and errors.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}
