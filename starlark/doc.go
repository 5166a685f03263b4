// Package starlark loads BUILD and .star files with go.starlark.net, builds the
// target graph and analyses rules into actions. It is the only package that
// speaks Starlark; its API exposes graph and exec types only.
package starlark
