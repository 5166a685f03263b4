package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// runWorkspace has a task whose output is a program (a shell script made
// executable), a task whose output is data, and one with two programs.
func runWorkspace(t *testing.T) string {
	t.Helper()
	return testWorkspace(t, map[string]string{
		"BUILD": `
task(name = "greet", srcs = ["greet.in"], outs = ["greet.sh"], cmd = "cp $< $@ && chmod +x $@")
task(name = "data", outs = ["d.txt"], cmd = "echo hi > $@")
task(name = "two", outs = ["a.sh", "b.sh"], cmd = "for f in $(OUTS); do printf '#!/bin/sh\necho %s\n' $$f > $$f; chmod +x $$f; done")
task(name = "pair", outs = ["helper.sh", "pair.sh"], cmd = "for f in $(OUTS); do printf '#!/bin/sh\necho %s\n' $$f > $$f; chmod +x $$f; done")
`,
		"greet.in":   "#!/bin/sh\nread line\necho \"args:$*|stdin:$line|pwd:$(pwd)\"\necho \"ws:$BUILD_WORKSPACE_DIRECTORY|wd:$BUILD_WORKING_DIRECTORY\"\necho to-stderr >&2\nexit ${CODE:-0}\n",
		"sub/README": "",
	})
}

// hepbuildIn runs hepbuild in-process started in dir, with stdin.
func hepbuildIn(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx := context.Background()
	code := run(ctx, args, &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin), ctx: ctx, cwd: dir})
	return result{code, out.String(), errb.String()}
}

func TestRunRunsTheProgramWithArgsInTheWorkspace(t *testing.T) {
	root := runWorkspace(t)
	root, _ = filepath.EvalSymlinks(root)
	sub := filepath.Join(root, "sub")
	r := hepbuildIn(t, sub, "hello\n", "run", "--progress=none", "//:greet", "--", "-x", "--jobs", "two words")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	want := "args:-x --jobs two words|stdin:hello|pwd:" + root + "\nws:" + root + "|wd:" + sub + "\n"
	if r.stdout != want {
		t.Errorf("stdout\n%q, want\n%q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "to-stderr") {
		t.Errorf("the program's stderr is not passed through:\n%s", r.stderr)
	}
}

func TestRunExitCodeIsTheProgramsOwn(t *testing.T) {
	root := runWorkspace(t)
	t.Setenv("CODE", "42")
	r := hepbuildIn(t, root, "x\n", "run", "--progress=none", ":greet")
	if r.code != 42 {
		t.Fatalf("exit %d, want the program's 42\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "ERROR") {
		t.Errorf("a program's failure is its own to report, not hepbuild's:\n%s", r.stderr)
	}
}

func TestRunRebuildsWhenTheSourceChanged(t *testing.T) {
	root := runWorkspace(t)
	if r := hepbuildIn(t, root, "a\n", "run", "--progress=none", ":greet"); r.code != 0 || !strings.HasPrefix(r.stdout, "args:|stdin:a") {
		t.Fatalf("exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(root, "greet.in"), []byte("#!/bin/sh\necho changed \"$@\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := hepbuildIn(t, root, "", "run", "--progress=none", ":greet", "--", "1")
	if r.code != 0 || r.stdout != "changed 1\n" {
		t.Fatalf("after the edit: exit %d, stdout %q, want the new program's output\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRunPicksTheProgramNamedLikeTheTarget(t *testing.T) {
	root := runWorkspace(t)
	r := hepbuildIn(t, root, "", "run", "--progress=none", ":pair")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "/pair.sh\n") {
		t.Fatalf("exit %d, stdout %q, want pair's own program\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRunErrors(t *testing.T) {
	root := runWorkspace(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no program", []string{":data"}, exitBadInput, []string{"//:data", "BUILD:3:", "no executable output"}},
		{"two programs", []string{":two"}, exitBadInput, []string{"//:two", "a.sh", "b.sh"}},
		{"pattern", []string{"//..."}, exitBadInput, []string{"pattern"}},
		{"no such target", []string{":nope"}, exitBadInput, []string{"nope"}},
		{"no target", nil, exitBadInput, []string{"target"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := hepbuildIn(t, root, "", append([]string{"run", "--progress=none"}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, c.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestRunBuildFailureIsABuildFailure(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD": `task(name = "bad", outs = ["bad.sh"], cmd = "echo nope >&2; exit 1")`,
	})
	r := hepbuildIn(t, root, "", "run", "--progress=none", ":bad")
	if r.code != exitBuildFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitBuildFailed, r.stderr)
	}
}

// TestRunForwardsSignals runs hepbuild as a real process: SIGTERM and
// SIGINT sent to it reach the program, whose exit status hepbuild takes.
func TestRunForwardsSignals(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 5}, {syscall.SIGINT, 6}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			root := testWorkspace(t, map[string]string{
				"BUILD": `task(name = "wait", srcs = ["wait.in"], outs = ["wait.sh"], cmd = "cp $< $@ && chmod +x $@")`,
				"wait.in": "#!/bin/sh\ntrap 'echo got-TERM >&2; exit 5' TERM\ntrap 'echo got-INT >&2; exit 6' INT\n" +
					"echo program-ready >&2\nwhile :; do sleep 0.05; done\n",
			})
			cmd, stderr := startAndWaitFor(t, root, "program-ready", "run", "--progress=none", ":wait")
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			code := waitExit(t, cmd, stderr)
			want := "got-" + strings.TrimPrefix(unix.SignalName(c.sig), "SIG")
			if code != c.code || !strings.Contains(stderr.String(), want) {
				t.Errorf("after %v: exit %d, want the program's %d and %q\n%s", c.sig, code, c.code, want, stderr.String())
			}
		})
	}
}

// TestRunTakesBuildLinesOfHepbuildrc: run builds, so the build lines of
// .hepbuildrc apply to it (bad values are reported with their line), but
// not --nobuild, which would leave nothing to run.
func TestRunTakesBuildLinesOfHepbuildrc(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	root := runWorkspace(t)
	rc := filepath.Join(root, ".hepbuildrc")
	if err := os.WriteFile(rc, []byte("build --nobuild --progress=none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := hepbuildIn(t, root, "x\n", "run", ":greet"); r.code != 0 || !strings.HasPrefix(r.stdout, "args:|stdin:x") {
		t.Fatalf("exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(rc, []byte("build --tolerance=bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := hepbuildIn(t, root, "", "run", ":greet"); r.code != exitBadInput || !strings.Contains(r.stderr, ".hepbuildrc:1") {
		t.Fatalf("exit %d, want %d and the rc file's line\n%s", r.code, exitBadInput, r.stderr)
	}
}
