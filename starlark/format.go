package starlark

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bazelbuild/buildtools/build"
	"github.com/bazelbuild/buildtools/tables"

	"github.com/hepbuild/hepbuild/graph"
)

// Format returns the canonical formatting of a BUILD, WORKSPACE.hep, .star or
// .bzl file (name decides which dialect), or a syntax error naming the line.
func Format(name string, src []byte) ([]byte, error) {
	f, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	return build.FormatWithRewriter(rewriter(), f), nil
}

// parse reads a BUILD, WORKSPACE.hep, .star or .bzl file (name decides
// which dialect).
func parse(name string, src []byte) (*build.File, error) {
	base := filepath.Base(name)
	if strings.HasSuffix(base, ".star") || strings.HasSuffix(base, ".bzl") {
		return build.ParseBzl(name, src)
	}
	return build.ParseBuild(name, src)
}

// rewriter is buildtools' canonical rewriter, except that it keeps the
// order of a task's srcs and outs, as it keeps a genrule's: $(SRCS) and
// $(OUTS) hand them to the command in the written order, so sorting them
// would change commands (and their results).
func rewriter() *build.Rewriter {
	deny := map[string]bool{"task.srcs": true, "task.outs": true}
	for k, v := range tables.SortableDenylist {
		deny[k] = v
	}
	return &build.Rewriter{
		IsLabelArg:                      tables.IsLabelArg,
		LabelDenyList:                   tables.LabelDenylist,
		IsSortableListArg:               tables.IsSortableListArg,
		SortableDenylist:                deny,
		SortableAllowlist:               tables.SortableAllowlist,
		NamePriority:                    tables.NamePriority,
		StripLabelLeadingSlashes:        tables.StripLabelLeadingSlashes,
		ShortenAbsoluteLabelsToRelative: tables.ShortenAbsoluteLabelsToRelative,
	}
}

// FormatRule prints the rule target t as the BUILD file call that declares
// it (its explicit attributes, sorted), after a "# location" comment line.
func FormatRule(t *graph.Target, location string) []byte {
	call := &build.CallExpr{X: &build.Ident{Name: t.RuleClass}, ForceMultiLine: true}
	call.List = append(call.List, assign("name", &build.StringExpr{Value: t.Label.Name}))
	for _, a := range t.Attrs {
		if a.Explicit && a.Name != "name" {
			call.List = append(call.List, assign(a.Name, buildValue(a.Value)))
		}
	}
	call.Comments.Before = []build.Comment{{Token: "# " + location}}
	f := &build.File{Type: build.TypeBuild, Stmt: []build.Expr{call}}
	return build.FormatWithoutRewriting(f)
}

func assign(name string, v build.Expr) build.Expr {
	return &build.AssignExpr{LHS: &build.Ident{Name: name}, Op: "=", RHS: v}
}

// buildValue is v as a Starlark expression; labels print canonically.
func buildValue(v any) build.Expr {
	str := func(s string) build.Expr { return &build.StringExpr{Value: s} }
	list := func(items []build.Expr) build.Expr {
		return &build.ListExpr{List: items, ForceMultiLine: len(items) > 1}
	}
	switch v := v.(type) {
	case nil:
		return &build.Ident{Name: "None"}
	case string:
		return str(v)
	case int64:
		return &build.LiteralExpr{Token: strconv.FormatInt(v, 10)}
	case bool:
		if v {
			return &build.Ident{Name: "True"}
		}
		return &build.Ident{Name: "False"}
	case graph.Label:
		if v.IsZero() {
			return &build.Ident{Name: "None"}
		}
		return str(v.String())
	case []string:
		items := make([]build.Expr, len(v))
		for i, s := range v {
			items[i] = str(s)
		}
		return list(items)
	case []int64:
		items := make([]build.Expr, len(v))
		for i, n := range v {
			items[i] = &build.LiteralExpr{Token: strconv.FormatInt(n, 10)}
		}
		return list(items)
	case []graph.Label:
		items := make([]build.Expr, len(v))
		for i, l := range v {
			items[i] = str(l.String())
		}
		return list(items)
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := &build.DictExpr{ForceMultiLine: len(keys) > 1}
		for _, k := range keys {
			d.List = append(d.List, &build.KeyValueExpr{Key: str(k), Value: str(v[k])})
		}
		return d
	}
	return str(fmt.Sprint(v))
}
