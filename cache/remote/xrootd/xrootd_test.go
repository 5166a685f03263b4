package xrootd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// testTimeout bounds each call in these tests, well below go test's
// -timeout: a call that would hang fails as ErrTransient instead.
const testTimeout = 20 * time.Second

func open(t *testing.T, rawURL string, opts remote.Options) *Cache {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	c, err := Open(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startXRootD starts a server that is stopped, failing the test, if the
// test still runs after limit: whatever waits on it then fails at once
// (ErrTransient) instead of hanging until go test's -timeout, which would
// skip every cleanup and leave servers running.
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

func TestConformance(t *testing.T) {
	s := startXRootD(t, 90*time.Second)
	remotetest.Run(t, open(t, "root://"+s.Addr+"//hep/cache", remote.Options{}))
}

func TestURLForms(t *testing.T) {
	for raw, base := range map[string]string{
		"root://h:1094//a/b": "/a/b", "root://h:1094/a/b": "/a/b", "root://u@h//a/b/": "/a/b",
	} {
		c, err := Open(raw, remote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if c.base != base {
			t.Errorf("%s: base %s, want %s", raw, c.base, base)
		}
	}
	c, _ := Open("root://alice@h//a", remote.Options{})
	if c.user != "alice" || c.addr != "h:1094" || c.Name() != "root://h//a" {
		t.Errorf("user %q addr %q name %q", c.user, c.addr, c.Name())
	}
}

// A file whose content does not match its name is never returned as the
// blob, and a temporary file left by a killed write is never a blob.
func TestCorruptAndTemporary(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := open(t, "root://"+s.Addr+"//cache", remote.Options{})
	ctx := context.Background()
	good, d := remotetest.Blob(t, 3000)
	bad := append([]byte(nil), good...)
	bad[1500] ^= 1
	dir := filepath.Join(s.Data, "cache", "cas", d.Hash[:2])
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	os.Chmod(filepath.Dir(dir), 0o777)
	os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o777)
	for name, content := range map[string][]byte{"flipped": bad, "longer": append(good, 'x'), "shorter": good[:2999]} {
		if err := os.WriteFile(filepath.Join(dir, d.Hash), content, 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Get(ctx, d)
		if err != nil {
			continue // refused at open: fine
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Errorf("%s: Get returned %d bytes of corrupt content without an error", name, len(got))
		}
		if ok, _ := c.Contains(ctx, d); ok && name != "flipped" {
			t.Errorf("%s: Contains reports a file of the wrong size", name)
		}
	}
	// A killed write: only the temporary file exists.
	os.Remove(filepath.Join(dir, d.Hash))
	if err := os.WriteFile(filepath.Join(dir, d.Hash+".tmp-0123456789abcdef"), good[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, d); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get with only a temporary file: %v, want ErrNotFound", err)
	}
	if ok, err := c.Contains(ctx, d); ok || err != nil {
		t.Errorf("Contains with only a temporary file: %v, %v", ok, err)
	}
	if err := c.Put(ctx, d, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Get(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("Get after Put: %v", err)
	}
}

// A server that stops in the middle of a streamed read: the rest of the
// read fails with ErrTransient within Timeout, the process does not crash
// (go-hep panics when its connection ends under an open client; see
// xrdconn/relay.go), and Close returns.
func TestServerStoppedMidRead(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := open(t, "root://"+s.Addr+"//cache", remote.Options{Timeout: 3 * time.Second})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 3*chunk+5)
	if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Get(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	start := time.Now()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, remote.ErrTransient) {
		t.Errorf("reading on from a stopped server: %v, want ErrTransient", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// Action results round-trip, and the ac/ file is where xrdfs finds it:
// the layout is the disk cache's, so sites can inspect it with the
// XRootD tools.
func TestLayoutWithXrdfs(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := open(t, "root://"+s.Addr+"//cache", remote.Options{})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 2000)
	if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	xctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(xctx, "xrdfs", s.Addr, "stat", "/cache/cas/"+d.Hash[:2]+"/"+d.Hash).CombinedOutput()
	if err != nil {
		t.Fatalf("xrdfs stat: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Size:   2000") && !strings.Contains(string(out), "2000") {
		t.Errorf("xrdfs stat: %s", out)
	}
	out, err = exec.CommandContext(xctx, "xrdfs", s.Addr, "ls", "/cache/cas/"+d.Hash[:2]).CombinedOutput()
	if err != nil {
		t.Fatalf("xrdfs ls: %v\n%s", err, out)
	}
	if strings.Contains(string(out), ".tmp-") {
		t.Errorf("a temporary file is left after Put:\n%s", out)
	}
}

// A server that stops answering costs at most Timeout and is ErrTransient.
func TestServerStopped(t *testing.T) {
	s := startXRootD(t, 60*time.Second)
	c := open(t, "root://"+s.Addr+"//cache", remote.Options{Timeout: 3 * time.Second})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 100)
	if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	start := time.Now()
	_, err := c.Contains(ctx, d)
	if !errors.Is(err, remote.ErrTransient) {
		t.Errorf("Contains on a stopped server: %v, want ErrTransient", err)
	}
	_, err = c.Get(ctx, d)
	if !errors.Is(err, remote.ErrTransient) {
		t.Errorf("Get on a stopped server: %v, want ErrTransient", err)
	}
	if err := c.Put(ctx, d, bytes.NewReader(b)); !errors.Is(err, remote.ErrTransient) {
		t.Errorf("Put on a stopped server: %v, want ErrTransient", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("three calls on a stopped server took %v", el)
	}
}

// A server that accepts the connection but never answers: ErrTransient
// within Timeout, not a hang.
func TestServerSilent(t *testing.T) {
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := open(t, "root://"+l.Addr().String()+"//cache", remote.Options{Timeout: 2 * time.Second})
	start := time.Now()
	_, err = c.Contains(context.Background(), cache.Empty)
	if !errors.Is(err, remote.ErrTransient) {
		t.Errorf("Contains on a silent server: %v, want ErrTransient", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestReadOnly(t *testing.T) {
	s := startXRootD(t, 60*time.Second, "all.export / r/o")
	c := open(t, "root://"+s.Addr+"//cache", remote.Options{})
	b, d := remotetest.Blob(t, 100)
	err := c.Put(context.Background(), d, bytes.NewReader(b))
	if !errors.Is(err, remote.ErrDenied) {
		t.Fatalf("Put on a read-only server: %v, want ErrDenied", err)
	}
	t.Log(err)
}
