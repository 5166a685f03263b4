package sandbox

import (
	"context"
	"path/filepath"
)

// None runs the command in the exec root itself, without isolation: it sees
// the whole workspace and writes its outputs in place. Safe for concurrent use.
type None struct{}

// Name returns "none".
func (None) Name() string { return "none" }

// Run creates the output folders and runs the command in the exec root.
func (None) Run(ctx context.Context, s Spec) (Result, error) {
	if err := makeOutputDirs(s.ExecRoot, s); err != nil {
		return Result{}, err
	}
	if s.Image != "" {
		// The workspace and the output base hepbuild-out links to are
		// bound where they are, writable, as None gives them.
		rw := []string{s.ExecRoot, filepath.Join(s.ExecRoot, "hepbuild-out")}
		return runInImage(ctx, s, s.ExecRoot, rw, s.HostPaths)
	}
	return runProcess(ctx, s, s.ExecRoot)
}

// Close stops the reapers kept for reuse (see runProcess). Runs may
// follow; they start new ones.
func (None) Close() error {
	stopReapers()
	return nil
}
