package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPeerWorkloadMatchesNinja builds the peer workload with hepbuild and
// with ninja and compares every output byte for byte.
func TestPeerWorkloadMatchesNinja(t *testing.T) {
	ninja, err := exec.LookPath("ninja")
	if err != nil {
		t.Skip("ninja not installed (.ci/run installs ninja-build)")
	}
	src := genWorkspace(t, 3, 5, 2)
	nw := filepath.Join(t.TempDir(), "ninja")
	if out, err := exec.Command("cp", "-r", src, nw).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cmd := exec.Command(ninja, "-j2")
	cmd.Dir = nw
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ninja: %v\n%s", err, out)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "xdg"))
	if r := hepbuild(t, src, "//:all", "-j2", "--progress=none"); r.code != 0 {
		t.Fatalf("hepbuild: exit %d\n%s", r.code, r.stderr)
	}
	n := 0
	err = filepath.Walk(filepath.Join(nw, "out"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(nw, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(src, "hepbuild-out", rel))
		if err != nil {
			t.Errorf("%s: made by ninja, not by hepbuild: %v", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs: hepbuild %q, ninja %q", rel, got, want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3*5*2+3*2+2+1 {
		t.Errorf("compared %d outputs, want %d", n, 3*5*2+3*2+2+1)
	}
}

// TestSIGINT interrupts a real hepbuild process: running actions are
// stopped, nothing half-written is kept, and the exit status is 8.
func TestSIGINT(t *testing.T) {
	root := testWorkspace(t, map[string]string{"BUILD": `
task(name = "slow", outs = ["slow.txt"], cmd = "echo partial > $@; sleep 60; echo done >> $@")
task(name = "after", srcs = [":slow"], outs = ["after.txt"], cmd = "cp $< $@")
`})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	cmd := hepbuildCommand(t, root, "//:after", "--progress=plain", "--events", ev)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the action runs (its start is an event), not for a time.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(ev); bytes.Contains(b, []byte(`"action_started"`)) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the action never started")
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != 8 {
		t.Errorf("exit %d (%v), want 8\n%s", code, err, stderr.String())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to stop", d)
	}
	for _, f := range []string{"slow.txt", "after.txt"} {
		if _, err := os.Stat(filepath.Join(root, "hepbuild-out", f)); err == nil {
			t.Errorf("%s exists after the interrupt: a half-written output was kept", f)
		}
	}
	if !strings.Contains(stderr.String(), "ERROR: interrupted") {
		t.Errorf("the interrupted build does not say so:\n%s", stderr.String())
	}
}
