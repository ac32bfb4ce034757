package decode

import (
	"fmt"
	"net/http"
	"unsafe"

	"github.com/telegate/telegate/batch"
)

// Limits bound what one request may make a decoder build. They are
// enforced while decoding, before the memory is taken. Zero disables each.
type Limits struct {
	// MaxSeries caps the series of a request: a 413 naming
	// max_series_per_request.
	MaxSeries int
	// MaxLabelsPerSeries caps the labels of one series as they arrive on
	// the wire (those a NameFilter skims included, so a filter does not
	// change what is accepted): a 400 naming max_labels_per_series. The
	// gateway passes max_labels_per_series plus room for the labels the
	// pipeline strips and adds; relabel applies the exact rule.
	MaxLabelsPerSeries int
	// MaxBatchBytes caps the heap the decoder makes the batch hold for the
	// request (see RemoteWriteBudget and UploadBudget): a 413.
	MaxBatchBytes int
}

// Heap the decoders charge to Limits.MaxBatchBytes: every label, sample and
// series they push (or would push without a NameFilter), plus the strings
// the /upload decoder allocates (derived names, le and quantile values).
const (
	labelBytes  = int(unsafe.Sizeof(batch.Label{}))
	sampleBytes = int(unsafe.Sizeof(batch.Sample{}))
	seriesBytes = int(unsafe.Sizeof(batch.Series{}))
)

// Budget multiples: bytes of batch per decoded byte, on top of
// budgetConstant. Measured on honest data (TestHonestAmplification prints
// the ratios), as bytes charged per decoded byte:
//
//   - Prometheus' own metrics (237 families, 1857 series, 10% of them
//     histogram buckets or quantiles) remote-written: 1.23; the same as
//     a telemeter upload: 4.55.
//   - test/load.DefaultSpec (1000 series, 10 labels): remote write 0.91,
//     upload 1.44.
//   - telemeter uploads of classic histograms, where every bucket repeats
//     its metric's labels: 10 labels and 40 buckets per metric 12.1; 20
//     labels and 12 buckets 11.3; the worst honest shape we found (many
//     short labels, many buckets, no exemplars) 17.
//
// Crafted bodies reach 16x (empty labels, two bytes each on the wire, 32
// bytes in the batch) on remote write and far more on /upload (each empty
// bucket repeats every label of its metric); the multiples refuse those
// once they pass the honest worst case with headroom.
const (
	remoteWritePerByte = 4
	uploadPerByte      = 24
	budgetConstant     = 1 << 20
)

// RemoteWriteBudget is the MaxBatchBytes of a remote write whose decoded
// body is decoded bytes long: 4 bytes per decoded byte plus 1 MiB.
func RemoteWriteBudget(decoded int) int { return remoteWritePerByte*decoded + budgetConstant }

// UploadBudget is the MaxBatchBytes of an /upload whose decoded body is
// decoded bytes long: 24 bytes per decoded byte plus 1 MiB. Uploads need
// more than remote write: a classic histogram's buckets each repeat the
// metric's labels.
func UploadBudget(decoded int) int { return uploadPerByte*decoded + budgetConstant }

// budget tracks the bytes charged against Limits.MaxBatchBytes.
type budget struct {
	left, limit, decoded int
}

func newBudget(l Limits, decoded int) budget {
	if l.MaxBatchBytes <= 0 {
		return budget{left: int(^uint(0) >> 2), decoded: decoded}
	}
	return budget{left: l.MaxBatchBytes, limit: l.MaxBatchBytes, decoded: decoded}
}

// used returns the bytes charged so far.
func (b *budget) used() int {
	if b.limit == 0 {
		return int(^uint(0)>>2) - b.left
	}
	return b.limit - b.left
}

// errOver is the 413 for a request over its budget; what names it
// ("remote write", "upload").
func (b *budget) errOver(what string) error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
		"%s expands to more than %d bytes in memory (%d per decoded byte)",
		what, b.limit, b.limit/max(b.decoded, 1))}
}

// errLabels is the 400 for a series with more than max labels.
func errLabels(what string, max int) error {
	return BadRequest("%s has more than %d labels, over max_labels_per_series", what, max)
}
