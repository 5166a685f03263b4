package arc

import (
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*/*.txtar and the golden files")

// TestParseStatus reads recorded arcstat -l outputs (testdata/arcstat:
// the ids asked about, what arcstat printed on its standard output and
// error) and compares the states Poll would return with the want section.
// Most are recorded from A-REX 6.17 with the fork LRMS; the garbage ones
// are made up, and must give an error, never a state.
func TestParseStatus(t *testing.T) {
	files, _ := filepath.Glob("testdata/arcstat/*.txtar")
	if len(files) < 10 {
		t.Fatalf("only %d cases in testdata/arcstat", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sections := map[string]string{}
			for _, f := range ar.Files {
				sections[f.Name] = string(f.Data)
			}
			ids := strings.Fields(sections["ids"])
			got := describe(parseStatus([]byte(sections["stdout"]), []byte(sections["stderr"]), ids))
			if *update {
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = []byte(got)
					}
				}
				if _, ok := sections["want"]; !ok {
					ar.Files = append(ar.Files, txtar.File{Name: "want", Data: []byte(got)})
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(sections["want"], got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// describe prints parseStatus's result as Poll would return it, one job a
// line, sorted.
func describe(infos map[string]jobInfo, err error) string {
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var lines []string
	for id, info := range infos {
		s := info.status()
		line := fmt.Sprintf("%s %s exit=%d", id, s.State, s.ExitCode)
		if s.Reason != "" {
			line += fmt.Sprintf(" reason=%q", s.Reason)
		}
		if s.OverTime {
			line += " over-time"
		}
		if s.OverMemory {
			line += " over-memory"
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return "(none)\n"
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestParseSubmitted reads arcsub outputs: the ids in order, nothing from
// an error.
func TestParseSubmitted(t *testing.T) {
	ar, err := txtar.ParseFile("testdata/arcsub.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(ar.Files); i += 2 {
		out, want := ar.Files[i], ar.Files[i+1]
		got := strings.Join(parseSubmitted(out.Data), "\n")
		if diff := cmp.Diff(strings.TrimSpace(string(want.Data)), got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", out.Name, diff)
		}
	}
}

// TestXRSL compares the description of an array with a golden file that
// A-REX 6.17 accepted (arcsub -x translates it without complaint).
func TestXRSL(t *testing.T) {
	a := &batch.Array{
		Name: "hepbuild-tth",
		Jobs: []batch.Job{
			{Command: []string{"/usr/bin/hepbuild", "worker", "--spec", "/shared/spec 1.json"},
				Env: map[string]string{"HEPBUILD_CACHE": "/shared/cache", "QUOTE": `say "hi" (now)`}},
			{Command: []string{"/bin/sh", "-c", "echo \"$1 it's `date`\"", "x"}},
		},
		Resources: batch.Request{CPU: 2, Memory: 1500 << 20, Walltime: 90 * time.Second},
		Options:   []string{"(queue=fork)", "--debug=ERROR"},
	}
	checkGolden(t, "testdata/multi.xrsl", a)
	a.Jobs = a.Jobs[:1]
	a.Resources = batch.Request{}
	a.Options = nil
	checkGolden(t, "testdata/single.xrsl", a)

	if _, err := xrsl(&batch.Array{Name: "x", Jobs: []batch.Job{{}}}); err == nil {
		t.Error("a job without a command gave no error")
	}
}

func checkGolden(t *testing.T, file string, a *batch.Array) {
	t.Helper()
	got, err := xrsl(a)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s: mismatch (-want +got):\n%s", file, diff)
	}
}

// TestToolsOnlyThroughSandbox keeps the package from running programs
// itself: every ARC tool goes through sandbox.RunTool, which bounds its
// time and output and puts it in its own process group.
func TestToolsOnlyThroughSandbox(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os/exec" || p == "syscall" {
				t.Errorf("%s imports %s: run tools with sandbox.RunTool", f, p)
			}
		}
	}
}
