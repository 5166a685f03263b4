package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

var updateLint = flag.Bool("update-lint", false, "rewrite the golden files of the lint tests")

// lintWorkspace has one finding of each kind of hepbuild's own checks, a
// buildtools warning in a .star file, and a clean package.
func lintWorkspace(t *testing.T) string {
	return testWorkspace(t, map[string]string{
		"ana/BUILD": `load(":defs.star", "hist")

hist(name = "h")

task(
    name = "sel",
    srcs = glob(["data/*.root"]),
    outs = ["sel.txt"],
    cmd = "python3 tools/select.py > $@",
    tags = ["requires-netwrok"],
)
`,
		"ana/defs.star":   "def hist(name):\n    unused = 1\n    native.task(name = name, outs = [name + \".txt\"], cmd = \"touch $@\")\n",
		"tools/BUILD":     "",
		"tools/select.py": "",
		"clean/BUILD": `task(
    name = "a",
    srcs = ["in.txt"],
    outs = ["a.txt"],
    cmd = "cp $< $@",
)
`,
		"clean/in.txt": "x\n",
		// Another workspace inside, as a test fixture: its packages do
		// not load as this workspace's.
		"fixture/WORKSPACE.hep": "",
		"fixture/BUILD":         "load(\"//macros:defs.bzl\", \"m\")\n\nm(name = \"x\")\n",
	})
}

// TestLintCommand runs hepbuild lint as users and CI do: findings on
// standard output, sorted and workspace-relative; a summary on standard
// error; exit 1 while findings remain, 0 when clean, 2 for a file that
// does not parse or load and for bad flags.
func TestLintCommand(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	root := lintWorkspace(t)
	before, _ := os.ReadFile(filepath.Join(root, "ana/BUILD"))

	r := hepbuild(t, root, "lint")
	want := `ana/BUILD:9:5: undeclared-input: cmd reads tools/select.py, which srcs and tools do not declare: the sandbox will not hold it and a change to it will not rerun the task; add "//tools:select.py" to srcs (or tools) and write $(location //tools:select.py) (//ana:sel)
ana/BUILD:10:5: unknown-tag: unknown tag "requires-netwrok" (did you mean "requires-network"?): as written it is a label with no effect (//ana:sel)
ana/BUILD:7:16: empty-glob: glob(["data/*.root"]) matches no file of package //ana: a misspelt pattern or a missing file; say allow_empty = True if an empty list is meant
ana/defs.star:2:5: unused-variable: Variable "unused" is unused. Please remove it.
`
	// Sorted by file, then line: 7 before 9 before 10.
	wantSorted := strings.Join([]string{strings.Split(want, "\n")[2], strings.Split(want, "\n")[0], strings.Split(want, "\n")[1], strings.Split(want, "\n")[3]}, "\n") + "\n"
	if r.code != exitBuildFailed {
		t.Errorf("lint: exit %d, want %d\n%s", r.code, exitBuildFailed, r.stderr)
	}
	if diff := cmp.Diff(wantSorted, r.stdout); diff != "" {
		t.Errorf("lint output mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stderr, "lint: 4 finding(s) in 7 file(s)") {
		t.Errorf("lint's summary on stderr: %q", r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "ana/BUILD")); string(after) != string(before) {
		t.Errorf("lint without --fix changed ana/BUILD")
	}

	// Files named: relative to the working folder, reported from the root.
	r = hepbuild(t, filepath.Join(root, "clean"), "lint", "BUILD")
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, "hepbuild lint: 0 finding(s) in 1 file(s)") {
		t.Errorf("lint of a clean file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = hepbuild(t, filepath.Join(root, "ana"), "lint", "defs.star")
	if r.code != exitBuildFailed || !strings.HasPrefix(r.stdout, "ana/defs.star:2:5: unused-variable:") {
		t.Errorf("lint defs.star from ana/: exit %d, stdout %q", r.code, r.stdout)
	}

	// --warnings narrows and widens the set.
	r = hepbuild(t, root, "lint", "--warnings=-undeclared-input,-unknown-tag,-empty-glob,-unused-variable")
	if r.code != exitOK || r.stdout != "" {
		t.Errorf("lint with the findings' checks off: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	r = hepbuild(t, root, "lint", "--warnings=unknown-tag")
	if r.code != exitBuildFailed || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "unknown-tag") {
		t.Errorf("lint --warnings=unknown-tag: exit %d, stdout %q", r.code, r.stdout)
	}

	// JSON for tools.
	r = hepbuild(t, root, "lint", "--format=json", "--warnings=unknown-tag")
	var js []lintJSON
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("lint --format=json: %v\n%s", err, r.stdout)
	}
	wantJS := []lintJSON{{File: "ana/BUILD", Line: 10, Col: 5, Check: "unknown-tag", Target: "//ana:sel",
		Message: `unknown tag "requires-netwrok" (did you mean "requires-network"?): as written it is a label with no effect`}}
	if diff := cmp.Diff(wantJS, js); diff != "" {
		t.Errorf("lint --format=json mismatch (-want +got):\n%s", diff)
	}

	// Bad flags: exit 2, naming the flag.
	for _, args := range [][]string{{"lint", "--warnings=+unkown-tag"}, {"lint", "--warnings=load,-print"}, {"lint", "--format=xml"}} {
		if r := hepbuild(t, root, args...); r.code != exitBadInput || !strings.Contains(r.stderr, "--") {
			t.Errorf("hepbuild %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitBadInput, r.stderr)
		}
	}
	if r := hepbuild(t, root, "lint", "--warnings=+unkown-tag"); !strings.Contains(r.stderr, `did you mean "unknown-tag"?`) {
		t.Errorf("a misspelt check: %s", r.stderr)
	}
}

// TestLintBrokenFiles: a file that does not parse, and one that does not
// load, exit 2 with file:line; the other files are still linted.
func TestLintBrokenFiles(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	root := testWorkspace(t, map[string]string{
		"bad/BUILD":    "task(\n    name = \"a\"\n    outs = [\"a.txt\"],\n)\n",
		"fail/BUILD":   "task(name = \"a\", outs = [\"a.txt\"], cmd = \"touch $@\")\n\nfail(\"no datasets configured\")\n",
		"ok/defs.star": "def f():\n    x = 1\n    return 2\n",
	})
	r := hepbuild(t, root, "lint")
	if r.code != exitBadInput {
		t.Errorf("lint: exit %d, want %d\n%s", r.code, exitBadInput, r.stderr)
	}
	for _, want := range []string{"bad/BUILD:3:9: syntax error", "fail/BUILD:3:5: fail: no datasets configured"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("lint's errors do not say %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "ok/defs.star:2:5: unused-variable") {
		t.Errorf("the good file was not linted: %q", r.stdout)
	}
}

// TestLintFixGolden: --fix rewrites a file with buildtools' fixes and the
// canonical formatting, atomically, keeping its mode and a symbolic link
// as a link, and reports what it could not fix.
func TestLintFixGolden(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	in, err := os.ReadFile("testdata/lint/fix.in")
	if err != nil {
		t.Fatal(err)
	}
	root := testWorkspace(t, map[string]string{
		"shared/real.star": "def f():\n    x = 1\n    return x\n",
		"ana/BUILD":        string(in),
		"ana/defs.star":    "A = 1\nB = 2\n",
		"ana/in.txt":       "",
	})
	build := filepath.Join(root, "ana/BUILD")
	if err := os.Chmod(build, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "ana/link.star")
	if err := os.Symlink("../shared/real.star", link); err != nil {
		t.Fatal(err)
	}
	r := hepbuild(t, root, "lint", "--fix")
	got, err := os.ReadFile(build)
	if err != nil {
		t.Fatal(err)
	}
	if *updateLint {
		if err := os.WriteFile("testdata/lint/fix.golden", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/lint/fix.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("ana/BUILD after lint --fix mismatch (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(build); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("ana/BUILD after --fix: %v, %v; want mode 0640 kept", fi.Mode(), err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("ana/link.star is no longer a symbolic link after --fix")
	}
	// What remains: the tag typo has no automatic fix.
	if r.code != exitBuildFailed || !regexp.MustCompile(`^ana/BUILD:\d+:5: unknown-tag: unknown tag "locl"`).MatchString(r.stdout) || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("lint --fix: exit %d, stdout %q, want only the tag typo\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "fixed ana/BUILD") || !strings.Contains(r.stderr, "fixed 1 file(s)") {
		t.Errorf("lint --fix does not say what it fixed: %q", r.stderr)
	}
	// Nothing left to fix: a second run writes nothing.
	entries, _ := os.ReadDir(filepath.Join(root, "ana"))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".fmt-") {
			t.Errorf("lint --fix left a temporary file %s", e.Name())
		}
	}
	if r := hepbuild(t, root, "lint", "--fix"); strings.Contains(r.stderr, "fixed ana/") {
		t.Errorf("a second lint --fix rewrote a file: %s", r.stderr)
	}
}

// TestLintExamples: the repository's example analysis is clean.
func TestLintExamples(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	var files []string
	err := filepath.WalkDir("../../examples", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isStarlarkFile(d.Name()) {
			files = append(files, p)
		}
		return err
	})
	if err != nil || len(files) < 5 {
		t.Fatalf("found %d Starlark files under examples: %v", len(files), err)
	}
	wd, _ := os.Getwd()
	r := hepbuild(t, wd, append([]string{"lint"}, files...)...)
	if r.code != exitOK || r.stdout != "" {
		t.Errorf("lint of the examples: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBuildMDListsTheLintChecks: BUILD.md names every check lint runs by
// default, says which are on, and gives each of hepbuild's own checks a row.
func TestBuildMDListsTheLintChecks(t *testing.T) {
	sec := section(t, readBuildMD(t), "### lint")
	on, _, ok := strings.Cut(sec, "Off by default")
	if !ok {
		t.Fatalf("BUILD.md's lint section no longer says which warnings are off by default: update this test")
	}
	for _, c := range hstarlark.DefaultLintChecks() {
		if !strings.Contains(on, "`"+c+"`") {
			t.Errorf("BUILD.md's lint section does not name the default check %s before \"Off by default\"", c)
		}
	}
	for _, c := range []string{hstarlark.CheckUndeclaredInput, hstarlark.CheckUnknownTag, hstarlark.CheckEmptyGlob, hstarlark.CheckFormat} {
		if !strings.Contains(sec, "| `"+c+"` |") {
			t.Errorf("BUILD.md's table of hepbuild's own checks has no row for %s", c)
		}
	}
	// The prose names no check that lint does not have.
	all := map[string]bool{}
	for _, c := range hstarlark.AllLintChecks() {
		all[c] = true
	}
	_, off, _ := strings.Cut(sec, "buildtools' warnings on by default:")
	for _, m := range regexp.MustCompile("`([a-z]+(?:-[a-z]+)+)`").FindAllStringSubmatch(off, -1) {
		if !all[m[1]] && !strings.HasSuffix(m[1], "-") {
			t.Errorf("BUILD.md's lint section names %s, which is no check", m[1])
		}
	}
}
