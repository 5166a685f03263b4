package standin_test

// The stand-ins are built from the HTCondor, LSF and CREAM documentation;
// these tests check them against the formats the backends' testdata
// records, and the scripted trouble.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch/internal/standin"
	"github.com/hepbuild/hepbuild/sandbox"
)

func run(t *testing.T, dir string, argv ...string) sandbox.ToolResult {
	t.Helper()
	res, err := sandbox.RunTool(context.Background(), sandbox.Tool{Argv: argv, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Runs against stand-ins built from the HTCondor, LSF and CREAM documentation: the real tools cannot be installed here.
func TestCondorPausedJobsStayIdle(t *testing.T) {
	state := standin.Install(t, "htcondor")
	standin.Pause(t, state)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "job.sh"), []byte("#!/bin/bash\necho ran $1 >"+dir+"/out.$1\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "job.sub"), []byte("executable = job.sh\narguments = $(Process)\nqueue 2\n"), 0o644)
	res := run(t, dir, "condor_submit", "job.sub")
	if res.ExitCode != 0 || !strings.Contains(string(res.Stdout), "2 job(s) submitted to cluster 1.") {
		t.Fatalf("condor_submit: %d %s", res.ExitCode, res.Stdout)
	}
	time.Sleep(200 * time.Millisecond)
	if got := run(t, "", "condor_q", "-json", "-attributes", "ClusterId,ProcId,JobStatus", "1"); !strings.Contains(string(got.Stdout), `"JobStatus": 1`) {
		t.Errorf("paused jobs: %s", got.Stdout)
	}
	standin.Resume(t, state)
	standin.WaitStatus(t, state, "1.1", "done", 10*time.Second)
	if b, _ := os.ReadFile(filepath.Join(dir, "out.1")); string(b) != "ran 1\n" {
		t.Errorf("proc 1 wrote %q", b)
	}
	calls := standin.Calls(t, state)
	if diff := cmp.Diff([]string{"condor_submit", "job.sub"}, calls[0]); diff != "" {
		t.Errorf("recorded call mismatch (-want +got):\n%s", diff)
	}
}

// Runs against stand-ins built from the HTCondor, LSF and CREAM documentation: the real tools cannot be installed here.
func TestLSFVanishedJobIsNotFound(t *testing.T) {
	state := standin.Install(t, "lsf")
	standin.Plan(t, state, 1, standin.Vanished, "")
	res := run(t, t.TempDir(), "bsub", "-J", "x[1-2]", "true")
	if string(res.Stdout) != "Job <1000> is submitted to default queue <normal>.\n" {
		t.Fatalf("bsub: %q %s", res.Stdout, res.Stderr)
	}
	standin.WaitStatus(t, state, "1000[1]", "gone", 10*time.Second)
	standin.WaitStatus(t, state, "1000[2]", "done", 10*time.Second)
	out := string(run(t, "", "bjobs", "-a", "-o", "jobid jobindex stat", "-json", "1000", "999").Stdout)
	for _, want := range []string{`"JOBS":2`, `"JOBINDEX":"2"`, `"STAT":"DONE"`, `"ERROR":"Job <999> is not found"`} {
		if !strings.Contains(out, want) {
			t.Errorf("bjobs output lacks %s:\n%s", want, out)
		}
	}
}

// Runs against stand-ins built from the HTCondor, LSF and CREAM documentation: the real tools cannot be installed here.
func TestFailAndGarbage(t *testing.T) {
	state := standin.Install(t, "glite")
	standin.Fail(t, state, "glite-ce-job-status", "ERROR - connection refused")
	if res := run(t, "", "glite-ce-job-status", "https://ce:8443/CREAM1"); res.ExitCode != 1 || !strings.Contains(string(res.Stderr), "connection refused") {
		t.Errorf("failing tool: %d %q", res.ExitCode, res.Stderr)
	}
	standin.Fail(t, state, "glite-ce-job-status", "")
	standin.Garbage(t, state, "glite-ce-job-status", "%%%")
	if res := run(t, "", "glite-ce-job-status", "https://ce:8443/CREAM1"); res.ExitCode != 0 || string(res.Stdout) != "%%%\n" {
		t.Errorf("garbage: %d %q", res.ExitCode, res.Stdout)
	}
	if n := standin.Count(t, state, "glite-ce-job-status"); n != 2 {
		t.Errorf("%d calls recorded, want 2", n)
	}
}
