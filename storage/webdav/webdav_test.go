package webdav

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/internal/testserver"
	"github.com/hepbuild/hepbuild/storage"
)

func open(t *testing.T, base string, opts storage.Options) *Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(u, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Client)
}

func put(t *testing.T, c storage.Client, u string, content []byte) {
	t.Helper()
	if err := c.Put(context.Background(), u, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("Put %s: %v", u, err)
	}
}

func read(t *testing.T, c storage.Client, u string) []byte {
	t.Helper()
	rc, err := c.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open %s: %v", u, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", u, err)
	}
	return b
}

func adler(b []byte) storage.Checksum {
	h := adler32.New()
	h.Write(b)
	return storage.Adler32(h)
}

// noTemporaries fails when a Put left a temporary file in dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && storage.IsTemp(fi.Name()) {
			t.Errorf("temporary left behind: %s", p)
		}
		return nil
	})
}

func clearTemporaries(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if storage.IsTemp(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// exercise runs what every WebDAV server must do. base is its URL as the
// user writes it (davs:// for a TLS server).
func exercise(t *testing.T, c *Client, base, data string) {
	ctx := context.Background()
	content := []byte("some event data\n")
	// A name that needs percent-encoding, in folders that do not exist.
	target := base + "/store/run%201/a+b%25.root"
	put(t, c, target, content)

	f, err := c.Stat(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(data, "store/run 1/a+b%.root"))
	if err != nil {
		t.Fatalf("the file is not where its name says: %v", err)
	}
	want := storage.File{URL: target, Size: int64(len(content)), ModTime: fi.ModTime().Truncate(time.Second)}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Stat mismatch (-want +got):\n%s", diff)
	}
	if got := read(t, c, target); !bytes.Equal(got, content) {
		t.Errorf("Open read %q, want %q", got, content)
	}

	// Overwrite.
	put(t, c, target, []byte("new"))
	if got := read(t, c, target); string(got) != "new" {
		t.Errorf("after overwrite, read %q", got)
	}

	// A folder of 100 files and one sub-folder, listed in one PROPFIND.
	var wantList []string
	for i := range 100 {
		u := fmt.Sprintf("%s/store/many/f%03d.root", base, i)
		put(t, c, u, []byte(strings.Repeat("x", i)))
		wantList = append(wantList, fmt.Sprintf("%s %d false", u, i))
	}
	put(t, c, base+"/store/many/sub/y", []byte("y"))
	// A write in progress (or one killed midway) is not an entry.
	if err := os.WriteFile(filepath.Join(data, "store/many", storage.TempName("g.root")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantList = append(wantList, base+"/store/many/sub 0 true")
	list, err := c.List(ctx, base+"/store/many")
	if err != nil {
		t.Fatal(err)
	}
	var gotList []string
	for _, e := range list {
		gotList = append(gotList, fmt.Sprintf("%s %d %v", e.URL, e.Size, e.Dir))
		if e.ModTime.IsZero() {
			t.Errorf("%s: no modification time", e.URL)
		}
	}
	sort.Strings(gotList)
	if diff := cmp.Diff(wantList, gotList); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
	clearTemporaries(t, filepath.Join(data, "store/many"))
	// Entries' URLs name the files again, encoded names included.
	list, err = c.List(ctx, base+"/store/run%201/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].URL != target {
		t.Errorf("List of run 1 = %+v, want just %s", list, target)
	}

	dir, err := c.Stat(ctx, base+"/store/many")
	if err != nil {
		t.Fatal(err)
	}
	if !dir.Dir {
		t.Errorf("Stat of a folder: %+v, want Dir", dir)
	}

	missing := base + "/store/nope.root"
	if _, err := c.Stat(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := c.Open(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := c.List(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("List of a missing folder: %v, want ErrNotExist", err)
	}
	if _, err := c.Checksum(ctx, missing); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Checksum of a missing file: %v, want ErrNotExist", err)
	}

	// A Put whose content is shorter than said leaves nothing.
	short := base + "/store/short.root"
	if err := c.Put(ctx, short, strings.NewReader("abc"), 10); err == nil {
		t.Error("Put of 3 bytes given as 10 succeeded")
	}
	if _, err := c.Stat(ctx, short); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("after a failed Put: Stat = %v, want ErrNotExist", err)
	}
	noTemporaries(t, data)
}

func TestNginx(t *testing.T) {
	s := testserver.StartNginxDAV(t)
	base := "http://" + s.Addr
	c := open(t, base, storage.Options{})
	exercise(t, c, base, s.Data)

	put(t, c, base+"/sum", []byte("x"))
	if _, err := c.Checksum(context.Background(), base+"/sum"); !errors.Is(err, storage.ErrNoChecksum) {
		t.Errorf("Checksum on nginx: %v, want ErrNoChecksum", err)
	}
}

// TestNginxMkcol: without create_full_put_path, as most WebDAV servers,
// Put makes the missing folders with MKCOL.
func TestNginxMkcol(t *testing.T) {
	s := testserver.StartNginxStrictDAV(t)
	base := "http://" + s.Addr
	c := open(t, base, storage.Options{})
	exercise(t, c, base, s.Data)
	// Another client (no memory of the folders) into a deeper folder.
	c2 := open(t, base, storage.Options{})
	put(t, c2, base+"/store/many/sub/deeper/z", []byte("z"))
}

// TestNginxWithoutMove: a server that refuses MOVE still gets the file.
func TestNginxWithoutMove(t *testing.T) {
	s := testserver.StartNginxNoMoveDAV(t)
	base := "http://" + s.Addr
	c := open(t, base, storage.Options{})
	exercise(t, c, base, s.Data)
	if !c.noMove.Load() {
		t.Error("the client did not notice that MOVE is refused")
	}
}

// TestXRootDHTTP: XRootD's HTTP interface keeps adler32 checksums and
// answers Want-Digest; it writes hrefs unencoded and takes MOVE's
// Destination literally, which the names in exercise check.
func TestXRootDHTTP(t *testing.T) {
	s := testserver.StartXRootDHTTP(t)
	base := "http://" + s.HTTPAddr
	c := open(t, base, storage.Options{})
	exercise(t, c, base, s.Data)

	ctx := context.Background()
	for _, n := range []int{0, 1, 100_000, 3 << 20} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i * 7 % 251)
		}
		u := fmt.Sprintf("%s/sums/f%d", base, n)
		put(t, c, u, content)
		got, err := c.Checksum(ctx, u)
		if err != nil {
			t.Fatalf("Checksum of %d bytes: %v", n, err)
		}
		if want := adler(content); got != want {
			t.Errorf("Checksum of %d bytes = %v, want %v", n, got, want)
		}
		f, err := c.Stat(ctx, u)
		if err != nil || f.Size != int64(n) {
			t.Errorf("Stat of %d bytes: %+v, %v", n, f, err)
		}
	}
}

// TestXRootDHTTPS: davs:// is https on the wire, with the CA from
// Options; entries keep the davs:// the user wrote.
func TestXRootDHTTPS(t *testing.T) {
	tlsFiles := testserver.NewTLSFiles(t)
	// The xrootd user must reach the certificate and own the key, which
	// it refuses to use when others may read it.
	os.Chmod(tlsFiles.ServerCert, 0o644)
	os.Chmod(tlsFiles.CA, 0o644)
	os.Chmod(filepath.Dir(tlsFiles.ServerCert), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(tlsFiles.ServerCert)), 0o755)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("xrootd")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		if err := os.Chown(tlsFiles.ServerKey, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	s := testserver.StartXRootDHTTP(t, "xrd.tls "+tlsFiles.ServerCert+" "+tlsFiles.ServerKey, "xrd.tlsca certfile "+tlsFiles.CA)
	base := "davs://" + s.HTTPAddr
	ctx := context.Background()

	if _, err := open(t, base, storage.Options{}).Stat(ctx, base+"/"); !errors.Is(err, storage.ErrDenied) {
		t.Errorf("without the CA: %v, want ErrDenied", err)
	}
	c := open(t, base, storage.Options{CACert: tlsFiles.CA})
	put(t, c, base+"/d/x", []byte("hello"))
	list, err := c.List(ctx, base+"/d")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].URL != base+"/d/x" {
		t.Errorf("List = %+v, want %s/d/x", list, base)
	}
	if got, err := c.Checksum(ctx, base+"/d/x"); err != nil || got != adler([]byte("hello")) {
		t.Errorf("Checksum = %v, %v", got, err)
	}
}

// TestStatWithoutPropfind: a plain web server (nginx without the WebDAV
// methods refuses PROPFIND) is asked with HEAD.
func TestStatWithoutPropfind(t *testing.T) {
	s := testserver.StartNginxReadOnly(t)
	p := filepath.Join(s.Data, "x.root")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr
	c := open(t, base, storage.Options{})
	f, err := c.Stat(context.Background(), base+"/x.root")
	if err != nil {
		t.Fatal(err)
	}
	want := storage.File{URL: base + "/x.root", Size: 5, ModTime: fi.ModTime().Truncate(time.Second)}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Stat mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.Stat(context.Background(), base+"/nope"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat of a missing file: %v, want ErrNotExist", err)
	}
	if err := c.Put(context.Background(), base+"/y", strings.NewReader("y"), 1); !errors.Is(err, storage.ErrDenied) {
		t.Errorf("Put to a read-only server: %v, want ErrDenied", err)
	}
}

// TestConcurrent: one client used from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	s := testserver.StartNginxStrictDAV(t)
	base := "http://" + s.Addr
	c := open(t, base, storage.Options{MaxConnections: 4})
	ctx := context.Background()
	errs := make(chan error, 32)
	for i := range 32 {
		go func() {
			u := fmt.Sprintf("%s/c/d%d/f%d", base, i%4, i)
			content := []byte(u)
			if err := c.Put(ctx, u, bytes.NewReader(content), int64(len(content))); err != nil {
				errs <- err
				return
			}
			f, err := c.Stat(ctx, u)
			if err == nil && f.Size != int64(len(content)) {
				err = fmt.Errorf("%s: size %d, want %d", u, f.Size, len(content))
			}
			errs <- err
		}()
	}
	for range 32 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	noTemporaries(t, s.Data)
}

// TestClientCertificate: a server that demands a client certificate gets
// the one from Options, or the X.509 proxy (certificate, key and chain in
// one file, as voms-proxy-init writes it), and refuses a client without.
func TestClientCertificate(t *testing.T) {
	files := testserver.NewTLSFiles(t)
	s := testserver.StartNginxDAVTLS(t, files)
	base := "davs://" + s.Addr
	ctx := context.Background()

	cert, err := os.ReadFile(files.ClientCert)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	proxy := filepath.Join(t.TempDir(), "x509up")
	if err := os.WriteFile(proxy, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}

	for name, opts := range map[string]storage.Options{
		"certificate": {CACert: files.CA, ClientCert: files.ClientCert, ClientKey: files.ClientKey},
		"proxy":       {CACert: files.CA, ProxyFile: proxy},
	} {
		c := open(t, base, opts)
		u := base + "/" + name + "/x"
		put(t, c, u, []byte(name))
		if got := read(t, c, u); string(got) != name {
			t.Errorf("%s: read %q", name, got)
		}
		if f, err := c.Stat(ctx, u); err != nil || f.URL != u {
			t.Errorf("%s: Stat = %+v, %v", name, f, err)
		}
	}

	// Without a certificate the handshake succeeds and nginx answers 400
	// (not ErrDenied: a 400 says nothing certain).
	c := open(t, base, storage.Options{CACert: files.CA})
	if _, err := c.Stat(ctx, base+"/certificate/x"); err == nil {
		t.Error("Stat without a client certificate succeeded")
	}
}
