package limits

import (
	"github.com/cespare/xxhash/v2"

	"github.com/telegate/telegate/batch"
)

var labelSep = []byte{0xff}

// SeriesHash identifies a series by its final, sorted label set. It is
// stable across processes and replicas (xxhash, no seed), so replicas
// sharing state in Redis agree on every series' identity. Labels must be
// sorted by name, as the relabel pipeline leaves them.
func SeriesHash(ls []batch.Label) uint64 {
	var d xxhash.Digest
	d.Reset()
	for i := range ls {
		d.WriteString(ls[i].Name)
		d.Write(labelSep)
		d.WriteString(ls[i].Value)
		d.Write(labelSep)
	}
	return d.Sum64()
}
