package storage

import (
	"context"
	"fmt"
	"hash"
	"io"
)

// Download streams the file at url to w and verifies it while it
// streams: exactly size bytes, and, unless sum is zero, the checksum.
// Without a checksum, the file is identified by its size and modTime
// (Unix seconds; 0 when the storage keeps none): storage must still
// report that time once the bytes are read, else the bytes may be
// another file's of the same size. Content that does not match wraps
// ErrChecksumMismatch; w then holds bytes that must be thrown away
// (callers write to a temporary file).
func (p *Pool) Download(ctx context.Context, url string, size, modTime int64, sum Checksum, w io.Writer) error {
	c, err := p.Client(url)
	if err != nil {
		return err
	}
	var h hash.Hash
	if !sum.IsZero() {
		if h, err = sum.Hash(); err != nil {
			return err
		}
		w = io.MultiWriter(w, h)
	}
	r, err := c.Open(ctx, url)
	if err != nil {
		return err
	}
	defer r.Close()
	// One byte more than expected is enough to know the file grew.
	n, err := io.Copy(w, io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", Redact(url), err)
	}
	if n != size {
		return fmt.Errorf("%s: %w: %d bytes, not the %d recorded (the file changed on storage since it was recorded: run hepbuild fetch)", Redact(url), ErrChecksumMismatch, n, size)
	}
	if h != nil {
		got := Checksum{Algo: sum.Algo, Value: fmt.Sprintf("%08x", h.Sum(nil))}
		if got != sum {
			return fmt.Errorf("%s: %w: the bytes read have %s, storage says %s", Redact(url), ErrChecksumMismatch, got, sum)
		}
		return nil
	}
	if modTime != 0 {
		// Asked after the read: a file replaced before or while it was
		// read has a new time by then.
		f, err := c.Stat(ctx, url)
		if err != nil {
			return fmt.Errorf("%s: checking the download: %w", Redact(url), err)
		}
		if f.Size != size || f.ModTime.Unix() != modTime {
			return fmt.Errorf("%s: %w: storage keeps no checksum, and the file is now %d bytes modified at %d, not the %d bytes at %d recorded (the file changed on storage since it was recorded: run hepbuild fetch)",
				Redact(url), ErrChecksumMismatch, f.Size, f.ModTime.Unix(), size, modTime)
		}
	}
	return nil
}
