package starlark

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bazelbuild/buildtools/build"
	"github.com/bazelbuild/buildtools/warn"

	"github.com/hepbuild/hepbuild/graph"
)

// LintFinding is one thing lint found in a file: a buildtools warning or
// one of hepbuild's own checks.
type LintFinding struct {
	Pos     graph.Pos // workspace-relative file, 1-based line and column
	Check   string    // the check's name, as --warnings and disable= comments spell it
	Message string
	Target  graph.Label // the target concerned, when known
	Fixable bool        // lint --fix would fix it
}

func (f LintFinding) String() string {
	s := fmt.Sprintf("%s: %s: %s", f.Pos, f.Check, f.Message)
	if !f.Target.IsZero() {
		s += " (" + f.Target.String() + ")"
	}
	return s
}

// SortLintFindings orders findings by file, line, column, check and message.
func SortLintFindings(fs []LintFinding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		return a.Message < b.Message
	})
}

// Lint check names of hepbuild's own checks.
const (
	CheckFormat          = "format"
	CheckUndeclaredInput = "undeclared-input"
	CheckUnknownTag      = "unknown-tag"
	CheckEmptyGlob       = "empty-glob"
)

// ownChecks are hepbuild's own checks, all on by default.
var ownChecks = []string{CheckEmptyGlob, CheckFormat, CheckUndeclaredInput, CheckUnknownTag}

// defaultBuildtoolsWarnings are the buildtools warnings that apply to
// hepbuild's dialect. Left out: warnings about Bazel's native rules and
// repositories (native-*, git-repository, http-archive), load visibility
// and allowed load locations, licenses, configurations (attr-cfg),
// providers' documentation (provider-params), docstrings (function-,
// module-docstring: optional for an analysis), Bazel's naming conventions
// (name-conventions, unnamed-macro, confusing-name, positional-args: an
// analysis's macros are often called with positional arguments, and rules
// reject them when loading), the word "skylark",
// package() placement (hepbuild's package() has no effect),
// integer-division (in hepbuild's Starlark "/" is float division, and the
// fix to "//" would change results), unsorted-dict-items (the order of a
// dict is the order of iteration) and what loading already reports as an
// error (duplicated-name, redefined-variable, native-build, filetype).
var defaultBuildtoolsWarnings = []string{
	"attr-non-empty",
	"attr-output-default",
	"attr-single-file",
	"build-args-kwargs",
	"constant-glob",
	"ctx-actions",
	"ctx-args",
	"deprecated-function",
	"depset-items",
	"depset-iteration",
	"depset-union",
	"dict-concatenation",
	"dict-method-named-arg",
	"keyword-positional-params",
	"list-append",
	"load",
	"no-effect",
	"output-group",
	"overly-nested-depset",
	"package-name",
	"print",
	"repository-name",
	"return-value",
	"rule-impl-return",
	"string-iteration",
	"uninitialized",
	"unreachable",
	"unused-variable",
}

// DefaultLintChecks returns the checks lint runs when --warnings does not
// say otherwise, sorted: the buildtools warnings that apply to hepbuild's
// dialect and hepbuild's own checks.
func DefaultLintChecks() []string {
	out := append(append([]string(nil), defaultBuildtoolsWarnings...), ownChecks...)
	sort.Strings(out)
	return out
}

// AllLintChecks returns every check lint knows, sorted.
func AllLintChecks() []string {
	out := append(append([]string(nil), warn.AllWarnings...), ownChecks...)
	sort.Strings(out)
	return out
}

// LintedFile is one file after lint: its findings and, when fixing, its
// new text. It is not safe for concurrent use: Suppressed rewrites the
// comments of its parsed file while it looks.
type LintedFile struct {
	// Findings are those left in Fixed (in the file as it was, without
	// fixing), sorted.
	Findings []LintFinding
	// Fixed is the text after buildtools' fixes and formatting; the
	// original text when not fixing.
	Fixed []byte
	file  *build.File // Fixed, parsed, for disable= comments
}

// LintFile runs the enabled buildtools warnings and the format check on one
// file. root is the workspace root (for loaded files, which some warnings
// read), rel the file's workspace-relative path. With fix, the automatic
// fixes and the formatting are applied to Fixed, and the findings are those
// that remain. A syntax error is an *Error naming the file and line.
func LintFile(root, rel string, src []byte, enabled map[string]bool, fix bool) (*LintedFile, error) {
	f, err := lintParse(rel, src)
	if err != nil {
		return nil, err
	}
	var warnings []string
	for _, w := range warn.AllWarnings {
		if enabled[w] {
			warnings = append(warnings, w)
		}
	}
	reader := warn.NewFileReader(func(p string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
	})
	out := &LintedFile{Fixed: src}
	if fix {
		withHepbuildComments(f, func() { warn.FileWarnings(f, warnings, nil, warn.ModeFix, reader) })
		fixed := build.FormatWithRewriter(rewriter(), f)
		if f, err = lintParse(rel, fixed); err != nil {
			return nil, fmt.Errorf("%s: the fixed file does not parse: %w", rel, err)
		}
		out.Fixed = fixed
	}
	out.file = f
	var found []*warn.Finding
	withHepbuildComments(f, func() { found = warn.FileWarnings(f, warnings, nil, warn.ModeWarn, reader) })
	for _, w := range found {
		out.Findings = append(out.Findings, LintFinding{
			Pos:     graph.Pos{File: rel, Line: int32(w.Start.Line), Col: int32(w.Start.LineRune)},
			Check:   w.Category,
			Message: strings.Join(strings.Fields(w.Message), " "),
			Fixable: w.AutoFixable,
		})
	}
	// Formatting rewrites the tree: the warnings have run.
	if enabled[CheckFormat] && string(build.FormatWithRewriter(rewriter(), f)) != string(out.Fixed) {
		out.Findings = append(out.Findings, LintFinding{
			Pos: graph.Pos{File: rel, Line: 1, Col: 1}, Check: CheckFormat, Fixable: true,
			Message: "the file is not formatted in the canonical BUILD style (hepbuild fmt, or lint --fix)",
		})
	}
	SortLintFindings(out.Findings)
	return out, nil
}

// lintParse parses a file as Format does, and gives a syntax error a
// position. The package and name let warnings resolve relative loads.
func lintParse(rel string, src []byte) (*build.File, error) {
	f, err := parse(rel, src)
	if err != nil {
		var pe build.ParseError
		if e, ok := err.(build.ParseError); ok {
			pe = e
			return nil, &Error{Pos: graph.Pos{File: rel, Line: int32(pe.Pos.Line), Col: int32(pe.Pos.LineRune)}, Msg: "syntax error: " + pe.Message}
		}
		return nil, &Error{Pos: graph.Pos{File: rel}, Msg: err.Error()}
	}
	if dir := path.Dir(rel); dir != "." {
		f.Pkg = dir
	}
	f.Label = path.Base(rel)
	return f, nil
}

// hepbuildDisable matches hepbuild's spelling of a disable comment.
var hepbuildDisable = regexp.MustCompile(`(?i)\bhepbuild:\s*disable=`)

// withHepbuildComments runs fn with every "# hepbuild: disable=NAME"
// comment of f spelled as buildtools understands it, so that its warnings
// and fixes honour both, and restores the comments after.
func withHepbuildComments(f *build.File, fn func()) {
	var restore []func()
	visit := func(cs []build.Comment) {
		for i := range cs {
			c := &cs[i]
			if old := c.Token; hepbuildDisable.MatchString(old) {
				c.Token = hepbuildDisable.ReplaceAllString(old, "buildifier: disable=")
				restore = append(restore, func() { c.Token = old })
			}
		}
	}
	build.Walk(f, func(x build.Expr, _ []build.Expr) {
		if x == nil {
			return
		}
		c := x.Comment()
		visit(c.Before)
		visit(c.Suffix)
		visit(c.After)
	})
	defer func() {
		for _, r := range restore {
			r()
		}
	}()
	fn()
}

// Suppressed reports whether a "# hepbuild: disable=NAME" (or buildtools'
// "# buildifier: disable=NAME") comment on the statement or expression
// spanning line turns check off there.
func (lf *LintedFile) Suppressed(line int, check string) bool {
	var off bool
	withHepbuildComments(lf.file, func() { off = warn.DisabledWarning(lf.file, line, check) })
	return off
}
