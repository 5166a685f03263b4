// Package query implements Bazel's query language over the target graph:
// target patterns, deps, rdeps, allpaths, somepath, kind, filter, attr,
// labels, buildfiles, loadfiles, siblings, some, set, let and the set
// operators, with the semantics of `bazel query --noimplicit_deps`. Nothing
// is analysed or run; packages load on demand through a graph.PackageSource.
//
// Parse turns a query string into an Expr, Eval computes its Result, and
// Write prints a Result in one of Bazel's output formats.
package query
