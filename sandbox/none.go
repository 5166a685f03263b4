package sandbox

import "context"

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
	return runProcess(ctx, s, s.ExecRoot)
}
