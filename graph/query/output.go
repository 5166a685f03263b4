package query

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
)

// Formats lists the output formats of Write, the default first.
var Formats = []string{"label", "label_kind", "location", "package", "build", "graph", "json", "minrank", "maxrank"}

// WriteOptions adjusts Write.
type WriteOptions struct {
	// Root, when set, makes locations absolute paths under Root, as Bazel
	// prints them; otherwise they are relative to the workspace root.
	Root string
	// FormatRule prints a rule as a BUILD file call after a "# location"
	// comment line; the build format needs it (the loader provides it, so
	// that only the Starlark package depends on a BUILD printer).
	FormatRule func(t *graph.Target, location string) []byte
}

// Write prints r in the named format ("" means "label"):
//
//   - label: one label per line
//   - label_kind: "task rule //pkg:x"
//   - location: "pkg/BUILD.hep:12:1: task rule //pkg:x"
//   - package: the packages of the targets, once each ("pkg", "@repo//pkg")
//   - build: each rule as a BUILD file call of its explicit attributes, after
//     a "# pkg/BUILD.hep:12:1" line; files are left out, as Bazel does
//   - graph: the subgraph of the result in Graphviz dot
//   - json: one object per line: label, kind, location, and the attributes of
//     rules or the generating rule of generated files
//   - minrank, maxrank: "RANK label", where the rank is the length of the
//     shortest (longest) path to the target from a root of the result's
//     subgraph, a target nothing in the result depends on; the targets of a
//     cycle share one rank
//
// Unlike Bazel's default (--order_output=auto, dependencies first), every
// format lists targets sorted by label, and the rank formats by rank then
// label: the output of one query never depends on load order.
func Write(w io.Writer, r *Result, format string, opts WriteOptions) error {
	bw := bufio.NewWriter(w)
	var err error
	switch format {
	case "", "label":
		for _, t := range r.Targets {
			writeLabel(bw, t.Label)
			bw.WriteByte('\n')
		}
	case "label_kind":
		for _, t := range r.Targets {
			bw.WriteString(t.Kind())
			bw.WriteByte(' ')
			writeLabel(bw, t.Label)
			bw.WriteByte('\n')
		}
	case "location":
		for _, t := range r.Targets {
			fmt.Fprintf(bw, "%s: %s %s\n", r.location(t, opts), t.Kind(), t.Label)
		}
	case "package":
		writePackages(bw, r)
	case "build":
		err = writeBuild(bw, r, opts)
	case "graph":
		writeGraph(bw, r)
	case "json":
		err = writeJSON(bw, r, opts)
	case "minrank", "maxrank":
		writeRanks(bw, r, format == "maxrank")
	default:
		return fmt.Errorf("unknown output format %q (one of %s)", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// location is where t was declared: a rule's call, the rule of a generated
// file, the BUILD file line that first names a source file.
func (r *Result) location(t *graph.Target, opts WriteOptions) string {
	pos := t.Pos
	if pos.File == "" && t.IsGeneratedFile() && r.src != nil {
		if g, err := r.src.Target(*t.Generator); err == nil {
			pos = g.Pos
		}
	}
	if pos.File == "" {
		pos.File = loadPath(t.Label)
	}
	if pos.Line == 0 {
		pos.Line, pos.Col = 1, 1
	}
	if opts.Root != "" && !strings.HasPrefix(pos.File, "@") {
		pos.File = filepath.Join(opts.Root, filepath.FromSlash(pos.File))
	}
	return pos.String()
}

func writePackages(w io.Writer, r *Result) {
	seen := map[string]bool{}
	var pkgs []string
	for _, t := range r.Targets {
		p := t.Label.Pkg
		if t.Label.Repo != "" {
			p = t.Label.PackageString()
		}
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		fmt.Fprintln(w, p)
	}
}

func writeBuild(w io.Writer, r *Result, opts WriteOptions) error {
	if opts.FormatRule == nil {
		return fmt.Errorf("output format build needs WriteOptions.FormatRule")
	}
	first := true
	for _, t := range r.Targets {
		if !t.IsRule() {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		if _, err := w.Write(opts.FormatRule(t, r.location(t, opts))); err != nil {
			return err
		}
	}
	return nil
}

func writeGraph(w io.Writer, r *Result) {
	fmt.Fprintln(w, "digraph hepbuild {")
	fmt.Fprintln(w, "  node [shape=box];")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  %s\n", strconv.Quote(t.Label.String()))
	}
	for _, t := range r.Targets {
		for _, d := range r.Deps(t) {
			fmt.Fprintf(w, "  %s -> %s\n", strconv.Quote(t.Label.String()), strconv.Quote(d.Label.String()))
		}
	}
	fmt.Fprintln(w, "}")
}

type jsonTarget struct {
	Label          string         `json:"label"`
	Kind           string         `json:"kind"`
	Location       string         `json:"location"`
	GeneratingRule string         `json:"generating_rule,omitempty"`
	Attributes     map[string]any `json:"attributes,omitempty"`
}

func writeJSON(w io.Writer, r *Result, opts WriteOptions) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, t := range r.Targets {
		jt := jsonTarget{Label: t.Label.String(), Kind: t.Kind(), Location: r.location(t, opts)}
		if t.IsGeneratedFile() {
			jt.GeneratingRule = t.Generator.String()
		}
		if t.IsRule() {
			jt.Attributes = map[string]any{}
			for a := range t.AllAttrs() {
				jt.Attributes[a.Name] = jsonValue(a.Value)
			}
		}
		if err := enc.Encode(jt); err != nil {
			return fmt.Errorf("encoding %s: %w", t.Label, err)
		}
	}
	return nil
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case graph.Label:
		if v.IsZero() {
			return nil
		}
		return v.String()
	case []graph.Label:
		out := make([]string, len(v))
		for i, l := range v {
			out[i] = l.String()
		}
		return out
	}
	return v
}

func writeRanks(w io.Writer, r *Result, longest bool) {
	rank := ranks(r, longest)
	ts := make([]*graph.Target, len(r.Targets))
	copy(ts, r.Targets)
	sort.SliceStable(ts, func(i, j int) bool { return rank[ts[i].Label] < rank[ts[j].Label] })
	for _, t := range ts {
		fmt.Fprintln(w, rank[t.Label], t.Label)
	}
}

// writeLabel writes l.String() without making it: a query of a
// million-action package lists two million labels.
func writeLabel(bw *bufio.Writer, l graph.Label) {
	if l.Repo != "" {
		bw.WriteByte('@')
		bw.WriteString(l.Repo)
	}
	bw.WriteString("//")
	bw.WriteString(l.Pkg)
	bw.WriteByte(':')
	bw.WriteString(l.Name)
}
