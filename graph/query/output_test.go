package query

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/graph"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

var update = flag.Bool("update", false, "rewrite testdata/output/*.golden from the current output")

// TestWrite prints one result in every format and compares with
// testdata/output/FORMAT.golden. The query has a generated file, a file
// reached by a short and a long path (minrank differs from maxrank), an
// implicit dependency that is left out, and a cycle.
func TestWrite(t *testing.T) {
	r, err := Run(context.Background(), smallGraph(t), "deps(//app:all_files) + deps(//cyc:x)", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range Formats {
		var buf bytes.Buffer
		if err := Write(&buf, r, format, WriteOptions{FormatRule: hstarlark.FormatRule}); err != nil {
			t.Errorf("Write(%s): %v", format, err)
			continue
		}
		file := filepath.Join("testdata", "output", format+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if diff := cmp.Diff(string(want), buf.String()); diff != "" {
			t.Errorf("Write(%s) mismatch (-want +got):\n%s", format, diff)
		}
	}
}

func TestWriteDefaultIsLabel(t *testing.T) {
	r, err := Run(context.Background(), smallGraph(t), "//lib:all", "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, r, "", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "//lib:genb\n//lib:lib\n"; got != want {
		t.Errorf("Write(\"\") = %q, want %q", got, want)
	}
	if err := Write(&buf, r, "xml", WriteOptions{}); err == nil || !strings.Contains(err.Error(), `unknown output format "xml"`) {
		t.Errorf("Write(xml) error = %v, want unknown output format", err)
	}
}

func TestWriteAbsoluteLocations(t *testing.T) {
	r, err := Run(context.Background(), smallGraph(t), "//lib:genb + //lib:b.txt.gen", "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, r, "location", WriteOptions{Root: "/ws"}); err != nil {
		t.Fatal(err)
	}
	want := "/ws/lib/BUILD.hep:6:1: generated file //lib:b.txt.gen\n/ws/lib/BUILD.hep:6:1: task rule //lib:genb\n"
	if got := buf.String(); got != want {
		t.Errorf("location output:\n%s\nwant:\n%s", got, want)
	}
}

// TestWriteJSONLines checks that every json line is one object a consumer
// can decode, with label values as strings.
func TestWriteJSONLines(t *testing.T) {
	r, err := Run(context.Background(), smallGraph(t), "deps(//app:bin)", "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, r, "json", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(r.Targets) {
		t.Fatalf("%d lines for %d targets", len(lines), len(r.Targets))
	}
	for i, line := range lines {
		var obj struct {
			Label      string
			Kind       string
			Location   string
			Attributes map[string]any
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		if obj.Label != r.Targets[i].Label.String() || obj.Kind != r.Targets[i].Kind() || obj.Location == "" {
			t.Errorf("line %d = %s, want %s", i+1, line, r.Targets[i].Label)
		}
		if obj.Label == "//app:bin" {
			if diff := cmp.Diff([]any{"//app:main.txt", "//lib:lib"}, obj.Attributes["srcs"]); diff != "" {
				t.Errorf("srcs of //app:bin mismatch (-want +got):\n%s", diff)
			}
		}
	}
}

// TestWriteLabel: the label formats write a label as its String does.
func TestWriteLabel(t *testing.T) {
	for _, l := range []graph.Label{{Name: "BUILD"}, {Pkg: "a/b", Name: "c.txt"}, {Repo: "data", Pkg: "x", Name: "defs.star"}, {Repo: "r", Name: "y"}} {
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		writeLabel(bw, l)
		bw.Flush()
		if b.String() != l.String() {
			t.Errorf("writeLabel(%#v) = %q, want %q", l, b.String(), l.String())
		}
	}
}
