// Package graph holds the target graph: labels, target patterns, targets and
// packages as loaded from BUILD files. It knows nothing of Starlark, actions or
// caches; the query language (graph/query) works on it alone.
package graph
