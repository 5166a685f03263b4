package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Symlink runs each command in a private folder that holds only the declared
// inputs, as symlinks at their exec-root paths, and the output folders. The
// declared outputs are moved back into the exec root afterwards; anything
// else the command wrote is discarded. Undeclared inputs are not visible,
// though a command can still reach them by absolute path: this is not a
// security boundary. Safe for concurrent use.
type Symlink struct {
	// Root holds one folder per running command, e.g. <output base>/sandbox.
	Root string
}

// NewSymlink returns the symlink strategy with its folders under root.
func NewSymlink(root string) *Symlink { return &Symlink{Root: root} }

// Name returns "symlink".
func (*Symlink) Name() string { return "symlink" }

// Run builds the symlink tree, runs the command in it, moves the declared
// outputs into the exec root and removes the tree.
func (l *Symlink) Run(ctx context.Context, s Spec) (Result, error) {
	t, err := newTree(l.Root, s, false)
	if err != nil {
		return Result{}, err
	}
	defer t.remove()
	var res Result
	var runErr error
	if s.Image != "" {
		res, runErr = runInImage(ctx, s, t.ExecRoot, []string{t.ExecRoot}, append(append([]string(nil), t.targets...), s.HostPaths...))
	} else {
		res, runErr = runProcess(ctx, s, t.ExecRoot)
	}
	if err := t.collect(s); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// tree is a private exec root: <root>/<id>/execroot, holding the declared
// inputs as links. The id folder is left for the linux strategy to hold
// a private /tmp and its mount points beside the execroot.
type tree struct {
	Dir      string // <root>/<id>
	ExecRoot string // <root>/<id>/execroot
	// targets are the host paths of the inputs that are symlinked; a
	// sandbox that hides the workspace must show them.
	targets []string
	// mounts are the inputs a hard-linked tree could not link (folders,
	// files on other file systems): their place in the tree is an empty
	// mount point, and src (a host path) must be mounted there.
	mounts []mountPoint
}

// mountPoint is an input to mount at its exec-root relative path.
type mountPoint struct{ src, rel string }

// newTree builds the private exec root. With hard, inputs are hard links
// where the file system allows (folders and other file systems are
// symlinked): a hard link shows the file even where its path is hidden.
func newTree(root string, s Spec, hard bool) (*tree, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating sandbox root: %w", err)
	}
	dir, err := os.MkdirTemp(root, "run-")
	if err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	t := &tree{Dir: dir, ExecRoot: filepath.Join(dir, "execroot")}
	if err := t.link(s, hard); err != nil {
		t.remove()
		return nil, err
	}
	if err := makeOutputDirs(t.ExecRoot, s); err != nil {
		t.remove()
		return nil, err
	}
	return t, nil
}

// link links every input at its exec-root path to its real path. An input
// inside an input folder that is already linked is reachable through it.
func (t *tree) link(s Spec, hard bool) error {
	if err := os.MkdirAll(t.ExecRoot, 0o755); err != nil {
		return fmt.Errorf("creating sandbox: %w", err)
	}
	// Links point at real paths, not through hepbuild-out, which is a
	// symlink in the exec root but a real folder in the sandbox. Both are
	// resolved once: file system calls are what a sandbox costs.
	execReal := hostOf(s.ExecRoot)
	outReal := hostOf(filepath.Join(s.ExecRoot, "hepbuild-out"))
	inputs := append([]string(nil), s.Inputs...)
	sort.Strings(inputs) // folders before what they hold
	linked := map[string]bool{}
	made := map[string]bool{t.ExecRoot: true}
	for _, in := range inputs {
		in = filepath.Clean(in)
		if linked[in] || insideLinked(in, linked) {
			continue
		}
		target := filepath.Join(execReal, in)
		if rest, ok := strings.CutPrefix(in, "hepbuild-out/"); ok {
			target = filepath.Join(outReal, rest)
		}
		link := filepath.Join(t.ExecRoot, in)
		if d := filepath.Dir(link); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("linking input %s: %w", in, err)
			}
			made[d] = true
		}
		linked[in] = true
		if hard {
			if os.Link(target, link) == nil {
				continue
			}
			if err := makeMountPoint(target, link); err != nil {
				return fmt.Errorf("linking input %s: %w", in, err)
			}
			t.mounts = append(t.mounts, mountPoint{src: target, rel: in})
			continue
		}
		if err := os.Symlink(target, link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("linking input %s: %w", in, err)
		}
		t.targets = append(t.targets, target)
	}
	return nil
}

// makeMountPoint creates an empty folder or file at p to mount target on.
func makeMountPoint(target, p string) error {
	fi, err := os.Stat(target)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.Mkdir(p, 0o755)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}

func insideLinked(p string, linked map[string]bool) bool {
	for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
		if linked[d] {
			return true
		}
	}
	return false
}

// collect moves the declared outputs that exist into the exec root,
// replacing what is there. Missing outputs are left for the caller to report.
func (t *tree) collect(s Spec) error {
	paths := append(append([]string(nil), s.Outputs...), s.OutputDirs...)
	for _, p := range paths {
		src := filepath.Join(t.ExecRoot, p)
		if _, err := os.Lstat(src); err != nil {
			continue
		}
		dst := filepath.Join(s.ExecRoot, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
		if err := removeAll(dst); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
	}
	return nil
}

func (t *tree) remove() { _ = removeAll(t.Dir) }

// makeOutputDirs creates the folders of the outputs and the output folders.
func makeOutputDirs(root string, s Spec) error {
	for _, o := range s.Outputs {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(o)), 0o755); err != nil {
			return fmt.Errorf("creating folder of output %s: %w", o, err)
		}
	}
	for _, d := range s.OutputDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("creating output folder %s: %w", d, err)
		}
	}
	return nil
}

// removeAll is os.RemoveAll that also removes folders a command made
// read-only.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}
