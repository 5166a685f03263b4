package httpcache

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

func open(t *testing.T, rawURL string, opts remote.Options) *Cache {
	t.Helper()
	c, err := Open(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBazelRemote(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	remotetest.Run(t, open(t, "http://"+s.HTTPAddr, remote.Options{}))
}

func TestNginxDAV(t *testing.T) {
	s := testserver.StartNginxDAV(t)
	// A path prefix, as a shared server hosting several caches has.
	remotetest.Run(t, open(t, "http://"+s.Addr+"/cache/analysis-x/", remote.Options{}))
	if _, err := os.Stat(filepath.Join(s.Data, "cache", "analysis-x", "cas")); err != nil {
		t.Errorf("blobs are not under the URL's path prefix: %v", err)
	}
}

func TestBazelRemoteBasicAuth(t *testing.T) {
	const user, pass = "analyst", "s3cret-Pa55"
	sum := sha1.Sum([]byte(pass))
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartBazelRemote(t, "--htpasswd_file", htpasswd)
	ctx := context.Background()

	good := open(t, "http://"+user+":"+pass+"@"+s.HTTPAddr, remote.Options{})
	if strings.Contains(good.Name(), pass) {
		t.Errorf("Name() %q shows the password", good.Name())
	}
	if _, err := good.Check(ctx); err != nil {
		t.Fatalf("Check with the right credential: %v", err)
	}
	b, d := remotetest.Blob(t, 1000)
	if err := good.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put with the right credential: %v", err)
	}

	bad := open(t, "http://"+user+":wrong-"+pass+"@"+s.HTTPAddr, remote.Options{})
	for name, f := range map[string]func() error{
		"Check": func() error { _, err := bad.Check(ctx); return err },
		"Get":   func() error { _, err := bad.Get(ctx, d); return err },
		"Put":   func() error { return bad.Put(ctx, d, bytes.NewReader(b)) },
	} {
		err := f()
		if !errors.Is(err, remote.ErrDenied) {
			t.Errorf("%s with a wrong password: %v, want remote.ErrDenied", name, err)
		}
		if err != nil && strings.Contains(err.Error(), pass) {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), s.HTTPAddr) {
			t.Errorf("%s: the error does not name the remote: %v", name, err)
		}
	}
}

func TestNginxRefusesWrites(t *testing.T) {
	s := testserver.StartNginxReadOnly(t)
	c := open(t, "http://"+s.Addr, remote.Options{})
	ctx := context.Background()
	if _, err := c.Check(ctx); err != nil {
		t.Fatalf("Check of a read-only cache: %v", err)
	}
	for _, n := range []int{100, int(c.BatchLimit()) + 100} {
		b, d := remotetest.Blob(t, n)
		err := c.Put(ctx, d, bytes.NewReader(b))
		if !errors.Is(err, remote.ErrDenied) || !strings.Contains(err.Error(), "refuses writes") {
			t.Errorf("Put of %d bytes to a read-only nginx: %v, want remote.ErrDenied saying it refuses writes", n, err)
		}
	}
	_, d := remotetest.Blob(t, 10)
	if _, err := c.Get(ctx, d); err == nil {
		t.Error("Get of an absent blob from a read-only nginx succeeded")
	}
}
