package exec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
)

var allStrategies = []string{"none", "symlink", "linux"}

// A link an action writes that leads outside its own outputs fails the
// action, naming it and the link; nothing it points to is copied, stored or
// left behind, and the cache stays in use.
func TestOutputLinkOutsideIsError(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "id_rsa")
	if err := os.WriteFile(outside, []byte("SECRET KEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := exec.Artifact{Path: out("pkg/d"), Dir: true}
	cases := []struct {
		name    string
		script  string
		outs    []exec.Artifact
		wantMsg string // the link named in the error
	}{
		{"environ", "ln -s /proc/self/environ hepbuild-out/pkg/o", nil, "hepbuild-out/pkg/o"},
		{"file-outside", "ln -s " + outside + " hepbuild-out/pkg/o", nil, "hepbuild-out/pkg/o"},
		{"undeclared-source", "ln -s ../../pkg/secret.txt hepbuild-out/pkg/o", nil, "hepbuild-out/pkg/o"},
		{"undeclared-source-abs", `ln -s "$PWD/pkg/secret.txt" hepbuild-out/pkg/o`, nil, "hepbuild-out/pkg/o"},
		{"etc-folder", "ln -s /etc hepbuild-out/pkg/o", nil, "hepbuild-out/pkg/o"},
		{"chain", "ln -s p hepbuild-out/pkg/o; ln -s /etc/hostname hepbuild-out/pkg/p",
			[]exec.Artifact{{Path: out("pkg/o")}, {Path: out("pkg/p")}}, "hepbuild-out/pkg/o"},
		{"other-action-output", "ln -s other.txt hepbuild-out/pkg/o", nil, "hepbuild-out/pkg/o"},
		{"deep-in-folder", "mkdir -p hepbuild-out/pkg/d/a/b/c; ln -s /etc/passwd hepbuild-out/pkg/d/a/b/c/l",
			[]exec.Artifact{dir}, "a/b/c/l"},
		{"dotdot-out-of-folder", "mkdir -p hepbuild-out/pkg/d/a; ln -s ../../../../pkg/secret.txt hepbuild-out/pkg/d/a/l",
			[]exec.Artifact{dir}, "a/l"},
		{"folder-to-etc", "ln -s /etc hepbuild-out/pkg/d/etc", []exec.Artifact{dir}, "etc"},
		{"chain-in-folder", "ln -s b hepbuild-out/pkg/d/a; ln -s ../../../pkg/secret.txt hepbuild-out/pkg/d/b",
			[]exec.Artifact{dir}, "hepbuild-out/pkg/d"},
		// sub/.. is the folder's parent for the kernel, though it reads as
		// the folder itself: only resolving link by link sees that.
		{"dotdot-through-link", "echo out > hepbuild-out/pkg/x; ln -s . hepbuild-out/pkg/d/sub; ln -s sub/../x hepbuild-out/pkg/d/l",
			[]exec.Artifact{dir, {Path: out("pkg/x")}}, "l"},
		{"output-folder-is-link", "rmdir hepbuild-out/pkg/d; ln -s /etc hepbuild-out/pkg/d", []exec.Artifact{dir}, "hepbuild-out/pkg/d"},
		{"dangling", "ln -s nothing.txt hepbuild-out/pkg/d/l", []exec.Artifact{dir}, "l"},
	}
	for _, strategy := range allStrategies {
		for _, tc := range cases {
			t.Run(strategy+"/"+tc.name, func(t *testing.T) {
				if strategy == "linux" && strings.Contains(tc.script, "hepbuild-out/pkg/d;") {
					t.Skip("the linux sandbox mounts the output folder: a command cannot replace it")
				}
				c := newMemCache()
				w := newWorkspace(t, strategy, c)
				w.write("pkg/secret.txt", "WORKSPACE SECRET\n")
				other := shell("other", "echo other > hepbuild-out/pkg/other.txt", nil, out("pkg/other.txt"))
				a := shell("bad", tc.script, nil, out("pkg/o"))
				if tc.outs != nil {
					a.Outputs = tc.outs
				}
				got, err := w.build(other, a)
				var ae *exec.ActionError
				if !errors.As(err, &ae) || ae.Action != a {
					t.Fatalf("build error = %v, want the failure of //pkg:bad", err)
				}
				if msg := err.Error(); !strings.Contains(msg, "//pkg:bad") || !strings.Contains(msg, tc.wantMsg) || !strings.Contains(msg, "symbolic link") {
					t.Errorf("error %q does not name the action, the link %s and what it is", msg, tc.wantMsg)
				}
				if got[1] != exec.OutcomeFailed {
					t.Errorf("outcome = %v, want failed", outcomeNames(got))
				}
				for _, o := range a.Outputs {
					if w.exists(o.Path) {
						t.Errorf("output %s of the failed action was kept", o.Path)
					}
				}
				for _, b := range c.blobs {
					for _, secret := range []string{"SECRET", "root:", "PATH="} {
						if strings.Contains(string(b), secret) {
							t.Errorf("the cache holds %q", b)
						}
					}
				}
				if len(c.ac) != 1 {
					t.Errorf("the cache holds %d action results, want only that of //pkg:other", len(c.ac))
				}
				if len(w.warnings) != 0 {
					t.Errorf("warnings: %q", w.warnings)
				}
			})
		}
	}
}

// A link that stays inside the action's outputs is kept as a link, in the
// output tree and in the cache, and restored as one; the journal sees a
// link as a link.
func TestOutputLinkInsideIsKept(t *testing.T) {
	for _, strategy := range allStrategies {
		t.Run(strategy, func(t *testing.T) {
			for _, c := range []cache.Cache{newMemCache(), openDisk(t)} {
				w := newWorkspace(t, strategy, c)
				a := shell("links", `echo data > hepbuild-out/pkg/a.txt
ln -s a.txt hepbuild-out/pkg/b.txt
ln -s b.txt hepbuild-out/pkg/c.txt
d=hepbuild-out/pkg/d
mkdir -p $d/sub/deep/deeper
echo deep > $d/sub/deep/deeper/f.txt
ln -s deep/deeper/f.txt $d/sub/l
ln -s ../.. $d/sub/deep/up
ln -s sub/l $d/chain`, nil)
				a.Outputs = []exec.Artifact{{Path: out("pkg/a.txt")}, {Path: out("pkg/b.txt")}, {Path: out("pkg/c.txt")}, {Path: out("pkg/d"), Dir: true}}
				use := shell("use", "cat hepbuild-out/pkg/c.txt hepbuild-out/pkg/d/chain hepbuild-out/pkg/d/sub/deep/up/sub/l > hepbuild-out/pkg/use.txt",
					[]string{out("pkg/a.txt"), out("pkg/b.txt"), out("pkg/c.txt")}, out("pkg/use.txt"))
				use.Inputs = append(use.Inputs, exec.Artifact{Path: out("pkg/d"), Dir: true})
				links := map[string]string{"b.txt": "a.txt", "c.txt": "b.txt", "d/sub/l": "deep/deeper/f.txt", "d/sub/deep/up": "../..", "d/chain": "sub/l"}
				check := func(when string) {
					t.Helper()
					for rel, want := range links {
						p := filepath.Join(w.root, out("pkg/"+rel))
						if got, err := os.Readlink(p); err != nil || got != want {
							t.Errorf("%s: %s: link to %q, %v; want a link to %q", when, rel, got, err, want)
						}
					}
					if got := w.read(out("pkg/use.txt")); got != "data\ndeep\ndeep\n" {
						t.Errorf("%s: use.txt = %q", when, got)
					}
				}
				w.mustBuild([]exec.Outcome{executed, executed}, a, use)
				check("after the run")
				w.mustBuild([]exec.Outcome{upToDate, upToDate}, a, use)
				if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
					t.Fatal(err)
				}
				w.mustBuild([]exec.Outcome{cached, cached}, a, use)
				check("after the restore")

				// A changed link target is a changed output, even when both
				// targets hold the same bytes.
				for _, rel := range []string{"pkg/b.txt", "pkg/d/sub/l"} {
					p := filepath.Join(w.root, out(rel))
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink("elsewhere", p); err != nil {
						t.Fatal(err)
					}
					w.mustBuild([]exec.Outcome{cached, upToDate}, a, use)
					check("after " + rel + " was changed")
				}
				// A file where a link belongs is replaced by the link.
				p := filepath.Join(w.root, out("pkg/b.txt"))
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				w.write(out("pkg/b.txt"), "data\n")
				w.mustBuild([]exec.Outcome{cached, upToDate}, a, use)
				check("after a file took the link's place")
			}
		})
	}
}

// A link whose target the action takes from an input: changing the input
// changes the link, and going back restores the old link from the cache.
func TestOutputLinkTargetChangesBetweenBuilds(t *testing.T) {
	for _, strategy := range allStrategies {
		t.Run(strategy, func(t *testing.T) {
			w := newWorkspace(t, strategy, openDisk(t))
			a := shell("pick", `echo one > hepbuild-out/pkg/one.txt; echo two > hepbuild-out/pkg/two.txt
ln -s "$(cat pkg/which)" hepbuild-out/pkg/pick.txt`, []string{"pkg/which"}, out("pkg/one.txt"), out("pkg/two.txt"), out("pkg/pick.txt"))
			for i, which := range []string{"one.txt", "two.txt", "one.txt"} {
				w.write("pkg/which", which)
				want := executed
				if i == 2 {
					want = cached
				}
				w.mustBuild([]exec.Outcome{want}, a)
				if got, err := os.Readlink(filepath.Join(w.root, out("pkg/pick.txt"))); err != nil || got != which {
					t.Errorf("build %d: pick.txt links to %q (%v), want %q", i, got, err, which)
				}
			}
		})
	}
}

// An output that is a hard link to a source file gets an inode of its own:
// the output's read-only mode and the cache's hard link never reach the
// source.
func TestOutputHardLinkToSource(t *testing.T) {
	for _, strategy := range allStrategies {
		t.Run(strategy, func(t *testing.T) {
			w := newWorkspace(t, strategy, openDisk(t))
			w.write("pkg/data.txt", "data\n")
			// The linux sandbox mounts the output folder: the link crosses
			// devices there, and the copy shows the same.
			a := shell("hard", "ln -L pkg/data.txt hepbuild-out/pkg/o.txt || cp pkg/data.txt hepbuild-out/pkg/o.txt", []string{"pkg/data.txt"}, out("pkg/o.txt"))
			w.mustBuild([]exec.Outcome{executed}, a)
			src := filepath.Join(w.root, "pkg/data.txt")
			fi, err := os.Stat(src)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("the source became %v", fi.Mode().Perm())
			}
			ofi, err := os.Stat(filepath.Join(w.root, out("pkg/o.txt")))
			if err != nil {
				t.Fatal(err)
			}
			if os.SameFile(fi, ofi) {
				t.Error("the output still shares the source's inode")
			}
			// Editing the source in place must not change what the cache holds.
			if err := os.WriteFile(src, []byte("edited\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := w.read(out("pkg/o.txt")); got != "data\n" {
				t.Errorf("editing the source changed the output to %q", got)
			}
		})
	}
}

// One action with an output that cannot be stored fails alone, naming the
// action and the path; the cache stays in use for the rest of the build.
func TestUnstorableOutputFailsOnlyItsAction(t *testing.T) {
	cases := map[string]string{
		"fifo":      "mkfifo hepbuild-out/pkg/d/sub/pipe",
		"device":    "ln -s /dev/null hepbuild-out/pkg/d/sub/pipe",
		"proc-mem":  "ln -s /proc/self/mem hepbuild-out/pkg/d/sub/pipe",
		"etc":       "ln -s /etc hepbuild-out/pkg/d/sub/pipe",
		"socket":    `python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("hepbuild-out/pkg/d/sub/pipe")'`,
		"file-fifo": "rm -rf hepbuild-out/pkg/d; mkfifo hepbuild-out/pkg/d",
	}
	for _, strategy := range allStrategies {
		for name, script := range cases {
			t.Run(strategy+"/"+name, func(t *testing.T) {
				if strategy == "linux" && name == "file-fifo" {
					t.Skip("the linux sandbox mounts the output folder: a command cannot replace it")
				}
				if name == "socket" {
					if _, err := os.Stat("/usr/bin/python3"); err != nil {
						t.Skip("no python3 to make a socket")
					}
				}
				c := openDisk(t)
				w := newWorkspace(t, strategy, c)
				bad := shell("bad", "mkdir -p hepbuild-out/pkg/d/sub; echo ok > hepbuild-out/pkg/d/ok.txt; "+script, nil)
				bad.Outputs = []exec.Artifact{{Path: out("pkg/d"), Dir: true}}
				later := shell("later", "echo later > hepbuild-out/pkg/later.txt", nil, out("pkg/later.txt"))
				got, err := w.build(bad, later)
				var ae *exec.ActionError
				if !errors.As(err, &ae) || ae.Action != bad {
					t.Fatalf("build error = %v, want the failure of //pkg:bad", err)
				}
				if msg := err.Error(); !strings.Contains(msg, "//pkg:bad") || !strings.Contains(msg, "hepbuild-out/pkg/d") {
					t.Errorf("error %q does not name the action and the output", msg)
				}
				if diff := outcomeNames(got); diff[0] != "failed" || diff[1] != "executed" {
					t.Errorf("outcomes = %v, want [failed executed]", diff)
				}
				if len(w.warnings) != 0 {
					t.Errorf("warnings: %q", w.warnings)
				}
				if w.exists(out("pkg/d")) {
					t.Error("the failed action's output folder was kept")
				}
				if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
					t.Fatal(err)
				}
				w.mustBuild([]exec.Outcome{cached}, later)
				if got := w.read(out("pkg/later.txt")); got != "later\n" {
					t.Errorf("later.txt = %q", got)
				}
			})
		}
	}
}

// A copy action (ctx.actions.symlink with target_file) still hard-links a
// generated input: only a command's hard links are copied away.
func TestCopyActionKeepsHardLink(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	gen := shell("gen", "echo gen > hepbuild-out/pkg/gen.txt", nil, out("pkg/gen.txt"))
	cp := &exec.Action{Owner: gen.Owner, Mnemonic: "Symlink", Kind: exec.KindSymlink,
		Inputs: []exec.Artifact{{Path: out("pkg/gen.txt")}}, Outputs: []exec.Artifact{{Path: out("pkg/copy.txt")}}}
	w.mustBuild([]exec.Outcome{executed, executed}, gen, cp)
	a, err := os.Stat(filepath.Join(w.root, out("pkg/gen.txt")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(w.root, out("pkg/copy.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Error("the copy of a generated file is no longer a hard link to it")
	}
}

// A cache entry, which may come from a shared cache, is checked as a run
// is: a result whose link leads out of the outputs, at the top or inside a
// folder, is never restored; the action runs instead.
func TestRestoredLinkLeadingOutIsNotUsed(t *testing.T) {
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	a := shell("links", `echo data > hepbuild-out/pkg/a.txt; ln -s a.txt hepbuild-out/pkg/b.txt
mkdir -p hepbuild-out/pkg/d; echo f > hepbuild-out/pkg/d/f; ln -s f hepbuild-out/pkg/d/l`, nil)
	a.Outputs = []exec.Artifact{{Path: out("pkg/a.txt")}, {Path: out("pkg/b.txt")}, {Path: out("pkg/d"), Dir: true}}
	w.mustBuild([]exec.Outcome{executed}, a)
	for _, tamper := range []func(res *repb.ActionResult){
		func(res *repb.ActionResult) { res.OutputSymlinks[0].Target = "/etc/passwd" },
		func(res *repb.ActionResult) {
			// The folder's tree now holds a link to /etc.
			root := &repb.Directory{Symlinks: []*repb.SymlinkNode{{Name: "l", Target: "/etc"}}}
			tree, _ := proto.Marshal(&repb.Tree{Root: root})
			d := cache.FromBytes(tree)
			c.blobs[d] = tree // c.mu is held
			res.OutputDirectories[0].TreeDigest = d.ToProto()
		},
	} {
		c.mu.Lock()
		if len(c.ac) != 1 {
			t.Fatalf("%d action results", len(c.ac))
		}
		for k, b := range c.ac {
			res := &repb.ActionResult{}
			if err := proto.Unmarshal(b, res); err != nil {
				t.Fatal(err)
			}
			tamper(res)
			c.ac[k], _ = proto.Marshal(res)
		}
		c.mu.Unlock()
		if err := os.RemoveAll(filepath.Join(w.base, "out")); err != nil {
			t.Fatal(err)
		}
		w.mustBuild([]exec.Outcome{executed}, a)
		if got, err := os.Readlink(filepath.Join(w.root, out("pkg/b.txt"))); err != nil || got != "a.txt" {
			t.Errorf("b.txt links to %q (%v), want a.txt", got, err)
		}
		if got, err := os.Readlink(filepath.Join(w.root, out("pkg/d/l"))); err != nil || got != "f" {
			t.Errorf("d/l links to %q (%v), want f", got, err)
		}
	}
}
