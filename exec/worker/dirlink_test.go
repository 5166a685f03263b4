package worker

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

// dirInputs also lists folders, as the runner does for a generated folder:
// a link in it is an entry identified by its target, never followed.
type dirInputs struct{ fileInputs }

func (d dirInputs) ListDir(a exec.Artifact) ([]exec.FileEntry, error) {
	root := filepath.Join(string(d.fileInputs), a.Path)
	var out []exec.FileEntry
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if e.Type()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			out = append(out, exec.FileEntry{Path: filepath.ToSlash(rel), Digest: exec.LinkDigest(t)})
			return err
		}
		b, err := os.ReadFile(p)
		fi, _ := e.Info()
		out = append(out, exec.FileEntry{Path: filepath.ToSlash(rel), Digest: cache.FromBytes(b), Executable: fi.Mode()&0o111 != 0})
		return err
	})
	return out, err
}

// An output folder may hold links that stay inside it; an action reading
// that folder gets them as links in its input tree. Sent to a worker, it
// must run there as it runs here: the link uploaded and made again on the
// node, not read through and refused as an input that changed.
func TestWorkerInputFolderWithLink(t *testing.T) {
	ctx := context.Background()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write(t, root, "hepbuild-out/pkg/d/data.txt", "events\n", 0o644)
	if err := os.Symlink("data.txt", filepath.Join(root, "hepbuild-out/pkg/d/latest.txt")); err != nil {
		t.Fatal(err)
	}
	a := bashAction("cat hepbuild-out/pkg/d/latest.txt > hepbuild-out/pkg/x", []exec.Artifact{{Path: "hepbuild-out/pkg/d", Dir: true}}, "hepbuild-out/pkg/x")
	in := dirInputs{fileInputs(root)}
	key, err := exec.ComputeKey(a, in)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := exec.UploadInputs(ctx, c, a, key, root, in)
	if err != nil {
		t.Fatalf("uploading the inputs: %v", err)
	}
	w, out := newWorker(t, c, "t")
	if st := w.Run(ctx, []Ref{{Action: key.Digest, Spec: spec}}); st != AllSucceeded {
		t.Fatalf("status %v; the worker said:\n%s", st, out)
	}
}
