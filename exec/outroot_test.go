package exec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
)

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

	users := t.TempDir()
	if err := os.MkdirAll(filepath.Join(users, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(users, "pkg", "b.txt")
	if err := os.WriteFile(mine, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its own output is where hepbuild looks for it, through either link.
	swap := shell("swap", `echo A > hepbuild-out/pkg/a.txt
cp hepbuild-out/pkg/a.txt `+users+`/pkg/a.txt
rm hepbuild-out
ln -s `+users+` hepbuild-out`, nil, out("pkg/a.txt"))
	w.mustBuild([]exec.Outcome{executed, cached}, swap, b)
	if got, err := os.ReadFile(mine); err != nil || string(got) != "mine\n" {
		t.Errorf("the user's b.txt = %q, %v: the restored output went through the command's link", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(w.base, "out", "pkg", "b.txt")); err != nil || string(got) != "TWO\n" {
		t.Errorf("b in the output tree = %q, %v; want TWO", got, err)
	}
}
