package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A source file that appears later under the name of an output makes the
// next build an analysis error naming both, not a null build that keeps
// shadowing it.
func TestSourceAddedUnderOutputNameIsAnError(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"pkg/BUILD.hep": `task(name = "x", outs = ["sub/data.txt"], cmd = "echo generated > $@")` + "\n",
	})
	if r := hepbuild(t, root, "//pkg:x", "--progress=none"); r.code != 0 {
		t.Fatalf("first build: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.MkdirAll(filepath.Join(root, "pkg/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "pkg/sub/data.txt"), []byte("source\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := hepbuild(t, root, "//pkg:x", "--progress=none")
	want := `pkg/BUILD.hep:1:5: //pkg:x: generated file "sub/data.txt" in rule "x" conflicts with existing source file pkg/sub/data.txt`
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, want)
	}
}

// A task whose output is a link out of its outputs fails with the target
// and the link named, through the whole command line.
func TestTaskOutputLinkOutsideFails(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"pkg/BUILD.hep": `task(name = "x", outs = ["x.txt"], cmd = "ln -s /etc/passwd $@")
task(name = "ok", outs = ["a.txt", "b.txt"], cmd = "echo a > $(location a.txt); ln -s a.txt $(location b.txt)")
`,
	})
	for _, sb := range []string{"none", "symlink", "linux"} {
		r := hepbuild(t, root, "//pkg:x", "--progress=none", "--sandbox", sb)
		if r.code != 1 || !strings.Contains(r.stderr, "//pkg:x") || !strings.Contains(r.stderr, `hepbuild-out/pkg/x.txt is a symbolic link to "/etc/passwd"`) {
			t.Errorf("--sandbox %s: exit %d, stderr:\n%s", sb, r.code, r.stderr)
		}
		if _, err := os.Lstat(filepath.Join(root, "hepbuild-out/pkg/x.txt")); err == nil {
			t.Errorf("--sandbox %s: the link was kept", sb)
		}
		r = hepbuild(t, root, "//pkg:ok", "--progress=none", "--sandbox", sb)
		if r.code != 0 {
			t.Fatalf("--sandbox %s: exit %d\n%s", sb, r.code, r.stderr)
		}
		if got, err := os.Readlink(filepath.Join(root, "hepbuild-out/pkg/b.txt")); err != nil || got != "a.txt" {
			t.Errorf("--sandbox %s: b.txt links to %q (%v), want a.txt", sb, got, err)
		}
		if r := hepbuild(t, root, "clean"); r.code != 0 {
			t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
		}
	}
}

// hepbuild clean removes a link in the output tree, never what it points to.
func TestCleanDoesNotFollowOutputLinks(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"pkg/BUILD.hep": `task(name = "d", outs = ["d.txt"], cmd = "echo d > $@")` + "\n",
	})
	if r := hepbuild(t, root, "//pkg:d", "--progress=none"); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	outside := filepath.Join(t.TempDir(), "keep")
	if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "file"), []byte("keep\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "hepbuild-out/pkg/d.txt.link")); err != nil {
		t.Fatal(err)
	}
	if r := hepbuild(t, root, "clean"); r.code != 0 {
		t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "file")); err != nil || string(b) != "keep\n" {
		t.Errorf("clean reached through the link: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(outside, "sub")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("clean changed the folder behind the link: %v, %v", fi, err)
	}
}

// A rule that declares a symbolic link output (declare_symlink) may point
// it anywhere, by ctx.actions.symlink(target_path=) or by its command; the
// link is kept, cached and restored as a link, never followed.
func TestDeclaredSymlinkOutputs(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"pkg/rules.star": `
def _impl(ctx):
    direct = ctx.actions.declare_symlink(ctx.label.name + ".direct")
    ctx.actions.symlink(output = direct, target_path = ctx.attr.target)
    made = ctx.actions.declare_symlink(ctx.label.name + ".made")
    ctx.actions.run_shell(outputs = [made], command = "ln -s %s %s" % (ctx.attr.target, made.path))
    use = ctx.actions.declare_file(ctx.label.name + ".use")
    ctx.actions.run_shell(inputs = [direct, made], outputs = [use],
        command = "readlink %s %s > %s" % (direct.path, made.path, use.path))
    return [DefaultInfo(files = depset([direct, made, use]))]

link = rule(implementation = _impl, attrs = {"target": attr.string()})

def _bad_impl(ctx):
    out = ctx.actions.declare_symlink(ctx.label.name + ".link")
    ctx.actions.run_shell(outputs = [out], command = "echo not a link > " + out.path)
    return [DefaultInfo(files = depset([out]))]

bad = rule(implementation = _bad_impl)
`,
		"pkg/BUILD.hep": `load(":rules.star", "bad", "link")
link(name = "l", target = "/cvmfs/sft.cern.ch/lcg/views")
bad(name = "b")
`,
	})
	check := func(when string) {
		t.Helper()
		for _, f := range []string{"l.direct", "l.made"} {
			if got, err := os.Readlink(filepath.Join(root, "hepbuild-out/pkg", f)); err != nil || got != "/cvmfs/sft.cern.ch/lcg/views" {
				t.Errorf("%s: %s links to %q (%v)", when, f, got, err)
			}
		}
		b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/pkg/l.use"))
		if string(b) != "/cvmfs/sft.cern.ch/lcg/views\n/cvmfs/sft.cern.ch/lcg/views\n" {
			t.Errorf("%s: l.use = %q", when, b)
		}
	}
	for _, sb := range []string{"none", "symlink", "linux"} {
		if r := hepbuild(t, root, "//pkg:l", "--progress=none", "--sandbox", sb); r.code != 0 {
			t.Fatalf("--sandbox %s: exit %d\n%s", sb, r.code, r.stderr)
		}
		check("--sandbox " + sb + " after the run")
		if r := hepbuild(t, root, "clean"); r.code != 0 {
			t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
		}
		if r := hepbuild(t, root, "//pkg:l", "--progress=none", "--sandbox", sb); r.code != 0 {
			t.Fatalf("--sandbox %s: exit %d\n%s", sb, r.code, r.stderr)
		}
		check("--sandbox " + sb + " after the restore")
		r := hepbuild(t, root, "//pkg:b", "--progress=none", "--sandbox", sb)
		if r.code != 1 || !strings.Contains(r.stderr, "declared symlink output hepbuild-out/pkg/b.link is not a symbolic link") {
			t.Errorf("--sandbox %s: exit %d, stderr:\n%s", sb, r.code, r.stderr)
		}
	}
	// A new target is a new link, and what uses it runs again.
	if err := os.WriteFile(filepath.Join(root, "pkg/BUILD.hep"), []byte(`load(":rules.star", "link")
link(name = "l", target = "../elsewhere")
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := hepbuild(t, root, "//pkg:l", "--progress=none"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/pkg/l.use")); string(b) != "../elsewhere\n../elsewhere\n" {
		t.Errorf("after the target changed: l.use = %q", b)
	}
}

// An output link pointed elsewhere, even at the same file, is not what the
// build made: the next build, null build check included, restores it.
func TestRetargetedOutputLinkIsRestored(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"pkg/BUILD.hep": `task(name = "ok", outs = ["a.txt", "b.txt"], cmd = "echo a > $(location a.txt); ln -s a.txt $(location b.txt)")` + "\n",
	})
	if r := hepbuild(t, root, "//pkg:ok", "--progress=none"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	link := filepath.Join(root, "hepbuild-out/pkg/b.txt")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("./a.txt", link); err != nil {
		t.Fatal(err)
	}
	if r := hepbuild(t, root, "//pkg:ok", "--progress=none"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got, err := os.Readlink(link); err != nil || got != "a.txt" {
		t.Errorf("b.txt links to %q (%v), want a.txt", got, err)
	}
}

// A link declared by one target can sit where another target's outputs
// have their folder. Built in one build, that is an analysis error; built
// one after the other, hepbuild removes the link (an output of its own)
// instead of writing, removing or restoring through it: the folder it
// points to is never touched, by build or by clean.
func TestOutputNeverWrittenThroughAnotherTargetsLink(t *testing.T) {
	victim := t.TempDir()
	bashrc := filepath.Join(victim, ".bashrc")
	if err := os.WriteFile(bashrc, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := testWorkspace(t, map[string]string{
		"p/rl.star": `
def _l(ctx):
    s = ctx.actions.declare_symlink(ctx.attr.out)
    ctx.actions.symlink(output = s, target_path = ctx.attr.tgt)
    return [DefaultInfo(files = depset([s]))]

lnk = rule(implementation = _l, attrs = {"out": attr.string(), "tgt": attr.string()})

def _w(ctx):
    f = ctx.actions.declare_file("h/written")
    ctx.actions.write(f, "written\n")
    return [DefaultInfo(files = depset([f]))]

wr = rule(implementation = _w)
`,
		"p/BUILD.hep": `load(":rl.star", "lnk", "wr")
lnk(name = "door", out = "h", tgt = "` + victim + `")
task(name = "evil", outs = ["h/.bashrc"], cmd = "echo evil > $@")
wr(name = "write")
task(name = "both", srcs = [":door", ":evil"], outs = ["both.txt"], cmd = "touch $@")
`,
	})
	r := hepbuild(t, root, "//p:both", "--progress=none", "--sandbox=none")
	if r.code != 2 || !strings.Contains(r.stderr, "output hepbuild-out/p/h/.bashrc is inside hepbuild-out/p/h, an output of //p:door") {
		t.Errorf("door and evil in one build: exit %d, want 2 and an analysis error:\n%s", r.code, r.stderr)
	}
	for _, sb := range []string{"none", "symlink", "linux"} {
		for _, target := range []string{"//p:evil", "//p:write"} {
			if r := hepbuild(t, root, "//p:door", "--progress=none", "--sandbox", sb); r.code != 0 {
				t.Fatalf("--sandbox %s //p:door: exit %d\n%s", sb, r.code, r.stderr)
			}
			// Built, then restored from the cache after clean.
			for _, round := range []string{"run", "restore"} {
				if r := hepbuild(t, root, target, "--progress=none", "--sandbox", sb); r.code != 0 {
					t.Fatalf("--sandbox %s %s (%s): exit %d\n%s", sb, target, round, r.code, r.stderr)
				}
				if fi, err := os.Lstat(filepath.Join(root, "hepbuild-out/p/h")); err != nil || !fi.IsDir() {
					t.Errorf("--sandbox %s %s (%s): hepbuild-out/p/h is not a real folder (%v)", sb, target, round, err)
				}
				if r := hepbuild(t, root, "//p:door", "--progress=none", "--sandbox", sb); r.code != 0 {
					t.Fatalf("--sandbox %s //p:door again: exit %d\n%s", sb, r.code, r.stderr)
				}
				if r := hepbuild(t, root, "clean", target); r.code != 0 {
					t.Fatalf("clean %s: exit %d\n%s", target, r.code, r.stderr)
				}
				ents, _ := os.ReadDir(victim)
				if b, err := os.ReadFile(bashrc); err != nil || string(b) != "mine\n" || len(ents) != 1 {
					t.Fatalf("--sandbox %s %s (%s): the folder the link points to changed: .bashrc %q (%v), %d entries", sb, target, round, b, err, len(ents))
				}
			}
		}
	}
}

// An output edited in place to the same size, with its old mtime given
// back, is not taken as unchanged: the journal compares ctime too, so the
// action that made it runs again and what reads it never gets a result
// stored under the recorded content's key.
func TestEditedOutputWithRestoredMtimeIsNoticed(t *testing.T) {
	for _, sb := range []string{"none", "linux"} {
		t.Run(sb, func(t *testing.T) {
			root := testWorkspace(t, map[string]string{"p/BUILD": `
task(name = "A", outs = ["A.txt"], cmd = "echo AAAA > $@")
task(name = "U", srcs = [":A"], outs = ["U.txt"], cmd = "cat $< > $@")
`})
			build := func(target string) {
				t.Helper()
				if r := hepbuild(t, root, target, "--progress=none", "--sandbox", sb); r.code != 0 {
					t.Fatalf("%s: exit %d\n%s", target, r.code, r.stderr)
				}
			}
			build("//p:U")
			a := filepath.Join(root, "hepbuild-out/p/A.txt")
			fi, err := os.Stat(a)
			if err != nil {
				t.Fatal(err)
			}
			// Edit A.txt in place, same size, and give back its mtime.
			os.Chmod(a, 0o644)
			if err := os.WriteFile(a, []byte("EVIL\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(a, fi.ModTime(), fi.ModTime())
			if r := hepbuild(t, root, "clean", "//p:U"); r.code != 0 {
				t.Fatalf("clean: %d %s", r.code, r.stderr)
			}
			build("//p:U")
			if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/p/U.txt")); string(b) != "AAAA\n" {
				t.Errorf("U.txt = %q after A.txt was edited with its mtime restored; want A rebuilt and U from AAAA", b)
			}
		})
	}
}
