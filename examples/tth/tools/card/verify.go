package card

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/histo"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// Verify checks that the card is consistent in itself and with the histograms in the ROOT file
// shapesFile, which stands for the file named in the card's shapes lines:
//
//   - imax, jmax and kmax match the bins, processes and systematics;
//   - every column's bin is an observation bin; each process has one index, signals <= 0 and
//     backgrounds > 0, and there is at least one of each;
//   - the observation equals the integral of data_obs and every rate the integral of its
//     process's histogram (a rate of -1 asks Combine to take it from the histogram);
//   - every shape systematic has its Up and Down histogram for every column where it applies;
//   - every lnN entry is a positive number or a pair down/up of them.
//
// It reports every problem it finds, joined.
func Verify(c *Card, shapesFile string) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	hists, err := rootio.ReadHists(shapesFile)
	if err != nil {
		return err
	}
	byName := make(map[string]*hbook.H1D, len(hists))
	for _, h := range hists {
		byName[h.Name()] = h
	}

	procs := make(map[string]int)
	var order []string
	for _, col := range c.Columns {
		if idx, ok := procs[col.Process]; ok && idx != col.Index {
			add("process %s has indices %d and %d", col.Process, idx, col.Index)
		}
		if _, ok := procs[col.Process]; !ok {
			order = append(order, col.Process)
		}
		procs[col.Process] = col.Index
		if !slices.Contains(c.Bins, col.Bin) {
			add("column %s/%s: bin %s has no observation", col.Bin, col.Process, col.Bin)
		}
	}
	nsig, nbkg := 0, 0
	for _, p := range order {
		if procs[p] <= 0 {
			nsig++
		} else {
			nbkg++
		}
	}
	if nsig == 0 {
		add("no signal process (index <= 0)")
	}
	if nbkg == 0 {
		add("no background process (index > 0)")
	}
	if len(c.Bins) != len(c.Observation) {
		add("%d bins but %d observations", len(c.Bins), len(c.Observation))
	}
	if c.IMax >= 0 && c.IMax != len(c.Bins) {
		add("imax is %d but there are %d bins", c.IMax, len(c.Bins))
	}
	if c.JMax >= 0 && c.JMax != len(order)-1 {
		add("jmax is %d but there are %d processes, so %d backgrounds", c.JMax, len(order), len(order)-1)
	}
	if c.KMax >= 0 && c.KMax != len(c.Systematics) {
		add("kmax is %d but there are %d systematics", c.KMax, len(c.Systematics))
	}

	lookup := func(process, bin, syst string) (*hbook.H1D, string, error) {
		s, ok := c.ShapesFor(process, bin)
		if !ok {
			return nil, "", fmt.Errorf("no shapes line for process %s in bin %s", process, bin)
		}
		pattern := s.Nominal
		if syst != "" {
			if s.Syst == "" {
				return nil, "", fmt.Errorf("the shapes line for process %s in bin %s has no systematics pattern", process, bin)
			}
			pattern = s.Syst
		}
		name := strings.NewReplacer("$PROCESS", process, "$CHANNEL", bin, "$SYSTEMATIC", syst).Replace(pattern)
		h, ok := byName[name]
		if !ok {
			return nil, name, fmt.Errorf("histogram %s is not in %s", name, shapesFile)
		}
		return h, name, nil
	}

	for i, b := range c.Bins {
		if i >= len(c.Observation) {
			break
		}
		h, name, err := lookup("data_obs", b, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("observation of bin %s: %w", b, err))
			continue
		}
		if obs := c.Observation[i]; obs != -1 && !agree(obs, histo.Sum(h)) {
			add("observation of bin %s is %s but %s integrates to %s", b, formatNumber(obs), name, formatNumber(histo.Sum(h)))
		}
	}
	for _, col := range c.Columns {
		h, name, err := lookup(col.Process, col.Bin, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("rate of %s in bin %s: %w", col.Process, col.Bin, err))
			continue
		}
		if col.Rate != -1 && !agree(col.Rate, histo.Sum(h)) {
			add("rate of %s in bin %s is %s but %s integrates to %s", col.Process, col.Bin, formatNumber(col.Rate), name, formatNumber(histo.Sum(h)))
		}
	}
	for _, s := range c.Systematics {
		if len(s.Entries) != len(c.Columns) {
			add("systematic %s has %d entries for %d columns", s.Name, len(s.Entries), len(c.Columns))
			continue
		}
		for i, e := range s.Entries {
			col := c.Columns[i]
			switch {
			case e == "-":
				continue
			case s.IsShape():
				v, err := strconv.ParseFloat(e, 64)
				if err != nil {
					add("systematic %s, %s in bin %s: entry %q is not a number", s.Name, col.Process, col.Bin, e)
					continue
				}
				if v == 0 {
					continue
				}
				for _, dir := range []string{"Up", "Down"} {
					if _, _, err := lookup(col.Process, col.Bin, s.Name+dir); err != nil {
						errs = append(errs, fmt.Errorf("systematic %s, %s in bin %s: %w", s.Name, col.Process, col.Bin, err))
					}
				}
			case s.Type == "lnN":
				if !validLnN(e) {
					add("systematic %s, %s in bin %s: lnN entry %q is not a positive number or down/up pair", s.Name, col.Process, col.Bin, e)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ShapesFor returns the most specific shapes line for a process in a bin, as Combine picks it.
func (c *Card) ShapesFor(process, bin string) (Shapes, bool) {
	best, score := Shapes{}, -1
	for _, s := range c.Shapes {
		if (s.Process != "*" && s.Process != process) || (s.Channel != "*" && s.Channel != bin) {
			continue
		}
		sc := 0
		if s.Process != "*" {
			sc += 2
		}
		if s.Channel != "*" {
			sc++
		}
		if sc > score {
			best, score = s, sc
		}
	}
	return best, score >= 0
}

// agree allows for the six significant digits Format writes.
func agree(card, hist float64) bool {
	return math.Abs(card-hist) <= 1e-5*math.Abs(hist)+1e-9
}

func validLnN(e string) bool {
	for _, part := range strings.Split(e, "/") {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || !(v > 0) {
			return false
		}
	}
	return strings.Count(e, "/") <= 1
}
