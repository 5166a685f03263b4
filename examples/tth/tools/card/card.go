// Package card writes, reads and checks CMS Combine datacards of the toy ttH(bb) analysis.
//
// A Card is the parsed form of a datacard: Format writes it, Parse reads it back, and Verify
// checks it against its shapes file. Build makes a Card and its shapes from a JSON Config.
package card

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Card is a parsed datacard. A Card is not safe for concurrent modification.
type Card struct {
	IMax, JMax, KMax int // -1 where the card says "*"

	Shapes      []Shapes
	Bins        []string  // the observation block's bins
	Observation []float64 // one per entry of Bins
	Columns     []Column
	Systematics []Systematic
	Extra       []string // lines Verify does not interpret, e.g. "* autoMCStats 10"
}

// Shapes is one "shapes PROCESS CHANNEL FILE HISTOGRAM [HISTOGRAM_WITH_SYSTEMATICS]" line.
type Shapes struct {
	Process, Channel string
	File             string
	Nominal, Syst    string // patterns with $PROCESS, $CHANNEL, $SYSTEMATIC
}

// Column is one process in one bin of the rate block.
type Column struct {
	Bin     string
	Process string
	Index   int // <= 0 for signals, > 0 for backgrounds
	Rate    float64
}

// Systematic is one nuisance line: a name, a type (lnN, shape, ...) and one entry per column,
// "-" where it does not apply.
type Systematic struct {
	Name, Type string
	Entries    []string
}

// IsShape reports whether the systematic needs Up and Down histograms.
func (s Systematic) IsShape() bool { return strings.HasPrefix(s.Type, "shape") }

const rule = "----------------------------------------------------------------------------------------------------"

// Format writes the card in Combine's text format with aligned columns.
func (c *Card) Format(w io.Writer) error {
	var b strings.Builder
	count := func(n int) string {
		if n < 0 {
			return "*"
		}
		return strconv.Itoa(n)
	}
	fmt.Fprintf(&b, "imax %s  number of channels\n", count(c.IMax))
	fmt.Fprintf(&b, "jmax %s  number of backgrounds\n", count(c.JMax))
	fmt.Fprintf(&b, "kmax %s  number of nuisance parameters\n", count(c.KMax))
	b.WriteString(rule + "\n")
	for _, s := range c.Shapes {
		fmt.Fprintf(&b, "shapes %s %s %s %s", s.Process, s.Channel, s.File, s.Nominal)
		if s.Syst != "" {
			fmt.Fprintf(&b, " %s", s.Syst)
		}
		b.WriteString("\n")
	}
	if len(c.Shapes) > 0 {
		b.WriteString(rule + "\n")
	}

	obs := make([]string, len(c.Observation))
	for i, o := range c.Observation {
		obs[i] = formatNumber(o)
	}
	writeRows(&b, [][]string{
		append([]string{"bin"}, c.Bins...),
		append([]string{"observation"}, obs...),
	}, -1)
	b.WriteString(rule + "\n")

	// The rate block and the systematics share their columns, as in cards written by hand.
	rows := [][]string{{"bin", ""}, {"process", ""}, {"process", ""}, {"rate", ""}}
	for _, col := range c.Columns {
		rows[0] = append(rows[0], col.Bin)
		rows[1] = append(rows[1], col.Process)
		rows[2] = append(rows[2], strconv.Itoa(col.Index))
		rows[3] = append(rows[3], formatNumber(col.Rate))
	}
	for _, s := range c.Systematics {
		rows = append(rows, append([]string{s.Name, s.Type}, s.Entries...))
	}
	writeRows(&b, rows, 4)
	if len(c.Extra) > 0 {
		b.WriteString(rule + "\n")
		for _, l := range c.Extra {
			b.WriteString(l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRows pads every column to its widest cell, and draws a rule before row ruleAt.
func writeRows(b *strings.Builder, rows [][]string, ruleAt int) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell))
		}
	}
	for n, r := range rows {
		if n == ruleAt {
			b.WriteString(rule + "\n")
		}
		var line strings.Builder
		for i, cell := range r {
			line.WriteString(cell)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-len(cell)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// formatNumber writes integers as integers and other numbers with six significant digits, which
// Verify's tolerance allows for.
func formatNumber(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
