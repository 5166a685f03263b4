package main

import (
	"fmt"
	osexec "os/exec"
	"runtime"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/sandbox"
)

// InfoCmd prints where things are.
type InfoCmd struct {
	LocationFlags
	SandboxFlags
	RemoteFlags
	Key string `arg:"" optional:"" help:"Print only this item (workspace, workspace_name, output_base, output_path, disk_cache, cache_tiers, sandbox, resource_limits, batch_systems, cores)."`
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
		{"cache_tiers", c.cacheTiers(e)},
		{"sandbox", c.sandboxInfo()},
		{"resource_limits", limits},
		{"batch_systems", batchSystems()},
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

// cacheTiers says which caches a build would use, in order, and whether
// each answered: the disk cache, then --remote-cache.
func (c *InfoCmd) cacheTiers(e *env) string {
	tiers := []string{"disk " + c.diskCache()}
	if c.RemoteCache == "" {
		return tiers[0]
	}
	r, opts, err := c.open()
	if err != nil {
		return tiers[0] + "; remote: " + err.Error()
	}
	defer r.Close()
	what, err := checkRemote(e.ctx, r, opts)
	if err != nil {
		tiers = append(tiers, fmt.Sprintf("remote %s (did not answer: %v)", r.Name(), err))
	} else {
		tiers = append(tiers, fmt.Sprintf("remote %s (answered: %s)", r.Name(), what))
	}
	return strings.Join(tiers, ", then ")
}

// batchSystems says which batch systems this machine can submit to: those
// whose submit command is on PATH (a login node has them, a laptop none).
func batchSystems() string {
	var have, lack []string
	for _, n := range executors {
		tool, ok := submitTool[n]
		if !ok {
			continue
		}
		if _, err := osexec.LookPath(tool); err == nil {
			have = append(have, n)
		} else {
			lack = append(lack, n)
		}
	}
	if len(have) == 0 {
		return "none (no " + strings.Join(submitToolsOf(lack), ", ") + " on PATH)"
	}
	return strings.Join(have, ", ") + " (submit commands on PATH; not: " + strings.Join(lack, ", ") + ")"
}

func submitToolsOf(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = submitTool[n]
	}
	return out
}
