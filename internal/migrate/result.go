package migrate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Write writes the result's files into dir, creating it. Existing files
// are an error unless overwrite is set. The client secret is written
// with mode 0600.
func (r *Result) Write(dir string, overwrite bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(r.Files))
	for name := range r.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	if !overwrite {
		for _, name := range names {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return fmt.Errorf("%s exists (use --overwrite)", filepath.Join(dir, name))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	for _, name := range names {
		mode := os.FileMode(0o644)
		if name == ClientSecretFile {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), r.Files[name], mode); err != nil {
			return err
		}
	}
	return nil
}

// Report prints what was written, where each flag went, and every flag
// that was not (exactly) translated and why.
func (r *Result) Report(w io.Writer, dir string) {
	names := make([]string, 0, len(r.Files))
	for name := range r.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "Wrote to %s:", dir)
	for _, n := range names {
		fmt.Fprintf(w, " %s", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\nTranslated:")
	for _, n := range r.Translated {
		fmt.Fprintf(w, "  %s\n", n)
	}
	if len(r.Untranslated) > 0 {
		fmt.Fprintln(w, "\nNOT translated, or only approximately (read before the cut-over):")
		for _, n := range r.Untranslated {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	fmt.Fprintf(w, "\nNext: fill in the owners in %s (telegate allowlist lint %s), then\n  telegate gateway --config.file=%s --config.check",
		AllowlistFile, filepath.Join(dir, AllowlistFile), filepath.Join(dir, GatewayFile))
	for _, f := range r.GatewayFlags {
		if name, file, ok := strings.Cut(f, "="); ok && r.Files[file] != nil {
			f = name + "=" + filepath.Join(dir, file)
		}
		fmt.Fprintf(w, " %s", f)
	}
	fmt.Fprintln(w)
}
