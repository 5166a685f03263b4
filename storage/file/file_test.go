package file

import (
	"bytes"
	"context"
	"errors"
	"hash/adler32"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/storage"
)

func open(t *testing.T) (storage.Client, string) {
	t.Helper()
	dir := t.TempDir()
	u, _ := url.Parse("file://" + dir)
	c, err := Open(u, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func TestOpenRefusesOtherHosts(t *testing.T) {
	for _, raw := range []string{"file://otherhost/tmp/x", "file:relative/x", "http://localhost/x"} {
		u, _ := url.Parse(raw)
		if _, err := Open(u, storage.Options{}); err == nil {
			t.Errorf("Open(%s) = nil error, want a refusal", raw)
		}
	}
	for _, raw := range []string{"file:///tmp/x", "file://localhost/tmp/x"} {
		u, _ := url.Parse(raw)
		if _, err := Open(u, storage.Options{}); err != nil {
			t.Errorf("Open(%s): %v", raw, err)
		}
	}
}

func TestPutStatListOpenChecksum(t *testing.T) {
	ctx := context.Background()
	c, dir := open(t)
	content := []byte("event data\n")
	target := "file://" + dir + "/runs/2024/a%20b%25.root"
	if err := c.Put(ctx, target, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	f, err := c.Stat(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "runs/2024/a b%.root"))
	if err != nil {
		t.Fatal(err)
	}
	want := storage.File{URL: "file://" + dir + "/runs/2024/a%20b%25.root", Size: int64(len(content)), ModTime: fi.ModTime().Truncate(time.Second)}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Stat mismatch (-want +got):\n%s", diff)
	}
	// The URL Stat gives names the file again.
	if _, err := c.Stat(ctx, f.URL); err != nil {
		t.Errorf("Stat(%s): %v", f.URL, err)
	}

	if err := c.Put(ctx, "file://"+dir+"/runs/2024/sub/x", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	// A write in progress is not an entry.
	if err := os.WriteFile(filepath.Join(dir, "runs/2024", storage.TempName("y")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, "file://"+dir+"/runs/2024")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, strings.TrimPrefix(e.URL, "file://"+dir))
		if e.Dir != strings.HasSuffix(e.URL, "/sub") {
			t.Errorf("%s: Dir = %v", e.URL, e.Dir)
		}
	}
	if diff := cmp.Diff([]string{"/runs/2024/a%20b%25.root", "/runs/2024/sub"}, got); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}

	sum, err := c.Checksum(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	h := adler32.New()
	h.Write(content)
	if sum != storage.Adler32(h) {
		t.Errorf("Checksum = %v, want %v", sum, storage.Adler32(h))
	}

	rc, err := c.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, content) {
		t.Errorf("Open read %q, %v; want %q", b, err, content)
	}

	// Overwrite.
	if err := c.Put(ctx, target, strings.NewReader("new"), 3); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.Stat(ctx, target); f.Size != 3 {
		t.Errorf("after overwrite, size %d, want 3", f.Size)
	}
}

func TestPutWrongSizeLeavesNothing(t *testing.T) {
	ctx := context.Background()
	c, dir := open(t)
	target := "file://" + dir + "/x"
	if err := c.Put(ctx, target, strings.NewReader("abc"), 5); err == nil {
		t.Error("Put of 3 bytes as 5 succeeded")
	}
	if err := c.Put(ctx, target, strings.NewReader("abcdef"), 5); err == nil {
		t.Error("Put of 6 bytes as 5 succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed Puts left %v", ents)
	}
}

func TestMissing(t *testing.T) {
	ctx := context.Background()
	c, dir := open(t)
	missing := "file://" + dir + "/nope"
	if _, err := c.Stat(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat: %v, want ErrNotExist", err)
	}
	if _, err := c.List(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("List: %v, want ErrNotExist", err)
	}
	if _, err := c.Checksum(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Checksum: %v, want ErrNotExist", err)
	}
	if _, err := c.Open(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Open: %v, want ErrNotExist", err)
	}
}

func TestOpenFileShrinks(t *testing.T) {
	ctx := context.Background()
	c, dir := open(t)
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Open(ctx, "file://"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("reading a file that shrank gave no error")
	}
}
