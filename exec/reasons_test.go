package exec_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
)

// TestRunnerReasons: the runner says why each action it runs does, as
// explain would: never run, an input changed, outputs gone; and says
// nothing for an action that is up to date.
func TestRunnerReasons(t *testing.T) {
	w := newWorkspace(t, "none", nil)
	var mu sync.Mutex
	var got [][]string
	var keys []string
	w.configure = func(r *exec.Runner) {
		r.Reasons = func(a *exec.Action, key string, why []string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, why)
			keys = append(keys, key)
		}
	}
	last := func() []string {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return nil
		}
		g := got[len(got)-1]
		got = nil
		return g
	}
	w.write("pkg/in.txt", "one\n")
	a := shell("a", "cat pkg/in.txt > "+out("pkg/a.txt"), []string{"pkg/in.txt"}, out("pkg/a.txt"))

	w.mustBuild([]exec.Outcome{executed}, a)
	if why := last(); strings.Join(why, "|") != "never run here before" {
		t.Errorf("first run: reasons %q, want never run here before", why)
	}
	if len(keys) != 1 || !strings.Contains(keys[0], "/") {
		t.Errorf("keys %q, want one hash/size", keys)
	}

	w.mustBuild([]exec.Outcome{upToDate}, a)
	if why := last(); why != nil {
		t.Errorf("up to date: told reasons %q, want none", why)
	}

	w.write("pkg/in.txt", "two\n")
	w.mustBuild([]exec.Outcome{executed}, a)
	if why := last(); len(why) != 1 || !strings.HasPrefix(why[0], "input changed: pkg/in.txt") {
		t.Errorf("after an edit: reasons %q, want input changed: pkg/in.txt", why)
	}

	if err := os.Remove(filepath.Join(w.root, out("pkg/a.txt"))); err != nil {
		t.Fatal(err)
	}
	w.mustBuild([]exec.Outcome{executed}, a)
	if why := last(); len(why) != 1 || !strings.Contains(why[0], "outputs are missing") {
		t.Errorf("after removing the output: reasons %q, want outputs missing", why)
	}
}
