// Package sandbox runs processes: isolation strategies (none, symlink, linux)
// and software environments. It is the only package that uses os/exec.
//
// A Strategy runs one command described by a Spec. Every strategy runs the
// command in its own process group, kills the whole group on cancellation or
// timeout (SIGTERM, then SIGKILL after a grace period) and kills whatever is
// left in the group once the command has exited, so no action leaves
// processes behind.
package sandbox
