package main

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests keep BUILD.md, the language and command-line reference, in step
// with the code: every command, flag, BUILD global and native rule attribute
// that exists must be documented, and every flag documented must exist.

const buildMD = "../../BUILD.md"

func readBuildMD(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(buildMD)
	if err != nil {
		t.Fatalf("reading the reference: %v", err)
	}
	return string(b)
}

// docRun runs hepbuild in-process with a home folder and working folder of
// its own, so that no .hepbuildrc of the machine changes the output.
func docRun(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx := context.Background()
	code = run(ctx, args, &env{stdout: &out, stderr: &errb, ctx: ctx, cwd: dir})
	return code, out.String(), errb.String()
}

var (
	helpFlag    = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`)
	helpCommand = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s`)
)

// helpFlags returns the long flags (without "--") listed by a --help text.
// negatableFlag matches a flag line of kong's help for a negatable flag.
var negatableFlag = regexp.MustCompile(`^\s+(?:-[A-Za-z], )?--\[no-\]([a-z][a-z0-9-]*)`)

func helpFlags(help string) []string {
	var out []string
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		} else if m := negatableFlag.FindStringSubmatch(line); m != nil {
			out = append(out, m[1], "no-"+m[1]) // --[no-]coordinate
		}
	}
	return out
}

// helpCommands returns the commands listed under "Commands:" in the top-level help.
func helpCommands(help string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.TrimSpace(line) == "Commands:":
			in = true
		case in && line != "" && !strings.HasPrefix(line, " "):
			in = false
		case in:
			if m := helpCommand.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// mentionsFlag reports whether doc names --flag as a whole flag, so that
// --cache is not found inside --cache-max-size.
func mentionsFlag(doc, flag string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9-])--` + regexp.QuoteMeta(flag) + `([^A-Za-z0-9_-]|$)`).MatchString(doc)
}

// mentionsCode reports whether doc has name as code: `name`, `name(...)` or `name = ...`.
func mentionsCode(doc, name string) bool {
	return regexp.MustCompile("`" + regexp.QuoteMeta(name) + "[`( ]").MatchString(doc)
}

func TestBuildMDDocumentsEveryCommandAndFlag(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	doc := readBuildMD(t)

	code, top, stderr := docRun(t, dir, "--help")
	if code != 0 {
		t.Fatalf("hepbuild --help: exit %d\n%s", code, stderr)
	}
	commands := helpCommands(top)
	if len(commands) < 5 {
		t.Fatalf("found only %d commands in hepbuild --help; has its layout changed?\n%s", len(commands), top)
	}
	allFlags := map[string]bool{}
	for _, f := range helpFlags(top) {
		allFlags[f] = true
		if !mentionsFlag(doc, f) {
			t.Errorf("BUILD.md does not document the global flag --%s", f)
		}
	}
	for _, c := range commands {
		if !regexp.MustCompile(`(?m)^### ` + regexp.QuoteMeta(c) + `$`).MatchString(doc) {
			t.Errorf("BUILD.md has no section \"### %s\" for the command %s", c, c)
		}
		code, help, stderr := docRun(t, dir, c, "--help")
		if code != 0 {
			t.Fatalf("hepbuild %s --help: exit %d\n%s", c, code, stderr)
		}
		flags := helpFlags(help)
		if len(flags) == 0 {
			t.Fatalf("found no flags in hepbuild %s --help; has its layout changed?\n%s", c, help)
		}
		for _, f := range flags {
			allFlags[f] = true
			if !mentionsFlag(doc, f) {
				t.Errorf("BUILD.md does not document --%s of hepbuild %s", f, c)
			}
		}
	}

	// The other way round: a flag in the prose of BUILD.md must exist,
	// except the flags of other programs it names (Bazel's, to say that
	// hepbuild does not have them; python3's). Code blocks are left out:
	// they hold the flags of example tools; bazel-remote's --htpasswd_file.
	notHepbuild := map[string]bool{"output_groups": true, "noimplicit_deps": true, "system-site-packages": true, "htpasswd_file": true,
		// sbatch's and arcsub's, in examples of --batch-option and of what a request becomes.
		"partition": true, "array": true, "cpus-per-task": true, "mem": true, "time": true, "computing-element": true}
	reported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:^|[^A-Za-z0-9-])--([a-z][a-z0-9_-]*)`).FindAllStringSubmatch(prose(doc), -1) {
		if f := m[1]; !allFlags[f] && !notHepbuild[f] && !reported[f] {
			reported[f] = true
			t.Errorf("BUILD.md documents --%s, which no command has", f)
		}
	}
}

// prose returns doc without its fenced code blocks.
func prose(doc string) string {
	var b strings.Builder
	fenced := false
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// starlarkGlobals reads the names hepbuild predeclares from the source of
// starlark/builtins.go: the keys of the StringDict literals of nativeRules
// and common (the BUILD file globals), and the names buildPredeclared adds
// for .star files. Parsing the source keeps the starlark package's API as
// it is.
func starlarkGlobals(t *testing.T) (build, star []string) {
	t.Helper()
	const file = "../../starlark/builtins.go"
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	dictKeys := func(n ast.Node) []string {
		var keys []string
		ast.Inspect(n, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if s, ok := stringLit(kv.Key); ok {
					keys = append(keys, s)
				}
			}
			return true
		})
		return keys
	}
	funcs := map[string]bool{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || (fd.Name.Name != "nativeRules" && fd.Name.Name != "common") {
			continue
		}
		funcs[fd.Name.Name] = true
		build = append(build, dictKeys(fd.Body)...)
	}
	if !funcs["nativeRules"] || !funcs["common"] {
		t.Fatalf("%s has no functions nativeRules and common any more: update this test to find the BUILD globals", file)
	}
	// .star globals: star["x"] = ..., and the names of the loop over
	// unsupported Bazel symbols.
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.AssignStmt:
			for _, l := range x.Lhs {
				if ix, ok := l.(*ast.IndexExpr); ok {
					if id, ok := ix.X.(*ast.Ident); ok && id.Name == "star" {
						if s, ok := stringLit(ix.Index); ok {
							star = append(star, s)
						}
					}
				}
			}
		case *ast.RangeStmt:
			if cl, ok := x.X.(*ast.CompositeLit); ok {
				for _, e := range cl.Elts {
					if s, ok := stringLit(e); ok {
						star = append(star, s)
					}
				}
			}
		}
		return true
	})
	if len(build) < 10 || len(star) < 5 {
		t.Fatalf("found only %d BUILD and %d .star globals in %s: update this test to its layout", len(build), len(star), file)
	}
	return build, star
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

func TestBuildMDDocumentsEveryGlobal(t *testing.T) {
	doc := readBuildMD(t)
	build, star := starlarkGlobals(t)

	// native.* is what the interpreter really has: it must agree with the
	// source reading above, or that reading has gone stale.
	root := docWorkspace(t, map[string]string{
		"defs.star": "NAMES = dir(native)\nprint(\"NATIVE\", NAMES)\n",
		"BUILD":     "load(\":defs.star\", \"NAMES\")\n",
	})
	_, _, stderr := docRun(t, root, "query", "//:all")
	m := regexp.MustCompile(`NATIVE (\[.*\])`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no dir(native) output in:\n%s", stderr)
	}
	var native []string
	if err := json.Unmarshal([]byte(m[1]), &native); err != nil {
		t.Fatalf("decoding dir(native) %s: %v", m[1], err)
	}
	have := map[string]bool{}
	for _, n := range build {
		have[n] = true
	}
	for _, n := range native {
		if !have[n] {
			t.Errorf("native.%s exists but was not found in starlark/builtins.go by this test", n)
		}
	}

	for _, n := range build {
		if !mentionsCode(doc, n) {
			t.Errorf("BUILD.md does not document the BUILD global %s", n)
		}
	}
	for _, n := range star {
		if !mentionsCode(doc, n) {
			t.Errorf("BUILD.md does not document the .star global %s", n)
		}
	}
}

// docWorkspace writes files into a new workspace and returns its root.
func docWorkspace(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	files["WORKSPACE.hep"] = ""
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// section returns the part of doc from the line heading to the next heading
// of the same or a higher level, outside fenced code blocks.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.IndexByte(heading, ' ')
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if l != heading {
			continue
		}
		j := i + 1
		for fenced := false; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "```") {
				fenced = !fenced
			}
			h := strings.IndexByte(lines[j], ' ')
			if !fenced && h > 0 && h <= level && strings.Trim(lines[j][:h], "#") == "" {
				break
			}
		}
		return strings.Join(lines[i:j], "\n")
	}
	t.Fatalf("BUILD.md has no heading %q", heading)
	return ""
}

func TestBuildMDDocumentsEveryNativeAttribute(t *testing.T) {
	doc := readBuildMD(t)
	root := docWorkspace(t, map[string]string{
		"BUILD": `
task(name = "t", outs = ["t.txt"], cmd = "touch $@")
genrule(name = "g", outs = ["g.txt"], cmd = "touch $@")
filegroup(name = "f")
environment(name = "e")
remote_files(name = "r", urls = ["file:///nowhere/x.root"])
remote_glob(name = "rg", url = "file:///nowhere/*.root")
`,
	})
	code, stdout, stderr := docRun(t, root, "query", "--output=json", "//:all")
	if code != 0 {
		t.Fatalf("query: exit %d\n%s", code, stderr)
	}
	attrs := map[string][]string{} // kind -> attribute names
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r struct {
			Kind       string
			Attributes map[string]any
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad query output line %q: %v", line, err)
		}
		for a := range r.Attributes {
			attrs[strings.TrimSuffix(r.Kind, " rule")] = append(attrs[strings.TrimSuffix(r.Kind, " rule")], a)
		}
	}
	sections := map[string]string{
		"task":         "## 3. task",
		"genrule":      "## 3. task",
		"filegroup":    "### filegroup",
		"environment":  "### environment",
		"remote_files": "### remote_files",
		"remote_glob":  "### remote_glob",
	}
	common := section(t, doc, "### Rules: calling task, filegroup, environment, remote_files and rule() rules")
	for kind, heading := range sections {
		names := attrs[kind]
		if len(names) < 7 {
			t.Fatalf("query --output=json lists %d attributes of %s; has the json output changed?", len(names), kind)
		}
		sort.Strings(names)
		sec := section(t, doc, heading)
		for _, a := range names {
			if !strings.Contains(sec, "| `"+a+"` |") && !strings.Contains(common, "| `"+a+"` |") {
				t.Errorf("BUILD.md documents no attribute %s of %s: add a row | `%s` | to %q or to the common attributes", a, kind, a, heading)
			}
		}
	}
}

// The tests below hold README.md and BUILD.md to claims that drifted before: the items of
// hepbuild info, the exit codes, the default sandbox, the execution-requirement tags, target
// patterns and where a build's summary goes. Each checks the claim against the code or a real run.

const readmeMD = "../../README.md"

func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(readmeMD)
	if err != nil {
		t.Fatalf("reading the README: %v", err)
	}
	return string(b)
}

// tableKeys returns the code spans of the first column of the table rows in text: "| `a`, `b` |"
// gives a and b.
func tableKeys(text string) []string {
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(first, -1) {
			keys = append(keys, m[1])
		}
	}
	sort.Strings(keys)
	return keys
}

func sortedCopy(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestDocsListEveryInfoItem(t *testing.T) {
	root := docWorkspace(t, map[string]string{"BUILD": ""})
	code, stdout, stderr := docRun(t, root, "info")
	if code != 0 {
		t.Fatalf("hepbuild info: exit %d\n%s", code, stderr)
	}
	values := map[string]string{}
	var printed []string
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			k = strings.TrimSuffix(line, ":") // an empty value
		}
		printed = append(printed, k)
		values[k] = v
	}
	sort.Strings(printed)
	if len(printed) < 5 {
		t.Fatalf("hepbuild info printed %d items; has its layout changed?\n%s", len(printed), stdout)
	}
	if diff := cmp.Diff(printed, tableKeys(section(t, readBuildMD(t), "### info"))); diff != "" {
		t.Errorf("the items of hepbuild info (-printed +BUILD.md's table):\n%s", diff)
	}
	// The help of the KEY argument lists them too.
	_, help, _ := docRun(t, root, "info", "--help")
	m := regexp.MustCompile(`Print only this item \(([^)]*)\)`).FindStringSubmatch(strings.Join(strings.Fields(help), " "))
	if m == nil {
		t.Fatalf("hepbuild info --help does not list the items:\n%s", help)
	}
	if diff := cmp.Diff(printed, sortedCopy(strings.Split(m[1], ", "))); diff != "" {
		t.Errorf("the items of hepbuild info (-printed +listed by info --help):\n%s", diff)
	}
	for _, k := range printed {
		if code, out, stderr := docRun(t, root, "info", k); code != 0 || strings.TrimSuffix(out, "\n") != values[k] {
			t.Errorf("hepbuild info %s: exit %d, %q, want %q\n%s", k, code, out, values[k], stderr)
		}
	}
	if code, _, _ := docRun(t, root, "info", "no_such_item"); code != exitBadInput {
		t.Errorf("hepbuild info no_such_item: exit %d, want %d", code, exitBadInput)
	}
}

// exitCodes reads the exit* constants of main.go.
func exitCodes(t *testing.T) map[string]int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "exit") || i >= len(vs.Values) {
				continue
			}
			if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.INT {
				n, _ := strconv.Atoi(bl.Value)
				codes[name.Name] = n
			}
		}
		return true
	})
	if len(codes) < 4 {
		t.Fatalf("found %d exit code constants in main.go: update this test to its layout", len(codes))
	}
	return codes
}

// listedCodes returns the codes of an "Exit codes: 0 success, 1 ..., 8 interrupted." sentence.
func listedCodes(sentence string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?:: |, )(\d+) `).FindAllStringSubmatch(sentence, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

func TestDocsStateTheExitCodesTheCodeUses(t *testing.T) {
	var want []string
	for _, n := range exitCodes(t) {
		want = append(want, strconv.Itoa(n))
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, tableKeysPlain(section(t, readBuildMD(t), "### Exit codes"))); diff != "" {
		t.Errorf("exit codes (-main.go +BUILD.md):\n%s", diff)
	}
	if diff := cmp.Diff(want, listedCodes(exitCodesHelp)); diff != "" {
		t.Errorf("exit codes (-main.go +--help):\n%s", diff)
	}
	// The README says it in the words of --help.
	readme := strings.Join(strings.Fields(readREADME(t)), " ")
	if !strings.Contains(readme, exitCodesHelp) {
		t.Errorf("README.md does not state the exit codes as --help does: %q", exitCodesHelp)
	}
	_, help, _ := docRun(t, t.TempDir(), "--help")
	if !strings.Contains(strings.Join(strings.Fields(help), " "), exitCodesHelp) {
		t.Errorf("hepbuild --help does not state the exit codes:\n%s", help)
	}

	// Each code, from a real run.
	started := filepath.Join(t.TempDir(), "started")
	root := testWorkspace(t, map[string]string{"BUILD": `
task(name = "ok", outs = ["ok.txt"], cmd = "touch $@")
task(name = "fails", outs = ["f.txt"], cmd = "exit 3")
task(name = "waits", outs = ["w.txt"], cmd = "touch ` + started + `; sleep 60; touch $@")
`})
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--sandbox=none", "//:ok"}, exitOK},
		{[]string{"--sandbox=none", "//:fails"}, exitBuildFailed},
		{[]string{"--sandbox=none", "//:nope"}, exitBadInput},
		// A folder the machine refuses to make (an output base named as a
		// file is bad input instead: exit 2).
		{[]string{"--sandbox=none", "--output-base=/proc/hepbuild-no-such-folder", "//:ok"}, exitInfra},
		{[]string{"--sandbox=none", "--output-base=" + filepath.Join(notDir, "base"), "//:ok"}, exitBadInput},
	} {
		if r := hepbuild(t, root, append([]string{"build", "--progress=none"}, tc.args...)...); r.code != tc.want {
			t.Errorf("hepbuild build %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), r.code, tc.want, r.stderr)
		}
	}
	// Interrupted: cancel once the command has started, as Ctrl-C would.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- hepbuildCtx(ctx, t, root, "build", "--progress=none", "--sandbox=none", "//:waits") }()
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the build ended before its command started: exit %d\n%s", r.code, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if r := <-done; r.code != exitInterrupted {
		t.Errorf("interrupted build: exit %d, want %d\n%s", r.code, exitInterrupted, r.stderr)
	}
}

// tableKeysPlain returns the first column of the table rows of text, without code spans.
func tableKeysPlain(text string) []string {
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 3 || !strings.HasPrefix(line, "| ") {
			continue
		}
		if k := strings.TrimSpace(cols[1]); k != "" && k != "Code" && !strings.HasPrefix(k, "---") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

var defaultStrategy = regexp.MustCompile("\\bdefault\\b[^.;|()]{0,40}?`(linux|symlink|none)`|`(linux|symlink|none)`[^.;|()]{0,20}\\(the default\\b")

func TestDocsStateTheDefaultSandbox(t *testing.T) {
	root := docWorkspace(t, map[string]string{"BUILD": ""})
	_, got, stderr := docRun(t, root, "info", "sandbox")
	var want string
	switch {
	case strings.HasPrefix(got, "linux ("):
		want = "linux"
	case strings.HasPrefix(got, "symlink (linux unavailable"):
		t.Skipf("bubblewrap does not work here (%s): the documented default, linux, cannot be checked", strings.TrimSpace(got))
	default:
		t.Fatalf("hepbuild info sandbox = %q, want linux or symlink with a reason\n%s", got, stderr)
	}
	// Every phrase that names the default strategy ("the default `symlink` sandbox", "`linux` (the
	// default ...", "the default is ...: `linux`") must name the one hepbuild picks.
	for name, doc := range map[string]string{"BUILD.md": prose(readBuildMD(t)), "README.md": prose(readREADME(t))} {
		doc = strings.Join(strings.Fields(doc), " ")
		for _, m := range defaultStrategy.FindAllStringSubmatch(doc, -1) {
			if got := m[1] + m[2]; got != want {
				t.Errorf("%s says the default sandbox is %s, but hepbuild picks %s here: %q", name, got, want, m[0])
			}
		}
	}
	// A build without --sandbox uses it: under linux, /tmp is private to the action.
	mark := filepath.Join("/tmp", filepath.Base(t.TempDir())+"-default-sandbox")
	r := hepbuild(t, testWorkspace(t, map[string]string{"BUILD": `task(name = "t", outs = ["t.txt"], cmd = "touch ` + mark + ` $@")`}), "build", "--progress=none", "//:t")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Lstat(mark); err == nil {
		os.Remove(mark)
		t.Errorf("a build without --sandbox wrote %s into the host's /tmp: it did not run in the %s sandbox", mark, want)
	}
}

// What BUILD.md says about target patterns on the command line and the manual tag, from a real
// run: "-PATTERN" removes targets, and //... leaves out manual targets unless they are named.
func TestDocsNegativePatternsAndManual(t *testing.T) {
	doc := readBuildMD(t)
	patterns := section(t, doc, "### Target patterns")
	for _, claim := range []string{"a pattern preceded by\n`-` removes", "tagged `manual`"} {
		if !strings.Contains(patterns, claim) {
			t.Errorf("BUILD.md's target patterns section no longer says %q: update this test with it", claim)
		}
	}
	root := testWorkspace(t, map[string]string{"BUILD": `
task(name = "a", outs = ["a.txt"], cmd = "touch $@")
task(name = "b", outs = ["b.txt"], cmd = "touch $@")
task(name = "m", outs = ["m.txt"], cmd = "touch $@", tags = ["manual"])
`})
	built := func(args ...string) []string {
		t.Helper()
		ev := filepath.Join(t.TempDir(), "events.jsonl")
		r := hepbuild(t, root, append([]string{"build", "--progress=none", "--sandbox=none", "--events", ev}, args...)...)
		if r.code != 0 {
			t.Fatalf("hepbuild build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		got := events(t, ev)
		return sortedCopy(append(got["action_finished"], got["action_up_to_date"]...))
	}
	if diff := cmp.Diff([]string{"//:a"}, built("--", "//...", "-//:b")); diff != "" {
		t.Errorf("build -- //... -//:b (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"//:m"}, built("//:m")); diff != "" {
		t.Errorf("build //:m, a manual target named (-want +got):\n%s", diff)
	}
	code, out, _ := docRun(t, root, "query", "//...")
	if code != 0 || !strings.Contains(out, "//:m\n") {
		t.Errorf("query //...: exit %d, want //:m, a manual target, in:\n%s", code, out)
	}
}

// BUILD.md says where a build prints: all on standard error.
func TestDocsWhereABuildPrints(t *testing.T) {
	if !strings.Contains(section(t, readBuildMD(t), "### build"), "Standard output stays empty") {
		t.Fatalf("BUILD.md's build section no longer says where a build prints: update this test")
	}
	root := testWorkspace(t, map[string]string{"BUILD": `task(name = "a", outs = ["a.txt"], cmd = "touch $@")`})
	for _, when := range []string{"first", "nothing to do"} {
		r := hepbuild(t, root, "build", "--progress=none", "--sandbox=none", "//:a")
		if r.code != 0 || r.stdout != "" || !regexp.MustCompile(`(?m)^hepbuild: .*elapsed .*\n  hepbuild-out/a.txt\n`).MatchString(r.stderr) {
			t.Errorf("%s build: exit %d, stdout %q, stderr %q; want the summary and the outputs on stderr alone", when, r.code, r.stdout, r.stderr)
		}
	}
}
