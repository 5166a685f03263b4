package xrootd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"math/rand"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hepbuild/hepbuild/internal/testserver"
	"github.com/hepbuild/hepbuild/storage"
)

// testTimeout bounds each call in these tests, well below go test's
// -timeout: a call that would hang fails as ErrUnavailable instead.
const testTimeout = 20 * time.Second

// startXRootD starts a server that is stopped, failing the test, if the
// test still runs after limit, so that a hang fails instead of skipping
// every cleanup at go test's -timeout.
func startXRootD(t *testing.T, limit time.Duration, extra ...string) *testserver.XRootD {
	t.Helper()
	s := testserver.StartXRootD(t, extra...)
	timer := time.AfterFunc(limit, func() {
		t.Errorf("the test ran longer than %v: stopping the server (log: %s)", limit, s.Log)
		s.Stop()
	})
	t.Cleanup(func() { timer.Stop() })
	return s
}

func client(t *testing.T, addr string, opts storage.Options) *Client {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	u, err := url.Parse("root://" + addr + "//")
	if err != nil {
		t.Fatal(err)
	}
	c, err := open(u, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// onDisk writes a file straight into the server's folder, as a site's
// own tools would: XRootD has no checksum stored for it.
func onDisk(t *testing.T, s *testserver.XRootD, rel string, data []byte) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(s.Data, &st); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Data, rel)
	for d := filepath.Dir(p); len(d) > len(s.Data); d = filepath.Dir(d) {
		defer os.Chown(d, int(st.Uid), int(st.Gid))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, int(st.Uid), int(st.Gid))
}

// stored reports whether XRootD keeps a checksum of the file, in the
// extended attribute where its default checksum manager stores it.
func stored(t *testing.T, s *testserver.XRootD, rel string) bool {
	t.Helper()
	_, err := unix.Getxattr(filepath.Join(s.Data, rel), "user.XrdCks.adler32", make([]byte, 256))
	return err == nil
}

func content(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func adler(b []byte) string { return fmt.Sprintf("%08x", adler32.Checksum(b)) }

func TestOpenURLs(t *testing.T) {
	u, _ := url.Parse("root://alice@h//data/x")
	c, err := open(u, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "root://h" {
		t.Errorf("Name %q", c.Name())
	}
	if p, err := c.path("root://h//data/x/../y"); err != nil || p != "/data/y" {
		t.Errorf("path: %q, %v", p, err)
	}
	if _, err := c.path("root://other//data"); err == nil {
		t.Error("a URL on another server was accepted")
	}
	u, _ = url.Parse("roots://alice@h:1095//data/x")
	_, err = Open(u, storage.Options{})
	if err == nil || !strings.Contains(err.Error(), "davs://h/") || strings.Contains(err.Error(), "alice") {
		t.Errorf("roots://: %v", err)
	}
}

func TestParseChecksum(t *testing.T) {
	for in, want := range map[string]string{
		"adler32 0a1b2c3d\x00": "adler32:0a1b2c3d",
		"ADLER32 1b2c3d":       "adler32:001b2c3d",
		"adler32 1B2C3D4E\n":   "adler32:1b2c3d4e",
	} {
		got, err := parseChecksum("q", []byte(in))
		if err != nil || got.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
	_, err := parseChecksum("q", []byte("md5 d41d8cd98f00b204e9800998ecf8427e"))
	if !errors.Is(err, storage.ErrNoChecksum) || !strings.Contains(err.Error(), "md5") {
		t.Errorf("md5: %v, want ErrNoChecksum naming md5", err)
	}
	for _, bad := range []string{"\x00\x00\x02XJob scheduled.", "adler32", "adler32 xyz", ""} {
		if _, err := parseChecksum("q", []byte(bad)); err == nil {
			t.Errorf("%q was taken for a checksum", bad)
		}
	}
}

// List is one round trip for a folder of 1,000 files, with each file's
// size and modification time.
func TestStatList(t *testing.T) {
	s := startXRootD(t, 90*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	for i := range 1000 {
		onDisk(t, s, fmt.Sprintf("many/f%04d", i), content(i, int64(i)))
	}
	onDisk(t, s, "many/sub/x", []byte("x"))
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(filepath.Join(s.Data, "many/f0007"), mtime, mtime)

	f, err := c.Stat(ctx, "root://"+s.Addr+"//many/f0007")
	if err != nil {
		t.Fatal(err)
	}
	want := storage.File{URL: "root://" + s.Addr + "//many/f0007", Size: 7, ModTime: mtime}
	if f.URL != want.URL || f.Size != want.Size || !f.ModTime.Equal(want.ModTime) || f.Dir {
		t.Errorf("Stat: %+v, want %+v", f, want)
	}
	if d, err := c.Stat(ctx, "root://"+s.Addr+"//many"); err != nil || !d.Dir {
		t.Errorf("Stat of a folder: %+v, %v", d, err)
	}

	before := c.Answers()
	files, err := c.List(ctx, "root://"+s.Addr+"//many/")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Answers() - before; n != 1 {
		t.Errorf("List took %d round trips, want 1", n)
	}
	if len(files) != 1001 {
		t.Fatalf("List: %d entries, want 1001", len(files))
	}
	seen := map[string]storage.File{}
	for _, f := range files {
		seen[f.URL] = f
	}
	for i := range 1000 {
		u := fmt.Sprintf("root://%s//many/f%04d", s.Addr, i)
		f, ok := seen[u]
		if !ok || f.Size != int64(i) || f.Dir || f.ModTime.IsZero() {
			t.Fatalf("List: %s: %+v (listed: %v)", u, f, ok)
		}
	}
	if !seen["root://"+s.Addr+"//many/sub"].Dir {
		t.Errorf("List: the sub-folder is not a folder: %+v", seen["root://"+s.Addr+"//many/sub"])
	}
	if !seen["root://"+s.Addr+"//many/f0007"].ModTime.Equal(mtime) {
		t.Errorf("List: mtime %v, want %v", seen["root://"+s.Addr+"//many/f0007"].ModTime, mtime)
	}
}

// A file XRootD has no checksum stored for makes the server compute it
// and answer asynchronously (kXR_waitresp, then kXR_attn): go-hep alone
// returns garbage and then panics the process. The answer must be right,
// the first time and the second (stored) time.
func TestChecksumUnstoredAndStored(t *testing.T) {
	s := startXRootD(t, 90*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	for i, n := range []int{0, 1, 100_000, 3<<20 + 7} {
		b := content(n, int64(i))
		name := fmt.Sprintf("data/sum%d", i)
		onDisk(t, s, name, b)
		u := "root://" + s.Addr + "//" + name
		if stored(t, s, name) {
			t.Fatalf("%s: a checksum is stored before the first query", name)
		}
		for _, round := range []string{"unstored", "stored"} {
			got, err := c.Checksum(ctx, u)
			if err != nil {
				t.Fatalf("%s %s: %v", name, round, err)
			}
			if want := (storage.Checksum{Algo: "adler32", Value: adler(b)}); got != want {
				t.Errorf("%s %s: %v, want %v", name, round, got, want)
			}
			// The first query made the server compute and store it,
			// which it answers asynchronously.
			if !stored(t, s, name) {
				t.Errorf("%s %s: the server did not store the checksum", name, round)
			}
		}
	}
	// Something else works on the same connection afterwards.
	if _, err := c.Stat(ctx, "root://"+s.Addr+"//data/sum1"); err != nil {
		t.Fatal(err)
	}
	// Several files at once, none stored.
	errs := make(chan error, 8)
	for i := range 8 {
		b := content(50_000+i, int64(100+i))
		name := fmt.Sprintf("data/par%d", i)
		onDisk(t, s, name, b)
		go func() {
			got, err := c.Checksum(ctx, "root://"+s.Addr+"//"+name)
			if err == nil && got.Value != adler(b) {
				err = fmt.Errorf("%s: %v, want %s", name, got, adler(b))
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestOpenPutRoundTrip(t *testing.T) {
	s := startXRootD(t, 90*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	for _, n := range []int{0, 1, chunk, 3*chunk + 5, readAhead*chunk*2 + 3} {
		b := content(n, int64(n))
		u := fmt.Sprintf("root://%s//put/deep/er/f%d", s.Addr, n)
		if err := c.Put(ctx, u, bytes.NewReader(b), int64(n)); err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
		before := c.Answers()
		rc, err := c.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if n := c.Answers() - before; n != 1 {
			t.Errorf("Open took %d round trips, want 1 (kXR_open returning the size)", n)
		}
		var got bytes.Buffer
		_, err = io.Copy(&got, rc) // WriteTo
		rc.Close()
		if err != nil || !bytes.Equal(got.Bytes(), b) {
			t.Fatalf("Open after Put of %d bytes: %d bytes, %v", n, got.Len(), err)
		}
		// Read, in small pieces.
		rc, err = c.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		got2, err := io.ReadAll(struct{ io.Reader }{rc})
		rc.Close()
		if err != nil || !bytes.Equal(got2, b) {
			t.Fatalf("Read of %d bytes: %d bytes, %v", n, len(got2), err)
		}
		if sum, err := c.Checksum(ctx, u); err != nil || sum.Value != adler(b) {
			t.Errorf("Checksum after Put: %v, %v", sum, err)
		}
	}
	// Overwrite, then nothing temporary is left.
	u := "root://" + s.Addr + "//put/deep/er/f1"
	if err := c.Put(ctx, u, strings.NewReader("second"), 6); err != nil {
		t.Fatalf("overwriting Put: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(s.Data, "put/deep/er/f1")); err != nil || string(got) != "second" {
		t.Errorf("after overwriting: %q, %v", got, err)
	}
	// A Put whose content is short or long fails and leaves the old file.
	if err := c.Put(ctx, u, strings.NewReader("abc"), 10); err == nil {
		t.Error("Put of 3 bytes claimed as 10 succeeded")
	}
	if err := c.Put(ctx, u, strings.NewReader("0123456789"), 5); err == nil {
		t.Error("Put of 10 bytes claimed as 5 succeeded")
	}
	if got, _ := os.ReadFile(filepath.Join(s.Data, "put/deep/er/f1")); string(got) != "second" {
		t.Errorf("a failed Put changed the file: %q", got)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Data, "put/deep/er"))
	for _, e := range entries {
		if strings.Contains(e.Name(), "hepbuild-tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// The reader checks the content against the size Open saw: a file that
// shrinks or grows in between is an error, not a quiet io.EOF.
func TestOpenSizeChanged(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	b := content(2*chunk+10, 1)
	for name, change := range map[string][]byte{"shorter": b[:chunk+5], "longer": append(b, 'x')} {
		onDisk(t, s, "sz/"+name, b)
		rc, err := c.Open(ctx, "root://"+s.Addr+"//sz/"+name)
		if err != nil {
			t.Fatal(err)
		}
		onDisk(t, s, "sz/"+name, change)
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Errorf("%s: read %d bytes without an error", name, len(got))
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestMissing(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	u := "root://" + s.Addr + "//no/such/file"
	_, err := c.Stat(ctx, u)
	if !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), u) {
		t.Errorf("Stat: %v", err)
	}
	if _, err := c.List(ctx, u); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("List: %v", err)
	}
	if _, err := c.Checksum(ctx, u); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Checksum: %v", err)
	}
	if _, err := c.Open(ctx, u); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Open: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	s := startXRootD(t, 60*time.Second, "all.export / r/o")
	c := client(t, s.Addr, storage.Options{})
	err := c.Put(context.Background(), "root://"+s.Addr+"//ro/x", strings.NewReader("x"), 1)
	if !errors.Is(err, storage.ErrDenied) {
		t.Errorf("Put on a read-only server: %v, want ErrDenied", err)
	}
}

// Nothing listens: ErrUnavailable at once, with the URL (without the
// user) in the message.
func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	u, _ := url.Parse("root://alice@" + addr + "//")
	c, err := open(u, storage.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Stat(context.Background(), "root://"+addr+"//data/x")
	if !errors.Is(err, storage.ErrUnavailable) || strings.Contains(err.Error(), "alice") || !strings.Contains(err.Error(), "root://"+addr+"//data/x") {
		t.Errorf("Stat on a server that is down: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
}

// A server that accepts the connection and never answers: ErrUnavailable
// after Timeout, not a hang.
func TestServerSilent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	c := client(t, l.Addr().String(), storage.Options{Timeout: 2 * time.Second})
	start := time.Now()
	_, err = c.Checksum(context.Background(), "root://"+l.Addr().String()+"//x")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Checksum on a silent server: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

// The server dies in the middle of a streamed read: the reader fails
// with ErrUnavailable, the process does not crash, and the client works
// again once a server is back.
func TestServerKilledMidRead(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := client(t, s.Addr, storage.Options{Timeout: 3 * time.Second})
	ctx := context.Background()
	b := content(40*chunk, 2)
	onDisk(t, s, "big", b)
	rc, err := c.Open(ctx, "root://"+s.Addr+"//big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(s.Cmd.Process.Pid, syscall.SIGKILL)
	start := time.Now()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("reading on from a killed server: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("took %v", el)
	}
	s.Stop()
	if _, err := c.Stat(ctx, "root://"+s.Addr+"//big"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Stat after the server died: %v", err)
	}
}

// A server configured for another algorithm answers it: ErrNoChecksum,
// naming the algorithm.
func TestChecksumOtherAlgorithm(t *testing.T) {
	s := startXRootD(t, 60*time.Second, "xrootd.chksum md5")
	c := client(t, s.Addr, storage.Options{})
	onDisk(t, s, "m", []byte("hello"))
	_, err := c.Checksum(context.Background(), "root://"+s.Addr+"//m")
	if !errors.Is(err, storage.ErrNoChecksum) || !strings.Contains(err.Error(), "md5") {
		t.Errorf("Checksum from an md5 server: %v, want ErrNoChecksum naming md5", err)
	}
	t.Log(err)
}

// The server stalls (stopped, its connections open) in the middle of a
// streamed read: the reader fails with ErrUnavailable after about
// Timeout, not a hang, and so does the next call.
func TestServerStalledMidRead(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	pid := s.Cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) }) // before Stop
	c := client(t, s.Addr, storage.Options{Timeout: 2 * time.Second})
	ctx := context.Background()
	onDisk(t, s, "big", content(40*chunk, 3))
	rc, err := c.Open(ctx, "root://"+s.Addr+"//big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	start := time.Now()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("reading on from a stalled server: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 6*time.Second {
		t.Errorf("took %v", el)
	}
	start = time.Now()
	if _, err := c.Stat(ctx, "root://"+s.Addr+"//big"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Stat on a stalled server: %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Stat took %v", el)
	}
}

// Many files without a stored checksum, asked at once as the resolver
// does (32 in flight): every answer arrives, right, well within the
// timeout. XRootD 5.5 queues at most 3 × "xrootd.chksum max" (12) such
// jobs for all its clients and answers the rest kXR_wait, "retry in 30
// s", which go-hep slept out past the call's timeout; and a job that had
// to wait in that queue was sometimes never run nor answered at all (the
// server lost it), so Checksum keeps no more in flight than the server
// computes at once.
func TestChecksumManyUnstored(t *testing.T) {
	const files, parallel = 2000, 32
	s := startXRootD(t, 120*time.Second)
	want := make(map[string]string, files)
	for i := range files {
		b := content(100+i%700, int64(1000+i))
		name := fmt.Sprintf("many/d%02d/f%04d", i%20, i)
		onDisk(t, s, name, b)
		want[name] = adler(b)
	}
	c := client(t, s.Addr, storage.Options{})
	names := make(chan string)
	go func() {
		defer close(names)
		for name := range want {
			names <- name
		}
	}()
	errs := make(chan error, files)
	start := time.Now()
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				got, err := c.Checksum(context.Background(), "root://"+s.Addr+"//"+name)
				if err == nil && got != (storage.Checksum{Algo: "adler32", Value: want[name]}) {
					err = fmt.Errorf("%s: %v, want adler32 %s", name, got, want[name])
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	took := time.Since(start)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d checksums failed (server log: %s)", failed, files, s.Log)
	}
	t.Logf("%d unstored checksums, %d at once: %v", files, parallel, took)
	// A dozen milliseconds' work per hundred files here; a lost answer
	// costs the 20 s timeout, a kXR_wait slept out 30 s.
	if took > 10*time.Second {
		t.Errorf("%d unstored checksums took %v", files, took)
	}
}

// TestQuestionMarkInName: XRootD reads "?" in a path as the start of the
// request's opaque data, so a file name holding one cannot be named.
// Before, a URL naming y?z.txt (y%3Fz.txt) read and wrote "y" instead:
// export of y?z.txt replaced y and verified it, and a remote file
// y?z.root downloaded y.
func TestQuestionMarkInName(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := client(t, s.Addr, storage.Options{})
	ctx := context.Background()
	onDisk(t, s, "q/y", []byte("not y?z\n"))
	u := fmt.Sprintf("root://%s//q/y%%3Fz.txt", s.Addr)
	if err := c.Put(ctx, u, strings.NewReader("y?z\n"), 4); err == nil || !strings.Contains(err.Error(), "?") {
		t.Errorf("Put to a name with ?: %v, want an error saying why", err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Data, "q", "y")); string(b) != "not y?z\n" {
		t.Errorf("q/y is now %q", b)
	}
	if _, err := c.Stat(ctx, u); err == nil {
		t.Error("Stat of a name with ? answered (for another file)")
	}
	if rc, err := c.Open(ctx, u); err == nil {
		rc.Close()
		t.Error("Open of a name with ? opened another file")
	}
	if _, err := c.Checksum(ctx, u); err == nil {
		t.Error("Checksum of a name with ? answered (for another file)")
	}
}
