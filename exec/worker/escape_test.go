package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
)

func putBlob(t *testing.T, c cache.Cache, b []byte) cache.Digest {
	t.Helper()
	d := cache.FromBytes(b)
	if err := c.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

// A description can make an input a link to any folder (declared input
// links may lead anywhere); a file it then places below that link must not
// be written through it, outside the worker's scratch folder, whatever
// the key check decides afterwards.
func TestWorkerWritesNothingThroughInputLinks(t *testing.T) {
	ctx := context.Background()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	payload := putBlob(t, c, []byte("pwned\n"))

	t.Run("env file", func(t *testing.T) {
		root := t.TempDir()
		if err := os.Symlink(victim, filepath.Join(root, "l")); err != nil {
			t.Fatal(err)
		}
		a := bashAction("true", []exec.Artifact{{Path: "l", Source: true, Symlink: true}}, "hepbuild-out/x")
		ref := submit(t, c, root, a)
		spec, _ := json.Marshal(&exec.Spec{Version: exec.SpecVersion, Action: a,
			Links:    map[string]string{"l": victim},
			EnvFiles: []exec.SpecFile{{Path: "l/env-file", Digest: payload}}})
		w, out := newWorker(t, c, "t")
		w.Run(ctx, []Ref{{Action: ref.Action, Spec: putBlob(t, c, spec)}})
		if _, err := os.Lstat(filepath.Join(victim, "env-file")); err == nil {
			t.Errorf("the worker wrote %s, outside its scratch folder; it said:\n%s", filepath.Join(victim, "env-file"), out)
		}
	})

	t.Run("input tree", func(t *testing.T) {
		// A tree whose folder holds a file "l" (a link, by the Spec) and a
		// folder "l" with a file in it.
		sub := &repb.Directory{Files: []*repb.FileNode{{Name: "tree-file", Digest: payload.ToProto()}}}
		sb, _ := proto.Marshal(sub)
		top := &repb.Directory{
			Files:       []*repb.FileNode{{Name: "l", Digest: exec.LinkDigest(victim).ToProto()}},
			Directories: []*repb.DirectoryNode{{Name: "l", Digest: putBlob(t, c, sb).ToProto()}},
		}
		tb, _ := proto.Marshal(top)
		action := &repb.Action{InputRootDigest: putBlob(t, c, tb).ToProto()}
		ab, _ := proto.Marshal(action)
		a := bashAction("true", []exec.Artifact{{Path: "l", Source: true, Symlink: true}}, "hepbuild-out/x")
		spec, _ := json.Marshal(&exec.Spec{Version: exec.SpecVersion, Action: a, Links: map[string]string{"l": victim}})
		w, out := newWorker(t, c, "t")
		w.Run(ctx, []Ref{{Action: putBlob(t, c, ab), Spec: putBlob(t, c, spec)}})
		if _, err := os.Lstat(filepath.Join(victim, "tree-file")); err == nil {
			t.Errorf("the worker wrote %s, outside its scratch folder; it said:\n%s", filepath.Join(victim, "tree-file"), out)
		}
	})
}

// An environment file the action's environment does not have is not in
// the key: a description naming one would put a file the key does not
// describe in front of the command, and its result under the honest key.
func TestWorkerRefusesEnvFilesOutsideTheEnvironment(t *testing.T) {
	ctx := context.Background()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	a := bashAction("cat extra > hepbuild-out/x 2>/dev/null; true", nil, "hepbuild-out/x")
	ref := submit(t, c, root, a)
	spec, _ := json.Marshal(&exec.Spec{Version: exec.SpecVersion, Action: a,
		EnvFiles: []exec.SpecFile{{Path: "extra", Digest: putBlob(t, c, []byte("forged\n"))}}})
	w, out := newWorker(t, c, "t")
	w.Run(ctx, []Ref{{Action: ref.Action, Spec: putBlob(t, c, spec)}})
	if res, err := c.GetActionResult(ctx, ref.Action); err == nil {
		got := cache.FromProto(res.OutputFiles[0].Digest)
		t.Errorf("a result was stored under the honest key (output %s; the honest run makes %s); the worker said:\n%s", got, cache.FromBytes(nil), out)
	}
}
