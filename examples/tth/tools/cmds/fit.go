package cmds

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hepbuild/hepbuild/examples/tth/tools/fitting"
)

// Fit fits the signal strength of one or more datacards (combined) and writes mu with its 68%
// profile-likelihood interval and the nuisances' best-fit values.
func Fit(args []string, stdout io.Writer) error {
	fs := newFlags("fit", "[-asimov] -o result.txt datacard.txt [datacard.txt ...]")
	asimov := fs.Bool("asimov", false, "fit the expectation at mu = 1 instead of the data: the expected uncertainty")
	out := fs.String("o", "", "output text file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := requireOutput(*out); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no datacards")
	}
	m, err := fitting.Load(fs.Args()...)
	if err != nil {
		return err
	}
	what := "observed"
	if *asimov {
		m, what = m.Asimov(1), "expected (Asimov data set, mu = 1)"
	}
	best, err := m.Fit()
	if err != nil {
		return err
	}
	lo, hi, err := m.Interval(best)
	if err != nil {
		return err
	}
	mu := best.Params[0]
	var b strings.Builder
	var names []string
	for _, ch := range m.Channels {
		names = append(names, ch.Name)
	}
	fmt.Fprintf(&b, "# Profile-likelihood fit of the signal strength, %s\n", what)
	fmt.Fprintf(&b, "# channels: %s; simulation statistics (autoMCStats) not modelled\n", strings.Join(names, " "))
	fmt.Fprintf(&b, "mu = %.3f -%.3f/+%.3f\n", mu, mu-lo, hi-mu)
	fmt.Fprintf(&b, "mu_68 = [%.3f, %.3f]\n", lo, hi)
	for i, n := range m.Nuisances {
		th := best.Params[1+i]
		if math.Abs(th) < 5e-4 {
			th = 0 // no "-0.000"
		}
		fmt.Fprintf(&b, "theta %-12s = %+.3f\n", n, th)
	}
	if err := writeFileAtomic(*out, []byte(b.String())); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fit: %s mu = %.3f -%.3f/+%.3f, to %s\n", what, mu, mu-lo, hi-mu, *out)
	return nil
}
