// Package selection applies systematic shifts and category selections to toy events.
package selection

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
)

// JetPtMin is the analysis jet threshold in GeV. The generator stores jets down to 25 GeV, so a
// JES shift can move jets, and with them events, across it.
const JetPtMin = 30

// Shift is a systematic variation of the event reconstruction.
type Shift string

const (
	Nominal  Shift = "nominal"
	JESUp    Shift = "jes_up"
	JESDown  Shift = "jes_down"
	BTagUp   Shift = "btag_up"
	BTagDown Shift = "btag_down"
)

// Shifts lists every known shift.
var Shifts = []Shift{Nominal, JESUp, JESDown, BTagUp, BTagDown}

// ParseShift returns the shift called s.
func ParseShift(s string) (Shift, error) {
	for _, sh := range Shifts {
		if string(sh) == s {
			return sh, nil
		}
	}
	return "", fmt.Errorf("unknown shift %q (known: nominal, jes_up, jes_down, btag_up, btag_down)", s)
}

const (
	jesScale    = 0.03 // relative jet energy scale uncertainty
	btagMigrate = 0.02 // probability that a b-tag shift moves an event by one tag
)

// Apply returns e as reconstructed under the shift: jets, HT and m_bb scaled for JES, the b-tag
// multiplicity moved for b-tagging, and in every case the jet threshold applied (jets below
// JetPtMin dropped, njet, HT recomputed, nbtag capped by njet). e is not modified.
func (s Shift) Apply(e events.Event) events.Event {
	scale := 1.0
	switch s {
	case JESUp:
		scale = 1 + jesScale
	case JESDown:
		scale = 1 - jesScale
	}
	out := e
	out.JetPt = make([]float32, 0, len(e.JetPt))
	ht := 0.0
	for _, pt := range e.JetPt {
		pt := float64(pt) * scale
		if pt < JetPtMin {
			continue
		}
		out.JetPt = append(out.JetPt, float32(pt))
		ht += pt
	}
	out.NJet = int32(len(out.JetPt))
	out.HT = float32(ht)
	out.MBB = float32(float64(e.MBB) * scale)
	switch s {
	case BTagUp:
		if out.NBTag < out.NJet && migrates(e.ID, "btag_up") {
			out.NBTag++
		}
	case BTagDown:
		if out.NBTag > 0 && migrates(e.ID, "btag_down") {
			out.NBTag--
		}
	}
	out.NBTag = min(out.NBTag, out.NJet)
	return out
}

// migrates decides from the event number alone, so a shift gives the same answer every time
// and in every file an event appears in.
func migrates(id int64, salt string) bool {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", salt, id)
	return float64(h.Sum64()>>11)/(1<<53) < btagMigrate
}

// Cut is one requirement on an event variable.
type Cut struct {
	Var   string
	Op    string // one of >= <= > < == !=
	Value float64
}

func (c Cut) String() string { return c.Var + c.Op + strconv.FormatFloat(c.Value, 'g', -1, 64) }

// Pass reports whether e passes the cut.
func (c Cut) Pass(e *events.Event) bool {
	v, _ := e.Var(c.Var)
	switch c.Op {
	case ">=":
		return v >= c.Value
	case "<=":
		return v <= c.Value
	case ">":
		return v > c.Value
	case "<":
		return v < c.Value
	case "==":
		return v == c.Value
	case "!=":
		return v != c.Value
	}
	return false
}

// Category is a named conjunction of cuts.
type Category struct {
	Name string
	Cuts []Cut
}

// Pass reports whether e passes every cut.
func (c Category) Pass(e *events.Event) bool {
	for _, cut := range c.Cuts {
		if !cut.Pass(e) {
			return false
		}
	}
	return true
}

var (
	shortName = regexp.MustCompile(`^(\d+)j(\d+)b$`)
	cutRe     = regexp.MustCompile(`^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*$`)
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// ParseCategory parses "NAME:CUT,CUT,..." where a cut is "var op value" (var one of
// events.VarNames, op one of >= <= > < == !=), or the short form "NjMb", which means
// "NjMb:njet>=N,nbtag>=M".
func ParseCategory(s string) (Category, error) {
	name, rules, found := strings.Cut(s, ":")
	if !found {
		m := shortName.FindStringSubmatch(s)
		if m == nil {
			return Category{}, fmt.Errorf("category %q: want NjMb (e.g. 6j4b) or NAME:CUT,CUT (e.g. 5j4b:njet==5,nbtag>=4)", s)
		}
		rules = "njet>=" + m[1] + ",nbtag>=" + m[2]
	}
	if !nameRe.MatchString(name) {
		return Category{}, fmt.Errorf("category %q: name %q must be letters, digits and _", s, name)
	}
	cat := Category{Name: name}
	for _, r := range strings.Split(rules, ",") {
		m := cutRe.FindStringSubmatch(r)
		if m == nil {
			return Category{}, fmt.Errorf("category %q: cut %q: want var op value, e.g. njet>=6", s, r)
		}
		if _, ok := (&events.Event{}).Var(m[1]); !ok {
			return Category{}, fmt.Errorf("category %q: cut %q: unknown variable %q (known: %s)", s, r, m[1], strings.Join(events.VarNames, ", "))
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return Category{}, fmt.Errorf("category %q: cut %q: %w", s, r, err)
		}
		cat.Cuts = append(cat.Cuts, Cut{Var: m[1], Op: m[2], Value: v})
	}
	return cat, nil
}

// TreeName is the name of the tree holding a category's selected events.
func TreeName(category string) string { return "events_" + category }

// Select applies the shift to every event and returns, for each category, the shifted events that
// pass it, as trees named TreeName(category).
func Select(evts []events.Event, shift Shift, cats []Category) []events.Tree {
	trees := make([]events.Tree, len(cats))
	for i, c := range cats {
		trees[i].Name = TreeName(c.Name)
		trees[i].Events = []events.Event{}
	}
	for _, e := range evts {
		s := shift.Apply(e)
		for i, c := range cats {
			if c.Pass(&s) {
				trees[i].Events = append(trees[i].Events, s)
			}
		}
	}
	return trees
}
