package main

import (
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
)

// initHome gives the test a home folder and a cache of its own, so that no
// .hepbuildrc or cache of the machine takes part.
func initHome(t *testing.T) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
}

// TestInitBuilds: a workspace made by init builds for real, with the
// default sandbox, and its files are formatted.
func TestInitBuilds(t *testing.T) {
	initHome(t)
	dir := t.TempDir()
	r := hepbuild(t, dir, "init", "ana")
	if r.code != 0 {
		t.Fatalf("init: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "Next: cd ana && hepbuild //:select\n") {
		t.Errorf("init does not say what to run next:\n%s", r.stdout)
	}
	root := filepath.Join(dir, "ana")
	for _, f := range initFiles {
		if !strings.Contains(r.stdout, f.path) {
			t.Errorf("init does not list %s:\n%s", f.path, r.stdout)
		}
		if _, err := os.Stat(filepath.Join(root, f.path)); err != nil {
			t.Errorf("init did not write %s: %v", f.path, err)
		}
	}
	if r.stderr != "" {
		t.Errorf("init in an empty folder printed on stderr:\n%s", r.stderr)
	}
	if r := hepbuild(t, root, "build", "//..."); r.code != 0 {
		t.Fatalf("build //... in the new workspace: exit %d\n%s", r.code, r.stderr)
	}
	got, err := os.ReadFile(filepath.Join(root, "hepbuild-out", "selected.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := "event,njets,nbtags,met\n1,4,2,41.2\n3,6,3,65.0\n5,4,2,33.7\n7,7,4,80.4\n9,5,2,54.6\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("selected.csv mismatch (-want +got):\n%s", diff)
	}
	// The other sandboxes, the only ones on macOS, run it too.
	for _, sb := range []string{"symlink", "none"} {
		if r := hepbuild(t, root, "clean"); r.code != 0 {
			t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
		}
		if r := hepbuild(t, root, "build", "--no-cache", "--sandbox="+sb, "//..."); r.code != 0 || !strings.Contains(r.stderr, "1 executed") {
			t.Errorf("build --sandbox=%s: exit %d, want the task run\n%s", sb, r.code, r.stderr)
		}
	}
	if git, err := osexec.LookPath("git"); err == nil {
		// hepbuild-out is a link, which "hepbuild-out/" would not match.
		cmd := osexec.Command(git, "init", "-q", ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git init: %v\n%s", err, out)
		}
		cmd = osexec.Command(git, "check-ignore", "-q", "hepbuild-out")
		cmd.Dir = root
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore hepbuild-out with the template's .gitignore: %v", err)
		}
	}
	if r := hepbuild(t, root, "fmt", "--check"); r.code != 0 {
		t.Errorf("the template is not formatted: fmt --check exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hepbuild(t, root, "info", "workspace_name"); r.code != 0 || r.stdout != "ana\n" {
		t.Errorf("info workspace_name: exit %d, %q, want ana\n%s", r.code, r.stdout, r.stderr)
	}
	// -C and --name, into the current folder.
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := hepbuild(t, dir, "-C", "other", "init", "--name", "tth-2024"); r.code != 0 {
		t.Fatalf("init -C other --name tth-2024: exit %d\n%s", r.code, r.stderr)
	}
	if r := hepbuild(t, other, "info", "workspace_name"); r.stdout != "tth-2024\n" {
		t.Errorf("info workspace_name after --name tth-2024: %q\n%s", r.stdout, r.stderr)
	}
}

// TestInitRefusesToOverwrite: any file of the template already there
// stops init before it writes anything (exit 2, naming the file).
func TestInitRefusesToOverwrite(t *testing.T) {
	initHome(t)
	for _, f := range initFiles {
		t.Run(f.path, func(t *testing.T) {
			dir := t.TempDir()
			mine := filepath.Join(dir, filepath.FromSlash(f.path))
			if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(mine, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := listTree(t, dir)
			r := hepbuild(t, dir, "init")
			if r.code != 2 {
				t.Fatalf("init over %s: exit %d, want 2\n%s", f.path, r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, f.path) {
				t.Errorf("the error does not name %s:\n%s", f.path, r.stderr)
			}
			if diff := cmp.Diff(before, listTree(t, dir)); diff != "" {
				t.Errorf("init wrote something (-before +after):\n%s", diff)
			}
			if b, _ := os.ReadFile(mine); string(b) != "mine\n" {
				t.Errorf("%s was overwritten: %q", f.path, b)
			}
		})
	}
}

// TestInitNested: init inside a workspace makes a nested one, as Bazel
// allows, and warns that the outer workspace no longer sees the folder.
func TestInitNested(t *testing.T) {
	initHome(t)
	outer := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	r := hepbuild(t, outer, "init", "sub")
	if r.code != 0 {
		t.Fatalf("init sub in a workspace: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "WARNING: ") || !strings.Contains(r.stderr, "nested workspace") {
		t.Errorf("no warning about the nested workspace:\n%s", r.stderr)
	}
	if r := hepbuild(t, outer, "query", "//..."); r.code != 0 || strings.Contains(r.stdout, "select") {
		t.Errorf("the outer workspace's //... enters the nested one: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestInitWorkspaceNames(t *testing.T) {
	for folder, want := range map[string]string{
		"tth":                "tth",
		"My Analysis (2024)": "my_analysis_2024",
		"ttH-bb.v2":          "tth_bb_v2",
		"2024_tth":           "ws_2024_tth",
		"__":                 "analysis",
		"/":                  "analysis",
		"Ünïcode":            "n_code",
	} {
		got := workspaceNameFor(folder)
		if got != want {
			t.Errorf("workspaceNameFor(%q) = %q, want %q", folder, got, want)
		}
		if !validWorkspaceName.MatchString(got) {
			t.Errorf("workspaceNameFor(%q) = %q, which --name would refuse", folder, got)
		}
	}
	initHome(t)
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := hepbuild(t, filepath.Dir(file), "init", "f"); r.code != 2 {
		t.Errorf("init FILE: exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, bad := range []string{"9lives", "a b", "a/b", "_x"} {
		dir := t.TempDir()
		r := hepbuild(t, dir, "init", "--name="+bad)
		if r.code != 2 || !strings.Contains(r.stderr, "--name") {
			t.Errorf("init --name=%q: exit %d, want 2 naming --name\n%s", bad, r.code, r.stderr)
		}
		if got := listTree(t, dir); len(got) != 1 {
			t.Errorf("init --name=%q wrote %v", bad, got)
		}
	}
}

var rcLine = regexp.MustCompile(`^# ((common|[a-z]+)(?::([a-z]+))?) (-.*)$`)

// TestInitRCFlagsExist: every flag the template's .hepbuildrc names is a
// flag of hepbuild, and every commented-out line, once uncommented, is one
// that hepbuild reads and whose flags parse for its command.
func TestInitRCFlagsExist(t *testing.T) {
	initHome(t)
	src, err := initTemplate.ReadFile("inittemplate/hepbuildrc.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	code, top, stderr := docRun(t, t.TempDir(), "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, stderr)
	}
	flagsOf := map[string]map[string]bool{}
	all := map[string]bool{}
	for _, c := range helpCommands(top) {
		code, help, stderr := docRun(t, t.TempDir(), c, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d\n%s", c, code, stderr)
		}
		flagsOf[c] = map[string]bool{}
		for _, f := range helpFlags(help) {
			flagsOf[c][f] = true
			all[f] = true
		}
	}
	for _, m := range regexp.MustCompile(`(?:^|[\s"=])--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(src), -1) {
		if !all[m[1]] {
			t.Errorf("the .hepbuildrc template names --%s, which no command has", m[1])
		}
	}

	var uncommented []string
	configs := map[string][]string{} // command -> profiles
	for _, line := range strings.Split(string(src), "\n") {
		m := rcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		uncommented = append(uncommented, m[1]+" "+m[4])
		cmd := m[2]
		if cmd == "common" {
			cmd = "build"
		} else if flagsOf[cmd] == nil {
			t.Errorf("the template has a line for %q, which is no command: %s", cmd, line)
			continue
		}
		if !slices.Contains(configs[cmd], m[3]) {
			configs[cmd] = append(configs[cmd], m[3])
		}
	}
	if len(uncommented) < 8 {
		t.Fatalf("found only %d flag lines in the template; has its layout changed?", len(uncommented))
	}
	root := testWorkspace(t, map[string]string{".hepbuildrc": strings.Join(uncommented, "\n") + "\n"})
	cmds := make([]string, 0, len(configs))
	for c := range configs {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)
	for _, cmd := range cmds {
		for _, profile := range configs[cmd] {
			args := []string{cmd}
			if profile != "" {
				args = append(args, "--config", profile)
			}
			var cli CLI
			parser, err := kong.New(&cli, kong.Name("hepbuild"), kong.Writers(io.Discard, io.Discard), kong.Exit(func(int) {}))
			if err != nil {
				t.Fatal(err)
			}
			expanded, _, err := expandConfig(args, root, flagAccepter(parser))
			if err != nil {
				t.Errorf("%v with the template's lines uncommented: %v", args, err)
				continue
			}
			if len(expanded) == len(args) {
				t.Errorf("%v: no flags came from the uncommented template", args)
			}
			if _, err := parser.Parse(expanded); err != nil {
				t.Errorf("%v with the template's lines uncommented: %v (%q)", args, err, expanded)
			}
		}
	}
}
