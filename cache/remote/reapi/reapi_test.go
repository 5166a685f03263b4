package reapi

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

func open(t *testing.T, url string, opts remote.Options) *Cache {
	t.Helper()
	c, err := Open(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBazelRemote(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	c := open(t, "grpc://"+s.GRPCAddr, remote.Options{})
	remotetest.Run(t, c)
	desc, err := c.Check(context.Background())
	t.Logf("Check: %s", desc)
	if err != nil || !strings.HasPrefix(desc, "REAPI 2.0") {
		t.Errorf("Check: %q, %v; want REAPI 2.0–…", desc, err)
	}
	if n := c.CorruptBlobs(); n != 0 {
		t.Errorf("%d corrupt blobs from a correct server", n)
	}
}

func TestBBStorage(t *testing.T) {
	s := testserver.StartBBStorage(t)
	c := open(t, "grpc://"+s.Addr+"/hepbuild-test", remote.Options{})
	remotetest.Run(t, c)
	desc, err := c.Check(context.Background())
	t.Logf("Check: %s", desc)
	if err != nil || !strings.HasSuffix(desc, ", zstd") {
		t.Errorf("Check: %q, %v; want a server announcing zstd", desc, err)
	}
	if n := c.CorruptBlobs(); n != 0 {
		t.Errorf("%d corrupt blobs from a correct server", n)
	}
}

// TestBazelRemoteBasicAuth: bazel-remote v1.3.3's --htpasswd_file guards
// its gRPC services too, but reads the credentials from the :authority
// (grpc://user:password@host:port, as Bazel sends them), not from an
// authorization header.
func TestBazelRemoteBasicAuth(t *testing.T) {
	dir := t.TempDir()
	sum := sha1.Sum([]byte("right-password"))
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("hep:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartBazelRemote(t, "--htpasswd_file", htpasswd)
	ctx := context.Background()
	opts := remote.Options{Timeout: 10 * time.Second}
	b, d := remotetest.Blob(t, 100)

	good := open(t, "grpc://hep:right-password@"+s.GRPCAddr, opts)
	if err := good.PutBatch(ctx, map[cache.Digest][]byte{d: b}); err != nil {
		t.Fatalf("PutBatch with the right password: %v", err)
	}
	if ok, err := good.Contains(ctx, d); !ok || err != nil {
		t.Fatalf("Contains with the right password: %v, %v", ok, err)
	}

	for _, url := range []string{"grpc://hep:wrong-password@" + s.GRPCAddr, "grpc://" + s.GRPCAddr} {
		bad := open(t, url, opts)
		_, err := bad.FindMissing(ctx, []cache.Digest{d})
		if !errors.Is(err, remote.ErrDenied) {
			t.Fatalf("FindMissing through %s: %v, want ErrDenied", remote.Redact(mustParse(t, url)), err)
		}
		if strings.Contains(err.Error(), "wrong-password") {
			t.Errorf("the error shows the credential: %v", err)
		}
		if !strings.Contains(err.Error(), "grpc://"+s.GRPCAddr+":") {
			t.Errorf("the error does not name the remote without its credentials: %v", err)
		}
	}
}

func mustParse(t *testing.T, s string) *neturl.URL {
	u, err := neturl.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestInlineOutputs: bazel-remote sends the contents of small outputs and
// the log with the result when asked, so a restore costs one call.
func TestInlineOutputs(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	c := open(t, "grpc://"+s.GRPCAddr, remote.Options{Timeout: 10 * time.Second})
	ctx := context.Background()
	out, od := remotetest.Blob(t, 300)
	log, ld := remotetest.Blob(t, 40)
	if err := c.PutBatch(ctx, map[cache.Digest][]byte{od: out, ld: log}); err != nil {
		t.Fatal(err)
	}
	_, key := remotetest.Blob(t, 32)
	res := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out/a", Digest: od.ToProto()}}, StdoutDigest: ld.ToProto()}
	if err := c.PutActionResult(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetActionResultInline(ctx, key, []string{"out/a"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.GetOutputFiles()[0].GetContents(), out) || !bytes.Equal(got.GetStdoutRaw(), log) {
		t.Errorf("contents not inlined: output %d bytes, log %d bytes", len(got.GetOutputFiles()[0].GetContents()), len(got.GetStdoutRaw()))
	}
	plain, err := c.GetActionResult(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.GetOutputFiles()[0].GetContents()) != 0 || len(plain.GetStdoutRaw()) != 0 {
		t.Error("GetActionResult inlined contents nobody asked for")
	}
}
