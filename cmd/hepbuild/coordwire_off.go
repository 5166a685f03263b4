//go:build !hepbuild_coord

package main

import "github.com/hepbuild/hepbuild/exec"

// coordinate does nothing until the coordinator's client is merged (see
// coordwire.go).
func (rp *reporting) coordinate(runner *exec.Runner) {}
