package cmds

import (
	"fmt"
	"io"

	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
	"github.com/hepbuild/hepbuild/examples/tth/tools/histo"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// Hist fills one normalised histogram from event files.
func Hist(args []string, stdout io.Writer) error {
	fs := newFlags("hist", "-i sel.root [-i ...] -var mbb -bins 20 -min 50 -max 250 [-xsec PB -lumi FB -nevents N] -name NAME -o h.root")
	var inputs repeatFlag
	fs.Var(&inputs, "i", "input events file (repeatable; further files may follow the flags)")
	tree := fs.String("tree", "", "tree to read (default: the file's only tree)")
	v := fs.String("var", "mbb", "variable: njet, nbtag, ht, mbb, dnn, weight or lead_pt")
	bins := fs.Int("bins", 20, "number of bins")
	lo := fs.Float64("min", 50, "lower edge")
	hi := fs.Float64("max", 250, "upper edge")
	xsec := fs.Float64("xsec", 0, "cross section in pb; with -lumi and -nevents scales each event to weight x xsec x lumi / nevents; leave all three out for data")
	lumi := fs.Float64("lumi", 0, "integrated luminosity in fb^-1")
	nevents := fs.Float64("nevents", 0, "number of generated events of the whole dataset (all its files)")
	name := fs.String("name", "", "histogram name in the output file")
	out := fs.String("o", "", "output ROOT file")
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
	if *name == "" {
		return usagef("no histogram name: give -name")
	}
	norm := histo.Norm{XSec: *xsec, Lumi: *lumi, NEvents: *nevents}
	if norm != (histo.Norm{}) && (norm.XSec <= 0 || norm.Lumi <= 0 || norm.NEvents <= 0) {
		return usagef("give all of -xsec, -lumi and -nevents (positive), or none of them for data")
	}
	var evts [][]events.Event
	total := 0
	for _, in := range inputs {
		e, err := events.Read(in, *tree)
		if err != nil {
			return err
		}
		evts = append(evts, e)
		total += len(e)
	}
	h, err := histo.Fill(*name, histo.Binning{Var: *v, Bins: *bins, Min: *lo, Max: *hi}, norm, evts...)
	if err != nil {
		return usageError{err}
	}
	if err := rootio.WriteHists(*out, []*hbook.H1D{h}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hist: %s: %d events, yield %.6g in range, to %s\n", *name, total, histo.Sum(h), *out)
	return nil
}

// Merge sums same-named histograms of several files and collects the rest into one file.
func Merge(args []string, stdout io.Writer) error {
	fs := newFlags("merge", "-o merged.root a.root b.root ...")
	var inputs repeatFlag
	fs.Var(&inputs, "i", "input histogram file (repeatable; further files may follow the flags)")
	out := fs.String("o", "", "output ROOT file")
	if err := parse(fs, args); err != nil {
		return err
	}
	inputs = append(inputs, fs.Args()...)
	if err := requireOutput(*out); err != nil {
		return err
	}
	if len(inputs) == 0 {
		return usagef("no input files")
	}
	var srcs []histo.Source
	for _, in := range inputs {
		hs, err := rootio.ReadHists(in)
		if err != nil {
			return err
		}
		if len(hs) == 0 {
			return fmt.Errorf("reading %s: no histograms", in)
		}
		for _, h := range hs {
			srcs = append(srcs, histo.Source{File: in, Hist: h})
		}
	}
	merged, err := histo.Merge(srcs)
	if err != nil {
		return err
	}
	if err := rootio.WriteHists(*out, merged); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merge: %d histograms from %d files to %s\n", len(merged), len(inputs), *out)
	return nil
}
