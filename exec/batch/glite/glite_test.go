package glite_test

// These tests run the backend against stand-ins for glite-ce-job-submit,
// glite-ce-job-status and glite-ce-job-cancel
// (exec/batch/internal/standin), built from the CREAM user guide because
// a CREAM CE cannot be installed here. The stand-ins really run each job.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/exec/batch/glite"
	"github.com/hepbuild/hepbuild/exec/batch/internal/standin"
)

const ce = "ce.example.org:8443/cream-pbs-short"

func array(t *testing.T, name string, n int, tail string) *batch.Array {
	dir := t.TempDir()
	a := &batch.Array{Name: name, Dir: dir, Resources: batch.Request{CPU: 1, Memory: 2 << 30, Walltime: time.Hour}}
	for i := 0; i < n; i++ {
		a.Jobs = append(a.Jobs, batch.Job{
			Command: []string{"bash", "-c", fmt.Sprintf("echo \"job %d says $GREETING\"; %s", i, tail)},
			Env:     map[string]string{"GREETING": "it's me"},
			Log:     filepath.Join(dir, "logs", fmt.Sprintf("job%d.log", i)),
		})
	}
	return a
}

func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s has %q, want it to contain %q", path, b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func submit(t *testing.T, b *glite.Backend, a *batch.Array) []string {
	t.Helper()
	ids, err := b.Submit(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(a.Jobs) {
		t.Fatalf("Submit returned %d ids for %d jobs", len(ids), len(a.Jobs))
	}
	return ids
}

// CREAM has no arrays: three jobs are three submissions.
//
// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestEachJobIsOneSubmissionAndRuns(t *testing.T) {
	state := standin.Install(t, "glite")
	b := glite.New(glite.Endpoint(ce))
	a := array(t, "hepbuild-tth", 3, "true")
	a.Jobs[2].Command = []string{"bash", "-c", "echo \"job 2 says $GREETING\"; exit 3"}
	ids := submit(t, b, a)
	if n := standin.Count(t, state, "glite-ce-job-submit"); n != 3 {
		t.Errorf("%d glite-ce-job-submit calls for 3 jobs, want 3", n)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "https://ce.example.org:8443/CREAM") {
			t.Errorf("job id %q is not a CREAM URL of the CE", id)
		}
	}
	for i, j := range a.Jobs {
		waitLog(t, j.Log, fmt.Sprintf("job %d says it's me", i))
	}
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "done", 10*time.Second)
	}
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]batch.Status{
		ids[0]: {State: batch.StateDone},
		ids[1]: {State: batch.StateDone},
		ids[2]: {State: batch.StateDone, ExitCode: 3, Reason: "reason=3"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Poll mismatch (-want +got):\n%s", diff)
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestEndpointFromOptions(t *testing.T) {
	state := standin.Install(t, "glite")
	a := array(t, "opt", 1, "true")
	a.Options = []string{"-r other.example.org:8443/cream-lsf-long"}
	ids := submit(t, glite.New(glite.Endpoint(ce)), a)
	if !strings.HasPrefix(ids[0], "https://other.example.org:8443/") {
		t.Errorf("job id %q: the option's endpoint was not used", ids[0])
	}
	if _, err := glite.New().Submit(context.Background(), array(t, "none", 1, "true")); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("Submit without an endpoint: %v", err)
	}
	standin.WaitStatus(t, state, ids[0], "done", 10*time.Second)
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestPollIsOneCall(t *testing.T) {
	state := standin.Install(t, "glite")
	b := glite.New(glite.Endpoint(ce))
	ids := append(submit(t, b, array(t, "a", 3, "sleep 30")), submit(t, b, array(t, "b", 2, "sleep 30"))...)
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "glite-ce-job-status"); n != 1 {
		t.Errorf("%d glite-ce-job-status calls for one poll, want 1", n)
	}
	for _, id := range ids {
		if got[id].State != batch.StateRunning {
			t.Errorf("job %s is %+v, want running", id, got[id])
		}
	}
	// Many ids go in a file (-i) instead of on the command line.
	defer glite.SetMaxIDArgs(2)()
	if got, err := b.Poll(context.Background(), ids); err != nil || len(got) != len(ids) {
		t.Errorf("Poll with an id file: %v, %v", got, err)
	}
	if calls := standin.Calls(t, state); calls[len(calls)-1][3] != "-i" {
		t.Errorf("call %q does not read the ids from a file", calls[len(calls)-1])
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "removed", 5*time.Second)
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestTrouble(t *testing.T) {
	state := standin.Install(t, "glite")
	b := glite.New(glite.Endpoint(ce))
	ids := submit(t, b, array(t, "trouble", 4, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	standin.Inflict(t, state, ids[0], standin.Held, "held by the site admin")
	standin.Inflict(t, state, ids[1], standin.OverMemory, "")
	standin.Inflict(t, state, ids[2], standin.OverTime, "")
	standin.Inflict(t, state, ids[3], standin.Vanished, "")
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if s := got[ids[0]]; s.State != batch.StateHeld || s.Reason != "held by the site admin" {
		t.Errorf("held job: %+v", s)
	}
	if s := got[ids[1]]; s.State != batch.StateFailed || !s.OverMemory || s.OverTime {
		t.Errorf("job over its memory: %+v", s)
	}
	if s := got[ids[2]]; s.State != batch.StateFailed || !s.OverTime || s.OverMemory {
		t.Errorf("job over its walltime: %+v", s)
	}
	if s, ok := got[ids[3]]; ok {
		t.Errorf("vanished job listed by Poll: %+v", s)
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestCancelIsOneCallAndStopsJobs(t *testing.T) {
	state := standin.Install(t, "glite")
	b := glite.New(glite.Endpoint(ce))
	ids := submit(t, b, array(t, "cancel", 3, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "glite-ce-job-cancel"); n != 1 {
		t.Errorf("%d glite-ce-job-cancel calls, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for standin.Alive(t, state, id) {
			if time.Now().After(deadline) {
				t.Fatalf("job %s still runs after Cancel", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if s := got[id]; s.State != batch.StateFailed || !strings.HasPrefix(s.Reason, "CANCELLED") {
			t.Errorf("cancelled job %s: %+v", id, s)
		}
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestSubmitFailureSaysWhy(t *testing.T) {
	state := standin.Install(t, "glite")
	standin.Fail(t, state, "glite-ce-job-submit", "MethodName=[jobRegister] ErrorCode=[0] Description=[system overloaded]")
	ids, err := glite.New(glite.Endpoint(ce)).Submit(context.Background(), array(t, "fail", 3, "true"))
	if err == nil || !strings.Contains(err.Error(), "system overloaded") {
		t.Fatalf("Submit error %v, want the tool's message", err)
	}
	for i, id := range ids {
		if id != "" {
			t.Errorf("job %d has id %q though no submission succeeded", i, id)
		}
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestSubmitInterruptedIsAnError(t *testing.T) {
	standin.Install(t, "glite")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ids, err := glite.New(glite.Endpoint(ce)).Submit(ctx, array(t, "interrupted", 3, "true"))
	if err == nil {
		t.Fatalf("Submit with a cancelled context returned %q and no error", ids)
	}
}

// Runs against stand-ins built from the CREAM user guide (standin.Install): the real tools cannot be installed here.
func TestGarbageIsAnError(t *testing.T) {
	state := standin.Install(t, "glite")
	b := glite.New(glite.Endpoint(ce))
	ids := submit(t, b, array(t, "garbage", 1, "sleep 30"))
	for _, out := range []string{
		"Segmentation fault",
		"******  JobID=[" + ids[0] + "]\n",
		"******  JobID=[not a url]\n\tStatus = [RUNNING]\n",
	} {
		standin.Garbage(t, state, "glite-ce-job-status", out)
		if got, err := b.Poll(context.Background(), ids); err == nil {
			t.Errorf("Poll of %q: %v and no error", out, got)
		}
	}
	standin.Garbage(t, state, "glite-ce-job-status", "")
	b.Cancel(context.Background(), ids)
}
