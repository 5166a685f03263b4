package main

import (
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// completionFiles is a small workspace with a package, a subpackage, a
// folder without a package and a package whose BUILD file is broken.
func completionFiles() map[string]string {
	return map[string]string{
		"BUILD": `task(name = "top", outs = ["top.txt"], cmd = "echo > $@")` + "\n",
		"ana/BUILD": `task(name = "hist_tth", srcs = ["in.txt"], outs = ["h.txt"], cmd = "cp $< $@")
task(name = "hist_ttbb", outs = ["b.txt"], cmd = "echo > $@")
task(name = "fit", srcs = [":hist_tth"], outs = ["f.txt"], cmd = "cp $< $@")
`,
		"ana/in.txt":        "x\n",
		"ana/sub/BUILD.hep": `task(name = "x", outs = ["x.txt"], cmd = "echo > $@")` + "\n",
		"data/raw.txt":      "y\n",
		"bad/BUILD":         "task(name = \"b\",\n",
	}
}

// complete runs `hepbuild __complete SHELL LINE [CUR]` in dir, in this
// process, and returns the candidates; it fails the test when anything is
// printed on standard error or the exit status is not 0.
func complete(t *testing.T, dir, shell, line string, cur ...string) []string {
	t.Helper()
	r := hepbuild(t, dir, append([]string{"__complete", shell, line}, cur...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("__complete %s %q: exit %d, standard error %q", shell, line, r.code, r.stderr)
	}
	if r.stdout == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
}

func TestCompletionCandidates(t *testing.T) {
	root := testWorkspace(t, completionFiles())
	ana := filepath.Join(root, "ana")
	cacheDir := t.TempDir()
	cases := []struct {
		dir, line string
		want      []string // exactly these, sorted
		has       []string // at least these
		not       []string // none of these
	}{
		// Commands; the hidden one is not offered.
		{dir: root, line: "hepbuild qu", want: []string{"query"}},
		{dir: root, line: "hepbuild ", has: []string{"build", "completion", "query", "run", "help"}, not: []string{"__complete"}},
		{dir: root, line: "hepbuild comp", want: []string{"completion"}},
		// Flags of the command being typed, long and short, negatable.
		{dir: root, line: "hepbuild query --o", want: []string{"--output="}},
		{dir: root, line: "hepbuild query -", has: []string{"-o", "-C", "--output=", "--directory=", "--help"}, not: []string{"--jobs=", "-j"}},
		{dir: root, line: "hepbuild --no-c", want: []string{"--no-cache", "--no-coordinate"}},
		{dir: root, line: "hepbuild build -", has: []string{"-j", "-k", "--keep-going", "--sandbox="}},
		// Flag values: enums, after = or as the next word.
		{dir: root, line: "hepbuild --sandbox=", want: []string{"--sandbox=linux", "--sandbox=none", "--sandbox=symlink"}},
		{dir: root, line: "hepbuild build --progress ", want: []string{"auto", "none", "plain", "tty"}},
		{dir: root, line: "hepbuild query -o la", want: []string{"label", "label_kind"}},
		{dir: root, line: "hepbuild query --output=lo", want: []string{"--output=location"}},
		// Paths: folders for DIR, files too for FILE.
		{dir: root, line: "hepbuild -C a", want: []string{"ana/"}},
		{dir: root, line: "hepbuild --disk-cache=" + cacheDir + "/", want: nil},
		{dir: root, line: "hepbuild --events=ana/i", want: []string{"--events=ana/in.txt"}},
		{dir: root, line: "hepbuild --events ana/", want: []string{"ana/BUILD", "ana/in.txt", "ana/sub/"}},
		// Packages: "pkg:" for a package, "pkg/" for a folder holding
		// packages, "..." patterns; no folder without packages.
		{dir: root, line: "hepbuild //", want: []string{"//...", "//:", "//ana/", "//ana:", "//bad:"}},
		{dir: root, line: "hepbuild //an", want: []string{"//ana/", "//ana:"}},
		{dir: ana, line: "hepbuild /", want: []string{"//...", "//:", "//ana/", "//ana:", "//bad:"}},
		{dir: root, line: "hepbuild build //ana/", want: []string{"//ana/...", "//ana/sub:"}},
		{dir: root, line: "hepbuild //d", want: nil},
		// Targets of a package: rules and generated files for build, rules
		// for run, source files too for query.
		{dir: root, line: "hepbuild //ana:", want: []string{"//ana:all", "//ana:b.txt", "//ana:f.txt", "//ana:fit", "//ana:h.txt", "//ana:hist_ttbb", "//ana:hist_tth"}},
		{dir: root, line: "hepbuild //ana:hist_tt", want: []string{"//ana:hist_ttbb", "//ana:hist_tth"}},
		{dir: root, line: "hepbuild run //ana:", want: []string{"//ana:fit", "//ana:hist_ttbb", "//ana:hist_tth"}},
		{dir: root, line: "hepbuild run //ana:fit -- ana/i", want: []string{"ana/in.txt"}},
		{dir: root, line: "hepbuild status //ana/sub:", want: []string{"//ana/sub:all", "//ana/sub:x", "//ana/sub:x.txt"}},
		{dir: root, line: "hepbuild query //ana:i", want: []string{"//ana:in.txt"}},
		// Relative labels in the package of the current folder, and -C.
		{dir: ana, line: "hepbuild :fi", want: []string{":fit"}},
		{dir: ana, line: "hepbuild build fi", want: []string{"fit"}},
		{dir: ana, line: "hepbuild build sub:", want: []string{"sub:all", "sub:x", "sub:x.txt"}},
		{dir: ana, line: "hepbuild build s", want: []string{"sub:"}},
		{dir: root, line: "hepbuild -C ana :hist_tth", want: []string{":hist_tth"}},
		{dir: root, line: "hepbuild build --directory=ana fi", want: []string{"fit"}},
		{dir: root, line: "hepbuild -C " + ana + " build :f", want: []string{":f.txt", ":fit"}},
		// Query: functions, labels inside the expression, the rest kept.
		{dir: root, line: "hepbuild query 'de", want: []string{"deps(", "deps( "}},
		{dir: root, line: "hepbuild query 'r", want: []string{"rdeps(", "rdeps( "}},
		{dir: root, line: "hepbuild query 's", has: []string{"set(", "siblings(", "some(", "somepath("}},
		{dir: root, line: "hepbuild query 'deps(//ana:fi", want: []string{"deps(//ana:fit", "deps(//ana:fit "}},
		{dir: root, line: "hepbuild query 'kind(task, //ana:hist_tth) + //an", want: []string{"kind(task, //ana:hist_tth) + //ana/", "kind(task, //ana:hist_tth) + //ana:"}},
		{dir: root, line: `hepbuild aquery "deps(//ana/sub:`, want: []string{"deps(//ana/sub:BUILD.hep", "deps(//ana/sub:all", "deps(//ana/sub:x", "deps(//ana/sub:x.txt"}},
		// help: topics and commands; info: its keys; completion: shells.
		{dir: root, line: "hepbuild help q", want: []string{"query"}},
		{dir: root, line: "hepbuild help ex", want: []string{"exit-codes", "explain", "export"}},
		{dir: root, line: "hepbuild info output_", want: []string{"output_base", "output_path"}},
		{dir: root, line: "hepbuild completion ", want: []string{"bash", "fish", "zsh"}},
		// A broken BUILD file completes nothing, and says nothing.
		{dir: root, line: "hepbuild //bad:", want: nil},
		// Outside a workspace: commands and flags, no labels.
		{dir: t.TempDir(), line: "hepbuild //", want: nil},
		// A command after another on the line.
		{dir: root, line: "cd ana && hepbuild qu", want: []string{"query"}},
	}
	for _, c := range cases {
		got := complete(t, c.dir, "fish", c.line)
		if c.has == nil && c.not == nil {
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("%q in %s: mismatch (-want +got):\n%s", c.line, c.dir, diff)
			}
			continue
		}
		for _, h := range c.has {
			if !slices.Contains(got, h) {
				t.Errorf("%q: %q missing from %q", c.line, h, got)
			}
		}
		for _, n := range c.not {
			if slices.Contains(got, n) {
				t.Errorf("%q: %q offered: %q", c.line, n, got)
			}
		}
	}
}

// What bash and zsh get: bash replaces the text after the last of its word
// breaks, and inserts candidates as they are (quoted here, with the blank
// to add); zsh replaces its own current word, which inside quotes may be
// only the end of ours.
func TestCompletionForEachShell(t *testing.T) {
	root := testWorkspace(t, completionFiles())
	const breaks = "\"'><=;|&(:"
	cases := []struct {
		shell, line, cur string
		want             []string
	}{
		{"bash", "hepbuild //ana:fi", breaks, []string{"fit "}},
		{"bash", "hepbuild //ana:", breaks, []string{"all ", "b.txt ", "f.txt ", "fit ", "h.txt ", "hist_ttbb ", "hist_tth "}},
		{"bash", "hepbuild //an", breaks, []string{"//ana/", "//ana:"}},
		{"bash", "hepbuild --sandbox=sy", breaks, []string{"symlink "}},
		{"bash", "hepbuild qu", breaks, []string{"query "}},
		// In quotes, all after the quote; the only match comes twice so
		// that readline does not close the quote.
		{"bash", "hepbuild query 'deps(//ana:fi", breaks, []string{"deps(//ana:fit", "deps(//ana:fit "}},
		{"bash", "hepbuild query 'deps(//ana:fit) + ki", breaks, []string{"deps(//ana:fit) + kind(", "deps(//ana:fit) + kind( "}},
		// Unquoted, what the shell would take is escaped.
		{"bash", "hepbuild query de", breaks, []string{`deps\(`}},
		{"zsh", "hepbuild //ana:fi", "//ana:fi", []string{"//ana:fit"}},
		{"zsh", "hepbuild query 'deps(//ana:fit) + //ana:hist_ttb", "//ana:hist_ttb", []string{"//ana:hist_ttbb"}},
		{"zsh", "hepbuild query 'deps(//ana:fit) + //ana:hist_ttb", "deps(//ana:fit) + //ana:hist_ttb", []string{"deps(//ana:fit) + //ana:hist_ttbb\t//ana:hist_ttbb"}},
		{"zsh", "hepbuild query 'de", "de", []string{"deps("}},
		{"zsh", "hepbuild query 'deps(//ana:fit) + k", "deps(//ana:fit) + k", []string{"deps(//ana:fit) + kind(\tkind("}},
		{"fish", "hepbuild query 'deps(//ana:fi", "", []string{"deps(//ana:fit", "deps(//ana:fit "}},
	}
	for _, c := range cases {
		got := complete(t, root, c.shell, c.line, c.cur)
		sort.Strings(got)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s %q: mismatch (-want +got):\n%s", c.shell, c.line, diff)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := hepbuild(t, t.TempDir(), "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "hepbuild __complete "+sh) {
			t.Errorf("completion %s: exit %d\n%s%s", sh, r.code, r.stdout, r.stderr)
		}
	}
	if r := hepbuild(t, t.TempDir(), "completion", "tcsh"); r.code != 2 || !strings.Contains(r.stderr, `"bash","zsh","fish"`) {
		t.Errorf("completion tcsh: exit %d, want 2 naming the shells\n%s", r.code, r.stderr)
	}
	// A .hepbuildrc line for build does not reach __complete; its
	// profiles are what --config completes to.
	t.Setenv("HOME", t.TempDir())
	root := testWorkspace(t, map[string]string{"BUILD": "", ".hepbuildrc": "build --progress=plain\ncommon --config=nope\nbuild:ci -k\n# query:old -o label\ncommon:grid --sandbox=none\n"})
	if got := complete(t, root, "fish", "hepbuild qu"); !slices.Equal(got, []string{"query"}) {
		t.Errorf("with a .hepbuildrc: %q", got)
	}
	if got := complete(t, root, "fish", "hepbuild --config="); !slices.Equal(got, []string{"--config=ci", "--config=grid"}) {
		t.Errorf("--config=: %q", got)
	}
}

// The index of a package's targets: written by completion and by query,
// rebuilt when the BUILD file or a file it loads changes, ignored when
// damaged; and completion writes nothing into the workspace.
func TestCompletionIndex(t *testing.T) {
	files := completionFiles()
	files["ana/BUILD"] = `load("//ana:defs.star", "NAMES")
[task(name = n, outs = [n + ".txt"], cmd = "echo > $@") for n in NAMES]
`
	files["ana/defs.star"] = `NAMES = ["alpha", "beta"]` + "\n"
	root := testWorkspace(t, files)
	ob := (&LocationFlags{}).outputBase(root)
	index := completionIndexPath(ob, "ana")
	// Before the first build there is no output base, and completion
	// does not make one (the disk cache around it must be made first).
	if got := complete(t, root, "fish", "hepbuild run //ana:"); len(got) != 2 {
		t.Fatalf("before any build: %q", got)
	}
	if _, err := os.Stat(ob); err == nil {
		t.Fatalf("completion made the output base %s", ob)
	}
	// status makes it, as a build does, without running anything.
	if r := hepbuild(t, root, "status", "//:top"); r.code != 0 {
		t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	os.RemoveAll(filepath.Join(ob, completionIndexDir))
	before := workspaceFiles(t, root)
	rules := func() []string {
		return complete(t, root, "fish", "hepbuild run //ana:")
	}
	if diff := cmp.Diff([]string{"//ana:alpha", "//ana:beta"}, rules()); diff != "" {
		t.Fatalf("mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("no index after completing: %v", err)
	}
	// A change to the loaded file: the index is stale and made again.
	time.Sleep(10 * time.Millisecond) // a new modification time on coarse clocks
	os.WriteFile(filepath.Join(root, "ana/defs.star"), []byte(`NAMES = ["alpha", "gamma", "delta"]`+"\n"), 0o644)
	if diff := cmp.Diff([]string{"//ana:alpha", "//ana:delta", "//ana:gamma"}, rules()); diff != "" {
		t.Errorf("after editing defs.star: mismatch (-want +got):\n%s", diff)
	}
	// The index is what completion reads: one made by hand is believed
	// while nothing changed...
	idx, err := readCompletionIndex(ob, root, "ana", nil)
	if err != nil {
		t.Fatal(err)
	}
	idx.targets = append(idx.targets, indexTarget{kindRule, "from_the_index"})
	if err := writeCompletionIndex(ob, root, idx); err != nil {
		t.Fatal(err)
	}
	if got := rules(); !slices.Contains(got, "//ana:from_the_index") {
		t.Errorf("the index was not read: %q", got)
	}
	// ...and a damaged one is not.
	os.WriteFile(index, []byte("hepbuild completion index v1 \"ana\"\n12 x ana/BUILD\n"), 0o644)
	if diff := cmp.Diff([]string{"//ana:alpha", "//ana:delta", "//ana:gamma"}, rules()); diff != "" {
		t.Errorf("with a damaged index: mismatch (-want +got):\n%s", diff)
	}
	// A broken BUILD file completes nothing, until it is fixed.
	os.WriteFile(filepath.Join(root, "ana/BUILD"), []byte("task(\n"), 0o644)
	if got := rules(); got != nil {
		t.Errorf("broken BUILD file: %q", got)
	}
	os.WriteFile(filepath.Join(root, "ana/BUILD"), []byte(`task(name = "fixed", outs = ["f"], cmd = "echo > $@")`+"\n"), 0o644)
	if diff := cmp.Diff([]string{"//ana:fixed"}, rules()); diff != "" {
		t.Errorf("fixed BUILD file: mismatch (-want +got):\n%s", diff)
	}
	// query writes the index of what it loaded.
	os.RemoveAll(filepath.Join(ob, completionIndexDir))
	if r := hepbuild(t, root, "query", "//ana/sub:all"); r.code != 0 {
		t.Fatalf("query: %d %s", r.code, r.stderr)
	}
	if got, err := readCompletionIndex(ob, root, "ana/sub", nil); err != nil || !slices.Contains(got.targets, indexTarget{kindRule, "x"}) {
		t.Errorf("the index query wrote: %+v, %v", got, err)
	}
	if diff := cmp.Diff(before, workspaceFiles(t, root)); diff != "" {
		t.Errorf("completion changed the workspace: (-before +after):\n%s", diff)
	}
}

// A BUILD file that runs for long completes nothing, in bounded time.
func TestCompletionOfASlowPackage(t *testing.T) {
	root := testWorkspace(t, map[string]string{"slow/BUILD": "[x for x in range(2000000000)]\n"})
	done := make(chan []string)
	go func() { done <- complete(t, root, "fish", "hepbuild //slow:") }()
	select {
	case got := <-done:
		if got != nil {
			t.Errorf("slow package: %q", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("completion waited for a BUILD file that does not end")
	}
}

// infoKeys are the items hepbuild info prints.
func TestCompletionKnowsEveryInfoItem(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": ""})
	r := hepbuild(t, root, "info")
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, _, _ := strings.Cut(line, ":")
		keys = append(keys, k)
	}
	if diff := cmp.Diff(keys, infoKeys); diff != "" {
		t.Errorf("info items: mismatch (-hepbuild info +infoKeys):\n%s", diff)
	}
}

// workspaceFiles lists the files and folders under root.
func workspaceFiles(t *testing.T, root string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			m[p] = true
		}
		return nil
	})
	return m
}

// BenchmarkCompletionOfThePeerWorkload times a Tab on a label of the
// 20,165-action peer workload (one package of 45,331 targets) as a shell
// runs it: a process of the real binary per Tab. "start" completes a
// command name (the cost of starting the process); "warm" a label with the
// package's index current; "cold" the same with the index removed first,
// so that the package is loaded and the index written; "all" prints every
// target of the package. Run with
//
//	go test ./cmd/hepbuild -run '^$' -bench CompletionOfThePeerWorkload -benchtime 20x
func BenchmarkCompletionOfThePeerWorkload(b *testing.B) {
	// Built before the workspace sets XDG_CACHE_HOME, which would also
	// give go build an empty cache.
	bin := filepath.Join(b.TempDir(), "hepbuild")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	root := peerWorkload(b, 40, 125, 4, "")
	// The output base a first build makes, where the index goes: status
	// makes it as a build does, without running anything.
	if out, err := osexec.Command(bin, "-C", root, "status", "//:card_s0").CombinedOutput(); err != nil {
		b.Fatalf("status: %v\n%s", err, out)
	}
	index := filepath.Join((&LocationFlags{}).outputBase(root), completionIndexDir)
	// tab reports, besides the time, how many Tabs found fewer candidates
	// than want ("missed"): a package that takes longer than
	// completionLoadTimeout to load, on a busy machine, completes nothing.
	tab := func(b *testing.B, line string, want int, before func()) {
		missed := 0
		for i := 0; i < b.N; i++ {
			if before != nil {
				b.StopTimer()
				before()
				b.StartTimer()
			}
			cmd := osexec.Command(bin, "__complete", "fish", line)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("%q: %v", line, err)
			}
			if strings.Count(string(out), "\n") < want {
				missed++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/tab")
		b.ReportMetric(float64(missed), "missed")
	}
	b.Run("start", func(b *testing.B) { tab(b, "hepbuild bu", 1, nil) })
	b.Run("cold", func(b *testing.B) { tab(b, "hepbuild //:hist_d1_", 4, func() { os.RemoveAll(index) }) })
	// As after a query or a build, which write the index.
	if out, err := osexec.Command(bin, "-C", root, "query", "//:card_s0").CombinedOutput(); err != nil {
		b.Fatalf("query: %v\n%s", err, out)
	}
	b.Run("warm", func(b *testing.B) { tab(b, "hepbuild //:hist_d1_", 4, nil) })
	b.Run("all", func(b *testing.B) { tab(b, "hepbuild //:", 40330, nil) })
}

// TestQueryIndexesBeforeAClosedPipe: a query piped into head, which
// closes the pipe after a line, dies of SIGPIPE at its next write; the
// completion index of what it loaded is written before that.
func TestQueryIndexesBeforeAClosedPipe(t *testing.T) {
	files := completionFiles()
	files["big/BUILD"] = "[task(name = 't%d' % i, outs = ['t%d.txt' % i], cmd = 'echo > $@') for i in range(20000)]\n"
	root := testWorkspace(t, files)
	if r := hepbuild(t, root, "status", "//:top"); r.code != 0 {
		t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	ob := (&LocationFlags{}).outputBase(root)
	os.RemoveAll(filepath.Join(ob, completionIndexDir))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	cmd := hepbuildCommand(t, root, "query", "//big:all")
	cmd.Stdout = pw
	cmd.Run() // killed by SIGPIPE
	pw.Close()
	if _, err := os.Stat(completionIndexPath(ob, "big")); err != nil {
		t.Errorf("no index after a query into a closed pipe: %v", err)
	}
}

// TestCompletionIndexKeptWhenCurrent: a build that finds the index of a
// package as it would write it leaves the file alone (a large package's
// index is megabytes, written after every build otherwise), and one that
// finds it stale writes it anew.
func TestCompletionIndexKeptWhenCurrent(t *testing.T) {
	files := completionFiles()
	files["ana/BUILD"] = `task(name = "alpha", outs = ["a.txt"], cmd = "echo > $@")` + "\n"
	root := testWorkspace(t, files)
	// Files written just before an index are racy (see indexCurrent).
	ageTree(t, root, time.Hour)
	ob := (&LocationFlags{}).outputBase(root)
	index := completionIndexPath(ob, "ana")
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(index)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	query := func() { t.Helper(); queryAna(t, root) }
	if r := hepbuild(t, root, "status", "//:top"); r.code != 0 {
		t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	query()
	first := inode()
	query()
	if inode() != first {
		t.Error("an index that was current was written again")
	}
	os.WriteFile(filepath.Join(root, "ana/BUILD"), []byte(`task(name = "beta", outs = ["b.txt"], cmd = "echo > $@")`+"\n"), 0o644)
	query()
	rules := indexedRules(t, ob, root, "ana")
	if diff := cmp.Diff([]string{"beta"}, rules); diff != "" {
		t.Errorf("rules in the index after editing BUILD: mismatch (-want +got):\n%s", diff)
	}
}

// queryAna runs `hepbuild query //ana:all`, which loads ana and records
// its completion index.
func queryAna(t *testing.T, root string) {
	t.Helper()
	if r := hepbuild(t, root, "query", "//ana:all"); r.code != 0 {
		t.Fatalf("query: %d %s", r.code, r.stderr)
	}
}

// TestCompletionIndexRewrittenWhenRacy: an index whose files were modified
// as late as it was written may have been made from their content before a
// second edit in the same timestamp tick (a whole second on some file
// systems), which left size and mtime as they were. Such an index is
// written again by the next build, which loaded the package anyway:
// kept, it would list the old targets until the file changes once more.
func TestCompletionIndexRewrittenWhenRacy(t *testing.T) {
	files := completionFiles()
	files["ana/BUILD"] = `task(name = "alpha", outs = ["a.txt"], cmd = "echo > $@")` + "\n"
	root := testWorkspace(t, files)
	ob := (&LocationFlags{}).outputBase(root)
	build := filepath.Join(root, "ana/BUILD")
	// One tick for both edits: the time of the first, kept by the second.
	tick := time.Now().Truncate(time.Second)
	if err := os.Chtimes(build, tick, tick); err != nil {
		t.Fatal(err)
	}
	query := func() { t.Helper(); queryAna(t, root) }
	if r := hepbuild(t, root, "status", "//:top"); r.code != 0 {
		t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	query()
	// Same size, same mtime: only the content tells.
	if err := os.WriteFile(build, []byte(`task(name = "gamma", outs = ["a.txt"], cmd = "echo > $@")`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(build, tick, tick); err != nil {
		t.Fatal(err)
	}
	query()
	rules := indexedRules(t, ob, root, "ana")
	if diff := cmp.Diff([]string{"gamma"}, rules); diff != "" {
		t.Errorf("rules in the index after a second edit in the same tick: mismatch (-want +got):\n%s", diff)
	}
}

// indexedRules reads the completion index of pkg and returns the names of
// the rules it lists.
func indexedRules(t *testing.T, ob, root, pkg string) []string {
	t.Helper()
	idx, err := readCompletionIndex(ob, root, pkg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, x := range idx.targets {
		if x.kind == kindRule {
			rules = append(rules, x.name)
		}
	}
	return rules
}

// ageTree sets the times of every file and folder below root back by d.
func ageTree(t *testing.T, root string, d time.Duration) {
	t.Helper()
	then := time.Now().Add(-d)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, then, then)
	})
	if err != nil {
		t.Fatal(err)
	}
}
