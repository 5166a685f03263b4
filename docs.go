// Package hepbuild holds the language reference, BUILD.md, for the
// binary: `hepbuild help TOPIC` prints its sections, so that the help and
// the reference never say different things.
package hepbuild

import _ "embed"

// BuildMD is BUILD.md, the language and command-line reference.
//
//go:embed BUILD.md
var BuildMD string
