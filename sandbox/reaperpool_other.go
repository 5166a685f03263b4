//go:build !linux

package sandbox

import "context"

// runProcess runs s.Argv in dir, in its own process group, and returns once
// the process has exited and its group is gone. Reapers need child
// subreapers, which only Linux has (see package reaper): here a process
// that leaves the group (a daemon calling setsid) survives the command.
func runProcess(ctx context.Context, s Spec, dir string) (Result, error) {
	return launchProcess(ctx, s, launch{dir: dir})
}

// stopReapers does nothing: there are no reapers here.
func stopReapers() {}
