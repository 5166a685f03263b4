package starlark

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// dumpActions renders actions in a stable, readable form for golden comparison.
func dumpActions(actions []*exec.Action) string {
	as := append([]*exec.Action{}, actions...)
	sort.SliceStable(as, func(i, j int) bool {
		return as[i].Outputs[0].Path < as[j].Outputs[0].Path
	})
	var b strings.Builder
	paths := func(arts []exec.Artifact) string {
		p := make([]string, len(arts))
		for i, a := range arts {
			p[i] = a.Path
		}
		return strings.Join(p, " ")
	}
	for _, a := range as {
		fmt.Fprintf(&b, "%s %s\n", a.Mnemonic, a.Owner)
		if len(a.Argv) > 0 {
			fmt.Fprintf(&b, "  argv: %s\n", strings.Join(a.Argv, " "))
		}
		if a.Kind != exec.KindRun {
			fmt.Fprintf(&b, "  outputs: %s\n", paths(a.Outputs))
			if len(a.Inputs) > 0 {
				fmt.Fprintf(&b, "  inputs: %s\n", paths(a.Inputs))
			}
			fmt.Fprintf(&b, "  content: %q\n", a.Extras().Content)
			continue
		}
		fmt.Fprintf(&b, "  inputs: %s\n", paths(a.Inputs))
		fmt.Fprintf(&b, "  outputs: %s\n", paths(a.Outputs))
		if a.Progress != "" {
			fmt.Fprintf(&b, "  progress: %s\n", a.Describe())
		}
		if len(a.Env) > 0 {
			keys := make([]string, 0, len(a.Env))
			for k := range a.Env {
				keys = append(keys, k+"="+a.Env[k])
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "  env: %s\n", strings.Join(keys, " "))
		}
		if len(a.Extras().Tags) > 0 {
			fmt.Fprintf(&b, "  tags: %s\n", strings.Join(a.Extras().Tags, " "))
		}
		if a.Extras().Retries > 0 {
			fmt.Fprintf(&b, "  retries: %d\n", a.Extras().Retries)
		}
		if a.Extras().Resources.CPU > 0 {
			fmt.Fprintf(&b, "  cpu: %g\n", a.Extras().Resources.CPU)
		}
		if a.Extras().Resources.Memory > 0 {
			fmt.Fprintf(&b, "  memory: %d\n", a.Extras().Resources.Memory)
		}
		if a.Extras().Resources.Walltime > 0 {
			fmt.Fprintf(&b, "  walltime: %s\n", a.Extras().Resources.Walltime)
		}
	}
	return b.String()
}

// TestAnalysis loads each workspace of testdata/ok, analyses the targets its
// header names and compares the actions with want.actions.
func TestAnalysis(t *testing.T) {
	files, _ := filepath.Glob("testdata/ok/*.txtar")
	if len(files) == 0 {
		t.Fatal("no test archives")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			ar, _ := txtar.ParseFile(f)
			var want string
			for _, af := range ar.Files {
				if af.Name == "want.actions" {
					want = string(af.Data)
				}
			}
			l, err, _ := analyzeArchive(t, f)
			if err != nil {
				t.Fatal(err)
			}
			labels := targetsOf(ar)
			g, err := l.Analyze(labels)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, dumpActions(g.Actions)); diff != "" {
				t.Errorf("actions mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAnalyzeTargets checks that analysing the targets themselves gives the
// action graph that analysing their labels gives.
func TestAnalyzeTargets(t *testing.T) {
	files, _ := filepath.Glob("testdata/ok/*.txtar")
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			ar, _ := txtar.ParseFile(f)
			l, err, _ := analyzeArchive(t, f)
			if err != nil {
				t.Fatal(err)
			}
			labels := targetsOf(ar)
			want, err := l.Analyze(labels)
			if err != nil {
				t.Fatal(err)
			}
			targets := make([]*graph.Target, len(labels))
			for i, lbl := range labels {
				if targets[i], err = l.Target(lbl); err != nil {
					t.Fatal(err)
				}
			}
			got, err := l.AnalyzeTargets(targets)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(dumpActions(want.Actions), dumpActions(got.Actions)); diff != "" {
				t.Errorf("actions mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want.TargetOutputs, got.TargetOutputs); diff != "" {
				t.Errorf("target outputs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
