package cmds

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/examples/tth/tools/card"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

// Datacard writes a Combine datacard and its shapes file from a card.json.
func Datacard(args []string, stdout io.Writer) error {
	fs := newFlags("datacard", "-config card.json [-input PROCESS=hist.root ...] -o datacard.txt -shapes shapes.root")
	config := fs.String("config", "", "card configuration (JSON)")
	var inputs repeatFlag
	fs.Var(&inputs, "input", "PROCESS=FILE: take PROCESS's histograms from FILE instead of the configuration's file; data_obs for the data (repeatable)")
	out := fs.String("o", "", "output datacard")
	shapes := fs.String("shapes", "", "output shapes ROOT file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if err := requireOutput(*out); err != nil {
		return err
	}
	if *shapes == "" {
		return usagef("no shapes file: give -shapes")
	}
	if *config == "" {
		return usagef("no configuration: give -config")
	}
	over := make(map[string]string)
	for _, in := range inputs {
		name, path, ok := strings.Cut(in, "=")
		if !ok || name == "" || path == "" {
			return usagef("-input %q: want PROCESS=FILE", in)
		}
		over[name] = path
	}
	f, err := os.Open(*config)
	if err != nil {
		return fmt.Errorf("reading %s: %w", *config, err)
	}
	cfg, err := card.ParseConfig(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", *config, err)
	}
	// Combine opens the shapes file relative to the datacard's folder.
	rel, err := filepath.Rel(filepath.Dir(*out), *shapes)
	if err != nil {
		rel, _ = filepath.Abs(*shapes)
	}
	c, hists, err := card.Build(cfg, filepath.ToSlash(rel), over, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	var text bytes.Buffer
	text.WriteString(card.Header(cfg))
	if err := c.Format(&text); err != nil {
		return err
	}
	if err := rootio.WriteHists(*shapes, hists); err != nil {
		return err
	}
	// Check what a reader will see, before the card is published.
	parsed, err := card.Parse(bytes.NewReader(text.Bytes()))
	if err == nil {
		err = card.Verify(parsed, *shapes)
	}
	if err != nil {
		os.Remove(*shapes)
		return fmt.Errorf("the card for %s fails its own check: %w", cfg.Category, err)
	}
	if err := writeFileAtomic(*out, text.Bytes()); err != nil {
		os.Remove(*shapes)
		return err
	}
	fmt.Fprintf(stdout, "datacard: %s (%d processes, %d systematics, observation %g) and %s\n", *out, len(c.Columns), len(c.Systematics), c.Observation[0], *shapes)
	return nil
}

// writeFileAtomic writes data to a temporary file next to path and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	return writeToAtomic(path, bytes.NewReader(data))
}
