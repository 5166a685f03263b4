package cmds

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/examples/tth/tools/card"
	"github.com/hepbuild/hepbuild/examples/tth/tools/events"
	"github.com/hepbuild/hepbuild/examples/tth/tools/histo"
	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
	"github.com/hepbuild/hepbuild/examples/tth/tools/toymc"
)

var commands = map[string]Command{
	"gen": Gen, "select": Select, "hist": Hist, "merge": Merge, "datacard": Datacard, "plot": Plot,
}

// TestMain lets the test binary stand in for the programs, so exit statuses are checked on real
// processes without building six binaries.
func TestMain(m *testing.M) {
	if name := os.Getenv("TTH_TOOLS_MAIN"); name != "" {
		Main(name, commands[name])
	}
	os.Exit(m.Run())
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Run(name, commands[name], args, &out, &errOut); code != 0 {
		t.Fatalf("%s %s: exit %d: %s", name, strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

func TestChain(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	const n = 20000
	procs := []string{"tth", "ttbb", "ttlf", "ttv", "st"}
	shifts := map[string]string{"jes_up": "jesUp", "jes_down": "jesDown", "btag_up": "btagUp", "btag_down": "btagDown"}
	for _, proc := range procs {
		// Two files per dataset, as the analysis splits its samples.
		run(t, "gen", "-process", proc, "-seed", "1", "-events", fmt.Sprint(n/2), "-o", p(proc+"_1.root"))
		run(t, "gen", "-process", proc, "-seed", "2", "-events", fmt.Sprint(n/2), "-o", p(proc+"_2.root"))
	}
	run(t, "gen", "-process", "data", "-seed", "100", "-lumi", "138", "-o", p("data.root"))

	sel := func(in, shift, out string) {
		run(t, "select", "-i", in+"_1.root", "-i", in+"_2.root", "-shift", shift, "-category", "6j4b", "-category", "5j4b:njet==5,nbtag>=4", "-o", out)
	}
	for _, proc := range procs {
		xsec, _, _ := toymc.Lookup(proc)
		norm := []string{"-xsec", fmt.Sprint(xsec.XSec), "-lumi", "138", "-nevents", fmt.Sprint(n)}
		parts := []string{}
		for _, shift := range []string{"nominal", "jes_up", "jes_down", "btag_up", "btag_down"} {
			sel(p(proc), shift, p("sel_"+proc+"_"+shift+".root"))
			name := proc
			if shift != "nominal" {
				name += "_" + shifts[shift]
			}
			out := p("h_" + proc + "_" + shift + ".root")
			run(t, "hist", append([]string{"-i", p("sel_" + proc + "_" + shift + ".root"), "-tree", "events_6j4b", "-var", "mbb", "-bins", "10", "-min", "50", "-max", "250", "-name", name, "-o", out}, norm...)...)
			parts = append(parts, out)
		}
		run(t, "merge", append([]string{"-o", p("hist_" + proc + ".root")}, parts...)...)
	}
	run(t, "select", "-i", p("data.root"), "-category", "6j4b", "-o", p("sel_data.root"))
	run(t, "hist", "-i", p("sel_data.root"), "-var", "mbb", "-bins", "10", "-min", "50", "-max", "250", "-name", "data_obs", "-o", p("hist_data.root"))

	// A card whose files are overridden on the command line, as a BUILD file passes them.
	cfg := `{"category": "6j4b", "observation": {"file": "unused.root"},
	  "processes": [{"name": "tth", "signal": true, "file": "unused.root"}, {"name": "ttbb", "file": "unused.root"},
	    {"name": "ttlf", "file": "unused.root"}, {"name": "ttv", "file": "unused.root"}, {"name": "st", "file": "unused.root"}],
	  "systematics": [{"name": "lumi_13TeV", "type": "lnN", "value": 1.016},
	    {"name": "ttbb_norm", "type": "lnN", "value": 1.5, "processes": ["ttbb"]},
	    {"name": "jes", "type": "shape"}, {"name": "btag", "type": "shape"}]}`
	os.WriteFile(p("card.json"), []byte(cfg), 0o644)
	args := []string{"-config", p("card.json"), "-o", p("datacard.txt"), "-shapes", p("shapes.root"), "-input", "data_obs=" + p("hist_data.root")}
	for _, proc := range procs {
		args = append(args, "-input", proc+"="+p("hist_"+proc+".root"))
	}
	run(t, "datacard", args...)

	text, err := os.ReadFile(p("datacard.txt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := card.Parse(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := card.Verify(c, p("shapes.root")); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if !strings.Contains(string(text), "shapes * * shapes.root $PROCESS $PROCESS_$SYSTEMATIC") {
		t.Errorf("the card does not name its shapes file relative to itself:\n%s", text)
	}
	// The toy must look like the analysis: ttbb dominates the 6j4b category and the data agree
	// with the prediction within a few standard deviations.
	rates := make(map[string]float64)
	total := 0.0
	for _, col := range c.Columns {
		rates[col.Process] = col.Rate
		total += col.Rate
	}
	if rates["ttbb"] < rates["ttlf"] || rates["ttbb"] < rates["tth"] {
		t.Errorf("6j4b rates %v: tt+bb should dominate", rates)
	}
	if obs := c.Observation[0]; obs < total-5*sqrt(total)-0.1*total || obs > total+5*sqrt(total)+0.1*total {
		t.Errorf("observation %g against a prediction of %g", obs, total)
	}

	run(t, "plot", "-shapes", p("shapes.root"), "-stack", "ttbb,ttlf,ttv,st", "-signal", "tth", "-data", "data_obs",
		"-syst", "jes,btag", "-var", "mbb", "-category", "6j4b", "-o", p("mbb.png"), "-o", p("mbb.pdf"))
	f, err := os.Open(p("mbb.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding the plot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 800 {
		t.Errorf("plot is %dx%d pixels, want a 150 dpi figure", b.Dx(), b.Dy())
	}
	if pdf, err := os.ReadFile(p("mbb.pdf")); err != nil || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Errorf("mbb.pdf is not a PDF: %v", err)
	}
}

func sqrt(x float64) float64 { return math.Sqrt(x) }

func TestGenIsByteIdentical(t *testing.T) {
	var files [][]byte
	for _, dir := range []string{t.TempDir(), t.TempDir()} {
		out := filepath.Join(dir, "events.root")
		run(t, "gen", "-process", "ttbb", "-seed", "5", "-events", "2000", "-o", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Errorf("gen with the same arguments wrote different bytes")
	}
	evts, err := events.Read(filepath.Join(t.TempDir(), "missing.root"), "")
	if err == nil {
		t.Errorf("read %d events from a missing file", len(evts))
	}
}

func TestHistNormalisation(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "tth.root")
	run(t, "gen", "-process", "tth", "-seed", "1", "-events", "4000", "-o", in)
	out := filepath.Join(dir, "h.root")
	// The whole range and then some: every event is in, so the yield is xsec x lumi (weights
	// average to one).
	run(t, "hist", "-i", in, "-var", "dnn", "-bins", "1", "-min", "0", "-max", "1.001", "-xsec", "0.5", "-lumi", "10", "-nevents", "4000", "-name", "tth", "-o", out)
	h, err := rootio.ReadHist(out, "tth")
	if err != nil {
		t.Fatal(err)
	}
	if y := histo.Sum(h); y < 4900 || y > 5100 {
		t.Errorf("yield %g, want about 0.5 pb x 10 fb^-1 = 5000", y)
	}
}

// TestExitStatus runs the programs as processes: bad input is exit status 1 with a message that
// names the file, bad usage is 2, and no output is left behind.
func TestExitStatus(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.root")
	os.WriteFile(garbage, []byte("this is not a ROOT file, not even close to one"), 0o644)
	missing := filepath.Join(dir, "missing.root")
	out := filepath.Join(dir, "out.root")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"select", []string{"-i", missing, "-category", "6j4b", "-o", out}, 1, missing},
		{"select", []string{"-i", garbage, "-category", "6j4b", "-o", out}, 1, garbage},
		{"hist", []string{"-i", missing, "-name", "h", "-o", out}, 1, missing},
		{"merge", []string{"-o", out, garbage}, 1, garbage},
		{"datacard", []string{"-config", missing, "-o", filepath.Join(dir, "card.txt"), "-shapes", out}, 1, missing},
		{"plot", []string{"-stack", "ttbb=" + missing, "-o", filepath.Join(dir, "p.png")}, 1, missing},
		{"gen", []string{"-process", "zz", "-events", "1", "-o", out}, 1, "unknown process"},
		{"gen", []string{"-process", "tth", "-o", out}, 2, "-events"},
		{"select", []string{"-i", missing, "-category", "6j4b", "-shift", "up", "-o", out}, 2, "unknown shift"},
		{"hist", []string{"-bogus"}, 2, "bogus"},
	} {
		t.Run(tc.name+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "TTH_TOOLS_MAIN="+tc.name)
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, io.Discard
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and a message containing %q", code, stderr.String(), tc.code, tc.msg)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if n := e.Name(); n != "garbage.root" {
					t.Errorf("%s left %s behind", tc.name, n)
				}
			}
		})
	}
}
