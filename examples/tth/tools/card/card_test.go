package card

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go-hep.org/x/hep/hbook"

	"github.com/hepbuild/hepbuild/examples/tth/tools/internal/rootio"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const configJSON = `{
  "category": "6j4b",
  "observation": {"file": "data.root"},
  "processes": [
    {"name": "tth", "signal": true, "file": "tth.root"},
    {"name": "ttbb", "file": "ttbb.root"},
    {"name": "ttlf", "file": "ttlf.root"}
  ],
  "systematics": [
    {"name": "lumi_13TeV", "type": "lnN", "value": 1.016},
    {"name": "ttbb_norm", "type": "lnN", "value": "0.7/1.5", "processes": ["ttbb"]},
    {"name": "jes", "type": "shape"},
    {"name": "btag", "type": "shape", "processes": ["tth", "ttbb"]}
  ]
}`

func hist(name string, scale float64) *hbook.H1D {
	h := hbook.NewH1D(4, 50, 250)
	h.Ann["name"] = name
	for i := range 4 {
		x := 75 + 50*float64(i)
		h.Fill(x, scale*float64(10+3*i))
		h.Fill(x, scale*0.5)
	}
	return h
}

// inputs are histogram files as the hist and merge programs write them: one per process with the
// nominal and its variations.
func inputs() map[string][]*hbook.H1D {
	files := map[string][]*hbook.H1D{"data.root": {hist("data_obs", 3)}}
	for i, p := range []string{"tth", "ttbb", "ttlf"} {
		s := 0.1 + float64(i)
		files[p+".root"] = []*hbook.H1D{
			hist(p, s), hist(p+"_jesUp", s*1.05), hist(p+"_jesDown", s*0.96),
			hist(p+"_btagUp", s*1.02), hist(p+"_btagDown", s*0.98),
		}
	}
	return files
}

func memReader(files map[string][]*hbook.H1D) HistReader {
	return func(path, name string) (*hbook.H1D, error) {
		for _, h := range files[path] {
			if h.Name() == name {
				return h, nil
			}
		}
		return nil, fmt.Errorf("reading %s: no histogram %q", path, name)
	}
}

// build returns the card text and the shapes file written in dir.
func build(t *testing.T, dir string, drop string) (string, string) {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(configJSON))
	if err != nil {
		t.Fatal(err)
	}
	c, hists, err := Build(cfg, "shapes.root", nil, memReader(inputs()))
	if err != nil {
		t.Fatal(err)
	}
	var kept []*hbook.H1D
	for _, h := range hists {
		if h.Name() != drop {
			kept = append(kept, h)
		}
	}
	shapes := filepath.Join(dir, "shapes.root")
	if err := rootio.WriteHists(shapes, kept); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(Header(cfg))
	if err := c.Format(&b); err != nil {
		t.Fatal(err)
	}
	return b.String(), shapes
}

func TestBuildFormatParseVerify(t *testing.T) {
	text, shapes := build(t, t.TempDir(), "")
	golden := filepath.Join("testdata", "datacard.golden")
	if *update {
		os.WriteFile(golden, []byte(text), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), text); diff != "" {
		t.Errorf("datacard mismatch (-want +got):\n%s", diff)
	}
	c, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, shapes); err != nil {
		t.Errorf("Verify of a freshly built card: %v", err)
	}
	var again bytes.Buffer
	c.Format(&again)
	if !strings.HasSuffix(text, again.String()) {
		t.Errorf("Format(Parse(card)) differs from the card:\n%s", again.String())
	}
}

func TestVerifyReportsBrokenCards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		drop   string              // histogram left out of the shapes file
		edit   func(string) string // change to the card text
		parse  string              // expected Parse error, or
		verify string              // expected Verify error
	}{
		{name: "missing Down histogram", drop: "ttbb_jesDown", verify: "histogram ttbb_jesDown is not in"},
		{name: "missing nominal", drop: "ttlf", verify: "rate of ttlf in bin cat_6j4b: histogram ttlf is not in"},
		{name: "missing data_obs", drop: "data_obs", verify: "observation of bin cat_6j4b"},
		{name: "wrong rate", edit: replaceField("rate", 2, "99"), verify: "rate of ttbb in bin cat_6j4b is 99 but ttbb integrates to"},
		{name: "wrong observation", edit: replaceField("observation", 1, "17"), verify: "observation of bin cat_6j4b is 17"},
		{name: "column mismatch in a systematic", edit: dropLastField("jes "), parse: "systematic jes has 2 entries for 3 columns"},
		{name: "column mismatch in the rate", edit: dropLastField("rate "), parse: "rate line has 2 entries, the bin line 3"},
		{name: "wrong kmax", edit: func(s string) string { return strings.Replace(s, "kmax 4", "kmax 3", 1) }, verify: "kmax is 3 but there are 4 systematics"},
		{name: "wrong jmax", edit: func(s string) string { return strings.Replace(s, "jmax 2", "jmax 5", 1) }, verify: "jmax is 5"},
		{name: "no signal", edit: replaceFieldOfLine(2, "process", 1, "3"), verify: "no signal process"},
		{name: "bad lnN", edit: replaceField("lumi_13TeV", 2, "-1"), verify: `lnN entry "-1"`},
		{name: "unknown bin", edit: replaceFieldOfLine(1, "bin", 2, "cat_5j"), verify: "bin cat_5j has no observation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, shapes := build(t, t.TempDir(), tc.drop)
			if tc.edit != nil {
				edited := tc.edit(text)
				if edited == text {
					t.Fatalf("the edit changed nothing")
				}
				text = edited
			}
			c, err := Parse(strings.NewReader(text))
			if tc.parse != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parse) {
					t.Fatalf("Parse error = %v, want %q", err, tc.parse)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = Verify(c, shapes)
			if err == nil || !strings.Contains(err.Error(), tc.verify) {
				t.Errorf("Verify error = %v, want %q", err, tc.verify)
			}
		})
	}
}

// replaceField sets field i (0 is the key) of the first line starting with key.
func replaceField(key string, i int, v string) func(string) string {
	return replaceFieldOfLine(1, key, i, v)
}

// replaceFieldOfLine sets field i of the n-th line starting with key.
func replaceFieldOfLine(n int, key string, i int, v string) func(string) string {
	return func(s string) string {
		lines := strings.Split(s, "\n")
		for j, l := range lines {
			f := strings.Fields(l)
			if len(f) > i && f[0] == key {
				if n--; n == 0 {
					f[i] = v
					lines[j] = strings.Join(f, " ")
					break
				}
			}
		}
		return strings.Join(lines, "\n")
	}
}

func dropLastField(prefix string) func(string) string {
	re := regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(prefix) + `.*?)\s+\S+$`)
	return func(s string) string { return re.ReplaceAllString(s, "$1") }
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ json, err string }{
		{`{"category": "c", "observation": {"file": "d"}, "processes": [{"name": "a", "signal": true, "file": "a"}, {"name": "b", "file": "b"}], "systematic": []}`, "unknown field"},
		{`{"category": "c", "observation": {"file": "d"}, "processes": [{"name": "a", "file": "a"}, {"name": "b", "file": "b"}]}`, "signal"},
		{`{"category": "c", "observation": {"file": "d"}, "processes": [{"name": "a", "signal": true, "file": "a"}, {"name": "b", "file": "b"}], "systematics": [{"name": "x", "type": "lnN"}]}`, "lnN needs a value"},
		{`{"category": "c", "observation": {"file": "d"}, "processes": [{"name": "a", "signal": true, "file": "a"}, {"name": "b", "file": "b"}], "systematics": [{"name": "x", "type": "lnN", "value": "1.1", "processes": ["z"]}]}`, "unknown process z"},
		{`{"category": "c", "observation": {"file": "d"}, "processes": [{"name": "a", "signal": true, "file": "a"}, {"name": "b", "file": "b"}], "systematics": [{"name": "x", "type": "gmN", "value": 1}]}`, "want lnN or shape"},
	} {
		_, err := ParseConfig(strings.NewReader(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseConfig error = %v, want %q", err, tc.err)
		}
	}
}

func TestBuildNeedsEveryShapeVariation(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(configJSON))
	if err != nil {
		t.Fatal(err)
	}
	files := inputs()
	var kept []*hbook.H1D
	for _, h := range files["ttlf.root"] {
		if h.Name() != "ttlf_jesUp" {
			kept = append(kept, h)
		}
	}
	files["ttlf.root"] = kept
	_, _, err = Build(cfg, "shapes.root", nil, memReader(files))
	if err == nil || !strings.Contains(err.Error(), "ttlf_jesUp") {
		t.Errorf("Build without ttlf_jesUp: %v", err)
	}
}
