// Package events is the event record of the toy ttH(bb) analysis and its ROOT tree layout.
//
// A file holds one or more TTrees with the same branches: the generator writes one tree called
// "events", the selection one tree per category called "events_<category>".
package events

import (
	"fmt"
	"sort"

	"go-hep.org/x/hep/groot/riofs"
	"go-hep.org/x/hep/groot/rtree"

	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// TreeName is the name of the tree the generator writes.
const TreeName = "events"

// Event is one reconstructed toy event. Jets are sorted by decreasing pT.
type Event struct {
	ID     int64     `groot:"event"`  // unique within a dataset: seed<<32 | index
	Proc   int32     `groot:"proc"`   // index of the generating process in toymc.Processes, for data too
	NJet   int32     `groot:"njet"`   // number of jets stored in JetPt
	NBTag  int32     `groot:"nbtag"`  // number of b-tagged jets, at most NJet
	JetPt  []float32 `groot:"jet_pt"` // jet transverse momenta in GeV, len NJet
	HT     float32   `groot:"ht"`     // scalar sum of JetPt in GeV
	MBB    float32   `groot:"mbb"`    // invariant mass of the leading b-tagged jet pair in GeV
	DNN    float32   `groot:"dnn"`    // classifier score in [0, 1], high for signal
	Weight float32   `groot:"weight"` // generator weight
}

// Var returns the value of the named event variable, as used by histograms and selections:
// njet, nbtag, ht, mbb, dnn, weight, lead_pt (leading jet pT, 0 without jets).
func (e *Event) Var(name string) (float64, bool) {
	switch name {
	case "njet":
		return float64(e.NJet), true
	case "nbtag":
		return float64(e.NBTag), true
	case "ht":
		return float64(e.HT), true
	case "mbb":
		return float64(e.MBB), true
	case "dnn":
		return float64(e.DNN), true
	case "weight":
		return float64(e.Weight), true
	case "lead_pt":
		if len(e.JetPt) == 0 {
			return 0, true
		}
		return float64(e.JetPt[0]), true
	}
	return 0, false
}

// VarNames lists the names Var knows.
var VarNames = []string{"njet", "nbtag", "ht", "mbb", "dnn", "weight", "lead_pt"}

// Tree is a named list of events.
type Tree struct {
	Name   string
	Events []Event
}

func writeVars(e *Event) []rtree.WriteVar {
	return []rtree.WriteVar{
		{Name: "event", Value: &e.ID},
		{Name: "proc", Value: &e.Proc},
		{Name: "njet", Value: &e.NJet},
		{Name: "nbtag", Value: &e.NBTag},
		{Name: "jet_pt", Value: &e.JetPt, Count: "njet"},
		{Name: "ht", Value: &e.HT},
		{Name: "mbb", Value: &e.MBB},
		{Name: "dnn", Value: &e.DNN},
		{Name: "weight", Value: &e.Weight},
	}
}

// Write writes the trees to the ROOT file path, atomically and reproducibly.
func Write(path string, trees ...Tree) error {
	f, err := rootio.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	for _, t := range trees {
		if err := writeTree(f.File, t); err != nil {
			return fmt.Errorf("writing %s: tree %s: %w", path, t.Name, err)
		}
	}
	return f.Commit()
}

func writeTree(f *riofs.File, t Tree) error {
	var e Event
	w, err := rtree.NewWriter(f, t.Name, writeVars(&e), rtree.WithTitle("toy ttH(bb) events"))
	if err != nil {
		return err
	}
	for i := range t.Events {
		e = t.Events[i]
		if int(e.NJet) != len(e.JetPt) {
			w.Close()
			return fmt.Errorf("event %d: njet is %d but it has %d jets", e.ID, e.NJet, len(e.JetPt))
		}
		if _, err := w.Write(); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// TreeNames returns the names of the trees in the ROOT file path, sorted.
func TreeNames(path string) ([]string, error) {
	f, err := riofs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	var names []string
	for _, k := range f.Keys() {
		if k.ClassName() == "TTree" {
			names = append(names, k.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Read returns the events of the tree called name in the ROOT file path. With name "" the file
// must hold exactly one tree, which is read.
func Read(path, name string) ([]Event, error) {
	f, err := riofs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if name == "" {
		var trees []string
		for _, k := range f.Keys() {
			if k.ClassName() == "TTree" {
				trees = append(trees, k.Name())
			}
		}
		if len(trees) != 1 {
			return nil, fmt.Errorf("reading %s: want exactly one tree, found %d %v: name the tree", path, len(trees), trees)
		}
		name = trees[0]
	}
	obj, err := f.Get(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	tree, ok := obj.(rtree.Tree)
	if !ok {
		return nil, fmt.Errorf("reading %s: %s is a %s, not a tree", path, name, obj.Class())
	}
	var e Event
	r, err := rtree.NewReader(tree, []rtree.ReadVar{
		{Name: "event", Value: &e.ID},
		{Name: "proc", Value: &e.Proc},
		{Name: "njet", Value: &e.NJet},
		{Name: "nbtag", Value: &e.NBTag},
		{Name: "jet_pt", Value: &e.JetPt},
		{Name: "ht", Value: &e.HT},
		{Name: "mbb", Value: &e.MBB},
		{Name: "dnn", Value: &e.DNN},
		{Name: "weight", Value: &e.Weight},
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: tree %s: %w", path, name, err)
	}
	defer r.Close()
	evts := make([]Event, 0, tree.Entries())
	err = r.Read(func(rtree.RCtx) error {
		c := e
		c.JetPt = append([]float32(nil), e.JetPt...)
		evts = append(evts, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: tree %s: %w", path, name, err)
	}
	return evts, nil
}
