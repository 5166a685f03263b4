package main

import (
	"fmt"
	"runtime/debug"
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the module version (or "devel" in a source checkout) and the Go version.
func (c *VersionCmd) Run(e *env) error {
	v, gov := "devel", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(e.stdout, "hepbuild %s (%s)\n", v, gov)
	return nil
}
