package cmds

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
	"github.com/hepbuild/hepbuild/examples/tth/tools/toymc"
)

// Gen is the toy event generator.
func Gen(args []string, stdout io.Writer) error {
	fs := newFlags("gen", "-process NAME -seed N (-events K | -lumi L) -o events.root")
	process := fs.String("process", "", "process to generate: tth, ttbb, ttlf, ttv, st or data")
	seed := fs.Uint64("seed", 0, "random seed; use a different one for every file of a dataset (below 2^31)")
	nevents := fs.Int("events", -1, "number of events")
	lumi := fs.Float64("lumi", 0, "data only, instead of -events: generate the expected number of events for this luminosity in fb^-1")
	mu := fs.Float64("mu", 1, "data only: signal strength of the tth component")
	out := fs.String("o", "", "output ROOT file")
	list := fs.Bool("list", false, "print the processes and their effective cross sections, and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "process\txsec_pb\tsignal\tlabel")
		for _, p := range toymc.Processes {
			fmt.Fprintf(tw, "%s\t%g\t%v\t%s\n", p.Name, p.XSec, p.Signal, p.Label)
		}
		return tw.Flush()
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if err := requireOutput(*out); err != nil {
		return err
	}
	if *process == "" {
		return usagef("no process: give -process")
	}
	n := *nevents
	switch {
	case n >= 0 && *lumi > 0:
		return usagef("give -events or -lumi, not both")
	case *lumi > 0 && *process != toymc.Data:
		return usagef("-lumi is for -process data; simulated samples take -events")
	case *lumi > 0:
		n = int(math.Round(toymc.ExpectedData(*lumi, *mu)))
	case n < 0:
		return usagef("no number of events: give -events")
	}
	evts, err := toymc.Generate(toymc.Config{Process: *process, Seed: *seed, Events: n, Mu: *mu})
	if err != nil {
		return err
	}
	if err := events.Write(*out, events.Tree{Name: events.TreeName, Events: evts}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gen: wrote %d %s events (seed %d) to %s\n", n, *process, *seed, *out)
	return nil
}
