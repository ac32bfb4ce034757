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
	// Reserve, when not nil, is asked for n more bytes each time the heap
	// charged to MaxBatchBytes is about to pass what it granted so far, in
	// steps of at least ReserveStep, so the caller can take the memory
	// from a shared budget before the batch grows. An error from it stops
	// the decoder and is returned as is.
	Reserve func(n int) error
}

// ReserveStep is the smallest amount a decoder asks Limits.Reserve for.
const ReserveStep = 256 << 10

// Heap the decoders charge to Limits.MaxBatchBytes: every label, sample and
// series they push (or would push without a NameFilter), every native
// histogram sample (its message aliases the decoded body), exemplar (its
// labels charged as labels) and metadata entry (plus its slot in the set
// that keeps one entry per family), plus the strings the /upload decoder
// allocates (derived names, le and quantile values).
const (
	labelBytes     = int(unsafe.Sizeof(batch.Label{}))
	sampleBytes    = int(unsafe.Sizeof(batch.Sample{}))
	seriesBytes    = int(unsafe.Sizeof(batch.Series{}))
	histogramBytes = int(unsafe.Sizeof(batch.Histogram{}))
	exemplarBytes  = int(unsafe.Sizeof(batch.Exemplar{}))
	metadataBytes  = int(unsafe.Sizeof(batch.Metadata{})) + familySlotBytes
	// familySlotBytes is about what a map[string]struct{} entry takes,
	// its table's load factor and doubling included.
	familySlotBytes = 40
)

// Budget multiples: bytes of batch per decoded byte, on top of
// budgetConstant. Measured on honest data by TestHonestAmplification
// (batch bytes charged per decoded byte):
//
//	payload                                        remote write  upload
//	Prometheus' own /metrics (237 families, 1857
//	  series, 1002 of them histogram buckets)              1.22    3.36
//	test/load.DefaultSpec (1000 series, 10 labels)         1.31    1.51
//	classic histograms, 3 labels, 12 buckets               1.01   10.4
//	classic histograms, 10 labels, 12 buckets              1.17   13.9
//	classic histograms, 10 labels, 40 buckets              1.16   21.7
//	classic histograms, 20 labels, 40 buckets              1.28   30.0
//	native histograms with an exemplar each and
//	  metadata, 3 to 20 labels, 0 to 40 buckets     0.69-1.02      -
//	client_golang native histograms with exemplars,
//	  3 to 20 labels, with or without classic
//	  buckets (TestHonestAmplificationUploadNative)         -  1.8-6.7
//
// Remote write: a label charges 32 bytes and takes at least 8 bytes on the
// wire once its name and value are not empty, so 4 per byte admits any
// sender that does not send empty names or values, while the empty labels
// of an attack (2 bytes for 32, 16x) or empty samples (2 bytes for 16, 8x)
// are refused. Uploads: every bucket of a classic histogram repeats its
// metric's labels (an honest bucket takes about 15 bytes on the wire and
// charges 64 + 32 per label), so honest uploads amplify up to about 30x
// with 20 labels and 40 buckets; 32 admits them, while empty buckets (2
// bytes each, charging 32 per label) are refused. The constant admits
// small bodies whatever their shape. The old budget allowed 2 labels (64
// bytes) per decoded byte and kept every arena generation alive.
const (
	remoteWritePerByte = 4
	uploadPerByte      = 32
	budgetConstant     = 1 << 20
)

// RemoteWriteBudget is the MaxBatchBytes of a remote write whose decoded
// body is decoded bytes long: 4 bytes per decoded byte plus 1 MiB.
func RemoteWriteBudget(decoded int) int { return remoteWritePerByte*decoded + budgetConstant }

// RemoteWriteV2Budget is the MaxBatchBytes of a remote write 2.0 request
// whose decoded body is decoded bytes long: 16 bytes per decoded byte plus
// 1 MiB. A 2.0 label is two references into the symbols table (2 to 4
// bytes on the wire) and charges the same 32 bytes as a 1.0 label, so
// honest 2.0 requests amplify more than 1.0 ones (measured by
// TestHonestAmplificationV2: 5.2 for 1000 series of 10 labels, 6.0 to 11.0
// for classic histogram buckets with 3 to 20 labels; by
// TestHonestAmplificationNative: 2.0 to 3.4 for native histograms with an
// exemplar each and metadata); a label cannot take fewer
// than 2 bytes, so 16 admits every sender, while empty series (2 bytes for
// 48) are refused. The batch a 2.0 request may build is the one a 1.0
// request of the same series builds; its body is just smaller.
func RemoteWriteV2Budget(decoded int) int { return remoteWriteV2PerByte*decoded + budgetConstant }

const remoteWriteV2PerByte = 16

// UploadBudget is the MaxBatchBytes of an /upload whose decoded body is
// decoded bytes long: 32 bytes per decoded byte plus 1 MiB. Uploads need
// more than remote write: a classic histogram's buckets each repeat the
// metric's labels.
func UploadBudget(decoded int) int { return uploadPerByte*decoded + budgetConstant }

// budget tracks the bytes charged against Limits.MaxBatchBytes.
type budget struct {
	left, limit, decoded int
	// granted is what reserve granted so far; err is its refusal.
	reserve func(int) error
	granted int
	err     error
	// floor is where left goes below the grant (used() > granted):
	// the start of left less granted with a reserve, -1 without one.
	floor int
}

func newBudget(l Limits, decoded int) budget {
	b := budget{left: l.MaxBatchBytes, limit: l.MaxBatchBytes, decoded: decoded, reserve: l.Reserve, floor: -1}
	if l.MaxBatchBytes <= 0 {
		b.left, b.limit = unlimited, 0
	}
	if b.reserve != nil {
		b.floor = b.left
	}
	return b
}

// take charges n bytes, or reports false (charging nothing) when fewer
// are left or Reserve refused them (then errOver returns its error). It
// is small enough to inline; grant is the rare path.
func (b *budget) take(n int) bool {
	if n > b.left {
		return false
	}
	b.left -= n
	if b.left < b.floor {
		return b.grant(n)
	}
	return true
}

// grant asks reserve for at least what was charged past the grant, in
// steps of ReserveStep (never past the limit). The charge of n is undone
// on refusal.
func (b *budget) grant(n int) bool {
	step := max(ReserveStep, b.used()-b.granted)
	if b.limit > 0 {
		step = min(step, b.limit-b.granted)
	}
	if err := b.reserve(step); err != nil {
		b.left += n
		b.err = err
		return false
	}
	b.granted += step
	b.floor = b.left + b.used() - b.granted
	return true
}

// used returns the bytes charged so far.
func (b *budget) used() int {
	if b.limit == 0 {
		return unlimited - b.left
	}
	return b.limit - b.left
}

// unlimited is the budget of a decoder without MaxBatchBytes.
const unlimited = int(^uint(0) >> 2)

// errOver is the 413 for a request over its budget; what names it
// ("remote write", "upload").
func (b *budget) errOver(what string) error {
	if b.err != nil {
		return b.err
	}
	return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf(
		"%s expands to more than %d bytes in memory (%d per decoded byte)",
		what, b.limit, b.limit/max(b.decoded, 1))}
}

// errLabels is the 400 for a series with more than max labels.
func errLabels(what string, max int) error {
	e := BadRequest("%s has more than %d labels, over max_labels_per_series", what, max)
	e.Reason = "invalid_series" // the rule relabel applies after decoding
	return e
}
