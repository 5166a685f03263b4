package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// testWorkspace writes files (path -> content) into a new workspace and
// returns its root; the cache and output base go to the test's temp folder.
func testWorkspace(t testing.TB, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "ws")
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
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
	return root
}

type result struct {
	code           int
	stdout, stderr string
}

func hepbuild(t *testing.T, root string, args ...string) result {
	t.Helper()
	return hepbuildCtx(context.Background(), t, root, args...)
}

func hepbuildCtx(ctx context.Context, t *testing.T, root string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, &env{stdout: &out, stderr: &errb, ctx: ctx, cwd: root})
	return result{code, out.String(), errb.String()}
}

const chain = `
task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "tr a-z A-Z < $< > $@")
task(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "wc -c < $< > $@")
task(name = "other", srcs = ["other.txt"], outs = ["o.txt"], cmd = "cp $< $@")
`

// events reads an --events file and counts events by type.
func events(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct{ Type, Target string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		out[e.Type] = append(out[e.Type], e.Target)
	}
	return out
}

func TestBuildRebuildsExactlyWhatChanged(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "hello\n", "other.txt": "x\n"})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	if r := hepbuild(t, root, "//:b", "//:other", "--progress=plain", "--events", ev); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if got := len(events(t, ev)["action_finished"]); got != 3 {
		t.Errorf("first build executed %d actions, want 3", got)
	}
	b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "b.txt"))
	if strings.TrimSpace(string(b)) != "6" {
		t.Errorf("b.txt = %q, want 6", b)
	}
	// Null build: nothing runs.
	r := hepbuild(t, root, "//:b", "//:other", "--progress=plain", "--events", ev)
	if r.code != 0 || len(events(t, ev)["action_finished"]) != 0 {
		t.Fatalf("null build: exit %d, executed %v\n%s", r.code, events(t, ev)["action_finished"], r.stderr)
	}
	if !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("null build does not say so:\n%s", r.stderr)
	}
	// Change in.txt, same length: a reruns, b's input is byte-identical in
	// length... no: a's output changes, b reruns, but b's output (a byte count) is unchanged.
	os.WriteFile(filepath.Join(root, "in.txt"), []byte("world\n"), 0o644)
	if r := hepbuild(t, root, "//:b", "//:other", "--events", ev, "--progress=none"); r.code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", r.code, r.stderr)
	}
	if got := events(t, ev)["action_finished"]; strings.Join(got, " ") != "//:a //:b" {
		t.Errorf("after changing in.txt executed %v, want //:a //:b", got)
	}
	// status and explain.
	os.WriteFile(filepath.Join(root, "other.txt"), []byte("y\n"), 0o644)
	r = hepbuild(t, root, "status", "//:b", "//:other")
	if r.code != 0 || !strings.Contains(r.stdout, "will run                         //:other") || !strings.Contains(r.stdout, "up to date                       //:b") {
		t.Errorf("status:\n%s\n%s", r.stdout, r.stderr)
	}
	r = hepbuild(t, root, "explain", "//:other")
	if r.code != 0 || !strings.Contains(r.stdout, "input changed: other.txt") {
		t.Errorf("explain:\n%s\n%s", r.stdout, r.stderr)
	}
	// clean removes the output tree; the next build restores from the cache.
	hepbuild(t, root, "//:other", "--progress=none")
	if r := hepbuild(t, root, "clean"); r.code != 0 {
		t.Fatalf("clean: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out", "b.txt")); err == nil {
		t.Error("b.txt survived clean")
	}
	if r := hepbuild(t, root, "//:b", "//:other", "--events", ev, "--progress=none"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	evs := events(t, ev)
	if len(evs["action_finished"]) != 0 || len(evs["action_cached"]) != 3 {
		t.Errorf("after clean: executed %v, cached %v; want 0 and 3", evs["action_finished"], evs["action_cached"])
	}
}

func TestExitCodes(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD":     `task(name = "fails", outs = ["f"], cmd = "echo oops >&2; exit 3")` + "\n" + `task(name = "sleeps", outs = ["s"], cmd = "sleep 30; touch $@")`,
		"bad/BUILD": `task(name = "x", outs = ["x"], cmd = "true", colour = "red")`,
	})
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"//:fails", "--progress=plain"}, 1, "exit status 3"},
		{[]string{"//bad:x"}, 2, `bad/BUILD:1:5: //bad:x: task has no attribute "colour"`},
		{[]string{"//nope:x"}, 2, "no such package 'nope'"},
		{[]string{"//:fail"}, 2, "did you mean '//:fails'"},
		{[]string{"build", "--no-such-flag", "//:fails"}, 2, "unknown flag"},
		{[]string{"query", "deps(//:fails"}, 2, "query"},
	}
	for _, c := range cases {
		r := hepbuild(t, root, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.want) {
			t.Errorf("hepbuild %v: exit %d, want %d with %q\nstderr: %s", c.args, r.code, c.code, c.want, r.stderr)
		}
	}
	// The failure prints the command and the output tail.
	r := hepbuild(t, root, "//:fails", "--progress=plain")
	if !strings.Contains(r.stderr, "oops") {
		t.Errorf("failure output lacks the action's output tail:\n%s", r.stderr)
	}
	// Interrupt: cancelling the context stops the build with exit 8.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	r = hepbuildCtx(ctx, t, root, "//:sleeps", "--progress=none")
	if r.code != 8 {
		t.Errorf("interrupted build: exit %d, want 8\n%s", r.code, r.stderr)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("interrupt took %v: the action was not stopped", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out", "s")); err == nil {
		t.Error("an interrupted action left its output")
	}
}

func TestQueryAndAquery(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "hello\n", "other.txt": "x\n"})
	r := hepbuild(t, root, "query", "deps(//:b)")
	if want := "//:BUILD\n"; r.code != 0 || strings.Contains(r.stdout, want) || r.stdout != "//:a\n//:b\n//:in.txt\n" {
		t.Errorf("query deps: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = hepbuild(t, root, "query", "--output=label_kind", "rdeps(//..., //:in.txt)")
	if r.code != 0 || !strings.Contains(r.stdout, "task rule //:b") {
		t.Errorf("query rdeps:\n%s%s", r.stdout, r.stderr)
	}
	r = hepbuild(t, root, "aquery", "//:a")
	if r.code != 0 || !strings.Contains(r.stdout, "tr a-z A-Z < in.txt > hepbuild-out/a.txt") {
		t.Errorf("aquery:\n%s%s", r.stdout, r.stderr)
	}
	r = hepbuild(t, root, "aquery", "--output=json", "//:a")
	var j map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j["mnemonic"] != "Task" {
		t.Errorf("aquery json: %v\n%s", err, r.stdout)
	}
	// query never runs an action.
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out")); err == nil {
		t.Error("query or aquery created the output tree")
	}
}

func TestFmt(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": "task(name='a',outs=['a'],cmd='true')\n"})
	if r := hepbuild(t, root, "fmt", "--check"); r.code != 1 || !strings.Contains(r.stdout, "BUILD") {
		t.Errorf("fmt --check on unformatted file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hepbuild(t, root, "fmt"); r.code != 0 {
		t.Fatalf("fmt: %d %s", r.code, r.stderr)
	}
	got, _ := os.ReadFile(filepath.Join(root, "BUILD"))
	want := "task(\n    name = \"a\",\n    outs = [\"a\"],\n    cmd = \"true\",\n)\n"
	if string(got) != want {
		t.Errorf("formatted BUILD:\n%s\nwant:\n%s", got, want)
	}
	if r := hepbuild(t, root, "fmt", "--check"); r.code != 0 {
		t.Errorf("fmt --check after fmt: exit %d", r.code)
	}
}

func TestHepbuildrc(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "x\n",
		".hepbuildrc": "build --progress=none\nbuild:quiet --keep-going\nquery --output=label_kind\ncommon --sandbox=none\n"})
	if r := hepbuild(t, root, "query", "//:a"); !strings.Contains(r.stdout, "task rule //:a") {
		t.Errorf(".hepbuildrc query flags not applied:\n%s%s", r.stdout, r.stderr)
	}
	if r := hepbuild(t, root, "build", "--config=quiet", "//:a"); r.code != 0 {
		t.Errorf("--config=quiet: %d %s", r.code, r.stderr)
	}
	if r := hepbuild(t, root, "build", "--config=loud", "//:a"); r.code != 2 || !strings.Contains(r.stderr, "--config loud") {
		t.Errorf("unknown --config: exit %d %s", r.code, r.stderr)
	}
}

func TestManualAndNegativePatterns(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": `
task(name = "a", outs = ["a.out"], cmd = "touch $@")
task(name = "m", outs = ["m.out"], cmd = "touch $@", tags = ["manual"])
`, "sub/BUILD": `task(name = "s", outs = ["s.out"], cmd = "touch $@")`})
	ev := filepath.Join(t.TempDir(), "ev.jsonl")
	if r := hepbuild(t, root, "//...", "--progress=none", "--events", ev); r.code != 0 {
		t.Fatal(r.stderr)
	}
	got := events(t, ev)["action_finished"]
	sort.Strings(got)
	if got := strings.Join(got, " "); got != "//:a //sub:s" {
		t.Errorf("//... built %q, want //:a //sub:s (manual skipped)", got)
	}
	if r := hepbuild(t, root, "//:m", "--progress=none", "--events", ev); r.code != 0 || len(events(t, ev)["action_finished"]) != 1 {
		t.Errorf("naming a manual target should build it: %d %s", r.code, r.stderr)
	}
	if r := hepbuild(t, root, "--progress=none", "--events", ev, "--", "//...", "-//sub/..."); r.code != 0 {
		t.Fatal(r.stderr)
	}
	evs := events(t, ev)
	if got := strings.Join(append(evs["action_finished"], evs["action_uptodate"]...), " "); got != "//:a" {
		t.Errorf("//... -//sub/... built %q, want //:a", got)
	}
}

// TestNullBuildStamp checks the shortcut that skips loading when nothing a
// build depends on changed: it must notice every change that matters.
func TestNullBuildStamp(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD":  `task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< > $@; echo $${FOO:-unset} >> $@", environ = {})`,
		"in.txt": "one\n",
	})
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "a.txt"))
		return string(b)
	}
	build := func(args ...string) result {
		r := hepbuild(t, root, append([]string{"//:a", "--progress=plain"}, args...)...)
		if r.code != 0 {
			t.Fatalf("build %v: exit %d\n%s", args, r.code, r.stderr)
		}
		return r
	}
	build()
	if r := build(); !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("second build did something:\n%s", r.stderr)
	}
	os.WriteFile(filepath.Join(root, "in.txt"), []byte("two\n"), 0o644)
	build()
	if got := read(); got != "two\nunset\n" {
		t.Errorf("after editing the input: %q", got)
	}
	os.WriteFile(filepath.Join(root, "BUILD"), []byte(`task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< $< > $@; echo $${FOO:-unset} >> $@")`), 0o644)
	build()
	if got := read(); got != "two\ntwo\nunset\n" {
		t.Errorf("after editing BUILD: %q", got)
	}
	t.Setenv("FOO", "1")
	build("--action-env=FOO")
	if got := read(); got != "two\ntwo\n1\n" {
		t.Errorf("with --action-env FOO=1: %q", got)
	}
	t.Setenv("FOO", "2")
	build("--action-env=FOO")
	if got := read(); got != "two\ntwo\n2\n" {
		t.Errorf("after changing FOO to 2: %q (a stale null build?)", got)
	}
	os.Remove(filepath.Join(root, "hepbuild-out", "a.txt"))
	build("--action-env=FOO")
	if got := read(); got != "two\ntwo\n2\n" {
		t.Errorf("after removing the output: %q", got)
	}
}

// The build right after a full build is a null build that loads nothing,
// whichever the sandbox: removing a sandbox's hard links to the inputs
// changes their ctime, and it must happen before the stamp is written.
func TestNullBuildRightAfterBuild(t *testing.T) {
	for _, sb := range []string{"none", "symlink", "linux"} {
		t.Run(sb, func(t *testing.T) {
			root := testWorkspace(t, map[string]string{
				"BUILD": `print("loading BUILD")
task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< > $@")
task(name = "b", srcs = [":a", "in.txt"], outs = ["b.txt"], cmd = "cat $(SRCS) > $@")`,
				"in.txt": "one\n",
			})
			if r := hepbuild(t, root, "//:b", "--progress=plain", "--sandbox="+sb); r.code != 0 || !strings.Contains(r.stderr, "loading BUILD") {
				t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
			}
			r := hepbuild(t, root, "//:b", "--progress=plain", "--sandbox="+sb)
			if r.code != 0 || strings.Contains(r.stderr, "loading BUILD") || !strings.Contains(r.stderr, "nothing to do") {
				t.Errorf("the build after it loaded the BUILD file (exit %d):\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestBuildFileEditedWhileLoading: a BUILD file edited after loading read
// it, before the build took the state of its sources, must not be
// recorded by the stamp in its edited state: the build was made from
// what loading read, and the next build must load it again.
func TestBuildFileEditedWhileLoading(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD": `task(name = "a", outs = ["a.txt"], cmd = "echo one > $@")`,
	})
	testHookAnalysed = func() {
		testHookAnalysed = nil
		if err := os.WriteFile(filepath.Join(root, "BUILD"), []byte(`task(name = "a", outs = ["a.txt"], cmd = "echo two > $@")`), 0o644); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookAnalysed = nil }()
	if r := hepbuild(t, root, "//:a", "--progress=plain"); r.code != 0 {
		t.Fatalf("first build: %d %s", r.code, r.stderr)
	}
	r := hepbuild(t, root, "//:a", "--progress=plain")
	if r.code != 0 || strings.Contains(r.stderr, "nothing to do") {
		t.Fatalf("second build: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "a.txt")); string(b) != "two\n" {
		t.Errorf("a.txt = %q after the second build, want the edited BUILD's", b)
	}
}

// finished reports whether the events hold the end of a run of target.
func finished(events []byte, target string) bool {
	for _, l := range strings.Split(string(events), "\n") {
		if strings.Contains(l, `"action_finished"`) && strings.Contains(l, `"`+target+`"`) {
			return true
		}
	}
	return false
}

// TestSourceEditedDuringBuild: a source changed during a build (after the
// action that read it finished) must not let the next build skip as "nothing
// to do".
func TestSourceEditedDuringBuild(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD": `task(name = "fast", srcs = ["in.txt"], outs = ["fast.txt"], cmd = "cat $< > $@")
task(name = "slow", outs = ["slow.txt"], cmd = "sleep 3; touch $@")`,
		"in.txt": "v1\n",
	})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	go func() {
		// Edited once fast has finished, while slow still runs (on a busy
		// machine loading alone may take longer than a fixed delay). Not
		// once fast.txt exists: its command's redirection makes it before
		// cat reads in.txt, and an edit while the action runs makes it run
		// again with the edit, which is then up to date.
		for i := 0; i < 3000; i++ {
			b, _ := os.ReadFile(ev)
			if finished(b, "//:fast") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		os.WriteFile(filepath.Join(root, "in.txt"), []byte("v2\n"), 0o644)
	}()
	if r := hepbuild(t, root, "//:fast", "//:slow", "--progress=plain", "--events", ev); r.code != 0 {
		t.Fatalf("first build: %d %s", r.code, r.stderr)
	}
	r := hepbuild(t, root, "//:fast", "//:slow", "--progress=plain")
	if r.code != 0 || strings.Contains(r.stderr, "nothing to do") {
		t.Fatalf("second build: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "fast.txt")); string(b) != "v2\n" {
		t.Errorf("fast.txt = %q after the second build, want v2", b)
	}
}

// TestInputEditedByItsAction: the command edits its own input (on the first
// run only, as a writer racing the build would). The result made from the
// edited input must not be stored under the old content's key: the build
// runs the action again on the new content, and a later build of the old
// content runs it instead of restoring anything.
func TestInputEditedByItsAction(t *testing.T) {
	for _, sb := range []string{"none", "symlink"} {
		t.Run(sb, func(t *testing.T) {
			mark := filepath.Join(t.TempDir(), "edited")
			root := testWorkspace(t, map[string]string{"in.txt": "v1\n"})
			in := filepath.Join(root, "in.txt")
			os.WriteFile(filepath.Join(root, "BUILD"), []byte(`task(name = "a", srcs = ["in.txt"], outs = ["a.txt"],
    cmd = "cat $< > $@; if [ ! -e `+mark+` ]; then : > `+mark+`; echo v2 > `+in+`; fi")
`), 0o644)
			ev := filepath.Join(t.TempDir(), "events.jsonl")
			r := hepbuild(t, root, "//:a", "--sandbox", sb, "--progress=plain", "--events", ev)
			if r.code != 0 {
				t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "input in.txt changed while the action was keyed and run") {
				t.Errorf("the build does not say that in.txt changed:\n%s", r.stderr)
			}
			if got := readOut(t, root, "a.txt"); got != "v2" {
				t.Errorf("a.txt = %q, want v2", got)
			}
			if r := hepbuild(t, root, "//:a", "--sandbox", sb, "--progress=plain"); r.code != 0 || !strings.Contains(r.stderr, "nothing to do") {
				t.Errorf("second build is not a null build: exit %d\n%s", r.code, r.stderr)
			}
			os.WriteFile(in, []byte("v1\n"), 0o644)
			r = hepbuild(t, root, "//:a", "--sandbox", sb, "--progress=plain", "--events", ev)
			if r.code != 0 {
				t.Fatalf("build of v1: exit %d\n%s", r.code, r.stderr)
			}
			evs := events(t, ev)
			if len(evs["action_cached"]) != 0 || len(evs["action_finished"]) != 1 {
				t.Errorf("build of v1: cached %v, executed %v; want it executed", evs["action_cached"], evs["action_finished"])
			}
			if got := readOut(t, root, "a.txt"); got != "v1" {
				t.Errorf("a.txt = %q, want v1", got)
			}
		})
	}
}

// TestLabelTagsDoNotRerun: tags that cannot change outputs (free-form
// labels, manual, no-remote-exec, no-cache) leave the key alone, so adding
// them neither reruns the action nor misses the cache; requires-network
// changes the key.
func TestLabelTagsDoNotRerun(t *testing.T) {
	root := testWorkspace(t, map[string]string{"in.txt": "x\n"})
	rule := func(tags string) {
		os.WriteFile(filepath.Join(root, "BUILD"), []byte(`task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< > $@", tags = [`+tags+`])
`), 0o644)
	}
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	build := func() map[string][]string {
		t.Helper()
		if r := hepbuild(t, root, "//:a", "--progress=plain", "--events", ev); r.code != 0 {
			t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
		}
		return events(t, ev)
	}
	rule("")
	build()
	rule(`"slow", "manual", "no-remote-exec", "no-cache", "team:higgs"`)
	if evs := build(); len(evs["action_finished"])+len(evs["action_cached"]) != 0 {
		t.Errorf("after adding label tags: executed %v, cached %v; want up to date", evs["action_finished"], evs["action_cached"])
	}
	rule(`"slow"`)
	hepbuild(t, root, "clean")
	if evs := build(); len(evs["action_cached"]) != 1 {
		t.Errorf("after clean: cached %v, executed %v; want it restored", evs["action_cached"], evs["action_finished"])
	}
	rule(`"slow", "requires-network"`)
	if evs := build(); len(evs["action_finished"]) != 1 {
		t.Errorf("after adding requires-network: executed %v; want it run", evs["action_finished"])
	}
}

// TestFmtSymlinkedBuildFile formats a BUILD file that is a link to a file
// elsewhere: the link stays a link, the file it points to is formatted in
// place, its mode kept, and no temporary file is left beside either.
func TestFmtSymlinkedBuildFile(t *testing.T) {
	root := testWorkspace(t, map[string]string{"pkg/x.txt": ""})
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(shared, "BUILD.common")
	if err := os.WriteFile(real, []byte("task(name='a',outs=['a'],cmd='true')\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "pkg", "BUILD")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"fmt"}, {"fmt", "pkg/BUILD"}} {
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Fatalf("%v: exit %d %s", args, r.code, r.stderr)
		}
		fi, err := os.Lstat(link)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%v: pkg/BUILD is no longer a link (%v, %v)", args, fi.Mode(), err)
		}
		if dest, _ := os.Readlink(link); dest != real {
			t.Errorf("%v: link points to %s, want %s", args, dest, real)
		}
		got, _ := os.ReadFile(real)
		if want := "task(\n    name = \"a\",\n    outs = [\"a\"],\n    cmd = \"true\",\n)\n"; string(got) != want {
			t.Errorf("%v: linked file:\n%s\nwant:\n%s", args, got, want)
		}
		if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o640 {
			t.Errorf("%v: linked file mode %v, want 0640", args, fi.Mode().Perm())
		}
		for _, dir := range []string{shared, filepath.Dir(link)} {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".fmt-") {
					t.Errorf("%v: temporary file %s left in %s", args, e.Name(), dir)
				}
			}
		}
		// Unformat it again for the next round.
		os.WriteFile(real, []byte("task(name='a',outs=['a'],cmd='true')\n"), 0o640)
	}
	if r := hepbuild(t, root, "fmt", "--check"); r.code != 1 {
		t.Errorf("fmt --check through a link: exit %d, want 1", r.code)
	}
}

// TestEmptyOutputsAreAnalysisErrors: a task with outs = [] and a rule that
// declares a file or folder named "" fail at analysis, naming the file,
// line and target, with exit 2; nothing runs and no output tree is made.
func TestEmptyOutputsAreAnalysisErrors(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD": `load(":defs.star", "file_rule", "dir_rule")
task(name = "none", outs = [], cmd = "touch x")
file_rule(name = "f")
dir_rule(name = "d")
`,
		"defs.star": `def _file(ctx):
    out = ctx.actions.declare_file("")
    ctx.actions.write(out, "x")
    return [DefaultInfo(files = depset([out]))]

file_rule = rule(implementation = _file)

def _dir(ctx):
    out = ctx.actions.declare_directory("")
    ctx.actions.run_shell(outputs = [out], command = "true")
    return [DefaultInfo(files = depset([out]))]

dir_rule = rule(implementation = _dir)
`})
	for _, c := range []struct{ target, where, what string }{
		{"//:none", "BUILD:2:", "outs is empty"},
		{"//:f", "defs.star:2:", "declare_file: \"\" names no file"},
		{"//:d", "defs.star:9:", "declare_directory: \"\" names no file"},
	} {
		for _, args := range [][]string{{c.target, "--progress=none"}, {"build", "--nobuild", c.target}} {
			r := hepbuild(t, root, args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.where) || !strings.Contains(r.stderr, c.target+":") || !strings.Contains(r.stderr, c.what) {
				t.Errorf("%v: exit %d, want 2 and an error at %s naming %s: %s\n%s", args, r.code, c.where, c.target, c.what, r.stderr)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "hepbuild-out")); err == nil {
		t.Errorf("an analysis error left an output tree")
	}
}

// A misspelt command is a build of a target by that name; when there is
// none, the error says which command was likely meant.
func TestMisspeltCommand(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": `task(name = "qury", outs = ["q.txt"], cmd = "echo q > $@")`})
	r := hepbuild(t, root, "qurey", "deps(//:qury)")
	if r.code != 2 || !strings.Contains(r.stderr, `did you mean the command "query"?`) {
		t.Errorf("hepbuild qurey: exit %d, want 2 suggesting query:\n%s", r.code, r.stderr)
	}
	// A target that exists is built, whatever its name.
	if r := hepbuild(t, root, "qury"); r.code != 0 {
		t.Errorf("hepbuild qury: exit %d\n%s", r.code, r.stderr)
	}
	// A name near no command gets no suggestion.
	if r := hepbuild(t, root, "histogram"); r.code != 2 || strings.Contains(r.stderr, "the command") {
		t.Errorf("hepbuild histogram: exit %d\n%s", r.code, r.stderr)
	}
}

// The build right after a rebuild from the cache is a null build too,
// also when outputs have the same content: restored as hard links to one
// blob, each link changes the ctime of all of them, after the journal
// recorded the earlier ones, so the stamp must take their stat anew.
//
// The stamp takes the stat of an output restored as the only link to its
// blob from the runner (taken as it was linked), and those of the sources
// from the check that none changed during the build: also with the linux
// sandbox, whose hard links to sources are gone by then.
func TestNullBuildRightAfterRestore(t *testing.T) {
	for _, sb := range []string{"none", "linux"} {
		t.Run(sb, func(t *testing.T) {
			root := testWorkspace(t, map[string]string{
				"BUILD": `print("loading BUILD")
task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< > $@")
task(name = "b", srcs = ["in.txt"], outs = ["b.txt"], cmd = "cat $< > $@")
task(name = "u", srcs = ["in.txt"], outs = ["u.txt"], cmd = "cat $< $< > $@")
task(name = "c", srcs = [":a", ":b", ":u"], outs = ["c.txt"], cmd = "cat $(SRCS) > $@")`,
				"in.txt": "one\n",
			})
			build := []string{"//:c", "--progress=plain", "--sandbox=" + sb}
			for _, args := range [][]string{build, {"clean"}, build} {
				if r := hepbuild(t, root, args...); r.code != 0 {
					t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
				}
			}
			r := hepbuild(t, root, build...)
			if r.code != 0 || strings.Contains(r.stderr, "loading BUILD") || !strings.Contains(r.stderr, "nothing to do") {
				t.Errorf("the build after the rebuild from the cache loaded the BUILD file (exit %d):\n%s", r.code, r.stderr)
			}
			// An output replaced since is not taken as up to date.
			u := filepath.Join(root, "hepbuild-out", "u.txt")
			if err := os.Remove(u); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(u, []byte("two\ntwo\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if r := hepbuild(t, root, build...); r.code != 0 || strings.Contains(r.stderr, "nothing to do") {
				t.Errorf("the build after replacing an output did nothing (exit %d):\n%s", r.code, r.stderr)
			}
			if b, _ := os.ReadFile(u); string(b) != "one\none\n" {
				t.Errorf("u.txt = %q after the build, want it restored", b)
			}
		})
	}
}
