package load_test

import (
	"bytes"
	"io"

	"github.com/golang/snappy"

	"github.com/telegate/telegate/batch"
)

type batchT struct{ batch.Batch }

func snappyFramedDecode(b []byte) ([]byte, error) {
	return io.ReadAll(snappy.NewReader(bytes.NewReader(b)))
}
