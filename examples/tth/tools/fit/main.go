// Command fit is a program of the toy ttH(bb) analysis; see examples/tth/tools/README.md.
package main

import "github.com/hepbuild/hepbuild/examples/tth/tools/cmds"

func main() { cmds.Main("fit", cmds.Fit) }
