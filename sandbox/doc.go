// Package sandbox runs processes: isolation strategies (none, symlink, linux)
// and software environments. It is the only package that uses os/exec.
package sandbox
