package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/sandbox"
)

// RunCmd builds one target and runs its executable output.
type RunCmd struct {
	BuildFlags
	Target string   `arg:"" name:"target" help:"The target to build and run: one label, not a pattern."`
	Args   []string `arg:"" optional:"" passthrough:"" name:"args" help:"Arguments for the program, after --."`
}

// programExitError carries the exit status of the program hepbuild run
// ran: it becomes hepbuild's own.
type programExitError struct{ code int }

func (e *programExitError) Error() string {
	return fmt.Sprintf("the program exited with status %d", e.code)
}

// Run builds the target as build would, then runs its executable output
// in the workspace root with the arguments, hepbuild's standard streams
// and environment (plus BUILD_WORKSPACE_DIRECTORY and
// BUILD_WORKING_DIRECTORY, as Bazel sets them).
func (c *RunCmd) Run(g *Globals, e *env) error {
	if pat, err := graph.ParsePattern(c.Target, ""); err == nil && pat.Kind != graph.PatternSingle {
		return badInput("run: %s is a pattern: name the one target to run", c.Target)
	}
	args := c.Args
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if c.RemoteDownload == "minimal" {
		// The program must be on disk to run.
		c.RemoteDownload = "toplevel"
	}
	build := &BuildCmd{BuildFlags: c.BuildFlags, Targets: []string{c.Target}}
	if err := build.Run(g, e); err != nil {
		return err
	}
	f := c.AnalysisFlags
	f.lenient = true
	s, err := analyse(g, &f, e, []string{c.Target}, false)
	if err != nil {
		return err
	}
	root := s.w.root
	targets, roots := s.targets, s.roots
	s.close()
	if len(targets) != 1 {
		var names []string
		for _, t := range targets {
			names = append(names, t.Label.String())
		}
		return badInput("run: %s names %d targets (%s): name the one to run", c.Target, len(targets), strings.Join(names, ", "))
	}
	t := targets[0]
	var exes []string
	for _, r := range roots {
		fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(r.Path)))
		if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			exes = append(exes, r.Path)
		}
	}
	prog, err := pickExecutable(t, exes)
	if err != nil {
		return err
	}
	env := append(os.Environ(), "BUILD_WORKSPACE_DIRECTORY="+root, "BUILD_WORKING_DIRECTORY="+e.cwd)
	code, err := sandbox.RunForeground(sandbox.Foreground{
		Path:   filepath.Join(root, filepath.FromSlash(prog)),
		Args:   args,
		Dir:    root,
		Env:    env,
		Stdin:  e.stdin,
		Stdout: e.stdout,
		Stderr: e.stderr,
	})
	if err != nil {
		return fmt.Errorf("run %s: %w", t.Label, err)
	}
	if code != 0 {
		return silentError{&programExitError{code}}
	}
	return nil
}

// pickExecutable chooses the program among a target's executable outputs:
// the only one, or else the one named like the target, with or without
// an extension (a task's output may not have the target's own name).
func pickExecutable(t *graph.Target, exes []string) (string, error) {
	switch len(exes) {
	case 0:
		return "", badInput("run: %s: %s has no executable output: run needs a target whose output is a program (mode +x)", t.Pos, t.Label)
	case 1:
		return exes[0], nil
	}
	var named []string
	for _, x := range exes {
		b := path.Base(x)
		if b == t.Label.Name || strings.TrimSuffix(b, path.Ext(b)) == t.Label.Name {
			named = append(named, x)
		}
	}
	if len(named) == 1 {
		return named[0], nil
	}
	return "", badInput("run: %s: %s has %d executable outputs and none is named %s: %s", t.Pos, t.Label, len(exes), t.Label.Name, strings.Join(exes, ", "))
}
