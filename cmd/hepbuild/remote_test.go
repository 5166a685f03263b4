package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// remoteCaches are the remote caches the end-to-end tests run against,
// each started fresh for the test that asks.
var remoteCaches = map[string]func(t *testing.T) string{
	"file": func(t *testing.T) string { return "file://" + filepath.Join(t.TempDir(), "shared") },
	"grpc-bazel-remote": func(t *testing.T) string {
		return "grpc://" + testserver.StartBazelRemote(t).GRPCAddr
	},
	"http-bazel-remote": func(t *testing.T) string {
		return "http://" + testserver.StartBazelRemote(t).HTTPAddr
	},
	"http-nginx": func(t *testing.T) string {
		return "http://" + testserver.StartNginxDAV(t).Addr + "/cache/analysis-x"
	},
	"root-xrootd": func(t *testing.T) string {
		return "root://" + testserver.StartXRootD(t).Addr + "//cache/analysis-x"
	},
	"grpc-buildbarn": func(t *testing.T) string {
		return "grpc://" + testserver.StartBBStorage(t).Addr + "/hep"
	},
}

const remoteWorkspace = `
task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "echo said-by-a >&2; tr a-z A-Z < $< > $@")
task(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "wc -c < $< > $@")
task(name = "big", outs = ["big.bin"], cmd = "head -c 5000000 /dev/urandom > $@")
`

// clone writes the workspace's files into a new folder: another member of
// the group, with a disk cache of their own.
func clone(t *testing.T, files map[string]string) (root, diskCache string) {
	t.Helper()
	root = testWorkspace(t, files)
	return root, filepath.Join(t.TempDir(), "disk")
}

func buildOutcomes(t *testing.T, root string, args ...string) (result, map[string][]string) {
	t.Helper()
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, append([]string{"--progress=plain", "--events", ev}, args...)...)
	if r.code != 0 {
		t.Fatalf("hepbuild %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r, events(t, ev)
}

// TestRemoteCacheSharesResults: what one member built, another restores
// from the remote with nothing executed, log included.
func TestRemoteCacheSharesResults(t *testing.T) {
	for name, start := range remoteCaches {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
			alice, aliceDisk := clone(t, files)
			r, ev := buildOutcomes(t, alice, "//:all", "--disk-cache", aliceDisk, "--remote-cache", url)
			if n := len(ev["action_finished"]); n != 3 {
				t.Fatalf("alice's build ran %d actions, want 3\n%s", n, r.stderr)
			}
			if strings.Contains(r.stderr, "WARNING") {
				t.Errorf("alice's build warned:\n%s", r.stderr)
			}
			bob, bobDisk := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
			r, ev = buildOutcomes(t, bob, "//:all", "--disk-cache", bobDisk, "--remote-cache", url)
			if n, c := len(ev["action_finished"]), len(ev["action_cached"]); n != 0 || c != 3 {
				t.Fatalf("bob's build ran %d actions and restored %d, want 0 and 3\n%s", n, c, r.stderr)
			}
			for _, out := range []string{"a.txt", "b.txt", "big.bin"} {
				a, err1 := os.ReadFile(filepath.Join(alice, "hepbuild-out", out))
				b, err2 := os.ReadFile(filepath.Join(bob, "hepbuild-out", out))
				if err1 != nil || err2 != nil || string(a) != string(b) {
					t.Errorf("%s differs between alice and bob (%v, %v)", out, err1, err2)
				}
			}
			log := findLog(t, bob, "a.txt.log")
			if !strings.Contains(log, "said-by-a") {
				t.Errorf("bob's log of //:a does not hold what alice's run said: %q", log)
			}
			r = hepbuild(t, bob, "explain", "//:a", "--disk-cache", bobDisk, "--remote-cache", url)
			if !strings.Contains(r.stdout, "log of the run that made its outputs: ") || !strings.Contains(r.stdout, "a.txt.log") {
				t.Errorf("explain does not name the log of the run that made bob's a.txt:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

// findLog reads the log of an action under the workspace's output base.
func findLog(t *testing.T, root, name string) string {
	t.Helper()
	out, err := filepath.EvalSymlinks(filepath.Join(root, "hepbuild-out"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(out), "logs", name))
	if err != nil {
		t.Fatalf("no log %s: %v", name, err)
	}
	return string(b)
}

// TestRemoteCredentialsStayHidden: a token given on the command line, or
// read from a file, is in no message, no file hepbuild writes and no key.
func TestRemoteCredentialsStayHidden(t *testing.T) {
	const secret = "tok-9fQz7-never-shown-Kp2"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(t.TempDir(), "shared")
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	args := []string{"//:all", "--progress=plain", "--events", ev, "--disk-cache", diskCache, "--remote-cache", url,
		"--remote-header", "authorization=Bearer " + secret, "--remote-header", "x-token=@" + tokenFile}
	var said strings.Builder
	for i := 0; i < 2; i++ {
		r := hepbuild(t, root, args...)
		if r.code != 0 {
			t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
		}
		said.WriteString(r.stdout + r.stderr)
	}
	r := hepbuild(t, root, "info", "--remote-cache", url, "--remote-header", "authorization=Bearer "+secret)
	said.WriteString(r.stdout + r.stderr)
	r = hepbuild(t, root, "info", "--remote-cache", url, "--remote-header", "authorization="+secret+"\nx")
	said.WriteString(r.stdout + r.stderr)
	if strings.Contains(said.String(), secret) {
		t.Errorf("hepbuild printed the credential:\n%s", said.String())
	}
	base, err := filepath.EvalSymlinks(filepath.Join(root, "hepbuild-out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Dir(base), diskCache, filepath.Dir(ev), strings.TrimPrefix(url, "file://")} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), secret) {
				t.Errorf("%s holds the credential", p)
			}
			return nil
		})
	}
}

// TestStampHashesNoCredential: the null-build stamp, a hash of the build's
// flags, does not change with a header's value: no credential is hashed.
func TestStampHashesNoCredential(t *testing.T) {
	a := &BuildCmd{}
	a.RemoteHeader = []string{"authorization=Bearer one"}
	b := &BuildCmd{}
	b.RemoteHeader = []string{"authorization=Bearer two"}
	if a.stampKey("/w", "") != b.stampKey("/w", "") {
		t.Error("the null-build stamp hashes --remote-header values")
	}
}

// TestRemoteDownloadToplevel: with --remote-download-outputs=toplevel a
// member restores a target without downloading its dependency's output,
// builds it again with nothing to do, fetches the dependency when the
// target must run, writes everything with =all, and recovers from a
// dependency output the caches lost by making it again.
func TestRemoteDownloadToplevel(t *testing.T) {
	url := remoteCaches["file"](t)
	shared := strings.TrimPrefix(url, "file://")
	files := map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"}
	alice, aliceDisk := clone(t, files)
	buildOutcomes(t, alice, "//:b", "--disk-cache", aliceDisk, "--remote-cache", url)

	bob, bobDisk := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	aBlob := cache.FromBytes([]byte("HELLO\n"))
	flags := []string{"--disk-cache", bobDisk, "--remote-cache", url}
	toplevel := append([]string{"//:b", "--remote-download-outputs=toplevel"}, flags...)
	outFile := func(name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(bob, "hepbuild-out", name))
		return string(b), err == nil
	}
	wantOutcomes := func(step string, ev map[string][]string, executed, cached int) {
		t.Helper()
		if n, c := len(ev["action_finished"]), len(ev["action_cached"]); n != executed || c != cached {
			t.Fatalf("%s: %d actions executed and %d restored, want %d and %d", step, n, c, executed, cached)
		}
	}

	r, ev := buildOutcomes(t, bob, toplevel...)
	wantOutcomes("toplevel", ev, 0, 2)
	if got, ok := outFile("b.txt"); got != "6\n" {
		t.Errorf("b.txt = %q (%t), want the target's output written", got, ok)
	}
	if _, ok := outFile("a.txt"); ok {
		t.Errorf("a.txt was written; want it kept in the cache")
	}
	if hasBlob(t, bobDisk, aBlob) {
		t.Errorf("a.txt's blob was downloaded to bob's disk cache\n%s", r.stderr)
	}

	r = hepbuild(t, bob, append([]string{"--progress=plain"}, toplevel...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("the same build again: exit %d, want nothing to do\n%s", r.code, r.stderr)
	}
	r = hepbuild(t, bob, append([]string{"status", "//:b"}, flags...)...)
	if !strings.Contains(r.stdout, "//:a (1 output only in the cache)") || !strings.Contains(r.stderr, "1 output only in the cache") {
		t.Errorf("status does not say a.txt is only in the cache:\n%s%s", r.stdout, r.stderr)
	}

	// =all writes what the cache kept: no stamp says there is nothing to do.
	_, ev = buildOutcomes(t, bob, append([]string{"//:b", "--remote-download-outputs=all"}, flags...)...)
	wantOutcomes("all", ev, 0, 1)
	if got, _ := outFile("a.txt"); got != "HELLO\n" {
		t.Errorf("a.txt = %q after --remote-download-outputs=all", got)
	}

	// clean forgets outputs kept in the cache as it removes the others.
	hepbuild(t, bob, "clean")
	buildOutcomes(t, bob, toplevel...)
	if _, ok := outFile("a.txt"); ok {
		t.Fatal("a.txt was written by a toplevel build after clean")
	}
	if r := hepbuild(t, bob, "clean", "//:a"); !strings.Contains(r.stderr, "removed 1 output(s) of 1 target(s)") {
		t.Errorf("clean //:a did not forget a.txt kept in the cache:\n%s", r.stderr)
	}
	if r := hepbuild(t, bob, append([]string{"status", "//:b"}, flags...)...); strings.Contains(r.stdout+r.stderr, "only in the cache") {
		t.Errorf("status after clean //:a still lists outputs only in the cache:\n%s%s", r.stdout, r.stderr)
	}
	buildOutcomes(t, bob, toplevel...)
	hepbuild(t, bob, "clean")
	if r := hepbuild(t, bob, append([]string{"status", "//:b"}, flags...)...); strings.Contains(r.stdout+r.stderr, "only in the cache") {
		t.Errorf("status after clean still lists outputs only in the cache:\n%s%s", r.stdout, r.stderr)
	}
	buildOutcomes(t, bob, toplevel...)

	// b must run: a.txt is fetched first.
	edit := func(cmd string) {
		t.Helper()
		build := strings.Replace(remoteWorkspace, `cmd = "wc -c < $< > $@"`, `cmd = "`+cmd+`"`, 1)
		if err := os.WriteFile(filepath.Join(bob, "BUILD"), []byte(build), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("cat $< > $@")
	_, ev = buildOutcomes(t, bob, toplevel...)
	wantOutcomes("b edited", ev, 1, 0)
	if got, _ := outFile("b.txt"); got != "HELLO\n" {
		t.Errorf("b.txt = %q after b ran", got)
	}
	if got, _ := outFile("a.txt"); got != "HELLO\n" {
		t.Errorf("a.txt = %q after b ran, want it fetched", got)
	}

	// a.txt kept in the cache, then lost by every cache: b cannot run,
	// and says so; the next build makes a again.
	hepbuild(t, bob, "clean")
	buildOutcomes(t, bob, toplevel...)
	for _, dir := range []string{shared, bobDisk} {
		removeBlob(t, dir, aBlob)
	}
	edit("cat $< $< > $@")
	r = hepbuild(t, bob, append([]string{"--progress=plain"}, toplevel...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "hepbuild-out/a.txt") || !strings.Contains(r.stderr, "build again") {
		t.Fatalf("b reading a lost a.txt: exit %d, want a failure naming a.txt and saying to build again\n%s", r.code, r.stderr)
	}
	_, ev = buildOutcomes(t, bob, toplevel...)
	wantOutcomes("after the loss", ev, 2, 0)
	if got, _ := outFile("b.txt"); got != "HELLO\nHELLO\n" {
		t.Errorf("b.txt = %q after rebuilding", got)
	}
}

// hasBlob reports whether the cache folder (disk cache layout) holds the blob.
func hasBlob(t *testing.T, dir string, d cache.Digest) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, "cas.v1", d.Hash[:2], d.Hash))
	return err == nil
}

func removeBlob(t *testing.T, dir string, d cache.Digest) {
	t.Helper()
	if !hasBlob(t, dir, d) {
		t.Fatalf("%s does not hold blob %s", dir, d)
	}
	if err := os.Remove(filepath.Join(dir, "cas.v1", d.Hash[:2], d.Hash)); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteFromHepbuildrc: the group's cache set once in .hepbuildrc, its
// header value quoted (a space in it), reaches every command that has the
// flags; query and clean, which have none, still run.
func TestRemoteFromHepbuildrc(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("rc-token-value\n"), 0o600)
	rc := "common --remote-cache=file://" + shared + "\ncommon --remote-header=\"authorization=Bearer @" + token + "\"\n"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n", ".hepbuildrc": rc})
	r := hepbuild(t, root, "info", "cache_tiers")
	if r.code != 0 || !strings.Contains(r.stdout, "remote file://"+shared+" (answered") {
		t.Errorf("info cache_tiers: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	buildOutcomes(t, root, "//:all", "--disk-cache", diskCache)
	if _, err := os.Stat(filepath.Join(shared, "ac.v2")); err != nil {
		t.Errorf("the build did not use the remote from .hepbuildrc: %v", err)
	}
	for _, args := range [][]string{{"query", "//..."}, {"clean"}} {
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Errorf("%v with remote flags in .hepbuildrc: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	bad := testWorkspace(t, map[string]string{"BUILD": remoteWorkspace, ".hepbuildrc": "common --remote-header=\"x=y\n"})
	if r := hepbuild(t, bad, "info"); r.code != exitBadInput || !strings.Contains(r.stderr, ".hepbuildrc:1: a quote is not closed") {
		t.Errorf("an unterminated quote: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRemoteURLCredentialsStayHiddenInErrors: a URL that hepbuild refuses
// (a protocol not in this build, a file:// URL with a host, a URL missing
// its scheme, one that does not parse) is named without the password it
// carries.
func TestRemoteURLCredentialsStayHiddenInErrors(t *testing.T) {
	const secret = "pw-8Hq2-never-shown-Zx"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	for _, c := range []struct {
		url  string
		code int // of build: 2 for a URL refused, 0 for a remote that cannot be reached
	}{
		{"https://alice:" + secret + "@127.0.0.1:1", 0},
		{"root://alice:" + secret + "@127.0.0.1:1//cache", 0},
		{"file://alice:" + secret + "@cache.example/shared", 2},
		{"alice:" + secret + "@cache.example:9092", 2},
		{"grpc://alice:" + secret + "%zz@cache.example:9092", 2},
	} {
		url := c.url
		for _, cmd := range [][]string{{"info"}, {"build", "//:a"}} {
			r := hepbuild(t, root, append(cmd, "--disk-cache", diskCache, "--remote-cache", url, "--remote-timeout", "3s")...)
			if cmd[0] == "build" && r.code != c.code {
				t.Errorf("%s --remote-cache %s: exit %d, want %d\n%s", cmd[0], url, r.code, c.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("%s --remote-cache %s printed the password:\n%s%s", cmd[0], url, r.stdout, r.stderr)
			}
		}
	}
}

// TestMalformedRemoteHeaderStaysHidden: a header written as curl takes it
// (NAME: VALUE), or a bare token, is refused without being quoted.
func TestMalformedRemoteHeaderStaysHidden(t *testing.T) {
	const secret = "tok-Hd83-never-shown-Qa"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	url := "file://" + filepath.Join(t.TempDir(), "shared")
	for _, h := range []string{"authorization: Bearer " + secret, secret, "Bearer " + secret, "x token=" + secret, "=" + secret} {
		r := hepbuild(t, root, "//:a", "--disk-cache", diskCache, "--remote-cache", url, "--remote-header", h)
		if r.code != 2 {
			t.Errorf("--remote-header %q: exit %d, want 2", h, r.code)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("a malformed --remote-header was printed:\n%s%s", r.stdout, r.stderr)
		}
	}
}

// TestRemoteHeaderInRCFile: a header value holds a space ("Bearer TOKEN"),
// so a .hepbuildrc must be able to quote it, as .bazelrc can; a value left
// unquoted splits into a stray word, which is refused naming the file and
// line, never quoted (it is the token).
func TestRemoteHeaderInRCFile(t *testing.T) {
	const secret = "tok-Rc71-never-shown-Lm"
	root, diskCache := clone(t, map[string]string{"BUILD": remoteWorkspace, "in.txt": "hello\n"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(t.TempDir(), "shared")
	rc := filepath.Join(root, ".hepbuildrc")
	for _, c := range []struct {
		line string
		code int
	}{
		{`build --remote-cache=` + url + ` --remote-header="authorization=Bearer @` + tokenFile + `" -j 2`, 0},
		{`build --remote-cache ` + url + ` --remote-header 'authorization=Bearer ` + secret + `'`, 0},
		{`common --remote-header=authorization=Bearer\ ` + secret + ` --remote-cache=` + url, 0},
		{`build --remote-cache=` + url + ` --remote-header=authorization=Bearer ` + secret, 2},
		{`build --remote-cache=` + url + ` --remote-header="authorization=Bearer ` + secret, 2},
	} {
		if err := os.WriteFile(rc, []byte(c.line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := hepbuild(t, root, "//:a", "--disk-cache", diskCache)
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", c.line, r.code, c.code, r.stderr)
		}
		if c.code != 0 && !strings.Contains(r.stderr, rc+":1") {
			t.Errorf("%s: the error does not name %s:1:\n%s", c.line, rc, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%s: printed the token:\n%s%s", c.line, r.stdout, r.stderr)
		}
	}
}
