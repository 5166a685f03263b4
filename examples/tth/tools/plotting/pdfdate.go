package plotting

import (
	"codeberg.org/go-pdf/fpdf"

	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// fpdf, which gonum's PDF canvas writes with, stamps every document with the wall clock as its
// creation and modification date, so two builds of the same plot would differ byte for byte and
// nothing downstream of a plot could be cut off early. The canvas has no option for the date: the
// package-wide default is pinned instead, to the instant the ROOT files carry.
func init() {
	fpdf.SetDefaultCreationDate(rootio.Epoch)
	fpdf.SetDefaultModificationDate(rootio.Epoch)
}
