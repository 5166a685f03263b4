package starlark

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/graph"
)

// TestSourceFiles: what analysis finds out about a source file with one
// lstat (lstatSource) and checkInside: missing, executable, a folder, a link
// inside the workspace, and a link or a linked folder leading out of it.
func TestSourceFiles(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "far.txt"), []byte("far\n"), 0o644)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, WorkspaceFile), nil, 0o644)
	os.MkdirAll(filepath.Join(root, "pkg/dir"), 0o755)
	os.WriteFile(filepath.Join(root, "pkg/plain.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "pkg/run.sh"), []byte("x"), 0o755)
	os.Symlink("plain.txt", filepath.Join(root, "pkg/near.txt"))
	os.Symlink(filepath.Join(outside, "far.txt"), filepath.Join(root, "pkg/far.txt"))
	os.Symlink(outside, filepath.Join(root, "pkg/away"))
	os.WriteFile(filepath.Join(root, "pkg/BUILD"), []byte(`
task(name = "m", srcs = ["missing.txt"], outs = ["o"], cmd = "true")
`), 0o644)
	tests := []struct {
		src     string
		wantErr string
		exec    bool
		dir     bool
	}{
		{src: "plain.txt"},
		{src: "run.sh", exec: true},
		{src: "dir", dir: true},
		{src: "near.txt"},
		{src: "m", wantErr: "missing input file pkg/missing.txt"}, // the task reading it
		{src: "far.txt", wantErr: "outside the workspace"},
		{src: "away/far.txt", wantErr: "input pkg/away/far.txt is a symbolic link to " + filepath.Join(outside, "far.txt")},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			l, err := NewLoader(root, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			lbl := graph.Label{Pkg: "pkg", Name: tt.src}
			g, err := l.Analyze([]graph.Label{lbl})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Analyze(%s) = %v, want an error with %q", lbl, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			outs := g.TargetOutputs[0]
			if len(outs) != 1 || outs[0].Path != "pkg/"+tt.src || !outs[0].Source || outs[0].Dir != tt.dir {
				t.Errorf("outputs = %+v, want the source pkg/%s (folder %v)", outs, tt.src, tt.dir)
			}
			a := &analyzer{l: l, done: newConfiguredMap(1)}
			c, err := a.configure(lbl, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.executable != nil; got != tt.exec {
				t.Errorf("executable = %v, want %v", got, tt.exec)
			}
		})
	}
}
