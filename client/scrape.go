package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"google.golang.org/protobuf/proto"
)

// ScrapeAccept asks a metrics endpoint for OpenMetrics 1.0 (or 0.0.1),
// falling back to the Prometheus text format 0.0.4, like a Prometheus
// scrape does (without the protobuf format and UTF-8 names, which the
// client does not send anyway).
const ScrapeAccept = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"

// DefaultScrapeLimitBytes is limit_bytes in scrape mode: an endpoint's
// whole, unselected exposition is read (and held) before the selectors
// apply, so it is larger than federation's.
const DefaultScrapeLimitBytes = 10 << 20

// Scraper reads plain metrics endpoints (/metrics, an OpenMetrics file)
// instead of Prometheus /federate and keeps the series the selectors
// match.
type Scraper struct {
	Client *http.Client
	// URLs are the endpoints, read in order on every cycle.
	URLs []string
	// Limit caps each (decompressed) response.
	Limit int64
}

// ScrapeResult is what one cycle read: the selected series as one untyped
// family per metric name (what /federate of a Prometheus that scraped the
// endpoints would give), and counts.
type ScrapeResult struct {
	Families []*dto.MetricFamily
	Bytes    int64
	// Samples is every sample read; Unselected the ones no selector
	// matched (dropped here, never sent).
	Samples    int
	Unselected int
	// Errors has one error per endpoint that failed; the others' series
	// are in Families.
	Errors []error
}

// Scrape reads every endpoint and keeps the series sel selects; samples
// without a timestamp get now. An endpoint that fails is reported in
// Errors; Scrape fails only when all do.
func (s *Scraper) Scrape(ctx context.Context, sel Selectors, now time.Time) (*ScrapeResult, error) {
	if len(sel) == 0 {
		return nil, errors.New("no selectors")
	}
	res := &ScrapeResult{}
	b := &familyBuilder{byName: map[string]*dto.MetricFamily{}, sel: sel, now: now.UnixMilli()}
	for _, u := range s.URLs {
		body, ctype, err := s.fetch(ctx, u)
		res.Bytes += int64(len(body))
		if err == nil {
			err = b.add(body, ctype)
		}
		if err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("scrape %s: %w", redact(u), err))
		}
	}
	res.Samples, res.Unselected = b.samples, b.unselected
	if len(res.Errors) == len(s.URLs) {
		return res, errors.Join(res.Errors...)
	}
	res.Families = b.families()
	return res, nil
}

// fetch GETs one endpoint, at most Limit bytes.
func (s *Scraper) fetch(ctx context.Context, u string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", ScrapeAccept)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, "", fmt.Errorf("answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if resp.ContentLength > s.Limit {
		return nil, "", &TooLargeError{Limit: s.Limit, Seen: resp.ContentLength, Source: redact(u)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.Limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading response: %w", err)
	}
	if int64(len(body)) > s.Limit {
		rest, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxCountBeyondLimit))
		n := int64(len(body)) + rest
		return nil, "", &TooLargeError{Limit: s.Limit, Seen: n, AtLeast: err != nil || rest == maxCountBeyondLimit, Source: redact(u)}
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// ExpositionFormat tells which parser reads a body of Content-Type ctype:
// "openmetrics" for application/openmetrics-text (1.0 or 0.0.1), "text"
// for text/plain. Without a usable Content-Type (a static file served as
// application/octet-stream, say) a body ending in "# EOF" is OpenMetrics
// and any other text. Protobuf and OpenMetrics 2.0 are refused: the
// client never asks for them.
func ExpositionFormat(ctype string, body []byte) (string, error) {
	mt, params, err := mime.ParseMediaType(ctype)
	if err == nil {
		switch mt {
		case "application/openmetrics-text":
			if v := params["version"]; v != "" && v != "1.0.0" && v != "0.0.1" {
				return "", fmt.Errorf("unsupported OpenMetrics version %q", v)
			}
			return "openmetrics", nil
		case "text/plain":
			if bytes.HasSuffix(bytes.TrimRight(body, " \t\r\n"), []byte("# EOF")) && params["version"] == "" {
				return "openmetrics", nil // a .txt file holding OpenMetrics
			}
			return "text", nil
		case "application/vnd.google.protobuf":
			return "", fmt.Errorf("unsupported Content-Type %q (the client asks for text formats only)", ctype)
		}
	}
	if bytes.HasSuffix(bytes.TrimRight(body, " \t\r\n"), []byte("# EOF")) {
		return "openmetrics", nil
	}
	return "text", nil
}

// familyBuilder turns exposition samples into untyped families, one per
// metric name, keeping only selected series.
type familyBuilder struct {
	byName     map[string]*dto.MetricFamily
	sel        Selectors
	now        int64
	samples    int
	unselected int
}

// add parses one body with Prometheus' own parser (model/textparse).
func (b *familyBuilder) add(body []byte, ctype string) error {
	format, err := ExpositionFormat(ctype, body)
	if err != nil {
		return err
	}
	st := labels.NewSymbolTable()
	var p textparse.Parser
	if format == "openmetrics" {
		p = textparse.NewOpenMetricsParser(body, st)
	} else {
		p = textparse.NewPromParser(body, st, false)
	}
	var ls labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parsing %s: %w", formatName(format), err)
		}
		if e != textparse.EntrySeries {
			continue // metadata, comments; no native histograms in text
		}
		_, ts, v := p.Series()
		p.Labels(&ls)
		b.samples++
		if !b.sel.Matches(ls) {
			b.unselected++
			continue
		}
		b.addSample(ls, ts, v)
	}
}

func formatName(f string) string {
	if f == "openmetrics" {
		return "OpenMetrics"
	}
	return "the Prometheus text format"
}

func (b *familyBuilder) addSample(ls labels.Labels, ts *int64, v float64) {
	name := ls.Get(labels.MetricName)
	f := b.byName[name]
	if f == nil {
		f = &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_UNTYPED.Enum()}
		b.byName[name] = f
	}
	m := &dto.Metric{Untyped: &dto.Untyped{Value: proto.Float64(v)}}
	if ts != nil {
		m.TimestampMs = proto.Int64(*ts)
	} else {
		m.TimestampMs = proto.Int64(b.now)
	}
	m.Label = make([]*dto.LabelPair, 0, ls.Len()-1)
	ls.Range(func(l labels.Label) {
		if l.Name != labels.MetricName {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
		}
	})
	f.Metric = append(f.Metric, m)
}

func (b *familyBuilder) families() []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(b.byName))
	for _, f := range b.byName {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}
