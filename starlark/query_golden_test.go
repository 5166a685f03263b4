package starlark

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/graph/query"
)

// TestQueryGolden loads the query test workspace with this loader and checks
// every query's answer against the one Bazel gave on the same graph (with
// genrule for task), stored in graph/query/testdata/golden.
func TestQueryGolden(t *testing.T) {
	dir := filepath.Join("..", "graph", "query", "testdata")
	l, err := NewLoader(filepath.Join(dir, "ws"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	goldens, err := query.ReadGolden(dir)
	if err != nil || len(goldens) < 40 {
		t.Fatalf("read %d golden answers (err %v), want the full set", len(goldens), err)
	}
	errs := query.CheckGolden(dir, l)
	for _, err := range errs {
		t.Error(err)
	}
}
