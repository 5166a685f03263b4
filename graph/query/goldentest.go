package query

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
)

// Golden holds one query of a golden test directory and the labels Bazel
// answered for it.
type Golden struct {
	Expr string
	File string // golden/NN.txt, relative to the directory
	Want []string
}

// ReadGolden reads dir/queries.txt and the golden/NN.txt answer of each
// query, as testdata/regen.sh writes them: NN numbers the queries from 01,
// and each answer starts with a "# EXPR" line naming its query.
func ReadGolden(dir string) ([]Golden, error) {
	f, err := os.Open(filepath.Join(dir, "queries.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Golden
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		g := Golden{Expr: line, File: fmt.Sprintf("golden/%02d.txt", len(out)+1)}
		data, err := os.ReadFile(filepath.Join(dir, g.File))
		if err != nil {
			return nil, fmt.Errorf("query %q: %w (run regen.sh)", line, err)
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if lines[0] != "# "+line {
			return nil, fmt.Errorf("%s answers %q, not %q: queries.txt changed, run regen.sh", g.File, strings.TrimPrefix(lines[0], "# "), line)
		}
		g.Want = append([]string{}, lines[1:]...)
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckGolden evaluates every query of dir/queries.txt against src (the
// workspace dir/ws, loaded by the caller) from the workspace root, and
// returns one error for each query whose label set differs from Bazel's
// answer in dir/golden, or that fails. It returns nil when all agree.
func CheckGolden(dir string, src graph.PackageSource) []error {
	gs, err := ReadGolden(dir)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, g := range gs {
		r, err := Run(context.Background(), src, g.Expr, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", g.File, g.Expr, err))
			continue
		}
		got := map[string]bool{}
		for _, l := range r.Labels() {
			got[l.String()] = true
		}
		var missing, extra []string
		for _, w := range g.Want {
			if !got[w] {
				missing = append(missing, w)
			}
			delete(got, w)
		}
		for _, t := range r.Targets {
			if got[t.Label.String()] {
				extra = append(extra, t.Label.String())
			}
		}
		if len(missing)+len(extra) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s: label sets differ from Bazel's (-missing +extra):\n%s",
				g.File, g.Expr, diffLines(missing, extra)))
		}
	}
	return errs
}

func diffLines(missing, extra []string) string {
	var b strings.Builder
	for _, l := range missing {
		b.WriteString("\t-" + l + "\n")
	}
	for _, l := range extra {
		b.WriteString("\t+" + l + "\n")
	}
	return b.String()
}
