package exec_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/folder"
	"github.com/hepbuild/hepbuild/cache/tiered"
	"github.com/hepbuild/hepbuild/exec"
)

// TestRemoteResultKeepsOnlyDeclaredOutputs: a group member with write
// access to a shared file:// cache adds to a good result an output the
// action does not declare (a path out of the output tree, with its blob
// there too), a stderr blob and a log claimed to be a terabyte. Another
// member restores the declared output; the extra output is neither
// downloaded nor recorded in their disk cache, and the log beyond the
// bound of a restored log is not asked for (which made the whole result
// a miss).
func TestRemoteResultKeepsOnlyDeclaredOutputs(t *testing.T) {
	extra := []byte("not declared by the action\n")
	extraDigest := cache.FromBytes(extra)
	for name, tc := range map[string]struct {
		lie func(*repb.ActionResult)
		// inFlight: the folder refuses a result whose blobs it lacks, so
		// this lie is told by an in-process wrapper as the result is read.
		inFlight bool
	}{
		"extra output": {lie: func(res *repb.ActionResult) {
			res.OutputFiles = append(res.OutputFiles, &repb.OutputFile{Path: "../../evil.txt", Digest: extraDigest.ToProto()})
			res.OutputSymlinks = append(res.OutputSymlinks, &repb.OutputSymlink{Path: "/tmp/evil-link", Target: "/etc"})
			res.StderrDigest = extraDigest.ToProto()
		}},
		"huge log": {inFlight: true, lie: func(res *repb.ActionResult) {
			res.StdoutDigest = &repb.Digest{Hash: strings.Repeat("ab", 32), SizeBytes: 1 << 40}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			shared := filepath.Join(t.TempDir(), "shared")
			writer, err := disk.Open(shared)
			if err != nil {
				t.Fatal(err)
			}
			a := shell("a", "echo made-a; tr a-z A-Z < pkg/src1.txt > hepbuild-out/pkg/a.txt", []string{"pkg/src1.txt"}, out("pkg/a.txt"))
			w := newWorkspace(t, "symlink", writer)
			w.write("pkg/src1.txt", "one\n")
			w.mustBuild([]exec.Outcome{executed}, a)
			keys, _ := filepath.Glob(filepath.Join(shared, "ac.v2", "*", "*"))
			if len(keys) != 1 {
				t.Fatalf("shared cache holds %d results, want 1", len(keys))
			}
			key := cache.Digest{Hash: filepath.Base(keys[0])}
			ctx := context.Background()
			res, err := writer.GetActionResult(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := writer.Put(ctx, extraDigest, strings.NewReader(string(extra))); err != nil {
				t.Fatal(err)
			}
			if !tc.inFlight {
				tc.lie(res)
			}
			if err := writer.PutActionResult(ctx, key, res); err != nil {
				t.Fatal(err)
			}

			mine, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := folder.Open("file://"+shared, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var rem remote.Remote = r
			if tc.inFlight {
				rem = lyingResults{Remote: r, lie: tc.lie}
			}
			tier := tiered.New(mine, rem, tiered.Options{})
			defer tier.Close()
			w2 := newWorkspace(t, "symlink", tier)
			w2.write("pkg/src1.txt", "one\n")
			w2.mustBuild([]exec.Outcome{cached}, a)
			if got := w2.read(out("pkg/a.txt")); got != "ONE\n" {
				t.Errorf("a.txt = %q", got)
			}
			if ok, _ := mine.Contains(ctx, extraDigest); ok {
				t.Errorf("the blob of an output the action does not declare was downloaded")
			}
			got, err := mine.GetActionResult(ctx, key)
			if err != nil {
				t.Fatalf("the restored result is not in the disk cache: %v", err)
			}
			if len(got.OutputFiles) != 1 || got.OutputFiles[0].Path != out("pkg/a.txt") || len(got.OutputSymlinks) != 0 ||
				got.StderrDigest != nil || got.StdoutDigest.GetSizeBytes() > 1<<20 {
				t.Errorf("the disk cache holds what the action does not make: %v", got)
			}
			for _, p := range []string{filepath.Join(w2.root, "..", "evil.txt"), "/tmp/evil-link"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

// lyingResults is an in-process remote that alters every action result
// it reads from a real one.
type lyingResults struct {
	remote.Remote
	lie func(*repb.ActionResult)
}

func (l lyingResults) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	res, err := l.Remote.GetActionResult(ctx, action)
	if err == nil {
		l.lie(res)
	}
	return res, err
}

// TestMalformedRemoteDigestKeepsDiskCache: a remote result (told by an
// in-process wrapper over a real file:// remote) whose output digest is
// not a digest, an uppercase or a path-like hash or a negative size, is
// a miss: the action runs, and the disk cache, which refuses such a
// digest, stays on and stores the run's result. So is an output file
// without a digest.
func TestMalformedRemoteDigestKeepsDiskCache(t *testing.T) {
	for name, bad := range map[string]*repb.Digest{
		"path":      {Hash: "../../../../etc/passwd", SizeBytes: 4},
		"uppercase": {Hash: strings.ToUpper(cache.FromBytes([]byte("ONE\n")).Hash), SizeBytes: 4},
		"negative":  {Hash: cache.FromBytes([]byte("ONE\n")).Hash, SizeBytes: -1},
		"none":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			shared := filepath.Join(t.TempDir(), "shared")
			writer, err := disk.Open(shared)
			if err != nil {
				t.Fatal(err)
			}
			a := shell("a", "tr a-z A-Z < pkg/src1.txt > hepbuild-out/pkg/a.txt", []string{"pkg/src1.txt"}, out("pkg/a.txt"))
			w := newWorkspace(t, "symlink", writer)
			w.write("pkg/src1.txt", "one\n")
			w.mustBuild([]exec.Outcome{executed}, a)

			mine, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := folder.Open("file://"+shared, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			lying := lyingResults{Remote: r, lie: func(res *repb.ActionResult) {
				for _, f := range res.OutputFiles {
					f.Digest = bad
				}
			}}
			tier := tiered.New(mine, lying, tiered.Options{})
			defer tier.Close()
			w2 := newWorkspace(t, "symlink", tier)
			w2.write("pkg/src1.txt", "one\n")
			w2.mustBuild([]exec.Outcome{executed}, a)
			for _, msg := range w2.warnings {
				if strings.Contains(msg, "cache failed") {
					t.Errorf("a lie turned the disk cache off: %s", msg)
				}
			}
			if err := os.RemoveAll(filepath.Join(w2.base, "out")); err != nil {
				t.Fatal(err)
			}
			w2.mustBuild([]exec.Outcome{cached}, a)
		})
	}
}

// TestRemoteTreeThatMultipliesIsAMiss: a Tree is a DAG, so a remote
// result's output folder can name the same subfolder twice at every level:
// a few hundred bytes that expand to 2^depth files. Restoring it is a
// miss, decided before anything is written; the folder's entries are
// bounded (lowered here so that the expansion before the bound existed
// stays small enough to run).
func TestRemoteTreeThatMultipliesIsAMiss(t *testing.T) {
	defer exec.SetMaxTreeEntries(1000)()
	shared := filepath.Join(t.TempDir(), "shared")
	writer, err := disk.Open(shared)
	if err != nil {
		t.Fatal(err)
	}
	a := shell("a", "mkdir -p hepbuild-out/pkg/tree; echo x > hepbuild-out/pkg/tree/f", nil)
	a.Outputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
	w := newWorkspace(t, "symlink", writer)
	w.mustBuild([]exec.Outcome{executed}, a)
	keys, _ := filepath.Glob(filepath.Join(shared, "ac.v2", "*", "*"))
	if len(keys) != 1 {
		t.Fatalf("shared cache holds %d results, want 1", len(keys))
	}
	key := cache.Digest{Hash: filepath.Base(keys[0])}
	ctx := context.Background()
	res, err := writer.GetActionResult(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	put := func(m proto.Message) cache.Digest {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		d := cache.FromBytes(b)
		if err := writer.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	x := cache.FromBytes([]byte("x\n"))
	level := &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: x.ToProto()}}}
	tree := &repb.Tree{}
	for i := 0; i < 12; i++ {
		tree.Children = append(tree.Children, level)
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(level)
		d := cache.FromBytes(b).ToProto()
		level = &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "a", Digest: d}, {Name: "b", Digest: d}}}
	}
	tree.Root = level
	res.OutputDirectories[0].TreeDigest = put(tree).ToProto()
	if err := writer.PutActionResult(ctx, key, res); err != nil {
		t.Fatal(err)
	}

	mine, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := folder.Open("file://"+shared, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tier := tiered.New(mine, r, tiered.Options{})
	defer tier.Close()
	w2 := newWorkspace(t, "symlink", tier)
	w2.mustBuild([]exec.Outcome{executed}, a)
	if got := w2.read(out("pkg/tree/f")); got != "x\n" {
		t.Errorf("tree/f = %q", got)
	}
	for _, msg := range w2.warnings {
		if strings.Contains(msg, "cache failed") {
			t.Errorf("a lie turned the disk cache off: %s", msg)
		}
	}
}

// TestRemoteFolderWithoutTreeKeepsDiskCache: a remote result (told by an
// in-process wrapper over a real file:// remote) whose output folder has
// no Tree digest, or a malformed one, is a miss; the disk cache stays on.
func TestRemoteFolderWithoutTreeKeepsDiskCache(t *testing.T) {
	for name, bad := range map[string]*repb.Digest{
		"none":      nil,
		"malformed": {Hash: "../../tree", SizeBytes: 10},
	} {
		t.Run(name, func(t *testing.T) {
			shared := filepath.Join(t.TempDir(), "shared")
			writer, err := disk.Open(shared)
			if err != nil {
				t.Fatal(err)
			}
			a := shell("a", "mkdir -p hepbuild-out/pkg/tree; echo x > hepbuild-out/pkg/tree/f", nil)
			a.Outputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
			w := newWorkspace(t, "symlink", writer)
			w.mustBuild([]exec.Outcome{executed}, a)

			mine, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := folder.Open("file://"+shared, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			lying := lyingResults{Remote: r, lie: func(res *repb.ActionResult) {
				for _, d := range res.OutputDirectories {
					d.TreeDigest = bad
				}
			}}
			tier := tiered.New(mine, lying, tiered.Options{})
			defer tier.Close()
			w2 := newWorkspace(t, "symlink", tier)
			w2.mustBuild([]exec.Outcome{executed}, a)
			for _, msg := range w2.warnings {
				if strings.Contains(msg, "cache failed") {
					t.Errorf("a lie turned the disk cache off: %s", msg)
				}
			}
			if err := os.RemoveAll(filepath.Join(w2.base, "out")); err != nil {
				t.Fatal(err)
			}
			w2.mustBuild([]exec.Outcome{cached}, a)
		})
	}
}

// TestRemoteTreeFileWithoutDigestKeepsDiskCache: a Tree on a shared
// file:// cache whose file has no digest is a miss, not a failure of the
// disk cache.
func TestRemoteTreeFileWithoutDigestKeepsDiskCache(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	writer, err := disk.Open(shared)
	if err != nil {
		t.Fatal(err)
	}
	a := shell("a", "mkdir -p hepbuild-out/pkg/tree; echo x > hepbuild-out/pkg/tree/f", nil)
	a.Outputs = []exec.Artifact{{Path: out("pkg/tree"), Dir: true}}
	w := newWorkspace(t, "symlink", writer)
	w.mustBuild([]exec.Outcome{executed}, a)
	keys, _ := filepath.Glob(filepath.Join(shared, "ac.v2", "*", "*"))
	if len(keys) != 1 {
		t.Fatalf("shared cache holds %d results, want 1", len(keys))
	}
	key := cache.Digest{Hash: filepath.Base(keys[0])}
	ctx := context.Background()
	res, err := writer.GetActionResult(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&repb.Tree{Root: &repb.Directory{Files: []*repb.FileNode{{Name: "f"}}}})
	if err != nil {
		t.Fatal(err)
	}
	d := cache.FromBytes(b)
	if err := writer.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	res.OutputDirectories[0].TreeDigest = d.ToProto()
	if err := writer.PutActionResult(ctx, key, res); err != nil {
		t.Fatal(err)
	}
	mine, err := disk.Open(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := folder.Open("file://"+shared, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tier := tiered.New(mine, r, tiered.Options{})
	defer tier.Close()
	w2 := newWorkspace(t, "symlink", tier)
	w2.mustBuild([]exec.Outcome{executed}, a)
	for _, msg := range w2.warnings {
		if strings.Contains(msg, "cache failed") {
			t.Errorf("a lie turned the disk cache off: %s", msg)
		}
	}
}
