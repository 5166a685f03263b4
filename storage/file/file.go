// Package file reads and writes files in local (or locally mounted)
// folders by file:// URL (file:///abs/path), so that remote data can name
// a shared file system (CVMFS, EOS or a cluster's NFS mounted on the
// machine) the way it names grid storage.
package file

import (
	"context"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/storage"
)

// Client reaches the local file system. It is safe for concurrent use.
// Calls do not time out (Options.Timeout and MaxConnections do not apply
// to local files); long ones (Checksum) stop when their context ends.
type Client struct{}

var _ storage.Client = Client{}

// Open returns the Client for u, which must be file:// with no host or
// "localhost": another host's files are not reachable as local paths.
func Open(u *url.URL, _ storage.Options) (storage.Client, error) {
	if _, err := localPath(u); err != nil {
		return nil, err
	}
	return Client{}, nil
}

// localPath returns the absolute path u names.
func localPath(u *url.URL) (string, error) {
	name := storage.Redact(u.String())
	if !strings.EqualFold(u.Scheme, "file") {
		return "", fmt.Errorf("%s: not a file:// URL", name)
	}
	if u.Host != "" && !strings.EqualFold(u.Host, "localhost") {
		return "", fmt.Errorf("%s: a file:// URL names a file on this machine; host %q is not", name, u.Host)
	}
	if u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("%s: not file:///absolute/path", name)
	}
	return filepath.FromSlash(filepath.Clean(u.Path)), nil
}

func parse(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL", storage.Redact(rawURL))
	}
	return localPath(u)
}

// fileURL is the canonical URL of path p.
func fileURL(p string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String()
}

// pathError translates an error of the os package.
func pathError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", storage.ErrNotExist, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", storage.ErrDenied, err)
	}
	return err
}

func fileOf(p string, fi fs.FileInfo) storage.File {
	f := storage.File{URL: fileURL(p), ModTime: fi.ModTime().Truncate(time.Second), Dir: fi.IsDir()}
	if !f.Dir {
		f.Size = fi.Size()
	}
	return f
}

// Stat follows symbolic links, as a reader of the file would.
func (Client) Stat(ctx context.Context, rawURL string) (storage.File, error) {
	p, err := parse(rawURL)
	if err != nil {
		return storage.File{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.File{}, pathError(err)
	}
	return fileOf(p, fi), nil
}

// List reads the folder; entries that vanish while it reads, and writes
// in progress (storage.IsTemp), are left out.
func (Client) List(ctx context.Context, rawURL string) ([]storage.File, error) {
	p, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, pathError(err)
	}
	files := make([]storage.File, 0, len(ents))
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if storage.IsTemp(e.Name()) {
			continue
		}
		ep := filepath.Join(p, e.Name())
		fi, err := os.Stat(ep)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, pathError(err)
		}
		files = append(files, fileOf(ep, fi))
	}
	return files, nil
}

// Checksum reads the whole file and computes its adler32. A local file
// system keeps no checksum, but reading a local file costs little next to
// the network transfers the checksum is compared with, and callers then
// treat every storage alike.
func (Client) Checksum(ctx context.Context, rawURL string) (storage.Checksum, error) {
	p, err := parse(rawURL)
	if err != nil {
		return storage.Checksum{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return storage.Checksum{}, pathError(err)
	}
	defer f.Close()
	h := adler32.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return storage.Checksum{}, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return storage.Adler32(h), nil
		}
		if err != nil {
			return storage.Checksum{}, fmt.Errorf("checksum of %s: %w", p, err)
		}
	}
}

// Open returns the file, reading as many bytes as it had when opened: a
// file that shrinks or grows meanwhile is an error.
func (Client) Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	p, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, pathError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a folder", p)
	}
	return &sizedFile{f: f, size: fi.Size()}, nil
}

// sizedFile returns io.EOF only after exactly size bytes.
type sizedFile struct {
	f    *os.File
	size int64
	n    int64
}

func (s *sizedFile) Read(p []byte) (int, error) {
	n, err := s.f.Read(p)
	s.n += int64(n)
	switch {
	case s.n > s.size:
		return n, fmt.Errorf("%s grew while it was read (from %d bytes)", s.f.Name(), s.size)
	case err == io.EOF && s.n < s.size:
		return n, fmt.Errorf("%s shrank while it was read (%d of %d bytes)", s.f.Name(), s.n, s.size)
	case err == io.EOF:
		// One more read sees whether the file grew past its size.
		return n, io.EOF
	}
	return n, err
}

func (s *sizedFile) Close() error { return s.f.Close() }

// Put writes a temporary file in the target's folder (made with its
// parents), syncs it and renames it onto the target: readers see the old
// file or the whole new one, never a part.
func (Client) Put(ctx context.Context, rawURL string, r io.Reader, size int64) error {
	p, err := parse(rawURL)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return pathError(err)
	}
	tmp, err := os.OpenFile(filepath.Join(dir, storage.TempName(filepath.Base(p))), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return pathError(err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: io.LimitReader(r, size+1)})
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("writing %s: the content has %s bytes, not the %d given", p, sizeWord(n, size), size)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return pathError(err)
	}
	ok = true
	return nil
}

func sizeWord(n, size int64) string {
	if n > size {
		return "more"
	}
	return fmt.Sprint(n)
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Name is "file://".
func (Client) Name() string { return "file://" }

// Close does nothing.
func (Client) Close() error { return nil }
