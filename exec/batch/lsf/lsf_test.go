package lsf_test

// These tests run the backend against stand-ins for bsub, bjobs and bkill
// (exec/batch/internal/standin), built from IBM's LSF documentation
// because LSF cannot be installed here. The stand-ins really run each
// array element in the background with LSB_JOBINDEX set.

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
	"github.com/hepbuild/hepbuild/exec/batch/internal/standin"
	"github.com/hepbuild/hepbuild/exec/batch/lsf"
)

func array(t *testing.T, name string, n int, tail string) *batch.Array {
	dir := t.TempDir()
	a := &batch.Array{Name: name, Dir: dir, Resources: batch.Request{CPU: 2, Memory: 3 << 30, Walltime: 90 * time.Minute}}
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

func submit(t *testing.T, b *lsf.Backend, a *batch.Array) []string {
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

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestArrayIsOneBsubAndRuns(t *testing.T) {
	state := standin.Install(t, "lsf")
	b := lsf.New()
	a := array(t, "hepbuild-tth", 3, "true")
	a.Jobs[2].Command = []string{"bash", "-c", "echo \"job 2 says $GREETING\"; exit 3"}
	ids := submit(t, b, a)
	calls := standin.Calls(t, state)
	if len(calls) != 1 || calls[0][0] != "bsub" {
		t.Fatalf("calls %q, want one bsub", calls)
	}
	job := strings.TrimSuffix(ids[0], "[1]")
	if diff := cmp.Diff([]string{job + "[1]", job + "[2]", job + "[3]"}, ids); diff != "" {
		t.Errorf("ids mismatch (-want +got):\n%s", diff)
	}
	for _, want := range []string{"-J hepbuild-tth[1-3]", "-n 2", "-M 3072MB", "-R rusage[mem=3072MB]", "-W 90"} {
		if !strings.Contains(strings.Join(calls[0], " "), want) {
			t.Errorf("bsub %q lacks %q", calls[0], want)
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
		ids[2]: {State: batch.StateDone, ExitCode: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Poll mismatch (-want +got):\n%s", diff)
	}
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestPollIsOneCallForAllArrays(t *testing.T) {
	state := standin.Install(t, "lsf")
	b := lsf.New()
	ids := append(submit(t, b, array(t, "a", 3, "sleep 30")), submit(t, b, array(t, "b", 2, "sleep 30"))...)
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "bjobs"); n != 1 {
		t.Errorf("%d bjobs calls for one poll, want 1", n)
	}
	for _, id := range ids {
		if got[id].State != batch.StateRunning {
			t.Errorf("job %s is %+v, want running", id, got[id])
		}
	}
	b.Cancel(context.Background(), ids)
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestTrouble(t *testing.T) {
	state := standin.Install(t, "lsf")
	b := lsf.New()
	ids := submit(t, b, array(t, "trouble", 4, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	standin.Inflict(t, state, ids[0], standin.Held, "The job was suspended by the user while pending")
	standin.Inflict(t, state, ids[1], standin.OverMemory, "")
	standin.Inflict(t, state, ids[2], standin.OverTime, "")
	standin.Inflict(t, state, ids[3], standin.Vanished, "")
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if s := got[ids[0]]; s.State != batch.StateHeld || s.Reason != "The job was suspended by the user while pending" {
		t.Errorf("held job: %+v", s)
	}
	if s := got[ids[1]]; s.State != batch.StateFailed || !s.OverMemory || s.OverTime {
		t.Errorf("job over its memory: %+v", s)
	}
	if s := got[ids[2]]; s.State != batch.StateFailed || !s.OverTime || s.OverMemory {
		t.Errorf("job over its run limit: %+v", s)
	}
	if s, ok := got[ids[3]]; ok {
		t.Errorf("vanished job listed by Poll: %+v", s)
	}
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestCancelIsOneCallAndStopsJobs(t *testing.T) {
	state := standin.Install(t, "lsf")
	b := lsf.New()
	ids := submit(t, b, array(t, "cancel", 3, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "bkill"); n != 1 {
		t.Errorf("%d bkill calls, want 1", n)
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
		if s := got[id]; s.State != batch.StateFailed || !strings.Contains(s.Reason, "TERM_OWNER") {
			t.Errorf("cancelled job %s: %+v", id, s)
		}
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Errorf("cancelling finished jobs: %v", err)
	}
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestSubmitFailureSaysWhy(t *testing.T) {
	state := standin.Install(t, "lsf")
	standin.Fail(t, state, "bsub", "Bad user ID. Job not submitted.")
	_, err := lsf.New().Submit(context.Background(), array(t, "fail", 2, "true"))
	if err == nil || !strings.Contains(err.Error(), "Bad user ID. Job not submitted.") {
		t.Fatalf("Submit error %v, want the tool's message", err)
	}
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestGarbageIsAnError(t *testing.T) {
	state := standin.Install(t, "lsf")
	b := lsf.New()
	ids := submit(t, b, array(t, "garbage", 1, "sleep 30"))
	for _, out := range []string{
		"JOBID   USER    STAT  QUEUE\n1000    me      RUN   normal",
		`{"COMMAND":"bjobs","JOBS":1}`,
		`{"COMMAND":"bjobs","JOBS":1,"RECORDS":[{"JOBID":"1000","JOBINDEX":"1"}]}`,
		`{"COMMAND":"bjobs","JOBS":1,"RECORDS":[{"JOBID":"1000","JOBINDEX":"1","STAT":"RUN"}`,
	} {
		standin.Garbage(t, state, "bjobs", out)
		if got, err := b.Poll(context.Background(), ids); err == nil {
			t.Errorf("Poll of %q: %v and no error", out, got)
		}
	}
	standin.Garbage(t, state, "bjobs", "")
	b.Cancel(context.Background(), ids)
}

// Runs against stand-ins built from the LSF documentation (standin.Install): the real tools cannot be installed here.
func TestQueuedJobIsPendingWithReason(t *testing.T) {
	state := standin.Install(t, "lsf")
	standin.Pause(t, state)
	b := lsf.New(lsf.Queue("short"))
	ids := submit(t, b, array(t, "pending", 1, "true"))
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if s := got[ids[0]]; s.State != batch.StatePending || s.Reason == "" {
		t.Errorf("queued job: %+v", s)
	}
	if c := standin.Calls(t, state)[0]; !strings.Contains(strings.Join(c, " "), "-q short") {
		t.Errorf("bsub %q does not name the queue", c)
	}
	standin.Resume(t, state)
	standin.WaitStatus(t, state, ids[0], "done", 10*time.Second)
}
