package exec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// usersFile makes a folder of the user's holding pkg/name ("mine"), and
// returns the folder and the file.
func usersFile(t *testing.T, name string) (users, mine string) {
	t.Helper()
	users = t.TempDir()
	if err := os.MkdirAll(filepath.Join(users, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine = filepath.Join(users, "pkg", name)
	if err := os.WriteFile(mine, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return users, mine
}

// swapLink is a command, run without the sandbox, that writes its output
// pkg/name and then points the workspace's hepbuild-out at users. Its own
// output is where hepbuild looks for it, through either link.
func swapLink(name, users string) *exec.Action {
	return shell("swap", `echo S > hepbuild-out/pkg/`+name+`
cp hepbuild-out/pkg/`+name+` `+users+`/pkg/`+name+`
rm hepbuild-out
ln -s `+users+` hepbuild-out`, nil, out("pkg/"+name))
}

// TestOutputsStayInTheOutputTree: a command run without the sandbox points
// the workspace's hepbuild-out link at a folder of the user's; the outputs
// hepbuild restores after it still go to the output tree: nothing of
// hepbuild's lands in the user's folder, and nothing there is replaced.
func TestOutputsStayInTheOutputTree(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	w.write("pkg/src2.txt", "two\n")
	b := chain()[1]
	w.mustBuild([]exec.Outcome{executed}, b)
	w.clean()

	users, mine := usersFile(t, "b.txt")
	swap := swapLink("a.txt", users)
	w.mustBuild([]exec.Outcome{executed, cached}, swap, b)
	if got, err := os.ReadFile(mine); err != nil || string(got) != "mine\n" {
		t.Errorf("the user's b.txt = %q, %v: the restored output went through the command's link", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(w.base, "out", "pkg", "b.txt")); err != nil || string(got) != "TWO\n" {
		t.Errorf("b in the output tree = %q, %v; want TWO", got, err)
	}
}

// TestNothingRunsThroughASwappedLink: once a command run without the
// sandbox pointed hepbuild-out at a folder of the user's, an action that
// hepbuild itself carries out (a copy here; the sandboxes move outputs
// the same way) would write through that link: it fails instead, before
// anything is written, and the user's file stays as it was.
func TestNothingRunsThroughASwappedLink(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	users, mine := usersFile(t, "c.txt")
	swap := swapLink("s.txt", users)
	cp := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "c"}, Mnemonic: "Symlink", Kind: exec.KindSymlink,
		Inputs: []exec.Artifact{{Path: out("pkg/s.txt")}}, Outputs: []exec.Artifact{{Path: out("pkg/c.txt")}}}
	_, err := w.build(swap, cp)
	var ae *exec.ActionError
	if !errors.As(err, &ae) || ae.Action != cp || !strings.Contains(ae.Reason, "no longer links") {
		t.Errorf("build: %v; want the copy's failure saying hepbuild-out was changed", err)
	}
	if got, err := os.ReadFile(mine); err != nil || string(got) != "mine\n" {
		t.Errorf("the user's c.txt = %q, %v: the copy wrote through the command's link", got, err)
	}
}

// TestOutputParentNamedLikeTheLink: an output folder of the root package
// may be called hepbuild-out (hepbuild-out/hepbuild-out/x.txt). Reached
// in the output tree itself, that folder is a folder like any other: a
// link found there (a command run without the sandbox can put one) is
// replaced, never followed, when the output is restored.
func TestOutputParentNamedLikeTheLink(t *testing.T) {
	w := newWorkspace(t, "none", openDisk(t))
	x := shell("x", "echo X > hepbuild-out/hepbuild-out/x.txt", nil, out("hepbuild-out/x.txt"))
	x.Owner = graph.Label{Name: "x"}
	w.mustBuild([]exec.Outcome{executed}, x)
	w.clean()

	users := t.TempDir()
	mine := filepath.Join(users, "x.txt")
	if err := os.WriteFile(mine, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.base, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(users, filepath.Join(w.base, "out", exec.OutDir)); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{cached}, x)
	if got, err := os.ReadFile(mine); err != nil || string(got) != "mine\n" {
		t.Errorf("the user's x.txt = %q, %v: the restore went through the link in the output tree", got, err)
	}
	if fi, err := os.Lstat(filepath.Join(w.base, "out", exec.OutDir)); err != nil || !fi.IsDir() {
		t.Errorf("out/hepbuild-out is %v, %v; want a real folder", fi, err)
	}
}
