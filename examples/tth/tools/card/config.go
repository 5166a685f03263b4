package card

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/histo"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// Config is the JSON description of a one-category datacard (card.json).
type Config struct {
	Category    string          `json:"category"`
	Bin         string          `json:"bin,omitempty"` // bin name in the card; default "cat_" + Category
	Observation Input           `json:"observation"`   // the data histogram; Hist defaults to "data_obs"
	Processes   []ProcessConfig `json:"processes"`     // signal(s) and backgrounds; the card keeps this order
	Systematics []SystConfig    `json:"systematics"`
	// AutoMCStats is the event threshold of Combine's Barlow-Beeston-lite bin errors; 0 means 10,
	// a negative number leaves the line out.
	AutoMCStats int `json:"auto_mc_stats,omitempty"`
}

// Input names a histogram in a ROOT file.
type Input struct {
	File string `json:"file"`
	Hist string `json:"hist,omitempty"`
}

// ProcessConfig is one process. Its nominal histogram is Hist (default: Name) in File, and its
// shape variations are Hist_<syst>Up and Hist_<syst>Down in the same file.
type ProcessConfig struct {
	Name   string `json:"name"`
	Signal bool   `json:"signal,omitempty"`
	File   string `json:"file"`
	Hist   string `json:"hist,omitempty"`
}

// SystConfig is one nuisance parameter. Value applies to Processes (all when empty); Values
// overrides it per process. An lnN value is "1.016" or "0.98/1.03"; a shape value is usually "1".
type SystConfig struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"` // lnN or shape
	Value     Number            `json:"value,omitempty"`
	Processes []string          `json:"processes,omitempty"`
	Values    map[string]Number `json:"values,omitempty"`
}

// Number is a datacard entry written in JSON as a number or a string ("0.98/1.03").
type Number string

// UnmarshalJSON accepts a JSON number or string.
func (n *Number) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = Number(s)
		return nil
	}
	var f json.Number
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("want a number or a string, got %s", b)
	}
	*n = Number(f.String())
	return nil
}

// ParseConfig reads a card.json, rejecting unknown fields: a typo must not silently drop a
// systematic.
func ParseConfig(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	return &c, c.validate()
}

var nameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validate() error {
	if c.Category == "" {
		return fmt.Errorf("no category")
	}
	if c.Observation.File == "" {
		return fmt.Errorf("observation: no file")
	}
	if len(c.Processes) < 2 {
		return fmt.Errorf("want at least one signal and one background process, got %d processes", len(c.Processes))
	}
	seen := make(map[string]bool)
	nsig := 0
	for _, p := range c.Processes {
		switch {
		case !nameRe.MatchString(p.Name):
			return fmt.Errorf("process name %q: want letters, digits and _", p.Name)
		case seen[p.Name]:
			return fmt.Errorf("process %s listed twice", p.Name)
		case p.File == "":
			return fmt.Errorf("process %s: no file", p.Name)
		}
		seen[p.Name] = true
		if p.Signal {
			nsig++
		}
	}
	if nsig == 0 || nsig == len(c.Processes) {
		return fmt.Errorf("want at least one signal and one background process, got %d signals of %d", nsig, len(c.Processes))
	}
	systs := make(map[string]bool)
	for _, s := range c.Systematics {
		if !nameRe.MatchString(s.Name) {
			return fmt.Errorf("systematic name %q: want letters, digits and _", s.Name)
		}
		if systs[s.Name] {
			return fmt.Errorf("systematic %s listed twice", s.Name)
		}
		systs[s.Name] = true
		if s.Type != "lnN" && s.Type != "shape" {
			return fmt.Errorf("systematic %s: type %q, want lnN or shape", s.Name, s.Type)
		}
		for _, p := range s.Processes {
			if !seen[p] {
				return fmt.Errorf("systematic %s: unknown process %s", s.Name, p)
			}
		}
		for p, v := range s.Values {
			if !seen[p] {
				return fmt.Errorf("systematic %s: unknown process %s", s.Name, p)
			}
			if err := checkValue(s.Type, string(v)); err != nil {
				return fmt.Errorf("systematic %s, process %s: %w", s.Name, p, err)
			}
		}
		if s.Value != "" {
			if err := checkValue(s.Type, string(s.Value)); err != nil {
				return fmt.Errorf("systematic %s: %w", s.Name, err)
			}
		} else if s.Type == "lnN" && len(s.Values) == 0 {
			return fmt.Errorf("systematic %s: lnN needs a value", s.Name)
		}
	}
	return nil
}

func checkValue(typ, v string) error {
	if typ == "lnN" {
		if !validLnN(v) {
			return fmt.Errorf("lnN value %q: want a positive number or down/up, e.g. 1.016 or 0.98/1.03", v)
		}
		return nil
	}
	if _, err := strconv.ParseFloat(v, 64); err != nil {
		return fmt.Errorf("shape value %q: not a number", v)
	}
	return nil
}

// BinName is the card's bin name for the configuration.
func (c *Config) BinName() string {
	if c.Bin != "" {
		return c.Bin
	}
	// Combine's names for RooFit objects must not start with a digit, and categories like
	// "6j4b" do.
	return "cat_" + c.Category
}

// entry returns the card entry of systematic s for process p, "-" where it does not apply.
func (s SystConfig) entry(p string) string {
	if v, ok := s.Values[p]; ok {
		return string(v)
	}
	if len(s.Processes) > 0 && !slices.Contains(s.Processes, p) {
		return "-"
	}
	if s.Value == "" {
		if s.Type == "shape" && len(s.Values) == 0 {
			return "1"
		}
		return "-"
	}
	return string(s.Value)
}

// HistReader returns the histogram called name from the ROOT file path.
type HistReader func(path, name string) (*hbook.H1D, error)

// Build reads the histograms the configuration names and returns the card, which refers to its
// shapes as shapesName, and the histograms of the shapes file: data_obs, then each process's
// nominal and, for every shape systematic that applies to it, its Up and Down variations, all
// renamed to $PROCESS and $PROCESS_$SYSTEMATIC{Up,Down}. Inputs overrides the files of the
// configuration by process name (and "data_obs" for the observation).
func Build(cfg *Config, shapesName string, inputs map[string]string, read HistReader) (*Card, []*hbook.H1D, error) {
	if read == nil {
		read = rootio.ReadHist
	}
	for name := range inputs {
		if name != "data_obs" && !slices.ContainsFunc(cfg.Processes, func(p ProcessConfig) bool { return p.Name == name }) {
			return nil, nil, fmt.Errorf("input for unknown process %s", name)
		}
	}
	file := func(name, def string) string {
		if f, ok := inputs[name]; ok {
			return f
		}
		return def
	}
	bin := cfg.BinName()
	var hists []*hbook.H1D
	renamed := func(h *hbook.H1D, name string) *hbook.H1D {
		h = h.Clone()
		h.Ann["name"] = name
		hists = append(hists, h)
		return h
	}

	obsHist := cfg.Observation.Hist
	if obsHist == "" {
		obsHist = "data_obs"
	}
	data, err := read(file("data_obs", cfg.Observation.File), obsHist)
	if err != nil {
		return nil, nil, fmt.Errorf("observation: %w", err)
	}
	renamed(data, "data_obs")

	card := &Card{
		IMax:        1,
		JMax:        len(cfg.Processes) - 1,
		KMax:        len(cfg.Systematics),
		Shapes:      []Shapes{{Process: "*", Channel: "*", File: shapesName, Nominal: "$PROCESS", Syst: "$PROCESS_$SYSTEMATIC"}},
		Bins:        []string{bin},
		Observation: []float64{histo.Sum(data)},
	}
	// Signals get 0, -1, ...; backgrounds 1, 2, ... in the order given.
	sigIdx, bkgIdx := 0, 1
	for _, p := range cfg.Processes {
		path := file(p.Name, p.File)
		hname := p.Hist
		if hname == "" {
			hname = p.Name
		}
		nom, err := read(path, hname)
		if err != nil {
			return nil, nil, fmt.Errorf("process %s: %w", p.Name, err)
		}
		if !histo.SameBinning(nom, data) {
			return nil, nil, fmt.Errorf("process %s: histogram %s in %s is binned unlike the data", p.Name, hname, path)
		}
		renamed(nom, p.Name)
		col := Column{Bin: bin, Process: p.Name, Rate: histo.Sum(nom)}
		if p.Signal {
			col.Index = sigIdx
			sigIdx--
		} else {
			col.Index = bkgIdx
			bkgIdx++
		}
		card.Columns = append(card.Columns, col)
		for _, s := range cfg.Systematics {
			if s.Type != "shape" {
				continue
			}
			if e := s.entry(p.Name); e == "-" || e == "0" {
				continue
			}
			for _, dir := range []string{"Up", "Down"} {
				h, err := read(path, hname+"_"+s.Name+dir)
				if err != nil {
					return nil, nil, fmt.Errorf("process %s, systematic %s: %w", p.Name, s.Name, err)
				}
				if !histo.SameBinning(h, nom) {
					return nil, nil, fmt.Errorf("process %s, systematic %s: %s%s is binned unlike the nominal", p.Name, s.Name, s.Name, dir)
				}
				renamed(h, p.Name+"_"+s.Name+dir)
			}
		}
	}
	for _, s := range cfg.Systematics {
		sys := Systematic{Name: s.Name, Type: s.Type}
		for _, p := range cfg.Processes {
			sys.Entries = append(sys.Entries, s.entry(p.Name))
		}
		card.Systematics = append(card.Systematics, sys)
	}
	switch {
	case cfg.AutoMCStats == 0:
		card.Extra = append(card.Extra, "* autoMCStats 10")
	case cfg.AutoMCStats > 0:
		card.Extra = append(card.Extra, "* autoMCStats "+strconv.Itoa(cfg.AutoMCStats))
	}
	return card, hists, nil
}

// Header is the comment the datacard program writes above a card.
func Header(cfg *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Datacard of the toy ttH(bb) analysis, category %s\n", cfg.Category)
	b.WriteString("# written by examples/tth/tools/datacard; checked with card.Verify\n")
	return b.String()
}
