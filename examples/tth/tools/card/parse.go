package card

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Parse reads a datacard. It checks the card's grammar (every row of the rate block and every
// systematic has one entry per column); Verify checks its meaning.
func Parse(r io.Reader) (*Card, error) {
	c := &Card{IMax: -1, JMax: -1, KMax: -1}
	var (
		binRows     [][]string // "bin" lines: the first is the observation's, the second the rate block's
		procRows    [][]string
		rateRow     []string
		rateLine    int
		sawObs      bool
		lineNo      int
		sc          = bufio.NewScanner(r)
		rateColumns = -1
	)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "---") {
			continue
		}
		f := strings.Fields(line)
		errf := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "imax", "jmax", "kmax":
			if len(f) < 2 {
				return nil, errf("%s without a value", f[0])
			}
			n := -1
			if f[1] != "*" {
				v, err := strconv.Atoi(f[1])
				if err != nil || v < 0 {
					return nil, errf("%s %q: want a count or *", f[0], f[1])
				}
				n = v
			}
			switch f[0] {
			case "imax":
				c.IMax = n
			case "jmax":
				c.JMax = n
			case "kmax":
				c.KMax = n
			}
		case "shapes":
			if len(f) != 5 && len(f) != 6 {
				return nil, errf("shapes line has %d fields, want: shapes PROCESS CHANNEL FILE HISTOGRAM [HISTOGRAM_SYSTEMATIC]", len(f))
			}
			s := Shapes{Process: f[1], Channel: f[2], File: f[3], Nominal: f[4]}
			if len(f) == 6 {
				s.Syst = f[5]
			}
			c.Shapes = append(c.Shapes, s)
		case "bin":
			binRows = append(binRows, f[1:])
			if len(binRows) == 2 {
				rateColumns = len(f) - 1
			}
			if len(binRows) > 2 {
				return nil, errf("a third bin line")
			}
		case "observation":
			if len(binRows) != 1 {
				return nil, errf("observation must follow the first bin line")
			}
			if len(f)-1 != len(binRows[0]) {
				return nil, errf("observation has %d entries for %d bins", len(f)-1, len(binRows[0]))
			}
			c.Bins = binRows[0]
			for _, s := range f[1:] {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return nil, errf("observation %q: not a number", s)
				}
				c.Observation = append(c.Observation, v)
			}
			sawObs = true
		case "process":
			if rateColumns < 0 {
				return nil, errf("process line before the rate block's bin line")
			}
			if len(f)-1 != rateColumns {
				return nil, errf("process line has %d entries, the bin line %d", len(f)-1, rateColumns)
			}
			procRows = append(procRows, f[1:])
		case "rate":
			if rateColumns < 0 {
				return nil, errf("rate line before the rate block's bin line")
			}
			if len(f)-1 != rateColumns {
				return nil, errf("rate line has %d entries, the bin line %d", len(f)-1, rateColumns)
			}
			rateRow, rateLine = f[1:], lineNo
		default:
			if rateRow == nil {
				return nil, errf("unexpected %q before the rate line", f[0])
			}
			if len(f) < 2 {
				return nil, errf("systematic %s without a type", f[0])
			}
			switch {
			case f[0] == "*" || f[1] == "autoMCStats" || f[1] == "param" || f[1] == "rateParam" || f[1] == "group" || f[1] == "extArg" || f[1] == "flatParam" || f[1] == "discrete":
				c.Extra = append(c.Extra, line)
				continue
			}
			if len(f)-2 != rateColumns {
				return nil, errf("systematic %s has %d entries for %d columns", f[0], len(f)-2, rateColumns)
			}
			c.Systematics = append(c.Systematics, Systematic{Name: f[0], Type: f[1], Entries: f[2:]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !sawObs {
		return nil, fmt.Errorf("no observation line")
	}
	if rateRow == nil {
		return nil, fmt.Errorf("no rate line")
	}
	if len(procRows) != 2 {
		return nil, fmt.Errorf("want two process lines (names and indices), found %d", len(procRows))
	}
	// Either process line may hold the indices; Combine takes the numeric one.
	names, indices := procRows[0], procRows[1]
	if _, err := strconv.Atoi(names[0]); err == nil {
		names, indices = indices, names
	}
	for i := range rateColumns {
		idx, err := strconv.Atoi(indices[i])
		if err != nil {
			return nil, fmt.Errorf("process index %q of column %d: not an integer", indices[i], i+1)
		}
		rate, err := strconv.ParseFloat(rateRow[i], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: rate %q of column %d: not a number", rateLine, rateRow[i], i+1)
		}
		c.Columns = append(c.Columns, Column{Bin: binRows[1][i], Process: names[i], Index: idx, Rate: rate})
	}
	return c, nil
}
