package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch/standin"
)

// TestSharedBatchDirKeepsWorkspacesApart: --batch-dir names a folder on a
// shared file system, which a .hepbuildrc may give every workspace. The
// jobs one workspace left running (hepbuild killed) are not another
// workspace's to re-attach to, and an interrupted build in that other
// workspace must not cancel them: hepbuild removes only what it created.
// Runs against the HTCondor stand-in (exec/batch/standin): the real tools
// cannot be installed here.
func TestSharedBatchDirKeepsWorkspacesApart(t *testing.T) {
	state := standin.Install(t, "htcondor")
	standin.Pause(t, state) // jobs stay queued
	shared := t.TempDir()
	flags := []string{"--executor=htcondor", "--batch-dir=" + shared, "--batch-poll=300ms", "--batch-window=200ms", "--progress=plain"}

	a, cacheA := clone(t, map[string]string{"BUILD": slowJobs})
	evA := filepath.Join(t.TempDir(), "a.jsonl")
	cmdA := hepbuildCommand(t, a, append([]string{"//:s1", "--disk-cache", cacheA, "--events", evA}, flags...)...)
	if err := cmdA.Start(); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, evA, "job_submitted", 1, 60*time.Second)
	idA := jobEvents(t, evA, "job_submitted")["//:s1"]
	cmdA.Process.Kill()
	cmdA.Wait()

	b, cacheB := clone(t, map[string]string{"BUILD": `task(name = "l", outs = ["l.txt"], cmd = "sleep 30; echo > $@", tags = ["local"])`})
	evB := filepath.Join(t.TempDir(), "b.jsonl")
	cmdB := hepbuildCommand(t, b, append([]string{"//:l", "--disk-cache", cacheB, "--events", evB}, flags...)...)
	buf := &syncBuffer{}
	cmdB.Stderr = buf
	if err := cmdB.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmdB.Process.Kill() })
	waitEvents(t, evB, "action_started", 1, 60*time.Second)
	cmdB.Process.Signal(syscall.SIGINT)
	waitExit(t, cmdB, buf)
	if strings.Contains(buf.String(), "re-attached") {
		t.Errorf("workspace B re-attached to workspace A's jobs:\n%s", buf)
	}
	if st := standin.Status(t, state, idA); st != "queued" {
		t.Errorf("workspace A's job %s is %q after workspace B was interrupted, want still queued:\n%s", idA, st, buf)
	}
}
