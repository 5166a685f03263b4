package starlark

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lintCase is a file that one check must flag (bad) and a close variant
// that it must not (good).
type lintCase struct {
	check, file, bad, good string
}

// ruleImpl starts a .bzl file whose rule attributes are under test.
const ruleImpl = "def _impl(ctx):\n    return []\n\n"

var lintCases = []lintCase{
	{"attr-non-empty", "defs.bzl",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"srcs\": attr.label_list(non_empty = True)})\n",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"srcs\": attr.label_list(allow_empty = False)})\n"},
	{"attr-output-default", "defs.bzl",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"out\": attr.output(default = \"out.txt\")})\n",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"out\": attr.output()})\n"},
	{"attr-single-file", "defs.bzl",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"src\": attr.label(single_file = True)})\n",
		ruleImpl + "r = rule(implementation = _impl, attrs = {\"src\": attr.label(allow_single_file = True)})\n"},
	{"build-args-kwargs", "BUILD",
		"ARGS = {\"name\": \"a\"}\n\ntask(**ARGS)\n",
		"task(name = \"a\")\n"},
	{"constant-glob", "BUILD",
		"filegroup(\n    name = \"a\",\n    srcs = glob([\"a.txt\"]),\n)\n",
		"filegroup(\n    name = \"a\",\n    srcs = glob([\"*.txt\"]),\n)\n"},
	{"ctx-actions", "defs.bzl",
		"def _impl(ctx):\n    return [DefaultInfo(files = depset([ctx.new_file(\"x\")]))]\n",
		"def _impl(ctx):\n    return [DefaultInfo(files = depset([ctx.actions.declare_file(\"x\")]))]\n"},
	{"ctx-args", "defs.bzl",
		"def _impl(ctx):\n    args = ctx.actions.args()\n    args.add([\"a\"], before_each = \"-i\")\n    return [args]\n",
		"def _impl(ctx):\n    args = ctx.actions.args()\n    args.add_all([\"a\"], before_each = \"-i\")\n    return [args]\n"},
	{"depset-items", "defs.bzl",
		"def f():\n    return depset(items = [1])\n",
		"def f():\n    return depset([1])\n"},
	{"depset-iteration", "defs.bzl",
		"def f(d):\n    return [x for x in depset([d])]\n",
		"def f(d):\n    return [x for x in depset([d]).to_list()]\n"},
	{"depset-union", "defs.bzl",
		"def f(a, b):\n    return depset([a]) + depset([b])\n",
		"def f(a, b):\n    return depset([a], transitive = [depset([b])])\n"},
	{"dict-concatenation", "defs.bzl",
		"def f(a):\n    return a + {\"b\": 2}\n",
		"def f(a):\n    return dict(a, b = 2)\n"},
	{"dict-method-named-arg", "defs.bzl",
		"def f():\n    d = {\"a\": 1}\n    return d.get(\"a\", default = 0)\n",
		"def f():\n    d = {\"a\": 1}\n    return d.get(\"a\", 0)\n"},
	{"deprecated-function", "defs.bzl",
		"load(\":lib.bzl\", \"old\")\n\ndef f():\n    return old()\n",
		"load(\":lib.bzl\", \"new\")\n\ndef f():\n    return new()\n"},
	{"keyword-positional-params", "defs.bzl",
		"def f(x):\n    return len(x = x)\n",
		"def f(x):\n    return len(x)\n"},
	{"list-append", "defs.bzl",
		"def f(x):\n    x += [1]\n    return x\n",
		"def f(x):\n    x.append(1)\n    return x\n"},
	{"load", "BUILD",
		"load(\":defs.star\", \"NAMES\")\n\ntask(name = \"a\")\n",
		"load(\":defs.star\", \"NAMES\")\n\ntask(name = NAMES[0])\n"},
	{"no-effect", "defs.bzl",
		"def f(x):\n    x + 1\n    return x\n",
		"def f(x):\n    x = x + 1\n    return x\n"},
	{"output-group", "defs.bzl",
		"def _impl(ctx):\n    return ctx.attr.dep.output_group(\"x\")\n",
		"def _impl(ctx):\n    return ctx.attr.dep[OutputGroupInfo].x\n"},
	{"overly-nested-depset", "defs.bzl",
		"def f(xs):\n    d = depset()\n    for x in xs:\n        d = depset([x], transitive = [d])\n    return d\n",
		"def f(xs):\n    return depset(xs)\n"},
	{"package-name", "defs.bzl",
		"def f():\n    return PACKAGE_NAME\n",
		"def f():\n    return native.package_name()\n"},
	{"print", "defs.bzl",
		"def f(x):\n    print(x)\n",
		"def f(x):\n    return x\n"},
	{"repository-name", "defs.bzl",
		"def f():\n    return REPOSITORY_NAME\n",
		"def f():\n    return native.repository_name()\n"},
	{"return-value", "defs.bzl",
		"def f(x):\n    if x:\n        return 1\n    return\n",
		"def f(x):\n    if x:\n        return 1\n    return 0\n"},
	{"rule-impl-return", "defs.bzl",
		"def _impl(ctx):\n    return struct(a = 1)\n\nr = rule(implementation = _impl)\n",
		"def _impl(ctx):\n    return [DefaultInfo()]\n\nr = rule(implementation = _impl)\n"},
	{"string-iteration", "defs.bzl",
		"def f():\n    return [c for c in \"abc\"]\n",
		"def f():\n    return [c for c in \"abc\".elems()]\n"},
	{"uninitialized", "defs.bzl",
		"def f(a):\n    if a:\n        x = 1\n    return x\n",
		"def f(a):\n    x = 0\n    if a:\n        x = 1\n    return x\n"},
	{"unreachable", "defs.bzl",
		"def f():\n    return 1\n    fail(\"never\")\n",
		"def f():\n    return 1\n"},
	{"unused-variable", "defs.bzl",
		"def f():\n    x = 1\n    return 2\n",
		"def f():\n    x = 1\n    return x\n"},
	{"format", "BUILD",
		"task(name='a')\n",
		"task(name = \"a\")\n"},
}

func lintChecks(t *testing.T, root, rel, src string, enabled map[string]bool) []string {
	t.Helper()
	lf, err := LintFile(root, rel, []byte(src), enabled, false)
	if err != nil {
		t.Fatalf("LintFile(%s):\n%s\n%v", rel, src, err)
	}
	var got []string
	for _, f := range lf.Findings {
		got = append(got, f.Check)
	}
	return got
}

// TestLintWarnings: each default buildtools warning flags its bad file and
// not its good one, alone and with every default check on; a disable
// comment in either spelling turns it off.
func TestLintWarnings(t *testing.T) {
	root := writeTree(t, map[string]string{"lib.bzl": "def old():\n    \"\"\"Makes a thing.\n\n    Deprecated:\n      use new\n    \"\"\"\n    return 1\n\ndef new():\n    \"\"\"Makes a thing.\"\"\"\n    return 2\n"})
	covered := map[string]bool{}
	for _, c := range lintCases {
		covered[c.check] = true
		t.Run(c.check, func(t *testing.T) {
			only := map[string]bool{c.check: true}
			if got := lintChecks(t, root, c.file, c.bad, only); len(got) == 0 {
				t.Errorf("%s did not flag:\n%s", c.check, c.bad)
			}
			if got := lintChecks(t, root, c.file, c.good, only); len(got) != 0 {
				t.Errorf("%s flagged %v in:\n%s", c.check, got, c.good)
			}
			if c.check == CheckFormat {
				return
			}
			// Suppressed on every line of the bad file, in both spellings.
			for _, tool := range []string{"hepbuild", "buildifier"} {
				var b strings.Builder
				for _, line := range strings.SplitAfter(c.bad, "\n") {
					if strings.TrimSpace(line) != "" && !strings.HasSuffix(strings.TrimSpace(line), ":") {
						line = strings.TrimSuffix(line, "\n") + "  # " + tool + ": disable=" + c.check + "\n"
					}
					b.WriteString(line)
				}
				if got := lintChecks(t, root, c.file, b.String(), only); len(got) != 0 {
					t.Errorf("%s flagged %v despite %s: disable comments:\n%s", c.check, got, tool, b.String())
				}
			}
		})
	}
	for _, w := range defaultBuildtoolsWarnings {
		if !covered[w] {
			t.Errorf("the default warning %s has no case in lintCases", w)
		}
	}
}

// TestLintDefaultsLeaveBazelOnlyWarningsOff: Bazel's native rules, its
// repositories and its conventions are not hepbuild's.
func TestLintDefaultsLeaveBazelOnlyWarningsOff(t *testing.T) {
	on := map[string]bool{}
	for _, c := range DefaultLintChecks() {
		on[c] = true
	}
	for _, w := range []string{"native-cc-library", "native-py", "http-archive", "git-repository", "provider-params", "bzl-visibility",
		"integer-division", "unsorted-dict-items", "module-docstring", "positional-args", "unnamed-macro", "duplicated-name"} {
		if on[w] {
			t.Errorf("%s is on by default", w)
		}
	}
	src := "load(\"@rules_cc//cc:defs.bzl\", \"cc_library\")\n\ncc_library(name = \"a\")\n\nhttp_archive(name = \"b\")\n"
	got := lintChecks(t, t.TempDir(), "BUILD", src, on)
	if len(got) != 0 {
		t.Errorf("default checks flagged %v in a file of Bazel rules:\n%s", got, src)
	}
}

// TestLintFix: --fix applies the automatic fixes, formats, and reports
// only what remains; a hepbuild: disable comment keeps its line unfixed.
func TestLintFix(t *testing.T) {
	enabled := map[string]bool{}
	for _, c := range DefaultLintChecks() {
		enabled[c] = true
	}
	src := "load(\":defs.star\", \"A\", \"B\")  # hepbuild: disable=load\nload(\":other.star\", \"C\")\n\nX = [1 for x in B]\n\ntask(name='a', srcs=[\"b\", \"a\"], cmd = B)\n"
	lf, err := LintFile(t.TempDir(), "pkg/BUILD", []byte(src), enabled, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "load(\":defs.star\", \"A\", \"B\")  # hepbuild: disable=load\n\nX = [1 for x in B]\n\ntask(\n    name = \"a\",\n    srcs = [\n        \"b\",\n        \"a\",\n    ],\n    cmd = B,\n)\n"
	if diff := cmp.Diff(want, string(lf.Fixed)); diff != "" {
		t.Errorf("fixed text mismatch (-want +got):\n%s", diff)
	}
	var got []string
	for _, f := range lf.Findings {
		got = append(got, f.String())
	}
	if diff := cmp.Diff([]string{`pkg/BUILD:3:1: unused-variable: Variable "X" is unused. Please remove it.`}, got); diff != "" {
		t.Errorf("findings after --fix (-want +got):\n%s", diff)
	}
}

// TestLintSyntaxError names the file, line and column.
func TestLintSyntaxError(t *testing.T) {
	_, err := LintFile(t.TempDir(), "pkg/BUILD", []byte("task(\n    name = \"a\"\n    outs = [],\n)\n"), map[string]bool{"load": true}, false)
	if err == nil || !strings.HasPrefix(err.Error(), "pkg/BUILD:3:") {
		t.Errorf("LintFile of a bad file: %v, want an error at pkg/BUILD:3", err)
	}
}

// TestFormatKeepsTaskListOrder: $(SRCS) and $(OUTS) follow the order
// written, so formatting must not sort them (it still sorts tags).
func TestFormatKeepsTaskListOrder(t *testing.T) {
	src := "task(\n    name = \"a\",\n    srcs = [\n        \"b\",\n        \"a\",\n    ],\n    outs = [\n        \"z\",\n        \"y\",\n    ],\n    cmd = \"cat $(SRCS) > $(OUTS)\",\n    tags = [\"b\", \"a\"],\n)\n"
	got, err := Format("BUILD", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(src, "tags = [\"b\", \"a\"]", "tags = [\n        \"a\",\n        \"b\",\n    ]", 1)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("Format mismatch (-want +got):\n%s", diff)
	}
}

// writeTree writes files under a new workspace root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
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

// TestLintPackage: hepbuild's own checks, each flagging what it should and
// leaving alone what it should.
func TestLintPackage(t *testing.T) {
	common := map[string]string{
		"WORKSPACE.hep":      "",
		"tools/BUILD":        "filegroup(name = \"scripts\", srcs = [\"fit.py\"])\n",
		"tools/fit.py":       "",
		"tools/hist.py":      "",
		"ana/binning.json":   "",
		"ana/data/a.csv":     "",
		"ana/sub/BUILD":      "",
		"ana/sub/config.txt": "",
	}
	cases := []struct {
		name, build string
		want        []string
	}{
		{"undeclared workspace path", `task(name = "h", outs = ["h.txt"], cmd = "python3 tools/hist.py > $@")`,
			[]string{`ana/BUILD:1:36: undeclared-input: cmd reads tools/hist.py, which srcs and tools do not declare: the sandbox will not hold it and a change to it will not rerun the task; add "//tools:hist.py" to srcs (or tools) and write $(location //tools:hist.py) (//ana:h)`}},
		{"undeclared package path", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"cat binning.json > $@\",\n)",
			[]string{`ana/BUILD:4:5: undeclared-input: cmd names binning.json, a file of the package that srcs and tools do not declare; the command runs at the workspace root and its sandbox holds only declared inputs: add "binning.json" to srcs and write $(location binning.json) (//ana:h)`}},
		{"sub-package file", `task(name = "h", outs = ["h.txt"], cmd = "cat --config=ana/sub/config.txt > $@")`,
			[]string{`ana/BUILD:1:36: undeclared-input: cmd reads ana/sub/config.txt, which srcs and tools do not declare: the sandbox will not hold it and a change to it will not rerun the task; add "//ana/sub:config.txt" to srcs (or tools) and write $(location //ana/sub:config.txt) (//ana:h)`}},
		{"shared storage and absolute paths", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"hadd -f $@ /eos/user/a/ana/ntuple.root /usr/share/dict/words /tmp/scratch.txt /eos/user/a/ana/ > /dev/null && cat ROOT/tools/fit.py\",\n)",
			[]string{
				`ana/BUILD:4:5: undeclared-input: cmd names /eos/user/a/ana/ntuple.root, a file outside the workspace: hepbuild does not hash it, so a change to it does not rerun the task, and it does not keep what the task writes there; read it through remote_files(urls = ["file:///eos/user/a/ana/ntuple.root"]) in srcs or a copy in the workspace, and publish results with hepbuild export (//ana:h)`,
				`ana/BUILD:4:5: undeclared-input: cmd reads tools/fit.py, which srcs and tools do not declare: the sandbox will not hold it and a change to it will not rerun the task; add "//tools:fit.py" to srcs (or tools) and write $(location //tools:fit.py) (//ana:h)`,
			}},
		{"declared directly", `task(name = "h", srcs = ["binning.json"], tools = ["//tools:hist.py"], outs = ["h.txt"], cmd = "python3 tools/hist.py ana/binning.json > $@")`, nil},
		{"declared through a filegroup", `task(name = "h", srcs = ["//tools:scripts"], outs = ["h.txt"], cmd = "python3 tools/fit.py > $@")`, nil},
		{"substitutions, flags, missing files and generated files", `task(name = "h", srcs = ["data/a.csv"], outs = ["h.txt"], cmd = "cat $(location data/a.csv) -o=x.y $$HOME/a.txt /etc/passwd nothere.txt hepbuild-out/ana/x.txt > $@")`, nil},
		{"suppressed", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"cat tools/fit.py > $@\",  # hepbuild: disable=undeclared-input\n)", nil},
		{"suppressed above the call", "# hepbuild: disable=undeclared-input\ntask(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"cat tools/fit.py > $@\",\n)", nil},
		{"unknown tags", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"touch $@\",\n    tags = [\"requires-netwrok\", \"mnaual\", \"exclusive\", \"cpu:4\", \"requires-gpu\", \"slow\", \"team:higgs\", \"local\", \"manual\"],\n)", []string{
			`ana/BUILD:5:5: unknown-tag: tag "cpu:4" has no effect in hepbuild: say resources = {"cpu": 4} (//ana:h)`,
			`ana/BUILD:5:5: unknown-tag: tag "exclusive" has no effect in hepbuild (hepbuild runs it beside other actions) (//ana:h)`,
			`ana/BUILD:5:5: unknown-tag: tag "requires-gpu" has no effect in hepbuild: requires-network is the only requires- tag it knows (//ana:h)`,
			`ana/BUILD:5:5: unknown-tag: unknown tag "mnaual" (did you mean "manual"?): as written it is a label with no effect (//ana:h)`,
			`ana/BUILD:5:5: unknown-tag: unknown tag "requires-netwrok" (did you mean "requires-network"?): as written it is a label with no effect (//ana:h)`,
		}},
		{"suppressed without a blank", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"cat tools/fit.py > $@\",  # HEPBUILD:disable=unknown-tag,undeclared-input\n)", nil},
		{"tag suppressed", "task(\n    name = \"h\",\n    outs = [\"h.txt\"],\n    cmd = \"touch $@\",\n    tags = [\"exclusive\"],  # hepbuild: disable=unknown-tag\n)", nil},
		{"empty glob", "filegroup(name = \"a\", srcs = glob([\"data/*.root\"]))\nfilegroup(name = \"b\", srcs = glob([\"data/*.csv\"]))\nfilegroup(name = \"c\", srcs = glob([\"*.root\"], allow_empty = True))\n",
			[]string{`ana/BUILD:1:34: empty-glob: glob(["data/*.root"]) matches no file of package //ana: a misspelt pattern or a missing file; say allow_empty = True if an empty list is meant`}},
		{"empty glob suppressed", "filegroup(name = \"a\", srcs = glob([\"data/*.root\"]))  # hepbuild: disable=empty-glob\n", nil},
		{"empty glob in a macro", "load(\":defs.star\", \"optional\")\n\noptional(name = \"a\")\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"ana/BUILD": c.build, "ana/defs.star": "def optional(name):\n    native.filegroup(name = name, srcs = native.glob([\"*.patch\"]))\n"}
			for k, v := range common {
				files[k] = v
			}
			root := writeTree(t, files)
			// ROOT/ stands for the workspace's absolute path.
			build := strings.ReplaceAll(c.build, "ROOT/", filepath.ToSlash(root)+"/")
			if err := os.WriteFile(filepath.Join(root, "ana/BUILD"), []byte(build), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := NewLoader(root, nil)
			if err != nil {
				t.Fatal(err)
			}
			enabled := map[string]bool{CheckUndeclaredInput: true, CheckUnknownTag: true, CheckEmptyGlob: true}
			fs, err := l.LintPackage("ana", enabled)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := LintFile(root, "ana/BUILD", []byte(build), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				if !lf.Suppressed(int(f.Pos.Line), f.Check) {
					got = append(got, f.String())
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("findings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
