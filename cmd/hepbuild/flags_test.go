package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/cache/disk"
)

// commandFlags is, for every command, the flags it uses besides the global
// ones: what its --help must list, no more and no less. A new command or
// flag must be added here, deciding which commands use it.
var commandFlags = map[string][]string{
	"build": {"offline", "storage-token-file", "storage-ca-cert", "storage-timeout", "storage-connections", "default-environment", "action-env", "sandbox-expose", "disk-cache", "output-base", "no-cache", "cache-signing-key", "remote-cache", "remote-header", "remote-timeout", "remote-max-connections", "tls-ca-cert", "tls-client-cert", "tls-client-key", "sandbox", "sandbox-hide", "remote-upload",
		"jobs", "keep-going", "retries", "events", "profile", "progress", "local-resources", "cache-max-size", "nobuild", "remote-upload", "remote-download-outputs",
		"executor", "executor-for", "remote-executor", "batch-jobs", "actions-per-job", "batch-window", "batch-poll", "batch-option", "batch-dir", "worker-binary", "ship-worker", "worker-env", "retry-bump", "detach", "tolerance", "server", "server-token-file", "coordinate", "no-coordinate", "notify"},
	"query":   {"output"},
	"aquery":  {"default-environment", "action-env", "sandbox-expose", "output"},
	"status":  {"offline", "storage-token-file", "storage-ca-cert", "storage-timeout", "storage-connections", "default-environment", "action-env", "sandbox-expose", "disk-cache", "output-base", "no-cache", "cache-signing-key", "remote-cache", "remote-header", "remote-timeout", "remote-max-connections", "tls-ca-cert", "tls-client-cert", "tls-client-key", "output"},
	"explain": {"offline", "storage-token-file", "storage-ca-cert", "storage-timeout", "storage-connections", "default-environment", "action-env", "sandbox-expose", "disk-cache", "output-base", "no-cache", "cache-signing-key", "remote-cache", "remote-header", "remote-timeout", "remote-max-connections", "tls-ca-cert", "tls-client-cert", "tls-client-key", "deps"},
	"clean":   {"disk-cache", "output-base", "cache", "max-size", "max-age", "dry-run", "expunge", "all-workspaces"},
	"fmt":     {"check"},
	"lint":    {"fix", "warnings", "format"},
	"help":    {},
	"info":    {"disk-cache", "output-base", "sandbox", "remote-cache", "remote-header", "remote-timeout", "remote-max-connections", "tls-ca-cert", "tls-client-cert", "tls-client-key"},
	"version": {},
	"init":    {"name"},
	"serve":   {"addr", "db", "token-file", "tls-cert", "tls-key"},
	"fetch":   {"offline", "storage-token-file", "storage-ca-cert", "storage-timeout", "storage-connections"},
	"worker":  {"disk-cache", "remote-cache", "remote-header", "remote-timeout", "remote-max-connections", "tls-ca-cert", "tls-client-cert", "tls-client-key", "cache-signing-key", "sandbox", "work-dir", "token"},
}

func init() {
	// export builds first: every build flag, and --dry-run; its targets
	// are positional.
	commandFlags["export"] = append(append([]string(nil), commandFlags["build"]...), "dry-run")
	for i, f := range commandFlags["export"] {
		if f == "nobuild" {
			commandFlags["export"] = append(commandFlags["export"][:i], commandFlags["export"][i+1:]...)
			break
		}
	}
	// completion prints a script; it has only the global flags.
	commandFlags["completion"] = []string{}
	// run builds first too: every build flag but --nobuild.
	for _, f := range commandFlags["build"] {
		if f != "nobuild" {
			commandFlags["run"] = append(commandFlags["run"], f)
		}
	}
}

// globalFlags are what every command takes: where to run, which profile.
var globalFlags = []string{"help", "directory", "config"}

// buildOnlyFlags run or report on actions; only build has them.
var buildOnlyFlags = []string{"sandbox-hide", "jobs", "keep-going", "retries", "events", "profile", "progress", "local-resources", "cache-max-size", "nobuild", "remote-upload", "remote-download-outputs",
	"executor", "executor-for", "remote-executor", "batch-jobs", "actions-per-job", "batch-window", "batch-poll", "batch-option", "batch-dir", "worker-binary", "ship-worker", "worker-env", "retry-bump", "detach", "tolerance", "server", "server-token-file", "coordinate", "no-coordinate", "notify"}

// TestEachCommandListsOnlyItsFlags walks every command's --help: it lists
// the global flags and exactly the flags the command uses, and no
// build-only flag leaks into another command.
func TestEachCommandListsOnlyItsFlags(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	code, top, stderr := docRun(t, dir, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d %s", code, stderr)
	}
	if got := strings.Join(sorted(helpFlags(top)), " "); got != strings.Join(sorted(globalFlags), " ") {
		t.Errorf("hepbuild --help lists the flags %s, want only the global ones %v", got, sorted(globalFlags))
	}
	cmds := helpCommands(top)
	var known []string
	for c := range commandFlags {
		known = append(known, c)
	}
	if strings.Join(sorted(cmds), " ") != strings.Join(sorted(known), " ") {
		t.Fatalf("commands in --help %v, in this test %v: say which flags a new command uses", sorted(cmds), sorted(known))
	}
	for _, c := range cmds {
		code, help, stderr := docRun(t, dir, c, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d %s", c, code, stderr)
		}
		got := map[string]bool{}
		for _, f := range helpFlags(help) {
			got[f] = true
		}
		want := map[string]bool{}
		for _, f := range append(append([]string(nil), globalFlags...), commandFlags[c]...) {
			want[f] = true
		}
		for f := range got {
			if !want[f] {
				t.Errorf("hepbuild %s --help lists --%s, which %s does not use", c, f, c)
			}
		}
		for f := range want {
			if !got[f] {
				t.Errorf("hepbuild %s --help does not list --%s", c, f)
			}
		}
		if c != "build" && c != "export" && c != "run" { // export and run build first
			for _, f := range buildOnlyFlags {
				if got[f] {
					t.Errorf("the build-only flag --%s leaks into hepbuild %s --help", f, c)
				}
			}
		}
	}
}

// TestBadFlagValues: values that make no sense exit 2 with an error naming
// the flag before anything is loaded, written or removed; from a
// .hepbuildrc, the error names its file and line.
func TestBadFlagValues(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"//:a", "-j", "0"}, "--jobs"},
		{[]string{"//:a", "-j0"}, "--jobs"},
		{[]string{"//:a", "--jobs=-3"}, "--jobs"},
		{[]string{"//:a", "-j", "-3"}, "--jobs"},
		{[]string{"//:a", "--retries=-1"}, "--retries"},
		{[]string{"//:a", "--cache-max-size=-1GB"}, "--cache-max-size"},
		{[]string{"//:a", "--cache-max-size=lots"}, "--cache-max-size"},
		{[]string{"//:a", "--disk-cache="}, "--disk-cache"},
		{[]string{"//:a", "--output-base="}, "--output-base"},
		{[]string{"//:a", "--events="}, "--events"},
		{[]string{"//:a", "--profile="}, "--profile"},
		{[]string{"//:a", "--local-resources=cpu=-2"}, "--local-resources"},
		{[]string{"//:a", "--remote-download-outputs=some"}, "--remote-download-outputs"},
		{[]string{"clean", "--cache", "--max-size=-5GB"}, "--max-size"},
		{[]string{"clean", "--cache", "--max-age=-1d"}, "--max-age"},
		{[]string{"clean", "--cache", "--max-age=forever"}, "--max-age"},
		{[]string{"status", "//:a", "--disk-cache="}, "--disk-cache"},
		{[]string{"info", "--output-base="}, "--output-base"},
	}
	for _, c := range cases {
		r := hepbuild(t, root, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.flag) {
			t.Errorf("%v: exit %d, want 2 and an error naming %s\n%s", c.args, r.code, c.flag, r.stderr)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "hepbuild-out")); err == nil {
		t.Errorf("a command with a bad flag value made the output tree")
	}
	// From .hepbuildrc: the file and line.
	rc := filepath.Join(root, ".hepbuildrc")
	os.WriteFile(rc, []byte("# settings\nbuild --progress=none\nbuild --retries=-2\n"), 0o644)
	r := hepbuild(t, root, "//:a")
	if r.code != 2 || !strings.Contains(r.stderr, "--retries") || !strings.Contains(r.stderr, rc+":3") {
		t.Errorf(".hepbuildrc --retries=-2: exit %d, want 2 naming --retries and %s:3\n%s", r.code, rc, r.stderr)
	}
	os.WriteFile(rc, []byte("common -j 0\n"), 0o644)
	r = hepbuild(t, root, "//:a")
	if r.code != 2 || !strings.Contains(r.stderr, "--jobs") || !strings.Contains(r.stderr, rc+":1") {
		t.Errorf(".hepbuildrc -j 0: exit %d, want 2 naming --jobs and %s:1\n%s", r.code, rc, r.stderr)
	}
	// A bad value on the command line is not blamed on the file.
	os.WriteFile(rc, []byte("build --jobs=2\n"), 0o644)
	r = hepbuild(t, root, "//:a", "--jobs=0")
	if r.code != 2 || strings.Contains(r.stderr, rc) {
		t.Errorf("--jobs=0 on the command line with --jobs=2 in .hepbuildrc: exit %d\n%s", r.code, r.stderr)
	}
	os.Remove(rc)
}

// TestCleanMaxSizeZeroEmptiesTheCache: a max size of 0 means nothing may
// stay, as BUILD.md says, both for clean --cache and for --cache-max-size.
func TestCleanMaxSizeZeroEmptiesTheCache(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n"})
	cacheHome := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "hepbuild")
	entries := func() int {
		n := 0
		for _, d := range []string{"cas.v1", "ac.v2"} {
			filepath.WalkDir(filepath.Join(cacheHome, d), func(p string, de os.DirEntry, err error) error {
				if err == nil && !de.IsDir() {
					n++
				}
				return nil
			})
		}
		return n
	}
	if r := hepbuild(t, root, "//:b", "--progress=none"); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	if entries() == 0 {
		t.Fatal("the build stored nothing in the cache")
	}
	r := hepbuild(t, root, "clean", "--cache", "--max-size=0")
	if r.code != 0 || entries() != 0 {
		t.Errorf("clean --cache --max-size=0: exit %d, %d entries left\n%s%s", r.code, entries(), r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(cacheHome, disk.Marker)); err != nil {
		t.Errorf("emptying the cache removed its marker: %v", err)
	}
	hepbuild(t, root, "clean")
	if r := hepbuild(t, root, "//:b", "--progress=none"); r.code != 0 || entries() == 0 {
		t.Fatalf("rebuild: exit %d, %d entries\n%s", r.code, entries(), r.stderr)
	}
	if r := hepbuild(t, root, "clean", "--cache", "--max-age=0s"); r.code != 0 || entries() != 0 {
		t.Errorf("clean --cache --max-age=0s: exit %d, %d entries left\n%s%s", r.code, entries(), r.stdout, r.stderr)
	}
	hepbuild(t, root, "clean")
	if r := hepbuild(t, root, "//:b", "--progress=none", "--cache-max-size=0"); r.code != 0 || entries() != 0 {
		t.Errorf("--cache-max-size=0: exit %d, %d entries left\n%s", r.code, entries(), r.stderr)
	}
}

// TestCommonLineFlagsGoOnlyWhereTheyAreUsed: a "common" line of
// .hepbuildrc with build-only flags, short or long, with attached or
// separate values, does not break the commands that do not take them.
func TestCommonLineFlagsGoOnlyWhereTheyAreUsed(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": chain, "in.txt": "x\n", "other.txt": "y\n",
		".hepbuildrc": "common -j 2 -k --retries 1 --progress=none -j3 --sandbox none --no-cache\n"})
	for _, args := range [][]string{{"//:a"}, {"query", "//:a"}, {"aquery", "//:a"}, {"status", "//:a"}, {"explain", "//:a"}, {"info", "workspace"}, {"clean"}, {"fmt"}, {"version"}} {
		if r := hepbuild(t, root, args...); r.code != 0 {
			t.Errorf("%v with a common line of build flags: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

// TestHelpExamplesUseRealFlags: the examples at the end of each command's
// --help use only flags that command has.
func TestHelpExamplesUseRealFlags(t *testing.T) {
	dir := t.TempDir()
	code, top, _ := docRun(t, dir, "--help")
	if code != 0 {
		t.Fatal("hepbuild --help failed")
	}
	examples := 0
	for _, c := range helpCommands(top) {
		_, help, _ := docRun(t, dir, c, "--help")
		has := map[string]bool{"help": true}
		for _, f := range helpFlags(help) {
			has[f] = true
		}
		for _, line := range strings.Split(help, "\n") {
			cmdline, _, _ := strings.Cut(strings.TrimSpace(line), "#")
			if !strings.HasPrefix(cmdline, "hepbuild ") {
				continue
			}
			examples++
			for _, m := range regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(cmdline, -1) {
				if !has[m[1]] {
					t.Errorf("hepbuild %s --help: the example %q uses --%s, which %s does not have", c, cmdline, m[1], c)
				}
			}
		}
	}
	if examples < 10 {
		t.Errorf("found %d examples in the commands' help, want every command to show some", examples)
	}
}
