package starlark

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/graph"
)

// TestTaskExtraOnlyWhenSet: a task that sets none of the fields of
// exec.Extra gets an action without one (a million-task analysis would
// otherwise hold a million of them), and one that sets any keeps it.
func TestTaskExtraOnlyWhenSet(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, WorkspaceFile), nil, 0o644)
	os.MkdirAll(filepath.Join(root, "pkg"), 0o755)
	os.WriteFile(filepath.Join(root, "pkg/BUILD"), []byte(`
task(name = "plain", outs = ["p"], cmd = "true > $@")
task(name = "tagged", outs = ["t"], cmd = "true > $@", tags = ["no-cache"])
task(name = "slow", outs = ["s"], cmd = "true > $@", timeout = "2h", retries = 1)
`), 0o644)
	l, err := NewLoader(root, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	g, err := l.Analyze([]graph.Label{{Pkg: "pkg", Name: "plain"}, {Pkg: "pkg", Name: "tagged"}, {Pkg: "pkg", Name: "slow"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range g.Actions {
		switch a.Owner.Name {
		case "plain":
			if a.Extra != nil {
				t.Errorf("%s: Extra = %+v, want nil", a.Owner, *a.Extra)
			}
		case "tagged":
			if x := a.Extras(); len(x.Tags) != 1 || x.Tags[0] != "no-cache" {
				t.Errorf("%s: tags = %q, want [no-cache]", a.Owner, x.Tags)
			}
		case "slow":
			if x := a.Extras(); x.Timeout != 2*time.Hour || x.Retries != 1 {
				t.Errorf("%s: timeout %s retries %d, want 2h and 1", a.Owner, x.Timeout, x.Retries)
			}
		}
	}
}
