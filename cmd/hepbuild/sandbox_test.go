package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/sandbox"
)

const envBuild = `
environment(name = "stack", kind = "shell", setup = "setup.sh", key = "lcg-105")
task(name = "uses_stack", outs = ["stack.txt"], cmd = "echo $$STACK_VERSION > $@", env = ":stack")
task(name = "host", outs = ["host.txt"], cmd = "echo host > $@")
task(name = "shell", outs = ["shell.txt"], cmd = 'echo "HOME=$${HOME:-unset} SHELL=$${SHELL:-unset} PATH=$$PATH" > $@')
task(name = "passed", outs = ["passed.txt"], cmd = 'echo "$${FIXED:-unset} $${FROM_USER:-unset}" > $@')
`

func readOut(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "hepbuild-out", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Changing an environment's setup script reruns exactly the actions that
// use it.
func TestSetupScriptChangeRerunsItsActions(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": "export STACK_VERSION=105\n"})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	if r := hepbuild(t, root, "//:uses_stack", "//:host", "--progress=none", "--events", ev); r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	if got := readOut(t, root, "stack.txt"); got != "105" {
		t.Errorf("stack.txt = %q, want the setup script's variable", got)
	}
	os.WriteFile(filepath.Join(root, "setup.sh"), []byte("export STACK_VERSION=106\n"), 0o644)
	if r := hepbuild(t, root, "//:uses_stack", "//:host", "--progress=none", "--events", ev); r.code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", r.code, r.stderr)
	}
	if got := events(t, ev)["action_finished"]; strings.Join(got, " ") != "//:uses_stack" {
		t.Errorf("after changing setup.sh executed %v, want //:uses_stack alone", got)
	}
	if got := readOut(t, root, "stack.txt"); got != "106" {
		t.Errorf("stack.txt = %q, want 106", got)
	}
}

// A failing setup script fails the action with its output, and nothing is
// cached: fixing it runs the action.
func TestFailingSetupScript(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": "echo no LCG view on this machine >&2\nreturn 4\n"})
	r := hepbuild(t, root, "//:uses_stack", "--progress=none")
	if r.code != 1 || !strings.Contains(r.stderr, "no LCG view on this machine") {
		t.Fatalf("exit %d, want 1 with the script's output:\n%s", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(root, "setup.sh"), []byte("export STACK_VERSION=105\n"), 0o644)
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	if r := hepbuild(t, root, "//:uses_stack", "--progress=none", "--events", ev); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := events(t, ev)["action_finished"]; len(got) != 1 {
		t.Errorf("after the fix executed %v, want the action run (not a cached failure)", got)
	}
}

// Two users whose shells differ (HOME, SHELL, PATH and any other variable)
// get the same keys, the same outputs and each other's cache hits.
func TestUserShellDoesNotReachActions(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": "export STACK_VERSION=105\n"})
	cache := filepath.Join(t.TempDir(), "shared-cache")
	targets := []string{"//:uses_stack", "//:host", "//:shell"}
	type user struct{ home, shell, path string }
	var outputs []string
	for i, u := range []user{
		{"/home/alice", "/bin/bash", "/home/alice/bin:/usr/local/bin:/usr/bin:/bin"},
		{"/home/bob", "/usr/bin/zsh", "/opt/conda/bin:/usr/bin:/bin:/snap/bin"},
	} {
		t.Setenv("HOME", u.home)
		t.Setenv("SHELL", u.shell)
		t.Setenv("PATH", u.path)
		t.Setenv("HEPBUILD_TEST_USER_VARIABLE", u.home)
		ev := filepath.Join(t.TempDir(), "events.jsonl")
		args := append([]string{"--progress=none", "--events", ev, "--disk-cache", cache,
			"--output-base", filepath.Join(t.TempDir(), "base")}, targets...)
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Fatalf("user %d: exit %d\n%s", i, r.code, r.stderr)
		}
		evs := events(t, ev)
		if i == 1 && (len(evs["action_cached"]) != len(targets) || len(evs["action_finished"]) != 0) {
			t.Errorf("second user: cached %v, ran %v; want every action from the first user's cache", evs["action_cached"], evs["action_finished"])
		}
		outputs = append(outputs, readOut(t, root, "shell.txt"))
	}
	if outputs[0] != outputs[1] || strings.Contains(outputs[0], "alice") || !strings.Contains(outputs[0], "HOME=unset") {
		t.Errorf("actions saw %q and %q; want neither user's HOME, SHELL or PATH", outputs[0], outputs[1])
	}
}

func TestActionEnv(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": ""})
	t.Setenv("FROM_USER", "alice's value")
	r := hepbuild(t, root, "//:passed", "--progress=none", "--action-env", "FIXED=1", "--action-env", "FROM_USER")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := readOut(t, root, "passed.txt"); got != "1 alice's value" {
		t.Errorf("passed.txt = %q, want both variables", got)
	}
	// The value is part of the key: another value reruns the action.
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	hepbuild(t, root, "//:passed", "--progress=none", "--events", ev, "--action-env", "FIXED=2", "--action-env", "FROM_USER")
	if got := events(t, ev)["action_finished"]; len(got) != 1 || readOut(t, root, "passed.txt") != "2 alice's value" {
		t.Errorf("with FIXED=2 executed %v and wrote %q; want a rerun", got, readOut(t, root, "passed.txt"))
	}
	if r := hepbuild(t, root, "//:passed", "--action-env", "=x"); r.code != 2 {
		t.Errorf("--action-env =x: exit %d, want 2", r.code)
	}
}

func TestDefaultEnvironment(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": envBuild + `
environment(name = "other", kind = "shell", setup = "other.sh")
task(name = "no_env", outs = ["no_env.txt"], cmd = "echo $${STACK_VERSION:-unset} > $@")
`, "setup.sh": "export STACK_VERSION=105\n", "other.sh": "export STACK_VERSION=default\n"})
	if r := hepbuild(t, root, "//:no_env", "--progress=none"); r.code != 0 || readOut(t, root, "no_env.txt") != "unset" {
		t.Fatalf("without a default: exit %d, no_env.txt %q\n%s", r.code, readOut(t, root, "no_env.txt"), r.stderr)
	}
	r := hepbuild(t, root, "//:uses_stack", "//:no_env", "--progress=none", "--default-environment", "//:other")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	// An action with its own environment keeps it; the others get the default.
	if got := readOut(t, root, "stack.txt"); got != "105" {
		t.Errorf("stack.txt = %q, want its own environment's 105", got)
	}
	if got := readOut(t, root, "no_env.txt"); got != "default" {
		t.Errorf("no_env.txt = %q, want the default environment's", got)
	}
	// The default is part of the key: changing its script reruns the action.
	os.WriteFile(filepath.Join(root, "other.sh"), []byte("export STACK_VERSION=changed\n"), 0o644)
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	hepbuild(t, root, "//:uses_stack", "//:no_env", "--progress=none", "--events", ev, "--default-environment", "//:other")
	if got := events(t, ev)["action_finished"]; strings.Join(got, " ") != "//:no_env" {
		t.Errorf("after changing the default's script executed %v, want //:no_env alone", got)
	}
	if r := hepbuild(t, root, "//:host", "--default-environment", "//:host"); r.code != 2 || !strings.Contains(r.stderr, "not an environment() target") {
		t.Errorf("a task as default environment: exit %d, want 2 with a clear error:\n%s", r.code, r.stderr)
	}
}

func TestSandboxLinuxUnavailable(t *testing.T) {
	probe := sandbox.ProbeLinux
	defer func() { sandbox.ProbeLinux = probe }()
	sandbox.ProbeLinux = func() sandbox.LinuxStatus {
		return sandbox.LinuxStatus{Err: errors.New("bubblewrap (bwrap) is not installed")}
	}
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": ""})
	r := hepbuild(t, root, "//:host", "--sandbox", "linux", "--progress=none")
	if r.code != 2 || !strings.Contains(r.stderr, "bwrap) is not installed") || !strings.Contains(r.stderr, "--sandbox symlink") {
		t.Errorf("exit %d, want 2 with the reason and the suggestion:\n%s", r.code, r.stderr)
	}
	r = hepbuild(t, root, "info", "sandbox")
	if want := "symlink (linux unavailable: bubblewrap (bwrap) is not installed)\n"; r.stdout != want {
		t.Errorf("info sandbox = %q, want %q", r.stdout, want)
	}
	// The default falls back to symlink and builds.
	if r := hepbuild(t, root, "//:host", "--progress=none"); r.code != 0 {
		t.Errorf("default sandbox without linux: exit %d\n%s", r.code, r.stderr)
	}
}

func TestInfoSandbox(t *testing.T) {
	st := sandbox.ProbeLinux()
	if st.Err != nil {
		t.Skipf("linux sandbox unavailable here: %v", st.Err)
	}
	root := testWorkspace(t, map[string]string{"BUILD": envBuild, "setup.sh": ""})
	r := hepbuild(t, root, "info", "sandbox")
	if want := "linux (" + sandbox.BwrapVersion() + ": namespaces available)\n"; r.stdout != want {
		t.Errorf("info sandbox = %q, want %q", r.stdout, want)
	}
}

// --sandbox-expose shows a hidden path to linux actions and enters their
// keys (the action reruns when the exposure changes, and aquery shows it);
// --sandbox-hide and --sandbox-expose take only absolute, existing paths.
func TestSandboxExposeAndHide(t *testing.T) {
	if sandbox.ProbeLinux().Err != nil {
		t.Skip("linux sandbox unavailable")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	exposed, err := os.MkdirTemp(home, "hepbuild-test-expose-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(exposed)
	os.WriteFile(filepath.Join(exposed, "f"), []byte("visible\n"), 0o644)
	root := testWorkspace(t, map[string]string{"BUILD": `task(name = "read", outs = ["read.txt"], cmd = "cat ` + exposed + `/f > $@ || echo hidden > $@")` + "\n"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "hidden"},
		{[]string{"--sandbox-expose", exposed}, "visible"},
		{nil, "hidden"},
	} {
		args := append([]string{"//:read", "--progress=none", "--sandbox=linux"}, c.args...)
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
		if got := readOut(t, root, "read.txt"); got != c.want {
			t.Errorf("%v: read.txt = %q, want %q", c.args, got, c.want)
		}
	}
	if r := hepbuild(t, root, "aquery", "//:read", "--sandbox-expose", exposed); r.code != 0 || !strings.Contains(r.stdout, "Sandbox exposes: ["+exposed+"]") {
		t.Errorf("aquery: exit %d, want the exposed path in:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"--sandbox-expose", "relative"}, {"--sandbox-hide", "/no/such/folder"}} {
		r := hepbuild(t, root, append([]string{"//:read", "--progress=none", "--sandbox=linux"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, args[0]) {
			t.Errorf("%v: exit %d, want 2 and an error naming the flag:\n%s", args, r.code, r.stderr)
		}
	}
}
