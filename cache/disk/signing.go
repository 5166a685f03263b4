package disk

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Option configures a Cache at Open.
type Option func(*Cache)

// WithSigningKey makes the cache sign every action result it writes with an
// HMAC-SHA256 under key, and take as a hit only results whose signature is
// valid under key: in a cache folder that several users can write, a result
// counts only if a holder of the key wrote it. Blobs need no signature: they
// are named by their content, and results name the blobs they need. The
// key is kept in memory only; it is never printed.
func WithSigningKey(key []byte) Option {
	k := bytes.Clone(key)
	return func(c *Cache) { c.signingKey = k }
}

// Signing reports whether the cache signs and requires signed results.
func (c *Cache) Signing() bool { return c.signingKey != nil }

// minKeySize is the shortest signing key accepted: a short secret can be
// guessed, and then anyone could sign.
const minKeySize = 16

// maxKeySize bounds what is read from the key file.
const maxKeySize = 64 << 10

// ReadSigningKey reads a signing key from path: a regular file (a link to
// one is followed) that only its owner can read or write, as ssh demands of
// a private key; its content, less trailing white space, is the key and
// must have at least 16 bytes. Errors name the file but never show its
// content.
func ReadSigningKey(path string) ([]byte, error) {
	// Non-blocking: a FIFO given by mistake (or swapped in) must fail the
	// check below, not hang the build waiting for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("cache signing key: %w", err)
	}
	defer f.Close()
	// The open file's mode, not the path's: no swap between check and read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cache signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cache signing key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("cache signing key %s: permissions %04o are too open: others could read the key and sign entries, or replace it; make it readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	// In a folder others may write (and not sticky, as /tmp is), anyone
	// could put another key in its place.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		if dfi, err := os.Stat(filepath.Dir(real)); err == nil && dfi.Mode().Perm()&0o002 != 0 && dfi.Mode()&fs.ModeSticky == 0 {
			return nil, fmt.Errorf("cache signing key %s: its folder %s is writable by everyone, who could replace the key; keep it in a folder of your own", path, filepath.Dir(real))
		}
	}
	// Owned by someone else, the key could be replaced by its owner at will.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("cache signing key %s: owned by user %d, not by you (%d); keep your own copy, readable by you only", path, st.Uid, os.Getuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("cache signing key %s: %w", path, err)
	}
	if len(b) > maxKeySize {
		return nil, fmt.Errorf("cache signing key %s: larger than %d bytes; is it the right file?", path, maxKeySize)
	}
	key := bytes.TrimRight(b, " \t\r\n")
	if len(key) < minKeySize {
		return nil, fmt.Errorf("cache signing key %s: shorter than %d bytes; make one with: head -c 32 /dev/urandom | base64 > %s", path, minKeySize, path)
	}
	return key, nil
}
