package cmds

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go-hep.org/x/hep/hbook"
	"go-hep.org/x/hep/hplot"

	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
	"github.com/hepbuild/hepbuild/examples/tth/tools/plotting"
	"github.com/hepbuild/hepbuild/examples/tth/tools/toymc"
)

// Plot draws the stacked analysis plot.
func Plot(args []string, stdout io.Writer) error {
	fs := newFlags("plot", "[-shapes shapes.root] -stack PROC[=FILE],... -signal PROC[=FILE] -data NAME[=FILE] [-syst jes,btag] -var mbb -category 6j4b -o plot.png [-o plot.pdf]")
	shapes := fs.String("shapes", "", "default ROOT file for entries given without =FILE (e.g. the datacard's shapes file)")
	var stack, syst listFlag
	var outs repeatFlag
	fs.Var(&stack, "stack", "backgrounds to stack: PROC or PROC=FILE, comma-separated or repeated; the histogram is PROC in FILE")
	signal := fs.String("signal", "", "signal drawn as a line: PROC or PROC=FILE")
	scale := fs.Float64("signal-scale", 10, "factor the signal is drawn multiplied by")
	data := fs.String("data", "", "data histogram: NAME or NAME=FILE (usually data_obs)")
	fs.Var(&syst, "syst", "shape systematics for the band: for each, PROC_<syst>Up and PROC_<syst>Down are read next to PROC")
	v := fs.String("var", "mbb", "plotted variable, for the axis labels")
	category := fs.String("category", "", "category name, shown on the plot")
	lumi := fs.Float64("lumi", 138, "integrated luminosity in fb^-1, shown on the plot")
	fs.Var(&outs, "o", "output image: .png (150 dpi) or .pdf (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if len(outs) == 0 {
		return usagef("no output file: give -o")
	}
	for _, o := range outs {
		if ext := strings.ToLower(filepath.Ext(o)); ext != ".png" && ext != ".pdf" {
			return usagef("output %s: want a .png or .pdf file", o)
		}
	}
	if len(stack) == 0 {
		return usagef("no backgrounds: give -stack")
	}
	load := func(entry string) (plotting.Process, error) {
		name, file, ok := strings.Cut(entry, "=")
		if !ok {
			file = *shapes
		}
		if file == "" {
			return plotting.Process{}, usagef("%s: no file: give %s=FILE or -shapes", entry, name)
		}
		h, err := rootio.ReadHist(file, name)
		if err != nil {
			return plotting.Process{}, err
		}
		p := plotting.Process{Name: name, Hist: h, Up: map[string]*hbook.H1D{}, Down: map[string]*hbook.H1D{}}
		if tp, _, err := toymc.Lookup(name); err == nil {
			p.Label = tp.Label
		}
		for _, s := range syst {
			up, errUp := rootio.ReadHist(file, name+"_"+s+"Up")
			down, errDown := rootio.ReadHist(file, name+"_"+s+"Down")
			if errUp != nil || errDown != nil {
				// A systematic need not apply to every process; a typo is caught below.
				continue
			}
			p.Up[s], p.Down[s] = up, down
		}
		return p, nil
	}
	spec := plotting.Spec{Var: *v, Category: *category, Lumi: *lumi, SignalScale: *scale}
	found := make(map[string]bool)
	for _, e := range stack {
		p, err := load(e)
		if err != nil {
			return err
		}
		for s := range p.Up {
			found[s] = true
		}
		spec.Backgrounds = append(spec.Backgrounds, p)
	}
	if *signal != "" {
		p, err := load(*signal)
		if err != nil {
			return err
		}
		for s := range p.Up {
			found[s] = true
		}
		spec.Signal = &p
	}
	for _, s := range syst {
		if !found[s] {
			return fmt.Errorf("systematic %s: no process has both %s Up and Down histograms", s, s)
		}
	}
	if *data != "" {
		name, file, ok := strings.Cut(*data, "=")
		if !ok {
			file = *shapes
		}
		if file == "" {
			return usagef("-data %s: no file: give NAME=FILE or -shapes", *data)
		}
		h, err := rootio.ReadHist(file, name)
		if err != nil {
			return err
		}
		spec.Data = h
	}
	w, h := plotting.Size()
	for _, o := range outs {
		format := strings.ToLower(filepath.Ext(o))[1:]
		fig, err := plotting.Draw(spec, format)
		if err != nil {
			return err
		}
		wt, err := hplot.WriterTo(fig, w, h, format)
		if err != nil {
			return fmt.Errorf("drawing %s: %w", o, err)
		}
		if err := writeToAtomic(o, wt); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "plot: wrote %s\n", o)
	}
	return nil
}

// writeToAtomic writes wt to a temporary file next to path and renames it into
// place, so a failure never leaves a half-written output.
func writeToAtomic(path string, wt io.WriterTo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := wt.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
