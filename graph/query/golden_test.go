package query

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/graph"
)

// goldenSource loads the workspace testdata/ws. It is nil until a package
// that may import the Starlark loader provides one: graph must not import
// starlark, so the loader's own tests run CheckGolden(dir, loader) instead
// (see starlark/query_golden_test.go).
var goldenSource func(t *testing.T, dir string) graph.PackageSource

func TestGolden(t *testing.T) {
	if goldenSource == nil {
		t.Skip("no package source for testdata/ws here: the Starlark loader's tests run query.CheckGolden on it")
	}
	for _, err := range CheckGolden("testdata", goldenSource(t, filepath.Join("testdata", "ws"))) {
		t.Error(err)
	}
}

// TestGoldenData checks that the golden answers match queries.txt: one file
// per query, each naming its query, and no stale files.
func TestGoldenData(t *testing.T) {
	gs, err := ReadGolden("testdata")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(gs) {
		t.Errorf("testdata/golden has %d files for %d queries: run testdata/regen.sh", len(files), len(gs))
	}
	covered := map[string]bool{}
	for _, g := range gs {
		e, err := Parse(g.Expr)
		if err != nil {
			t.Errorf("%s: %v", g.File, err)
			continue
		}
		covered[rootFunc(e)] = true
	}
	for _, f := range append(Functions(), "let", "+", "-", "^") {
		if !covered[f] && !coveredInside(gs, f) {
			t.Errorf("no golden query uses %s", f)
		}
	}
}

func rootFunc(e Expr) string {
	switch e := e.(type) {
	case *Call:
		return e.Func
	case *Let:
		return "let"
	case *SetExpr:
		return "set"
	case *Binary:
		return e.Op.String()
	}
	return ""
}

// coveredInside reports whether any golden query uses f anywhere.
func coveredInside(gs []Golden, f string) bool {
	var walk func(Expr) bool
	walk = func(e Expr) bool {
		if rootFunc(e) == f {
			return true
		}
		switch e := e.(type) {
		case *Call:
			for _, a := range e.Args {
				if a.Expr != nil && walk(a.Expr) {
					return true
				}
			}
		case *Let:
			return walk(e.Value) || walk(e.Body)
		case *Binary:
			return walk(e.X) || walk(e.Y)
		}
		return false
	}
	for _, g := range gs {
		if e, err := Parse(g.Expr); err == nil && walk(e) {
			return true
		}
	}
	return false
}

// TestCheckGoldenReportsMismatches runs the golden queries against a source
// that is not the workspace: every query must be reported.
func TestCheckGoldenReportsMismatches(t *testing.T) {
	gs, err := ReadGolden("testdata")
	if err != nil {
		t.Fatal(err)
	}
	errs := CheckGolden("testdata", smallGraph(t))
	if len(errs) != len(gs) {
		t.Errorf("CheckGolden on the wrong graph reported %d of %d queries", len(errs), len(gs))
	}
}

func TestReadGoldenStale(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "golden"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("queries.txt", "# comment\n\n//a:all\n")
	write("golden/01.txt", "# //b:all\n//b:x\n")
	if _, err := ReadGolden(dir); err == nil {
		t.Error("ReadGolden accepted an answer to another query")
	}
	write("golden/01.txt", "# //a:all\n//a:x\n//a:y\n")
	gs, err := ReadGolden(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(gs); got != "[{//a:all golden/01.txt [//a:x //a:y]}]" {
		t.Errorf("ReadGolden = %s", got)
	}
}
