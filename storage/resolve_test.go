package storage

// A Client that says what no real server here can be made to say: a
// listing naming entries outside the folder, negative sizes.

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type lyingClient struct {
	listing []File          // what List answers, for any folder
	files   map[string]File // what Stat answers, by URL
}

func (c *lyingClient) Stat(ctx context.Context, u string) (File, error) {
	f, ok := c.files[u]
	if !ok {
		return File{}, ErrNotExist
	}
	return f, nil
}
func (c *lyingClient) List(ctx context.Context, u string) ([]File, error) { return c.listing, nil }
func (c *lyingClient) Checksum(ctx context.Context, u string) (Checksum, error) {
	if _, ok := c.files[u]; !ok {
		return Checksum{}, ErrNotExist
	}
	return Checksum{}, ErrNoChecksum
}
func (c *lyingClient) Open(ctx context.Context, u string) (io.ReadCloser, error) {
	return nil, errors.New("not here")
}
func (c *lyingClient) Put(ctx context.Context, u string, r io.Reader, size int64) error {
	return errors.New("not here")
}
func (c *lyingClient) Name() string { return "root://h" }
func (c *lyingClient) Close() error { return nil }

func lyingResolver(t *testing.T, c *lyingClient) *Resolver {
	t.Helper()
	pool := NewPool(Options{}, map[string]Opener{"root": func(*url.URL, Options) (Client, error) { return c, nil }})
	lock, err := LoadLock(t.TempDir() + "/" + LockName)
	if err != nil {
		t.Fatal(err)
	}
	return NewResolver(context.Background(), pool, lock)
}

// TestListingKeepsToTheFolder: entries a listing names outside the
// listed folder (its parent, itself, another folder's file, a
// sub-folder's) are not files of the folder. Before, the resolver took
// each entry's last segment for a name in the folder: remote_glob matched
// "..", and ds/b.root got the metadata of elsewhere/b.root.
func TestListingKeepsToTheFolder(t *testing.T) {
	mt := time.Unix(1796500000, 0)
	c := &lyingClient{
		listing: []File{
			{URL: "root://h//store/ds/a.root", Size: 1, ModTime: mt},
			{URL: "root://h//store/ds/..", Size: 2, ModTime: mt},
			{URL: "root://h//store/ds/.", Size: 3, ModTime: mt},
			{URL: "root://h//store/elsewhere/b.root", Size: 4, ModTime: mt},
			{URL: "root://h//store/ds/sub/c.root", Size: 5, ModTime: mt},
			{URL: "root://h//store/d.root", Size: 6, ModTime: mt},
		},
		files: map[string]File{"root://h//store/ds/a.root": {Size: 1, ModTime: mt}},
	}
	r := lyingResolver(t, c)
	got, err := r.Glob("root://h//store/ds/*")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"root://h//store/ds/a.root"}, got); diff != "" {
		t.Errorf("Glob mismatch (-want +got):\n%s", diff)
	}

	// Several files in one folder: listed, not each stat'ed. The lock
	// knows b.root and c.root as they were before storage lost them,
	// with the size and time of the entries elsewhere.
	r = lyingResolver(t, c)
	r.Lock().SetFile("root://h//store/ds/b.root", Identity{Size: 4, ModTime: mt.Unix()})
	r.Lock().SetFile("root://h//store/ds/c.root", Identity{Size: 5, ModTime: mt.Unix()})
	_, err = r.Resolve([]string{"root://h//store/ds/a.root", "root://h//store/ds/b.root", "root://h//store/ds/c.root", "root://h//store/ds/d.root"})
	var me *MissingError
	if !errors.As(err, &me) || strings.Join(me.URLs, " ") != "root://h//store/ds/b.root root://h//store/ds/c.root root://h//store/ds/d.root" {
		t.Errorf("Resolve with a listing naming other folders' files: %v, want b, c and d missing", err)
	}
}

// TestNegativeSizeIsRefused: a size below zero is nonsense from the
// server, and must not reach the lock: LoadLock refuses a negative size,
// so one bad answer made every later build of the workspace fail until
// hepbuild.lock was removed by hand.
func TestNegativeSizeIsRefused(t *testing.T) {
	c := &lyingClient{files: map[string]File{"root://h//store/a.root": {Size: -5, ModTime: time.Unix(1796500000, 0)}}}
	r := lyingResolver(t, c)
	if _, err := r.Resolve([]string{"root://h//store/a.root"}); err == nil || !strings.Contains(err.Error(), "negative size") {
		t.Errorf("Resolve of a file with a negative size: %v, want an error saying so", err)
	}
	if _, err := r.Lock().Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLock(r.Lock().Path()); err != nil {
		t.Errorf("the lock cannot be read after a lying answer: %v", err)
	}
}
