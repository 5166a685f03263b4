package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheSigningKey: a signed cache takes only results signed with its
// key; a key file others can read is refused; the key shows nowhere.
func TestCacheSigningKey(t *testing.T) {
	root := testWorkspace(t, map[string]string{
		"BUILD":  `task(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cat $< > $@")`,
		"in.txt": "v1\n",
	})
	keys := t.TempDir()
	const secret1, secret2 = "Zq7-first-secret-0f-the-group-4k2", "Yp8-second-secret-another-group9"
	writeKey := func(name, secret string, mode os.FileMode) string {
		p := filepath.Join(keys, name)
		if err := os.WriteFile(p, []byte(secret+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	key1, key2 := writeKey("key1", secret1, 0o600), writeKey("key2", secret2, 0o600)
	open := writeKey("open", secret1, 0o644)

	r := hepbuild(t, root, "//:a", "--cache-signing-key", open)
	if r.code != exitBadInput || !strings.Contains(r.stderr, "--cache-signing-key: cache signing key "+open+": permissions 0644 are too open") {
		t.Errorf("a 0644 key: exit %d, want 2 and an error naming the file\n%s", r.code, r.stderr)
	}

	ev := filepath.Join(t.TempDir(), "events.jsonl")
	build := func(args ...string) (result, map[string][]string) {
		t.Helper()
		hepbuild(t, root, "clean")
		r := hepbuild(t, root, append([]string{"//:a", "--progress=plain", "--events", ev}, args...)...)
		if r.code != 0 {
			t.Fatalf("build %v: exit %d\n%s", args, r.code, r.stderr)
		}
		return r, events(t, ev)
	}
	var seen []string
	outcome := func(evs map[string][]string) string {
		switch {
		case len(evs["action_cached"]) == 1:
			return "cached"
		case len(evs["action_finished"]) == 1:
			return "executed"
		}
		return "?"
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{nil, "executed"}, // an unsigned entry
		{[]string{"--cache-signing-key", key1}, "executed"}, // not good enough: replaced by a signed one
		{[]string{"--cache-signing-key", key1}, "cached"},
		{[]string{"--cache-signing-key", key2}, "executed"}, // another key's entry: a miss
		{[]string{"--cache-signing-key", key1}, "executed"}, // key2's entry replaced key1's
		{nil, "cached"}, // without a key, any intact entry
	} {
		r, evs := build(step.args...)
		got := outcome(evs)
		if got != step.want {
			t.Errorf("build %v: %s, want %s", step.args, got, step.want)
		}
		b, _ := os.ReadFile(ev)
		seen = append(seen, r.stdout, r.stderr, string(b))
	}
	// From .hepbuildrc too.
	os.WriteFile(filepath.Join(root, ".hepbuildrc"), []byte("build --cache-signing-key="+key1+"\n"), 0o644)
	if _, evs := build(); outcome(evs) != "cached" {
		t.Errorf("with the key of .hepbuildrc: %s, want cached", outcome(evs))
	}
	os.WriteFile(filepath.Join(root, ".hepbuildrc"), []byte("build --cache-signing-key="+open+"\n"), 0o644)
	if r := hepbuild(t, root, "//:a"); r.code != exitBadInput || !strings.Contains(r.stderr, "too open") {
		t.Errorf("a 0644 key from .hepbuildrc: exit %d\n%s", r.code, r.stderr)
	}
	os.Remove(filepath.Join(root, ".hepbuildrc"))

	// The key is nowhere: not in output, events, the output base or the cache.
	for _, s := range seen {
		if strings.Contains(s, secret1) || strings.Contains(s, secret2) {
			t.Errorf("a signing key was printed:\n%s", s)
		}
	}
	for _, dir := range []string{filepath.Join(os.Getenv("XDG_CACHE_HOME")), root} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(secret1)) || bytes.Contains(b, []byte(secret2)) {
				t.Errorf("%s holds a signing key", p)
			}
			return nil
		})
	}
}

// The signing key is hidden from linux actions wherever it lives, so no
// action can copy the group's secret into an output (and the shared cache).
func TestSigningKeyHiddenFromActions(t *testing.T) {
	// A folder the sandbox otherwise shows: not /tmp, not a home folder.
	dir, err := os.MkdirTemp("/var/cache", "hepbuild-test-key-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	key := filepath.Join(dir, "group.key")
	const secret = "group-secret-0123456789abcdef"
	if err := os.WriteFile(key, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := testWorkspace(t, map[string]string{"BUILD": `task(name = "steal", outs = ["s.txt"], cmd = "cat ` + key + ` > $@ 2>&1 || true; echo end >> $@")`})
	for _, args := range [][]string{{"--sandbox=linux"}, {"--sandbox=linux", "--cache-signing-key=" + key}} {
		if r := hepbuild(t, root, "clean"); r.code != 0 {
			t.Fatalf("clean: exit %d\n%s", r.code, r.stderr)
		}
		r := hepbuild(t, root, append([]string{"//:steal", "--progress=none"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
		b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "s.txt"))
		switch {
		case len(args) == 1 && !strings.Contains(string(b), secret):
			t.Fatalf("without the key flag the file should be readable (the test's premise): %q", b)
		case len(args) == 2 && strings.Contains(string(b), secret):
			t.Errorf("with --cache-signing-key the action read the key: %q", b)
		}
	}
}
