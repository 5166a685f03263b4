package worker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/sandbox"
)

// fileInputs digests inputs from an exec root, as the submitting build does.
type fileInputs string

func (root fileInputs) Digest(a exec.Artifact) (cache.Digest, bool, error) {
	p := filepath.Join(string(root), a.Path)
	if a.Symlink {
		t, err := os.Readlink(p)
		return exec.LinkDigest(t), false, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return cache.Digest{}, false, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return cache.Digest{}, false, err
	}
	return cache.FromBytes(b), fi.Mode()&0o111 != 0, nil
}

func write(t *testing.T, root, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// submit keys the action in the submitter's exec root and uploads what a
// worker needs into c, returning the reference a job would carry.
func submit(t *testing.T, c cache.Cache, root string, a *exec.Action) Ref {
	t.Helper()
	key, err := exec.ComputeKey(a, fileInputs(root))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := exec.UploadInputs(context.Background(), c, a, key, root, fileInputs(root))
	if err != nil {
		t.Fatal(err)
	}
	return Ref{Action: key.Digest, Spec: spec}
}

func newWorker(t *testing.T, c cache.Cache, token string) (*Worker, *bytes.Buffer) {
	var out bytes.Buffer
	return &Worker{
		Cache:    c,
		Executor: local.New(sandbox.None{}, local.WithEnvironments(sandbox.NewEnvironments(t.TempDir()))),
		Dir:      t.TempDir(),
		Token:    token,
		Out:      &out,
	}, &out
}

func bashAction(script string, inputs []exec.Artifact, outputs ...string) *exec.Action {
	a := &exec.Action{Mnemonic: "Task", Kind: exec.KindRun, Argv: []string{"/bin/bash", "-c", script}, Inputs: inputs}
	for _, o := range outputs {
		a.Outputs = append(a.Outputs, exec.Artifact{Path: o})
	}
	return a
}

// The worker runs an action it knows only by digest, from a cache, and the
// result it stores is the one a local run gives: same outputs, same key.
func TestWorkerRunsActionFromCache(t *testing.T) {
	ctx := context.Background()
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write(t, root, "ana/in.txt", "events 42\n", 0o644)
	write(t, root, "ana/tool.sh", "#!/bin/bash\ntr a-z A-Z < \"$1\"\n", 0o755)
	if err := os.Symlink("in.txt", filepath.Join(root, "ana/link.txt")); err != nil {
		t.Fatal(err)
	}
	a := bashAction("ana/tool.sh ana/link.txt > hepbuild-out/ana/out.txt; echo made it",
		[]exec.Artifact{{Path: "ana/in.txt", Source: true}, {Path: "ana/link.txt", Source: true, Symlink: true}, {Path: "ana/tool.sh", Source: true}},
		"hepbuild-out/ana/out.txt")
	ref := submit(t, c, root, a)
	w, out := newWorker(t, c, "t1")
	if st := w.Run(ctx, []Ref{ref}); st != AllSucceeded {
		t.Fatalf("status %v; worker said:\n%s", st, out)
	}
	res, err := c.GetActionResult(ctx, ref.Action)
	if err != nil {
		t.Fatalf("no result stored: %v\n%s", err, out)
	}
	if len(res.OutputFiles) != 1 {
		t.Fatalf("outputs %v", res.OutputFiles)
	}
	want := cache.FromBytes([]byte("EVENTS 42\n"))
	if got := cache.FromProto(res.OutputFiles[0].Digest); got != want {
		t.Errorf("output digest %s, want %s", got, want)
	}
	log, err := exec.ReadBlob(ctx, c, cache.FromProto(res.StdoutDigest), 1<<20)
	if err != nil || string(log) != "made it\n" {
		t.Errorf("log %q, %v", log, err)
	}
	// Run again: already there, nothing runs.
	w2, out2 := newWorker(t, c, "t2")
	if st := w2.Run(ctx, []Ref{ref}); st != AllSucceeded || !strings.Contains(out2.String(), "already in the cache") {
		t.Errorf("second run: %v %s", st, out2)
	}
}

// A failing action is recorded under its failure key with its exit code
// and log; the worker exits with "some failed", not "could not run".
func TestWorkerRecordsFailure(t *testing.T) {
	ctx := context.Background()
	c, _ := disk.Open(t.TempDir())
	root := t.TempDir()
	a := bashAction("echo about to fail; exit 7", nil, "hepbuild-out/x")
	ref := submit(t, c, root, a)
	w, out := newWorker(t, c, "tok")
	if st := w.Run(ctx, []Ref{ref}); st != SomeFailed {
		t.Fatalf("status %v\n%s", st, out)
	}
	if _, err := c.GetActionResult(ctx, ref.Action); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("a failure entered the action cache under the action's key: %v", err)
	}
	rec, err := c.GetActionResult(ctx, exec.FailureKey(ref.Action, "tok"))
	if err != nil {
		t.Fatalf("no failure record: %v", err)
	}
	if rec.ExitCode != 7 {
		t.Errorf("exit code %d", rec.ExitCode)
	}
	log, _ := exec.ReadBlob(ctx, c, cache.FromProto(rec.StdoutDigest), 1<<20)
	if !strings.Contains(string(log), "about to fail") {
		t.Errorf("log %q", log)
	}
	if _, err := c.GetActionResult(ctx, exec.FailureKey(ref.Action, "other")); err == nil {
		t.Error("another submission's token finds the record")
	}
}

// A description that does not make the key it came with is refused, and
// nothing runs: a forged Spec cannot put a result under another key.
func TestWorkerRefusesForgedSpec(t *testing.T) {
	ctx := context.Background()
	c, _ := disk.Open(t.TempDir())
	root := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	honest := bashAction("echo ok > hepbuild-out/x", nil, "hepbuild-out/x")
	ref := submit(t, c, root, honest)
	forged := bashAction("touch "+marker+"; echo evil > hepbuild-out/x", nil, "hepbuild-out/x")
	spec, err := exec.UploadInputs(ctx, c, forged, mustKey(t, forged, root), root, fileInputs(root))
	if err != nil {
		t.Fatal(err)
	}
	w, out := newWorker(t, c, "t")
	if st := w.Run(ctx, []Ref{{Action: ref.Action, Spec: spec}}); st != CouldNotRun {
		t.Fatalf("status %v\n%s", st, out)
	}
	if !strings.Contains(out.String(), "does not have the key") {
		t.Errorf("worker said %s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the forged command ran")
	}
	if _, err := c.GetActionResult(ctx, ref.Action); err == nil {
		t.Error("a result was stored under the honest key")
	}
}

func mustKey(t *testing.T, a *exec.Action, root string) *exec.Key {
	k, err := exec.ComputeKey(a, fileInputs(root))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An input missing from the cache (a cache pruned under the job) is
// "could not run", with the input named.
func TestWorkerMissingInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, _ := disk.Open(dir)
	root := t.TempDir()
	write(t, root, "in", "data", 0o644)
	a := bashAction("cat in > hepbuild-out/x", []exec.Artifact{{Path: "in", Source: true}}, "hepbuild-out/x")
	ref := submit(t, c, root, a)
	// Drop the input's blob from the cache.
	d := cache.FromBytes([]byte("data"))
	p, err := c.BlobPath(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	w, out := newWorker(t, c, "t")
	if st := w.Run(ctx, []Ref{ref}); st != CouldNotRun {
		t.Fatalf("status %v\n%s", st, out)
	}
	if !strings.Contains(out.String(), "fetching input in") {
		t.Errorf("worker said %s", out)
	}
}
