package cmds

import (
	"fmt"
	"io"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
	"github.com/hepbuild/hepbuild/examples/tth/tools/selection"
)

// Select applies a systematic shift and category selections to event files.
func Select(args []string, stdout io.Writer) error {
	fs := newFlags("select", "-i events.root [-i ...] -shift SHIFT -category CAT [-category ...] -o selected.root")
	var inputs, cats repeatFlag
	fs.Var(&inputs, "i", "input events file, tree \"events\" (repeatable; further files may follow the flags)")
	shiftName := fs.String("shift", "nominal", "nominal, jes_up, jes_down, btag_up or btag_down")
	fs.Var(&cats, "category", "category: NjMb (njet>=N, nbtag>=M) or NAME:CUT,CUT with cuts like njet==5 (repeatable)")
	out := fs.String("o", "", "output ROOT file: one tree events_<category> per category")
	if err := parse(fs, args); err != nil {
		return err
	}
	inputs = append(inputs, fs.Args()...)
	if err := requireOutput(*out); err != nil {
		return err
	}
	if len(inputs) == 0 {
		return usagef("no input files: give -i")
	}
	if len(cats) == 0 {
		return usagef("no category: give -category")
	}
	shift, err := selection.ParseShift(*shiftName)
	if err != nil {
		return usageError{err}
	}
	var categories []selection.Category
	seen := make(map[string]bool)
	for _, c := range cats {
		cat, err := selection.ParseCategory(c)
		if err != nil {
			return usageError{err}
		}
		if seen[cat.Name] {
			return usagef("category %s given twice", cat.Name)
		}
		seen[cat.Name] = true
		categories = append(categories, cat)
	}
	var all []events.Event
	for _, in := range inputs {
		evts, err := events.Read(in, events.TreeName)
		if err != nil {
			return err
		}
		all = append(all, evts...)
	}
	trees := selection.Select(all, shift, categories)
	if err := events.Write(*out, trees...); err != nil {
		return err
	}
	for _, t := range trees {
		fmt.Fprintf(stdout, "select: %s: %d of %d events (%s) in tree %s of %s\n", t.Name[len("events_"):], len(t.Events), len(all), shift, t.Name, *out)
	}
	return nil
}
