package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// go_binary keeps Go's build and module caches between builds. These tests build a small Go
// command with the real rule, the real go command and the none strategy (go_binary is tagged
// no-sandbox), and read in the action's log which caches it used. Each build gets a home folder
// of its own through --action-env=HOME, so the machine's own caches are never changed, and TMPDIR
// points at a folder where the test plants what another user could have put in /tmp.

// goBinaryWorkspace writes a workspace holding a Go module with one command and its go_binary.
func goBinaryWorkspace(t *testing.T) string {
	t.Helper()
	if _, err := osexec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	root := t.TempDir()
	for name, content := range map[string]string{
		"WORKSPACE.hep":     "",
		"go.mod":            "module example.com/gobinary\n\ngo 1.26\n",
		"go.sum":            "",
		"cmd/hello/main.go": "package main\n\nfunc main() { println(\"hello\") }\n",
		"BUILD.hep": `load("@hepbuild//rules:go.star", "go_binary")

go_binary(name = "hello", package = "./cmd/hello", srcs = glob(["**/*.go"]))
`,
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// buildGoBinary builds //:hello with home as the action's home folder and tmp as its TMPDIR, in a
// disk cache of its own (the key differs with HOME anyway), and returns the exit code, the
// command's output and the action's log.
func buildGoBinary(t *testing.T, root, home, tmp string) (code int, output, log string) {
	t.Helper()
	xdg := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", xdg)
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	args := []string{"build", "--progress=none", "--action-env=HOME=" + home, "--action-env=TMPDIR=" + tmp, "//:hello"}
	code = run(ctx, args, &env{stdout: &stdout, stderr: &stderr, ctx: ctx, cwd: root})
	logs, _ := filepath.Glob(filepath.Join(xdg, "hepbuild", "output", "*", "logs", "hello.log"))
	if len(logs) == 1 {
		data, err := os.ReadFile(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		log = string(data)
	}
	return code, stdout.String() + stderr.String(), log
}

var goCachesLine = regexp.MustCompile(`(?m)^go_binary: GOCACHE=(.*) GOMODCACHE=(.*)$`)

// goCachesUsed returns the GOCACHE and GOMODCACHE the action reported.
func goCachesUsed(t *testing.T, log string) (gocache, gomodcache string) {
	t.Helper()
	m := goCachesLine.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the go_binary action did not say which caches it used; its log:\n%s", log)
	}
	return m[1], m[2]
}

// plant makes a folder holding a file, as another user preparing a poisoned cache would, owned by
// uid and with mode perm.
func plant(t *testing.T, dir string, uid int, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "planted"), []byte("a compiled package\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "planted"), dir} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
}

// listing describes every file below dir, so that a test sees whether anything was added.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, strings.TrimPrefix(p, dir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// realGoCache returns the go command's build cache on this machine, to link test homes to it so
// that their builds are not cold.
func realGoCache(t *testing.T) string {
	t.Helper()
	out, err := osexec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if !filepath.IsAbs(dir) {
		t.Skipf("go env GOCACHE is %q here, not a folder", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("plants folders owned by another user: needs root")
	}
}

// otherUID owns the planted folders.
const otherUID = 12345

func TestGoBinaryReusesTheUsersGoCache(t *testing.T) {
	needRoot(t)
	root := goBinaryWorkspace(t)
	home := filepath.Join(t.TempDir(), "home")
	userCache := filepath.Join(home, ".cache", "go-build")
	if err := os.MkdirAll(filepath.Dir(userCache), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(realGoCache(t), userCache); err != nil {
		t.Fatal(err)
	}
	// The old, predictable place, prepared by someone else.
	tmp := t.TempDir()
	old := filepath.Join(tmp, "hepbuild-go-0")
	plant(t, old, otherUID, 0o777)
	before := listing(t, old)

	code, output, log := buildGoBinary(t, root, home, tmp)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\nlog:\n%s", code, output, log)
	}
	gocache, gomodcache := goCachesUsed(t, log)
	if gocache != userCache {
		t.Errorf("the action used GOCACHE=%s, want the user's own %s", gocache, userCache)
	}
	// The user has no module cache: hepbuild's own folder, private.
	own := filepath.Join(home, ".cache", "hepbuild-go")
	if gomodcache != filepath.Join(own, "mod") {
		t.Errorf("the action used GOMODCACHE=%s, want %s", gomodcache, filepath.Join(own, "mod"))
	}
	for _, d := range []string{own, filepath.Join(own, "mod")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, mode %v; want a folder of mode 0700", d, err, fi.Mode())
		}
	}
	if diff := listing(t, old); strings.Join(diff, "\n") != strings.Join(before, "\n") {
		t.Errorf("the planted folder %s was used: it now holds %v", old, diff)
	}
	if out, err := osexec.Command(filepath.Join(root, "hepbuild-out", "hello")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("the built command: %v, output %q", err, out)
	}
}

func TestGoBinaryIgnoresAUsersGoCacheOthersCanWrite(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name string
		uid  int
		perm fs.FileMode
	}{
		{"owned by another user", otherUID, 0o755},
		{"world-writable", 0, 0o777},
		{"group-writable", 0, 0o775},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := goBinaryWorkspace(t)
			home := filepath.Join(t.TempDir(), "home")
			userCache := filepath.Join(home, ".cache", "go-build")
			plant(t, userCache, tc.uid, tc.perm)
			before := listing(t, userCache)
			// hepbuild's own folder, prepared as a first build would make it, linked to the
			// machine's cache so the build is not cold.
			own := filepath.Join(home, ".cache", "hepbuild-go")
			if err := os.Mkdir(own, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(realGoCache(t), filepath.Join(own, "build")); err != nil {
				t.Fatal(err)
			}

			code, output, log := buildGoBinary(t, root, home, t.TempDir())
			if code != 0 {
				t.Fatalf("build: exit %d\n%s\nlog:\n%s", code, output, log)
			}
			if gocache, _ := goCachesUsed(t, log); gocache != filepath.Join(own, "build") {
				t.Errorf("the action used GOCACHE=%s, want hepbuild's own %s", gocache, filepath.Join(own, "build"))
			}
			if after := listing(t, userCache); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the cache %s was used: it now holds %v", userCache, after)
			}
		})
	}
}

func TestGoBinaryRefusesACacheFolderOthersCanWrite(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name       string
		uid        int
		perm       fs.FileMode
		parentPerm fs.FileMode // of ~/.cache
	}{
		{"owned by another user", otherUID, 0o700, 0o755},
		{"world-writable", 0, 0o777, 0o755},
		{"in a folder anyone can write to", 0, 0o700, 0o777},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := goBinaryWorkspace(t)
			home := filepath.Join(t.TempDir(), "home")
			own := filepath.Join(home, ".cache", "hepbuild-go")
			plant(t, own, tc.uid, tc.perm)
			if err := os.Chmod(filepath.Dir(own), tc.parentPerm); err != nil {
				t.Fatal(err)
			}
			before := listing(t, own)

			code, output, log := buildGoBinary(t, root, home, t.TempDir())
			if code != exitBuildFailed {
				t.Fatalf("build: exit %d, want %d (the action refuses the folder)\n%s\nlog:\n%s", code, exitBuildFailed, output, log)
			}
			if want := "refusing to use " + own + " as a Go cache"; !strings.Contains(output, want) {
				t.Errorf("the error does not say %q:\n%s", want, output)
			}
			if after := listing(t, own); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the folder %s was used: it now holds %v", own, after)
			}
			if _, err := os.Lstat(filepath.Join(root, "hepbuild-out", "hello")); err == nil {
				t.Errorf("a failed build left hepbuild-out/hello")
			}
		})
	}
}

// The caches are found when the action runs, so the action is the same for every user: nothing
// of the home folder, the cache folder or TMPDIR of whoever runs hepbuild is in it.
func TestGoBinaryActionIsTheSameForEveryUser(t *testing.T) {
	root := goBinaryWorkspace(t)
	var first string
	for i, user := range []string{"alice", "bob"} {
		home := filepath.Join(t.TempDir(), user)
		t.Setenv("HOME", home)
		t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
		t.Setenv("TMPDIR", filepath.Join(home, "tmp"))
		r := hepbuild(t, root, "aquery", "--output=json", "//:hello")
		if r.code != 0 {
			t.Fatalf("aquery as %s: exit %d\n%s", user, r.code, r.stderr)
		}
		if strings.Contains(r.stdout, home) {
			t.Errorf("the action of %s names their home folder %s:\n%s", user, home, r.stdout)
		}
		if i == 0 {
			first = r.stdout
		} else if r.stdout != first {
			t.Errorf("the action differs between users:\n%s\nand\n%s", first, r.stdout)
		}
	}
}
