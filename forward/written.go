package forward

import "github.com/telegate/telegate/batch"

// Written counts what a downstream accepted, by kind: float samples,
// native histogram samples and exemplars (the values of remote write 2.0's
// X-Prometheus-Remote-Write-*-Written headers).
type Written struct {
	Samples, Histograms, Exemplars int
}

// WrittenOf counts what series hold: what a downstream that accepted them
// whole has written.
func WrittenOf(series []batch.Series) Written {
	var w Written
	for i := range series {
		w.Samples += len(series[i].Samples)
		w.Histograms += len(series[i].Histograms)
		w.Exemplars += len(series[i].Exemplars)
	}
	return w
}
