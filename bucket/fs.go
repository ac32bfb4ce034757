package bucket

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/thanos-io/objstore"
)

// tmpPrefix marks files an Upload has not completed yet; they are invisible
// to Iter and removed when the bucket is opened again.
const tmpPrefix = ".tmp-"

// Filesystem is an objstore.Bucket on a local directory whose Upload is
// atomic and durable: it writes a temporary file in the object's
// directory, fsyncs it, renames it over the object's name and fsyncs the
// directory. After a crash an object is either absent or complete, and
// once Upload returned nil it survives power loss. (objstore's own
// filesystem provider writes in place without fsync.)
type Filesystem struct {
	root string
}

var _ objstore.Bucket = (*Filesystem)(nil)

// NewFilesystem creates dir if needed and removes leftovers of uploads a
// crash interrupted.
func NewFilesystem(dir string) (*Filesystem, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bucket: removing interrupted uploads: %w", err)
	}
	return &Filesystem{root: abs}, nil
}

// Dir returns the bucket's root directory.
func (b *Filesystem) Dir() string { return b.root }

func (b *Filesystem) path(name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || strings.HasSuffix(name, "/") {
		return "", fmt.Errorf("bucket: invalid object name %q", name)
	}
	if strings.HasPrefix(path.Base(clean), tmpPrefix) {
		return "", fmt.Errorf("bucket: object name %q uses the reserved prefix %q", name, tmpPrefix)
	}
	return filepath.Join(b.root, filepath.FromSlash(clean)), nil
}

// Provider implements objstore.Bucket.
func (b *Filesystem) Provider() objstore.ObjProvider { return objstore.FILESYSTEM }

// Name implements objstore.Bucket.
func (b *Filesystem) Name() string { return b.root }

// Close implements objstore.Bucket.
func (b *Filesystem) Close() error { return nil }

// Upload writes r to name atomically and durably.
func (b *Filesystem) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst, err := b.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+filepath.Base(dst)+"-"+hex.EncodeToString(rnd[:]))
	var f *os.File
	for attempt := 1; ; attempt++ {
		if err = b.mkdirAll(dir); err == nil {
			if f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); err == nil {
				break
			}
			err = fmt.Errorf("bucket: %w", err)
		}
		// A concurrent Delete removes the directories it leaves empty, up
		// to the root: one of ours may vanish between its creation and the
		// file's. Once the file exists its directory is not empty, so a few
		// tries always suffice unless something else is wrong.
		if !errors.Is(err, fs.ErrNotExist) || attempt == maxUploadTries {
			return err
		}
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("bucket: writing %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("bucket: fsync %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("bucket: closing %s: %w", name, err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	return syncDir(dir)
}

// maxUploadTries bounds Upload's retries when a concurrent Delete removes
// the directory it just created.
const maxUploadTries = 10

// mkdirAll creates dir and fsyncs each directory whose entry it added, so
// a new object's directory survives a crash too.
func (b *Filesystem) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && strings.HasPrefix(parent, b.root) {
		if err := b.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("bucket: %w", err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("bucket: fsync directory %s: %w", dir, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Delete removes name, then any directories it leaves empty.
func (b *Filesystem) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	for dir := filepath.Dir(p); dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			break
		}
	}
	return nil
}

// Get implements objstore.Bucket.
func (b *Filesystem) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// GetRange implements objstore.Bucket. length < 0 reads to the end.
func (b *Filesystem) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("bucket: negative offset %d", off)
	}
	rc, err := b.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	f := rc.(*os.File)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	size := max(0, fi.Size()-off)
	var r io.Reader = f
	if length >= 0 {
		size = min(size, length)
		r = io.LimitReader(f, length)
	}
	return objstore.ObjectSizerReadCloser{
		ReadCloser: struct {
			io.Reader
			io.Closer
		}{r, f},
		Size: func() (int64, error) { return size, nil },
	}, nil
}

// Exists implements objstore.Bucket.
func (b *Filesystem) Exists(ctx context.Context, name string) (bool, error) {
	p, err := b.path(name)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !fi.IsDir(), nil
}

// IsObjNotFoundErr implements objstore.Bucket.
func (b *Filesystem) IsObjNotFoundErr(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// IsAccessDeniedErr implements objstore.Bucket.
func (b *Filesystem) IsAccessDeniedErr(err error) bool { return errors.Is(err, fs.ErrPermission) }

// Attributes implements objstore.Bucket.
func (b *Filesystem) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	p, err := b.path(name)
	if err != nil {
		return objstore.ObjectAttributes{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return objstore.ObjectAttributes{}, err
	}
	if fi.IsDir() {
		return objstore.ObjectAttributes{}, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return objstore.ObjectAttributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// SupportedIterOptions implements objstore.Bucket.
func (b *Filesystem) SupportedIterOptions() []objstore.IterOptionType {
	return []objstore.IterOptionType{objstore.Recursive, objstore.UpdatedAt}
}

// Iter implements objstore.Bucket.
func (b *Filesystem) Iter(ctx context.Context, dir string, f func(string) error, options ...objstore.IterOption) error {
	return b.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error { return f(a.Name) }, options...)
}

// IterWithAttributes lists dir in sorted order: objects, and
// sub-directories (with a trailing slash) unless Recursive, in which case
// their objects are listed in place. Uploads in progress are never listed.
func (b *Filesystem) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, options ...objstore.IterOption) error {
	if err := objstore.ValidateIterOptions(b.SupportedIterOptions(), options...); err != nil {
		return err
	}
	params := objstore.ApplyIterOptions(options...)
	dir = strings.Trim(path.Clean("/"+dir), "/")
	abs := filepath.Join(b.root, filepath.FromSlash(dir))
	prefix := ""
	if dir != "" {
		prefix = dir + objstore.DirDelim
	}
	return b.iter(ctx, abs, prefix, params, f)
}

func (b *Filesystem) iter(ctx context.Context, abs, prefix string, params objstore.IterParams, f func(objstore.IterObjectAttributes) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(abs)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		name := prefix + e.Name()
		if e.IsDir() {
			if params.Recursive {
				if err := b.iter(ctx, filepath.Join(abs, e.Name()), name+objstore.DirDelim, params, f); err != nil {
					return err
				}
				continue
			}
			if empty, err := dirEmpty(filepath.Join(abs, e.Name())); err != nil || empty {
				continue
			}
			name += objstore.DirDelim
		}
		attrs := objstore.IterObjectAttributes{Name: name}
		if params.LastModified {
			if info, err := e.Info(); err == nil {
				attrs.SetLastModified(info.ModTime())
			}
		}
		if err := f(attrs); err != nil {
			return err
		}
	}
	return nil
}

func dirEmpty(dir string) (bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}
