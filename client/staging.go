package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// PayloadSuffix ends the name of every staged payload file.
const PayloadSuffix = ".payload"

// Staging keeps the last Keep payloads, byte for byte as uploaded (framed
// snappy, delimited MetricFamily), in Dir. Files are named by the UTC time
// they were built, so names sort by age.
type Staging struct {
	Dir  string
	Keep int
}

// Write stores one payload atomically and prunes the oldest beyond Keep.
// It returns the file's path.
func (s *Staging) Write(body []byte, at time.Time) (string, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return "", err
	}
	name := at.UTC().Format("20060102T150405.000000000Z") + PayloadSuffix
	final := filepath.Join(s.Dir, name)
	tmp, err := os.CreateTemp(s.Dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(body)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	files, err := StagedPayloads(s.Dir)
	if err != nil {
		return final, err
	}
	keep := max(s.Keep, 1)
	for len(files) > keep {
		if err := os.Remove(files[0]); err != nil {
			return final, err
		}
		files = files[1:]
	}
	return final, nil
}

// StagedPayloads lists the payload files of dir, oldest first.
func StagedPayloads(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), PayloadSuffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Inspect writes one staged payload as Prometheus text to w. path is a
// payload file or a staging directory; in a directory, index picks the
// payload (0 the newest, 1 the one before, ...).
func Inspect(w io.Writer, path string, index int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	file := path
	if fi.IsDir() {
		files, err := StagedPayloads(path)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return fmt.Errorf("%s holds no payloads (*%s)", path, PayloadSuffix)
		}
		if index < 0 || index >= len(files) {
			return fmt.Errorf("%s holds %d payloads; index %d is out of range", path, len(files), index)
		}
		file = files[len(files)-1-index]
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	fams, err := DecodePayload(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(w, "# payload %s: %d bytes, %d families, %d samples\n", filepath.Base(file), len(data), len(fams), CountSamples(fams))
	return WriteText(w, fams)
}

// WriteText writes fams in the Prometheus text exposition format.
func WriteText(w io.Writer, fams []*dto.MetricFamily) error {
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("family %q: %w", f.GetName(), err)
		}
	}
	return nil
}
