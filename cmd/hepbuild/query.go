package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/hepbuild/hepbuild/graph/query"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// QueryCmd answers questions about the target graph without analysing or running anything.
type QueryCmd struct {
	Output string   `short:"o" default:"label" enum:"label,label_kind,location,package,build,graph,json,minrank,maxrank" help:"Output format: label, label_kind, location, package, build, graph, json, minrank, maxrank."`
	Expr   []string `arg:"" name:"expression" help:"A query expression, e.g. 'deps(//analysis:datacards)' or 'kind(task, //...)'."`
}

// Run evaluates the expression and prints the result.
func (c *QueryCmd) Run(g *Globals, e *env) error {
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	expr := strings.Join(c.Expr, " ")
	r, err := query.Run(e.ctx, w.loader, expr, w.workingPkg)
	if err != nil {
		if _, ok := err.(*query.SyntaxError); ok {
			return badInput("%v", err)
		}
		if isLoadError(err) {
			return err
		}
		return badInput("query %s: %v", expr, err)
	}
	// The completion index before the result, not beside it: a query piped
	// into head dies of SIGPIPE at the first write after head is done, and
	// would leave no index (or half of a temporary one).
	recordCompletionIndexes((&LocationFlags{OutputBase: pathValue(os.Getenv("HEPBUILD_OUTPUT_BASE"))}).outputBase(w.root), w.loader)
	err = query.Write(e.stdout, r, c.Output, query.WriteOptions{FormatRule: hstarlark.FormatRule})
	if err != nil {
		return err
	}
	if len(r.Targets) == 0 {
		fmt.Fprintln(e.stderr, "INFO: empty query result")
	}
	return nil
}
