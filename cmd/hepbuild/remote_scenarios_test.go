package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// TestRemoteKilledMidBuild: the remote dies while the build runs; the
// build finishes with the disk cache and one warning naming the remote.
func TestRemoteKilledMidBuild(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	url := "grpc://" + s.GRPCAddr
	var build strings.Builder
	for i := 0; i < 8; i++ {
		build.WriteString(`task(name = "t` + string(rune('0'+i)) + `", outs = ["t` + string(rune('0'+i)) + `.txt"], cmd = "sleep 0.2; echo ` + string(rune('0'+i)) + ` > $@")` + "\n")
	}
	root, diskCache := clone(t, map[string]string{"BUILD": build.String()})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	done := make(chan result, 1)
	go func() {
		done <- hepbuildCtx(context.Background(), t, root, "//:all", "-j1", "--progress=plain", "--events", ev,
			"--disk-cache", diskCache, "--remote-cache", url, "--remote-timeout", "5s")
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(ev)
		if bytes.Count(b, []byte(`"action_finished"`)) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build never finished two actions")
		}
	}
	s.Stop()
	var r result
	select {
	case r = <-done:
	case <-time.After(120 * time.Second):
		t.Fatal("the build did not finish after the remote died")
	}
	if r.code != 0 {
		t.Fatalf("build with the remote killed: exit %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "WARNING: remote cache "+url); n != 1 {
		t.Errorf("want one warning naming the remote, got %d:\n%s", n, r.stderr)
	}
	for i := 0; i < 8; i++ {
		if _, err := os.Stat(filepath.Join(root, "hepbuild-out", "t"+string(rune('0'+i))+".txt")); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	// The disk tier kept everything: with the remote gone, nothing reruns.
	_, evs := buildOutcomes(t, root, "//:all", "--disk-cache", diskCache, "--remote-cache", url, "--remote-timeout", "2s")
	if n := len(evs["action_finished"]); n != 0 {
		t.Errorf("the next build ran %d actions", n)
	}
}

// TestRemoteWrongCredential: a remote that refuses the credential costs a
// warning that names it, never the password; the build goes on locally.
func TestRemoteWrongCredential(t *testing.T) {
	dir := t.TempDir()
	sum := sha1.Sum([]byte("right-password"))
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("hep:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartBazelRemote(t, "--htpasswd_file", htpasswd)
	files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
	for _, c := range []struct{ name, url string }{
		{"grpc", "grpc://hep:wrong-password@" + s.GRPCAddr},
		{"http", "http://hep:wrong-password@" + s.HTTPAddr},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "http" && !remoteSchemeAvailable("http") {
				t.Fatal("http:// remote caches are not wired in")
			}
			root, diskCache := clone(t, files)
			r, ev := buildOutcomes(t, root, "//:all", "--disk-cache", diskCache, "--remote-cache", c.url)
			if n := len(ev["action_finished"]); n != 3 {
				t.Errorf("ran %d actions, want 3", n)
			}
			name := strings.Replace(c.url, "hep:wrong-password@", "", 1)
			if !strings.Contains(r.stderr, "WARNING: remote cache "+name) {
				t.Errorf("no warning naming the remote %s:\n%s", name, r.stderr)
			}
			if strings.Contains(r.stderr, "wrong-password") {
				t.Errorf("the password was printed:\n%s", r.stderr)
			}
		})
	}
}

// remoteSchemeAvailable reports whether openRemote knows the scheme.
func remoteSchemeAvailable(scheme string) bool {
	_, err := openRemote(scheme+"://127.0.0.1:1", remote.Options{}.WithDefaults())
	return err == nil || !strings.Contains(err.Error(), "not available in this build")
}

// TestRemoteCorruptBlob: a blob on the remote whose content is not its
// digest is a miss: the action runs, and the bad content never reaches the
// output tree or the disk cache.
func TestRemoteCorruptBlob(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	url := "file://" + shared
	files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
	alice, aliceDisk := clone(t, files)
	buildOutcomes(t, alice, "//:all", "--disk-cache", aliceDisk, "--remote-cache", url)
	good, err := os.ReadFile(filepath.Join(alice, "hepbuild-out", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	d := cache.FromBytes(good)
	blob := filepath.Join(shared, "cas.v1", d.Hash[:2], d.Hash)
	bad := bytes.ToLower(good) // same size, other content
	os.Chmod(blob, 0o644)
	if err := os.WriteFile(blob, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	bob, bobDisk := clone(t, files)
	r, ev := buildOutcomes(t, bob, "//:all", "--disk-cache", bobDisk, "--remote-cache", url)
	if n := len(ev["action_finished"]); n < 1 {
		t.Errorf("no action ran; the corrupt result was used\n%s", r.stderr)
	}
	got, err := os.ReadFile(filepath.Join(bob, "hepbuild-out", "a.txt"))
	if err != nil || !bytes.Equal(got, good) {
		t.Errorf("bob's a.txt is %q (%v), want %q", got, err, good)
	}
	if !strings.Contains(r.stderr, "WARNING: remote cache "+url) {
		t.Errorf("no warning about the corrupt blob:\n%s", r.stderr)
	}
	filepath.WalkDir(bobDisk, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Equal(b, bad) {
				t.Errorf("the corrupt content reached bob's disk cache: %s", p)
			}
		}
		return nil
	})
}

// TestBazelAndHepbuildShareARemote: Bazel and hepbuild pointed at one
// bazel-remote each find their own results and never the other's.
func TestBazelAndHepbuildShareARemote(t *testing.T) {
	bazel, err := exec.LookPath("bazel")
	if err != nil {
		t.Fatal("bazel is not installed: .ci/run installs it (Debian bazel-bootstrap)")
	}
	s := testserver.StartBazelRemote(t)
	url := "grpc://" + s.GRPCAddr
	// The same command and output in both tools: the same blob, other keys.
	bzl := t.TempDir()
	os.WriteFile(filepath.Join(bzl, "WORKSPACE"), nil, 0o644)
	os.WriteFile(filepath.Join(bzl, "BUILD"), []byte(`genrule(name = "g", outs = ["g.txt"], cmd = "echo shared-by-both > $@")`+"\n"), 0o644)
	runBazel := func() string {
		t.Helper()
		cmd := exec.Command(bazel, "--batch", "--output_user_root="+filepath.Join(bzl, ".root"), "build", "//:g",
			"--remote_cache="+url, "--noshow_progress")
		cmd.Dir = bzl
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bazel build: %v\n%s", err, out)
		}
		return string(out)
	}
	runBazel()
	files := map[string]string{"BUILD": `task(name = "g", outs = ["g.txt"], cmd = "echo shared-by-both > $@")` + "\n"}
	alice, aliceDisk := clone(t, files)
	r, ev := buildOutcomes(t, alice, "//:g", "--disk-cache", aliceDisk, "--remote-cache", url)
	if n := len(ev["action_finished"]); n != 1 {
		t.Fatalf("hepbuild took Bazel's result: %d actions ran, want 1\n%s", n, r.stderr)
	}
	if strings.Contains(r.stderr, "WARNING") {
		t.Errorf("hepbuild warned:\n%s", r.stderr)
	}
	// Bazel, from an empty output tree, finds its own result on the remote.
	cmd := exec.Command(bazel, "--batch", "--output_user_root="+filepath.Join(bzl, ".root"), "clean")
	cmd.Dir = bzl
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bazel clean: %v\n%s", err, out)
	}
	if out := runBazel(); !strings.Contains(out, "remote cache hit") {
		t.Errorf("Bazel did not find its own result on the remote after hepbuild used it:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(bzl, "bazel-bin", "g.txt")); err != nil || string(b) != "shared-by-both\n" {
		t.Errorf("Bazel's output: %q, %v", b, err)
	}
	// hepbuild, from another clone, finds its own.
	bob, bobDisk := clone(t, files)
	_, ev = buildOutcomes(t, bob, "//:g", "--disk-cache", bobDisk, "--remote-cache", url)
	if n, c := len(ev["action_finished"]), len(ev["action_cached"]); n != 0 || c != 1 {
		t.Errorf("hepbuild after Bazel: %d ran, %d restored; want 0 and 1", n, c)
	}
}

// TestRemoteMutualTLS: a bazel-remote that requires a client certificate
// signed by the group's CA serves a member who has one, and refuses (one
// warning, the build goes on) one who has not or who does not trust it.
func TestRemoteMutualTLS(t *testing.T) {
	tf := testserver.NewTLSFiles(t)
	s := testserver.StartBazelRemote(t, "--tls_cert_file", tf.ServerCert, "--tls_key_file", tf.ServerKey, "--tls_ca_file", tf.CA)
	for _, url := range []string{"grpcs://" + s.GRPCAddr, "https://" + s.HTTPAddr} {
		t.Run(strings.Split(url, ":")[0], func(t *testing.T) { testMutualTLS(t, tf, url) })
	}
}

func testMutualTLS(t *testing.T, tf testserver.TLSFiles, url string) {
	files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
	alice, aliceDisk := clone(t, files)
	tlsArgs := []string{"--tls-ca-cert", tf.CA, "--tls-client-cert", tf.ClientCert, "--tls-client-key", tf.ClientKey}
	r, _ := buildOutcomes(t, alice, append([]string{"//:all", "--disk-cache", aliceDisk, "--remote-cache", url}, tlsArgs...)...)
	if strings.Contains(r.stderr, "WARNING") {
		t.Fatalf("a member with the right certificate got a warning:\n%s", r.stderr)
	}
	bob, bobDisk := clone(t, files)
	_, ev := buildOutcomes(t, bob, append([]string{"//:all", "--disk-cache", bobDisk, "--remote-cache", url}, tlsArgs...)...)
	if n := len(ev["action_cached"]); n != 3 {
		t.Errorf("bob restored %d actions over mutual TLS, want 3", n)
	}
	for name, args := range map[string][]string{
		"no client certificate": {"--tls-ca-cert", tf.CA},
		"CA not trusted":        {"--tls-client-cert", tf.ClientCert, "--tls-client-key", tf.ClientKey},
	} {
		t.Run(name, func(t *testing.T) {
			carol, carolDisk := clone(t, files)
			r, ev := buildOutcomes(t, carol, append([]string{"//:all", "--disk-cache", carolDisk, "--remote-cache", url, "--remote-timeout", "5s"}, args...)...)
			if n := len(ev["action_finished"]); n != 3 {
				t.Errorf("ran %d actions, want 3 (the remote refused)", n)
			}
			if !strings.Contains(r.stderr, "WARNING: remote cache "+url) {
				t.Errorf("no warning naming the remote:\n%s", r.stderr)
			}
		})
	}
}

// TestRemoteX509Proxy: a grid proxy ($X509_USER_PROXY: certificate, key
// and chain in one file) is the client certificate over TLS.
func TestRemoteX509Proxy(t *testing.T) {
	tf := testserver.NewTLSFiles(t)
	s := testserver.StartBazelRemote(t, "--tls_cert_file", tf.ServerCert, "--tls_key_file", tf.ServerKey, "--tls_ca_file", tf.CA)
	cert, _ := os.ReadFile(tf.ClientCert)
	key, _ := os.ReadFile(tf.ClientKey)
	ca, _ := os.ReadFile(tf.CA)
	proxy := filepath.Join(t.TempDir(), "x509up_u1000")
	if err := os.WriteFile(proxy, append(append(cert, key...), ca...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("X509_USER_PROXY", proxy)
	url := "grpcs://" + s.GRPCAddr
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	r, _ := buildOutcomes(t, root, "//:all", "--disk-cache", diskCache, "--remote-cache", url, "--tls-ca-cert", tf.CA)
	if strings.Contains(r.stderr, "WARNING") {
		t.Errorf("the proxy was not accepted as the client certificate:\n%s", r.stderr)
	}
	r = hepbuild(t, root, "info", "cache_tiers", "--disk-cache", diskCache, "--remote-cache", url, "--tls-ca-cert", tf.CA)
	if !strings.Contains(r.stdout, "answered") {
		t.Errorf("info: %s%s", r.stdout, r.stderr)
	}
}

// TestRemoteRefusesWrites: a cache that refuses writes (a read-only nginx)
// is still read; the build says once that it refuses writes and keeps its
// results in the disk cache.
func TestRemoteRefusesWrites(t *testing.T) {
	s := testserver.StartNginxReadOnly(t)
	url := "http://" + s.Addr + "/cache"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	r, ev := buildOutcomes(t, root, "//:all", "--disk-cache", diskCache, "--remote-cache", url)
	if n := len(ev["action_finished"]); n != 3 {
		t.Errorf("ran %d actions, want 3", n)
	}
	if n := strings.Count(r.stderr, "WARNING: remote cache "+url+" refuses writes"); n != 1 {
		t.Errorf("want one warning that the remote refuses writes, got %d:\n%s", n, r.stderr)
	}
	other, _ := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	_, ev = buildOutcomes(t, other, "//:all", "--disk-cache", diskCache, "--remote-cache", url)
	if n := len(ev["action_cached"]); n != 3 {
		t.Errorf("the disk cache did not keep the results: %d restored, want 3", n)
	}
}

// TestToplevelOverGRPCDownloadsNoIntermediate: with a REAPI remote, an
// intermediate output that stays in the cache is not downloaded at all,
// not even inlined into the disk cache, and costs one call.
func TestToplevelOverGRPCDownloadsNoIntermediate(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	url := "grpc://" + s.GRPCAddr
	files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
	alice, aliceDisk := clone(t, files)
	buildOutcomes(t, alice, "//:b", "--disk-cache", aliceDisk, "--remote-cache", url)
	a, err := os.ReadFile(filepath.Join(alice, "hepbuild-out", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	bob, bobDisk := clone(t, files)
	r, ev := buildOutcomes(t, bob, "//:b", "--disk-cache", bobDisk, "--remote-cache", url, "--remote-download-outputs=toplevel")
	if n := len(ev["action_cached"]); n != 2 {
		t.Fatalf("restored %d actions, want 2\n%s", n, r.stderr)
	}
	if hasBlob(t, bobDisk, cache.FromBytes(a)) {
		t.Error("a.txt, which stays in the cache, was downloaded into bob's disk cache")
	}
	if _, err := os.Stat(filepath.Join(bob, "hepbuild-out", "a.txt")); err == nil {
		t.Error("a.txt was written to bob's output tree")
	}
	if !strings.Contains(r.stderr, "; 2 calls") {
		t.Errorf("want 2 remote calls for 2 restored actions:\n%s", r.stderr)
	}
}

// TestRemoteStalledAtStartWithPendingUploads: results left pending by an
// earlier build are uploaded as the next build starts, while that build
// checks the remote; a remote that accepts connections and never answers
// (an in-process listener: no real server stalls on demand) fails both,
// and the build says so once.
func TestRemoteStalledAtStartWithPendingUploads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	buildOutcomes(t, root, "//:all", "--disk-cache", diskCache)
	keys, _ := filepath.Glob(filepath.Join(diskCache, "ac.v2", "*", "*"))
	if len(keys) == 0 {
		t.Fatal("the disk cache holds no result")
	}
	var pending strings.Builder
	for _, k := range keys {
		pending.WriteString(filepath.Base(k) + "/0\n")
	}
	base := strings.TrimSpace(hepbuild(t, root, "info", "output_base", "--disk-cache", diskCache).stdout)
	if err := os.WriteFile(filepath.Join(base, "remote-pending"), []byte(pending.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// A build long enough for the uploads to fail after the check did.
	if err := os.WriteFile(filepath.Join(root, "BUILD"), []byte(remoteWorkspace+`task(name = "slow", outs = ["slow.txt"], cmd = "sleep 2.5; echo > $@")`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "grpc://" + ln.Addr().String()
	start := time.Now()
	r := hepbuild(t, root, "//:all", "--progress=plain", "--disk-cache", diskCache, "--remote-cache", url, "--remote-timeout", "1s")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the build took %v with a stalled remote", took)
	}
	if n := strings.Count(r.stderr, "WARNING: remote cache "+url); n != 1 {
		t.Errorf("want one warning naming the remote, got %d:\n%s", n, r.stderr)
	}
}

// freezingProxy forwards TCP to a real server until frozen; then it
// forwards nothing more, either way, on any connection: a server that
// stalls mid-build (an in-process stand-in: bazel-remote cannot be paused
// on demand).
type freezingProxy struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *freezingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			<-make(chan struct{}) // hold the connection open, say nothing
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezingProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

// TestRemoteInterruptedFlushUploadsNextBuild: the remote stalls as the
// build waits for its uploads, the user interrupts: the results left are
// kept in the output base, and the next build there, with the remote
// answering again, uploads them for the group, though it has nothing to
// build. The interrupted build exits 8, as any interrupt does. (The remote
// stalls through an in-process proxy in front of a real bazel-remote.)
func TestRemoteInterruptedFlushUploadsNextBuild(t *testing.T) {
	s := testserver.StartBazelRemote(t)
	p := startFreezingProxy(t, s.GRPCAddr)
	// Three independent actions: all look their results up at the start
	// (Lookahead), then run one after the other; the remote freezes after
	// the first, so the uploads of the others are surely stuck, however
	// slowly the test runs.
	files := map[string]string{"BUILD": `
task(name = "x1", outs = ["x1.txt"], cmd = "sleep 0.5; echo 1 > $@")
task(name = "x2", outs = ["x2.txt"], cmd = "sleep 0.5; echo 2 > $@")
task(name = "x3", outs = ["x3.txt"], cmd = "sleep 0.5; echo 3 > $@")
`}
	root, diskCache := clone(t, files)
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- hepbuildCtx(ctx, t, root, "//:all", "-j1", "--progress=plain", "--events", ev,
			"--disk-cache", diskCache, "--remote-cache", "grpc://"+p.ln.Addr().String(), "--remote-timeout", "60s")
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(ev)
		if bytes.Count(b, []byte(`"action_finished"`)) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build never finished an action")
		}
	}
	p.freeze()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(ev)
		if bytes.Count(b, []byte(`"action_finished"`)) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build never finished its actions")
		}
	}
	time.Sleep(500 * time.Millisecond) // the build now waits for its uploads
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted build did not end")
	}
	if !strings.Contains(r.stderr, "not uploaded") {
		t.Fatalf("the interrupted build kept no result for the next (exit %d):\n%s", r.code, r.stderr)
	}
	if r.code != exitInterrupted || !strings.Contains(r.stderr, "ERROR: interrupted") {
		t.Errorf("an interrupt while uploading: exit %d, want 8 and \"ERROR: interrupted\"\n%s", r.code, r.stderr)
	}
	url := "grpc://" + s.GRPCAddr
	// Nothing to build, but something to upload: not a null build.
	r = hepbuild(t, root, "//:all", "--progress=plain", "--disk-cache", diskCache, "--remote-cache", url)
	if r.code != 0 || strings.Contains(r.stderr, "not uploaded") || strings.Contains(r.stderr, "WARNING") {
		t.Errorf("the next build did not upload what was left:\n%s", r.stderr)
	}
	other, otherDisk := clone(t, files)
	r, evs := buildOutcomes(t, other, "//:all", "--disk-cache", otherDisk, "--remote-cache", url)
	if n := len(evs["action_cached"]); n != 3 {
		t.Errorf("another member restored %d of 3 actions from the remote:\n%s", n, r.stderr)
	}
}
