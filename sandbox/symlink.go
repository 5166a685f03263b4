package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Symlink runs each command in a private folder that holds only the declared
// inputs, as symlinks at their exec-root paths, and the output folders
// (folders are reused from one command to the next; see slot). The
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

// Run prepares a slot holding the inputs as symlinks, runs the command in
// it, moves the declared outputs into the exec root and clears the rest.
func (l *Symlink) Run(ctx context.Context, s Spec) (Result, error) {
	p := poolFor(l.Root)
	sl, err := p.acquire(s, false)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var runErr error
	if s.Image != "" {
		res, runErr = runInImage(ctx, s, sl.ExecRoot, []string{sl.ExecRoot}, append(append([]string(nil), sl.targets...), s.HostPaths...))
	} else {
		res, runErr = runProcess(ctx, s, sl.ExecRoot)
	}
	if err := sl.collect(s); err != nil && runErr == nil {
		runErr = err
	}
	// The command could write anywhere in its tree.
	p.release(sl, []string{"."})
	return res, runErr
}

// Close removes the sandbox folders and stops the reapers kept for reuse.
// Runs may follow; they create new ones.
func (l *Symlink) Close() error {
	stopReapers()
	return poolFor(l.Root).close()
}

func insideLinked(p string, linked map[string]bool) bool {
	for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
		if linked[d] {
			return true
		}
	}
	return false
}

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
