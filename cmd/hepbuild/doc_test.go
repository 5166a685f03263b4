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
func helpFlags(help string) []string {
	var out []string
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
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
	// they hold the flags of example tools.
	notHepbuild := map[string]bool{"output_groups": true, "noimplicit_deps": true, "system-site-packages": true}
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
		"task":        "## 3. task",
		"genrule":     "## 3. task",
		"filegroup":   "### filegroup",
		"environment": "### environment",
	}
	common := section(t, doc, "### Rules: calling task, filegroup, environment and rule() rules")
	for kind, heading := range sections {
		names := attrs[kind]
		if len(names) < 5 {
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
