// Package rules embeds the Starlark rule library, loadable from BUILD files as
// @hepbuild//rules:<file>.star.
package rules

import "embed"

// FS holds the rule library's .star files.
//
//go:embed *.star
var FS embed.FS
