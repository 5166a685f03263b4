package starlark

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bazelbuild/buildtools/build"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// LintPackage runs hepbuild's own checks that enabled turns on over the
// package pkg, loading it (a load error is returned as it is). The checks
// need no analysis: they read the targets' attributes, the glob calls that
// matched nothing and the workspace's files.
func (l *Loader) LintPackage(pkg string, enabled map[string]bool) ([]LintFinding, error) {
	p, err := l.Package("", pkg)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(filepath.Join(l.root, filepath.FromSlash(p.BuildFile)))
	if err != nil {
		return nil, err
	}
	calls := map[graph.Pos]*build.CallExpr{}
	if f, err := lintParse(p.BuildFile, src); err == nil {
		build.Walk(f, func(x build.Expr, _ []build.Expr) {
			if c, ok := x.(*build.CallExpr); ok {
				calls[graph.Pos{File: p.BuildFile, Line: int32(c.ListStart.Line), Col: int32(c.ListStart.LineRune)}] = c
			}
		})
	}
	// attrPos is where the rule call at pos sets attribute name, or pos:
	// targets point at the "(" of their call, and a macro's call may not
	// name the attribute at all.
	attrPos := func(pos graph.Pos, name string) graph.Pos {
		if c := calls[pos]; c != nil {
			for _, a := range c.List {
				if as, ok := a.(*build.AssignExpr); ok {
					if id, ok := as.LHS.(*build.Ident); ok && id.Name == name {
						start, _ := as.Span()
						return graph.Pos{File: pos.File, Line: int32(start.Line), Col: int32(start.LineRune)}
					}
				}
			}
		}
		return pos
	}
	var out []LintFinding
	if enabled[CheckEmptyGlob] {
		for _, g := range l.EmptyGlobs(pkg) {
			out = append(out, LintFinding{Pos: g.Pos, Check: CheckEmptyGlob,
				Message: fmt.Sprintf("glob(%s) matches no file of package //%s: a misspelt pattern or a missing file; say allow_empty = True if an empty list is meant", quoteList(g.Include), pkg)})
		}
	}
	for _, name := range p.Order {
		t := p.Targets[name]
		if !t.IsRule() {
			continue
		}
		if enabled[CheckUnknownTag] {
			if a, ok := t.Attr("tags"); ok {
				tags, _ := a.Value.([]string)
				for _, tag := range tags {
					if msg := unknownTag(tag); msg != "" {
						out = append(out, LintFinding{Pos: attrPos(t.Pos, "tags"), Check: CheckUnknownTag, Message: msg, Target: t.Label})
					}
				}
			}
		}
		if enabled[CheckUndeclaredInput] && (t.RuleClass == "task" || t.RuleClass == "genrule") {
			for _, msg := range l.undeclaredInputs(t) {
				out = append(out, LintFinding{Pos: attrPos(t.Pos, "cmd"), Check: CheckUndeclaredInput, Message: msg, Target: t.Label})
			}
		}
	}
	SortLintFindings(out)
	return out, nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// bazelOnlyTags are Bazel execution requirements that hepbuild does not
// implement: written in a BUILD file, they are labels and nothing more.
var bazelOnlyTags = map[string]string{
	"exclusive":                  "hepbuild runs it beside other actions",
	"exclusive-if-local":         "hepbuild runs it beside other actions",
	"external":                   "hepbuild reruns an action only when its key changes",
	"block-network":              "under the linux sandbox an action has no network unless tagged requires-network",
	"supports-workers":           "hepbuild has no persistent workers",
	"supports-multiplex-workers": "hepbuild has no persistent workers",
	"flaky":                      "use retries = N",
}

// unknownTag says what is wrong with tag, or "" when it is a known tag or
// a label for humans and queries (slow, team:higgs): the tag language
// allows any string, so only tags that look as if they meant an effect are
// reported.
func unknownTag(tag string) string {
	if _, ok := exec.LookupTag(tag); ok {
		return ""
	}
	if why, ok := bazelOnlyTags[tag]; ok {
		return fmt.Sprintf("tag %q has no effect in hepbuild (%s)", tag, why)
	}
	if strings.HasPrefix(tag, "cpu:") {
		return fmt.Sprintf("tag %q has no effect in hepbuild: say resources = {\"cpu\": %s}", tag, strings.TrimPrefix(tag, "cpu:"))
	}
	if s := graph.Suggest(tag, exec.TagNames()); s != "" && editDistance(tag, s) <= 2 {
		return fmt.Sprintf("unknown tag %q (did you mean %q?): as written it is a label with no effect", tag, s)
	}
	if strings.HasPrefix(tag, "requires-") {
		return fmt.Sprintf("tag %q has no effect in hepbuild: requires-network is the only requires- tag it knows", tag)
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// undeclaredInputs reads a task's cmd for paths of files that the task
// does not declare. A word of cmd (outside $(...) substitutions, split at
// blanks, quotes, "=" and the shell's operators) counts when it holds a
// "." or a "/", no "$", "*", "?", "~" or "..", does not start with "-",
// and names a file (not a folder) of the workspace, outside hepbuild-out
// and dot-folders: as a workspace-relative path (the command runs at the
// workspace root), as a path relative to the task's package (which the
// command would not find there), or as an absolute path into the
// workspace. A file counts as declared when srcs, tools, env or another
// label attribute names it, directly or through filegroups and other
// non-task rules. An absolute path outside the workspace counts when
// outsideFile says it looks like data.
func (l *Loader) undeclaredInputs(t *graph.Target) []string {
	a, _ := t.Attr("cmd")
	cmd, _ := a.Value.(string)
	if cmd == "" {
		return nil
	}
	declared := l.declaredFiles(t)
	var msgs []string
	seen := map[string]bool{}
	for _, w := range cmdWords(cmd) {
		w = strings.TrimPrefix(w, "./")
		if !strings.ContainsAny(w, "./") || strings.ContainsAny(w, "$*?~[]{}\\") || strings.HasPrefix(w, "-") ||
			strings.Contains(w, "..") || seen[w] {
			continue
		}
		seen[w] = true
		if strings.HasPrefix(w, "/") {
			inside, ok := strings.CutPrefix(w, filepath.ToSlash(l.root)+"/")
			if !ok {
				if outsideFile(w) {
					msgs = append(msgs, fmt.Sprintf("cmd names %s, a file outside the workspace: hepbuild does not hash it, so a change to it does not rerun the task, and it does not keep what the task writes there; read it through remote_files(urls = [\"file://%s\"]) in srcs or a copy in the workspace, and publish results with hepbuild export", w, w))
				}
				continue
			}
			w = inside
		}
		rel := path.Clean(w)
		inPkg := false
		if !l.isSourceFile(rel) {
			if t.Label.Pkg == "" || !l.isSourceFile(path.Join(t.Label.Pkg, rel)) {
				continue
			}
			rel, inPkg = path.Join(t.Label.Pkg, rel), true
		}
		if declared[rel] {
			continue
		}
		lbl := l.fileLabel(rel)
		if inPkg {
			msgs = append(msgs, fmt.Sprintf("cmd names %s, a file of the package that srcs and tools do not declare; the command runs at the workspace root and its sandbox holds only declared inputs: add %q to srcs and write $(location %s)", w, lbl.Name, lbl.Name))
			continue
		}
		ref := lbl.String()
		if lbl.Pkg == t.Label.Pkg {
			ref = lbl.Name
		}
		msgs = append(msgs, fmt.Sprintf("cmd reads %s, which srcs and tools do not declare: the sandbox will not hold it and a change to it will not rerun the task; add %q to srcs (or tools) and write $(location %s)", rel, ref, ref))
	}
	return msgs
}

// systemPrefixes hold the host's programs, libraries, devices and scratch
// space, and software stacks: a command names them to run, not as data.
var systemPrefixes = []string{"/bin/", "/sbin/", "/usr/", "/lib", "/etc/", "/dev/", "/proc/", "/sys/", "/tmp/", "/var/", "/run/", "/opt/", "/cvmfs/", "/nix/"}

// storagePrefixes are the mounts of shared storage where analyses keep
// their data, often not mounted where lint runs.
var storagePrefixes = []string{"/eos/", "/afs/", "/pnfs/"}

// outsideFile reports whether the absolute path p looks like data read from
// outside the workspace: a file that exists on this machine outside the
// system's folders, or a file name with an extension on shared storage.
func outsideFile(p string) bool {
	for _, pre := range systemPrefixes {
		if strings.HasPrefix(p, pre) {
			return false
		}
	}
	if fi, err := os.Stat(p); err == nil {
		return fi.Mode().IsRegular()
	}
	for _, pre := range storagePrefixes {
		if strings.HasPrefix(p, pre) {
			return strings.Contains(path.Base(p), ".") && !strings.HasSuffix(p, "/")
		}
	}
	return false
}

// cmdWords splits cmd into the words that could be paths: $(...)
// substitutions and $@, $<, $$ are left out.
func cmdWords(cmd string) []string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if c == '$' && i+1 < len(cmd) {
			switch cmd[i+1] {
			case '(':
				depth := 0
				for ; i < len(cmd); i++ {
					if cmd[i] == '(' {
						depth++
					} else if cmd[i] == ')' {
						if depth--; depth == 0 {
							break
						}
					}
				}
				b.WriteByte(' ')
				continue
			case '@', '<', '$':
				i++
				b.WriteByte(' ')
				continue
			}
		}
		b.WriteByte(c)
	}
	return strings.FieldsFunc(b.String(), func(r rune) bool {
		return strings.ContainsRune(" \t\n;|&<>()'\"`=,", r)
	})
}

// isSourceFile reports whether rel is a file (or a link to one) of the
// workspace, outside the output tree and dot-folders.
func (l *Loader) isSourceFile(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if part == "hepbuild-out" || strings.HasPrefix(part, ".") {
			return false
		}
	}
	fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(rel)))
	return err == nil && fi.Mode().IsRegular()
}

// fileLabel is the label of the workspace file rel: its package is the
// nearest folder above it with a BUILD file.
func (l *Loader) fileLabel(rel string) graph.Label {
	for dir := path.Dir(rel); ; dir = path.Dir(dir) {
		if dir == "." {
			dir = ""
		}
		for _, n := range buildFileNames {
			if fi, err := os.Stat(filepath.Join(l.root, filepath.FromSlash(path.Join(dir, n)))); err == nil && !fi.IsDir() {
				name := rel
				if dir != "" {
					name = strings.TrimPrefix(rel, dir+"/")
				}
				return graph.Label{Pkg: dir, Name: name}
			}
		}
		if dir == "" {
			return graph.Label{Name: rel}
		}
	}
}

// declaredFiles are the workspace-relative paths of the source files t's
// label attributes name, directly or through rules other than task and
// genrule (filegroups, environments, rules whose outputs may be their
// sources). A task's outputs are generated files, never sources.
func (l *Loader) declaredFiles(t *graph.Target) map[string]bool {
	out := map[string]bool{}
	seen := map[graph.Label]bool{}
	queue := t.Deps(true)
	for len(queue) > 0 && len(seen) < 10000 {
		lbl := queue[0]
		queue = queue[1:]
		if seen[lbl] || lbl.Repo != "" {
			continue
		}
		seen[lbl] = true
		d, err := l.Target(lbl)
		if err != nil {
			continue // loading or analysis reports it
		}
		switch {
		case d.IsSourceFile():
			out[lbl.Path()] = true
		case d.IsRule() && d.RuleClass != "task" && d.RuleClass != "genrule":
			queue = append(queue, d.Deps(true)...)
		}
	}
	return out
}
