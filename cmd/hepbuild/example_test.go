package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/internal/testserver"

	"github.com/hepbuild/hepbuild/examples/tth/tools/card"
)

// The example analysis, built end to end by the real command line on a copy of the workspace
// whose configuration is cut down (fewer files, events, categories and variables: the same
// graph, a third of the actions). It compiles the analysis programs with go_binary, so it needs
// the go command and, the first time on a machine, the module proxy.

// tthSmallConfig replaces config files of the copied example.
var tthSmallConfig = map[string]string{
	"examples/tth/config/datasets.star": `
LUMI = 20.0
EVENTS_PER_FILE = 3000
DATASETS = [
    struct(process = "tth", files = 2, seed = 1000),
    struct(process = "ttbb", files = 2, seed = 2000),
    struct(process = "ttlf", files = 2, seed = 3000),
    struct(process = "ttv", files = 1, seed = 4000),
    struct(process = "st", files = 1, seed = 5000),
]
DATA_DATASET = struct(process = "data", files = 2, seed = 9000)
DATASET = {d.process: d for d in DATASETS + [DATA_DATASET]}
EVENTS_URL = ""

def nevents(process):
    return DATASET[process].files * EVENTS_PER_FILE
`,
	"examples/tth/config/categories.star": `
CATEGORIES = [
    struct(name = "5j3b", cuts = "njet==5,nbtag==3", label = "5 jets, 3 b tags", fit = "mbb"),
    struct(name = "6j4b", cuts = "njet>=6,nbtag>=4", label = "≥6 jets, ≥4 b tags", fit = "dnn"),
]
`,
	"examples/tth/config/variables.star": `
VARIABLES = [
    struct(name = "mbb", bins = 10, min = 50.0, max = 250.0),
    struct(name = "dnn", bins = 5, min = 0.0, max = 1.0),
]
`,
}

var (
	tthCategories = []string{"5j3b", "6j4b"}
	tthVariables  = []string{"mbb", "dnn"}
	tthTargets    = []string{"//examples/tth/analysis:datacards", "//examples/tth/analysis:plots", "//examples/tth/analysis:fit"}
)

func TestExampleAnalysis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example analysis end to end (about a minute on two cores): not in -short mode")
	}
	root := copyExample(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
	out := filepath.Join(root, "hepbuild-out", "examples", "tth", "analysis")

	// A cold build makes every card and plot.
	first := buildExample(t, root)
	if len(first["action_finished"]) < 150 {
		t.Errorf("cold build executed %d actions, want the whole graph (>= 150)", len(first["action_finished"]))
	}
	checkCards(t, out, "jes")
	for _, c := range tthCategories {
		for _, v := range tthVariables {
			checkPlot(t, filepath.Join(out, "plots", c, v))
		}
	}

	checkFit(t, out)

	// A second clean build, of another copy of the workspace into another cache and output
	// base, a minute later, must give every output byte for byte as the first.
	t.Run("reproducible", func(t *testing.T) {
		again := copyExample(t)
		t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
		if second := buildExample(t, again); len(second["action_finished"]) != len(first["action_finished"]) {
			t.Errorf("the second clean build executed %d actions, the first %d", len(second["action_finished"]), len(first["action_finished"]))
		}
		compareOutputs(t, filepath.Join(root, "hepbuild-out"), filepath.Join(again, "hepbuild-out"))
	})

	// The same analysis on a (single-node, real) Slurm cluster: every run
	// action goes through a batch job and hepbuild worker, the outputs are
	// the local build's byte for byte, and after clean everything comes
	// back from the cache without a job.
	t.Run("slurm", func(t *testing.T) {
		testserver.StartSlurm(t)
		t.Setenv(asMainEnv, "1") // the jobs run this test binary as hepbuild worker
		again := copyExample(t)
		t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
		flags := []string{"--executor=slurm", "--batch-poll=500ms", "--batch-window=300ms", "--actions-per-job=4"}
		ran := buildExample(t, again, flags...)
		if n, local := len(ran["job_submitted"]), len(first["action_finished"]); n < local*3/4 {
			t.Errorf("%d actions went to jobs of %d run", n, local)
		}
		compareOutputs(t, filepath.Join(root, "hepbuild-out"), filepath.Join(again, "hepbuild-out"))
		if r := hepbuild(t, again, "clean"); r.code != 0 {
			t.Fatal(r.stderr)
		}
		restored := buildExample(t, again, flags...)
		if n := len(restored["action_finished"]) + len(restored["job_submitted"]); n != 0 {
			t.Errorf("after clean, %d actions ran or went to jobs", n)
		}
	})

	// The events read from a (real) XRootD server instead of generated:
	// exported there from the first build, then EVENTS_URL set as the
	// example's README says. With the first build's cache, only the
	// downloads (10 files in this cut-down configuration) run: the files
	// come back byte for byte, at the paths the gen tasks wrote, so every
	// selection and everything after it is a cache hit.
	t.Run("xrootd", func(t *testing.T) {
		s := testserver.StartXRootD(t)
		dest := "root://" + s.Addr + "//store/tth/"
		r := hepbuild(t, root, "export", "//examples/tth/samples:events", dest)
		if r.code != 0 || !strings.Contains(r.stdout, "copied 10 files") {
			t.Fatalf("export of the events: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		again := copyExample(t)
		editFile(t, filepath.Join(again, "examples/tth/config/datasets.star"), `EVENTS_URL = ""`,
			`EVENTS_URL = "`+dest+`examples/tth/samples/events"`)
		ran := buildExample(t, again)
		want := queryLabels(t, again, `kind(remote_files, //examples/tth/samples:*)`)
		if len(want) != 10 {
			t.Fatalf("query found %d remote_files targets, want 10", len(want))
		}
		if diff := cmp.Diff(want, sorted(ran["action_finished"])); diff != "" {
			t.Errorf("with the events on XRootD, executed targets mismatch (-downloads +executed):\n%s", diff)
		}
		// The generator is not needed any more.
		compareOutputs(t, filepath.Join(root, "hepbuild-out"), filepath.Join(again, "hepbuild-out"), "examples/tth/tools/gen")
		if _, err := os.Stat(filepath.Join(again, "hepbuild.lock")); err != nil {
			t.Errorf("no hepbuild.lock after a build over remote events: %v", err)
		}
	})

	// Nothing changed: nothing runs.
	if second := buildExample(t, root); len(second["action_finished"]) != 0 {
		t.Errorf("second build executed %d actions, want 0: %v", len(second["action_finished"]), second["action_finished"])
	}

	// Renaming the jet-energy-scale nuisance changes the commands of its shifted histograms (their
	// names), of the card configurations (the systematics) and of the plots (-syst). Exactly
	// those and what depends on them must rerun: no generation, no selection, no nominal or b-tag
	// histogram.
	editFile(t, filepath.Join(root, "examples/tth/config/systematics.star"), `name = "jes"`, `name = "CMS_scale_j"`)
	want := queryLabels(t, root, `kind("task|card_config", rdeps(//examples/tth/..., `+
		`filter("hist_.*_jes_(up|down)$", //examples/tth/analysis:*) + `+
		`filter("card_config_|plot_", kind(rule, //examples/tth/analysis:*))))`)
	// 5 processes x 2 categories x 2 variables x (up, down), their merges, 2 card configurations,
	// 2 datacards, 4 plots, 2 fits.
	if len(want) != 40+20+2+2+4+2 {
		t.Fatalf("query found %d targets depending on the jes shift, want 70: %v", len(want), want)
	}
	third := buildExample(t, root)
	if diff := cmp.Diff(want, sorted(third["action_finished"])); diff != "" {
		t.Errorf("after renaming jes, executed targets mismatch (-rdeps +executed):\n%s", diff)
	}
	checkCards(t, out, "CMS_scale_j")

	// A comment at the end of a tool's source rebuilds every go_binary (they share the sources),
	// but the binaries come out byte-identical, so nothing downstream reruns (early cutoff).
	appendFile(t, filepath.Join(root, "examples/tth/tools/cmds/hist.go"), "\n// A comment that moves no code.\n")
	fourth := buildExample(t, root)
	tools := []string{"datacard", "fit", "gen", "hist", "merge", "plot", "select"}
	var wantTools []string
	for _, tool := range tools {
		wantTools = append(wantTools, "//examples/tth/tools:"+tool)
	}
	if diff := cmp.Diff(wantTools, sorted(fourth["action_finished"])); diff != "" {
		t.Errorf("after a comment in hist.go, executed targets mismatch (-want +got):\n%s", diff)
	}
}

// copyExample copies what the example needs (module files, workspace, the example with its Go
// sources) into a temporary workspace, with the cut-down configuration.
func copyExample(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "ws")
	for _, f := range []string{"go.mod", "go.sum", "BUILD.hep", "WORKSPACE.hep"} {
		copyFile(t, filepath.Join(repo, f), filepath.Join(root, f))
	}
	src := filepath.Join(repo, "examples", "tth")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 || (d.IsDir() && d.Name() == "hepbuild-out") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(repo, p)
		copyFile(t, p, filepath.Join(root, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range tthSmallConfig {
		p := filepath.Join(root, rel)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the example has no %s to replace: %v", rel, err)
		}
		if err := os.WriteFile(p, []byte(`"""Cut down by cmd/hepbuild/example_test.go."""`+"\n"+content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s holds %q %d times, want once", path, old, n)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildExample builds the datacards and plots and returns the targets of the --events file's
// events, by event type.
func buildExample(t *testing.T, root string, extra ...string) map[string][]string {
	t.Helper()
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	args := append(append([]string{"build", "-j2", "--progress=none", "--events", ev}, extra...), tthTargets...)
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	if code := run(ctx, args, &env{stdout: &stdout, stderr: &stderr, ctx: ctx, cwd: root}); code != 0 {
		t.Fatalf("hepbuild %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct{ Type, Target string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events line %q: %v", line, err)
		}
		byType[e.Type] = append(byType[e.Type], e.Target)
	}
	return byType
}

// outputFiles returns the content of every file below the output tree out (a link to the output
// base), by path relative to it.
func outputFiles(t *testing.T, out string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(out+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		files[rel] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// compareOutputs fails, naming each one, for every output that one build made and the other did
// not, or that differs between the two.
// compareOutputs checks that two output trees hold the same files, byte for
// byte, but for those named in onlyFirst, which the second build need not
// make.
func compareOutputs(t *testing.T, a, b string, onlyFirst ...string) {
	t.Helper()
	fa, fb := outputFiles(t, a), outputFiles(t, b)
	for _, n := range onlyFirst {
		if _, ok := fb[n]; ok {
			t.Errorf("the second build made %s, which it does not need", n)
		}
		delete(fa, n)
	}
	if len(fa) < 100 {
		t.Fatalf("%s holds %d files, want the outputs of the whole example", a, len(fa))
	}
	var names []string
	for n := range fa {
		names = append(names, n)
	}
	for n := range fb {
		if _, ok := fa[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	differ := 0
	for _, n := range names {
		da, inA := fa[n]
		db, inB := fb[n]
		switch {
		case !inA:
			t.Errorf("only the second build made %s", n)
		case !inB:
			t.Errorf("only the first build made %s", n)
		case !bytes.Equal(da, db):
			differ++
			t.Errorf("%s differs between two clean builds (%d and %d bytes)", n, len(da), len(db))
		}
	}
	if differ == 0 {
		t.Logf("%d outputs, byte-identical in both builds", len(fa))
	}
}

func queryLabels(t *testing.T, root, expr string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	if code := run(ctx, []string{"query", expr}, &env{stdout: &stdout, stderr: &stderr, ctx: ctx, cwd: root}); code != 0 {
		t.Fatalf("hepbuild query %s: exit %d\n%s", expr, code, stderr.String())
	}
	return sorted(strings.Fields(stdout.String()))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// checkCards parses every category's datacard back and verifies it against its shapes file;
// jes is the name the jet-energy-scale nuisance must have.
func checkCards(t *testing.T, out, jes string) {
	t.Helper()
	for _, c := range tthCategories {
		dir := filepath.Join(out, "datacards", c)
		f, err := os.Open(filepath.Join(dir, "datacard.txt"))
		if err != nil {
			t.Error(err)
			continue
		}
		parsed, err := card.Parse(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		if err := card.Verify(parsed, filepath.Join(dir, "shapes.root")); err != nil {
			t.Errorf("%s: datacard does not match its shapes: %v", c, err)
		}
		var procs, shapes []string
		for _, col := range parsed.Columns {
			procs = append(procs, col.Process)
			// A small background may have no simulated event in a tight category.
			if col.Rate < 0 || (col.Index <= 0 && col.Rate == 0) {
				t.Errorf("%s: process %s has rate %g", c, col.Process, col.Rate)
			}
		}
		for _, s := range parsed.Systematics {
			if s.IsShape() {
				shapes = append(shapes, s.Name)
			}
		}
		if diff := cmp.Diff([]string{"tth", "ttbb", "ttlf", "ttv", "st"}, procs); diff != "" {
			t.Errorf("%s: processes mismatch (-want +got):\n%s", c, diff)
		}
		if diff := cmp.Diff([]string{jes, "btag"}, shapes); diff != "" {
			t.Errorf("%s: shape systematics mismatch (-want +got):\n%s", c, diff)
		}
		if len(parsed.Observation) != 1 || parsed.Observation[0] <= 0 {
			t.Errorf("%s: observation %v, want one positive count", c, parsed.Observation)
		}
	}
}

// checkPlot checks that base.png is a real image and base.pdf a PDF.
func checkPlot(t *testing.T, base string) {
	t.Helper()
	f, err := os.Open(base + ".png")
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Errorf("%s.png: %v", base, err)
		return
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 400 {
		t.Errorf("%s.png is %dx%d pixels, want a full plot", base, b.Dx(), b.Dy())
	}
	pdf, err := os.ReadFile(base + ".pdf")
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("%s.pdf does not start like a PDF", base)
	}
}

// checkFit checks the fit results: the Asimov fit returns mu = 1, the observed one a finite
// interval around its best fit.
func checkFit(t *testing.T, out string) {
	t.Helper()
	for _, tc := range []struct {
		file   string
		asimov bool
	}{{"mu_expected.txt", true}, {"mu_observed.txt", false}} {
		data, err := os.ReadFile(filepath.Join(out, "fit", tc.file))
		if err != nil {
			t.Error(err)
			continue
		}
		var mu, lo, hi float64
		found := false
		for _, line := range strings.Split(string(data), "\n") {
			if _, err := fmt.Sscanf(line, "mu_68 = [%g, %g]", &lo, &hi); err == nil {
				found = true
			}
			fmt.Sscanf(line, "mu = %g", &mu)
		}
		if !found || !(lo < mu && mu < hi) || hi-lo > 5 {
			t.Errorf("%s: mu = %g in [%g, %g], want a finite interval around the best fit:\n%s", tc.file, mu, lo, hi, data)
		}
		if tc.asimov && math.Abs(mu-1) > 0.01 {
			t.Errorf("%s: Asimov fit gives mu = %g, want 1", tc.file, mu)
		}
	}
}
