package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// jsonValue writes a query result the way Prometheus' API does:
// timestamps as seconds with millisecond decimals, values as strings.
type jsonValue struct{ v parser.Value }

func (j jsonValue) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	switch v := j.v.(type) {
	case promql.Vector:
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeMetric(&b, s.Metric); err != nil {
				return nil, err
			}
			if s.H != nil {
				b.WriteString(`,"histogram":`)
				writeHistogramPoint(&b, s.T, s.H)
			} else {
				b.WriteString(`,"value":`)
				writeFloatPoint(&b, s.T, s.F)
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case promql.Matrix:
		b.WriteByte('[')
		for i, s := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeMetric(&b, s.Metric); err != nil {
				return nil, err
			}
			if len(s.Floats) > 0 {
				b.WriteString(`,"values":[`)
				for k, p := range s.Floats {
					if k > 0 {
						b.WriteByte(',')
					}
					writeFloatPoint(&b, p.T, p.F)
				}
				b.WriteByte(']')
			}
			if len(s.Histograms) > 0 {
				b.WriteString(`,"histograms":[`)
				for k, p := range s.Histograms {
					if k > 0 {
						b.WriteByte(',')
					}
					writeHistogramPoint(&b, p.T, p.H)
				}
				b.WriteByte(']')
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	case promql.Scalar:
		writeFloatPoint(&b, v.T, v.V)
	case promql.String:
		b.WriteByte('[')
		writeTimestamp(&b, v.T)
		b.WriteByte(',')
		s, err := json.Marshal(v.V)
		if err != nil {
			return nil, err
		}
		b.Write(s)
		b.WriteByte(']')
	default:
		return nil, fmt.Errorf("unsupported result type %T", j.v)
	}
	return b.Bytes(), nil
}

// writeMetric opens an object with its "metric" member.
func writeMetric(b *bytes.Buffer, l labels.Labels) error {
	m, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b.WriteString(`{"metric":`)
	b.Write(m)
	return nil
}

// writeTimestamp writes milliseconds as seconds: 1234567 -> 1234.567,
// 1000 -> 1.
func writeTimestamp(b *bytes.Buffer, t int64) {
	if t < 0 {
		b.WriteByte('-')
		t = -t
	}
	b.WriteString(strconv.FormatInt(t/1000, 10))
	if frac := t % 1000; frac != 0 {
		fmt.Fprintf(b, ".%03d", frac)
	}
}

// formatValue formats a sample value as Prometheus does: shortest
// round-tripping decimal, exponent form outside [1e-6, 1e21), +Inf, -Inf,
// NaN.
func formatValue(v float64) string {
	f := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		f = 'e'
	}
	return strconv.FormatFloat(v, f, -1, 64)
}

func writeFloatPoint(b *bytes.Buffer, t int64, v float64) {
	b.WriteByte('[')
	writeTimestamp(b, t)
	b.WriteString(`,"`)
	b.WriteString(formatValue(v))
	b.WriteString(`"]`)
}

func writeHistogramPoint(b *bytes.Buffer, t int64, h *histogram.FloatHistogram) {
	b.WriteByte('[')
	writeTimestamp(b, t)
	b.WriteString(`,{"count":"`)
	b.WriteString(formatValue(h.Count))
	b.WriteString(`","sum":"`)
	b.WriteString(formatValue(h.Sum))
	b.WriteString(`"`)
	first := true
	it := h.AllBucketIterator()
	for it.Next() {
		bk := it.At()
		if bk.Count == 0 {
			continue
		}
		if first {
			b.WriteString(`,"buckets":[`)
			first = false
		} else {
			b.WriteByte(',')
		}
		// Boundary rule: 0 open left, 1 open right, 2 open both, 3
		// closed both.
		rule := 2
		switch {
		case bk.LowerInclusive && bk.UpperInclusive:
			rule = 3
		case bk.UpperInclusive:
			rule = 0
		case bk.LowerInclusive:
			rule = 1
		}
		fmt.Fprintf(b, `[%d,"%s","%s","%s"]`, rule, formatValue(bk.Lower), formatValue(bk.Upper), formatValue(bk.Count))
	}
	if !first {
		b.WriteByte(']')
	}
	b.WriteString("}]")
}

// jsonExemplars writes /api/v1/query_exemplars' data as Prometheus does:
// [{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"1",
// "timestamp":1600096945.479}]}].
type jsonExemplars []exemplar.QueryResult

func (j jsonExemplars) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, r := range j {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"seriesLabels":`)
		if err := writeLabels(&b, r.SeriesLabels); err != nil {
			return nil, err
		}
		b.WriteString(`,"exemplars":[`)
		for k, e := range r.Exemplars {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"labels":`)
			if err := writeLabels(&b, e.Labels); err != nil {
				return nil, err
			}
			b.WriteString(`,"value":"`)
			b.WriteString(formatValue(e.Value))
			b.WriteString(`","timestamp":`)
			writeTimestamp(&b, e.Ts)
			b.WriteByte('}')
		}
		b.WriteString("]}")
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func writeLabels(b *bytes.Buffer, l labels.Labels) error {
	m, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b.Write(m)
	return nil
}
