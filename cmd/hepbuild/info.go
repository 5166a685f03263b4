package main

import (
	"fmt"
	"runtime"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/sandbox"
)

// InfoCmd prints where things are.
type InfoCmd struct {
	LocationFlags
	SandboxFlags
	Key string `arg:"" optional:"" help:"Print only this item (workspace, workspace_name, output_base, output_path, disk_cache, sandbox, resource_limits, cores)."`
}

// Run prints the items.
func (c *InfoCmd) Run(g *Globals, e *env) error {
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	limits := "memory and cpu limits enforced through cgroups v2"
	if err := sandbox.CgroupStatus(); err != nil {
		limits = "walltime only; memory and cpu not enforced: " + err.Error()
	}
	items := [][2]string{
		{"workspace", w.root},
		{"workspace_name", w.loader.WorkspaceName()},
		{"output_base", c.outputBase(w.root)},
		{"output_path", w.root + "/" + exec.OutDir},
		{"disk_cache", c.diskCache()},
		{"sandbox", c.sandboxInfo()},
		{"resource_limits", limits},
		{"cores", fmt.Sprint(runtime.NumCPU())},
	}
	for _, it := range items {
		if c.Key == "" {
			fmt.Fprintf(e.stdout, "%s: %s\n", it[0], it[1])
		} else if c.Key == it[0] {
			fmt.Fprintln(e.stdout, it[1])
			return nil
		}
	}
	if c.Key != "" {
		return badInput("info: unknown item %q", c.Key)
	}
	return nil
}
