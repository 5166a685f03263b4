package starlark

import (
	"fmt"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// Environment analyses an environment() target on its own and returns the
// software environment it declares, for --default-environment. Its files
// must be source files: they are not produced by any build.
func (l *Loader) Environment(lbl graph.Label) (*exec.Environment, error) {
	a := &analyzer{l: l, done: newConfiguredMap(0)}
	c, err := a.configure(lbl, nil)
	if err != nil {
		return nil, err
	}
	env := c.env()
	if env == nil {
		return nil, fmt.Errorf("%s is a %s, not an environment() target", lbl, c.target.Class())
	}
	for _, f := range env.Files {
		if !f.Source {
			return nil, fmt.Errorf("%s: file %s is generated; a default environment can only use source files", lbl, f.Path)
		}
	}
	return env, nil
}
