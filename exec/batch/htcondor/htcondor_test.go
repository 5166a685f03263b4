package htcondor_test

// These tests run the backend against stand-ins for condor_submit,
// condor_q, condor_history and condor_rm (exec/batch/internal/standin),
// built from the HTCondor manual because HTCondor cannot be installed
// here. The stand-ins really run each job in the background.

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
	"github.com/hepbuild/hepbuild/exec/batch/htcondor"
	"github.com/hepbuild/hepbuild/exec/batch/internal/standin"
)

// array returns n jobs that print their number and an environment
// variable to their log, then run tail (e.g. "sleep 30", "exit 3").
func array(t *testing.T, name string, n int, tail string) *batch.Array {
	dir := t.TempDir()
	a := &batch.Array{Name: name, Dir: dir, Resources: batch.Request{CPU: 1, Memory: 1 << 30, Walltime: time.Hour}}
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

func submit(t *testing.T, b *htcondor.Backend, a *batch.Array) []string {
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

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestArrayIsOneClusterAndRuns(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New()
	a := array(t, "hepbuild-tth", 3, "true")
	a.Jobs[2].Command = []string{"bash", "-c", "echo \"job 2 says $GREETING\"; exit 3"}
	ids := submit(t, b, a)
	if n := standin.Count(t, state, "condor_submit"); n != 1 {
		t.Errorf("%d condor_submit calls for one array, want 1", n)
	}
	cluster := strings.Split(ids[0], ".")[0]
	if diff := cmp.Diff([]string{cluster + ".0", cluster + ".1", cluster + ".2"}, ids); diff != "" {
		t.Errorf("ids mismatch (-want +got):\n%s", diff)
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
	if len(got) != 0 {
		t.Errorf("Poll lists finished jobs %v; HTCondor's queue does not keep them", got)
	}
	hist, err := b.History(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]batch.Status{
		ids[0]: {State: batch.StateDone},
		ids[1]: {State: batch.StateDone},
		ids[2]: {State: batch.StateDone, ExitCode: 3},
	}
	if diff := cmp.Diff(want, hist); diff != "" {
		t.Errorf("History mismatch (-want +got):\n%s", diff)
	}
	if n := standin.Count(t, state, "condor_history"); n != 1 {
		t.Errorf("%d condor_history calls, want 1", n)
	}
	// One job's history is one job, even in a cluster of three.
	one, err := b.History(context.Background(), ids[1:2])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]batch.Status{ids[1]: {State: batch.StateDone}}, one); diff != "" {
		t.Errorf("History of one job mismatch (-want +got):\n%s", diff)
	}
	calls := standin.Calls(t, state)
	if last := strings.Join(calls[len(calls)-1], " "); !strings.Contains(last, "-match 1 -constraint ClusterId == "+cluster+" && ProcId >= 1 && ProcId <= 1") {
		t.Errorf("condor_history call %q", last)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestPollIsOneCallForAllClusters(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New()
	ids := append(submit(t, b, array(t, "a", 3, "sleep 30")), submit(t, b, array(t, "b", 2, "sleep 30"))...)
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	before := standin.Count(t, state, "condor_q")
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "condor_q") - before; n != 1 {
		t.Errorf("%d condor_q calls for one poll, want 1", n)
	}
	for _, id := range ids {
		if got[id].State != batch.StateRunning {
			t.Errorf("job %s is %v, want running", id, got[id])
		}
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestTrouble(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New()
	ids := submit(t, b, array(t, "trouble", 3, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	standin.Inflict(t, state, ids[0], standin.Held, "The job's input file could not be read")
	standin.Inflict(t, state, ids[1], standin.OverMemory, "")
	standin.Inflict(t, state, ids[2], standin.Vanished, "")
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if s := got[ids[0]]; s.State != batch.StateHeld || s.Reason != "The job's input file could not be read" || s.OverMemory {
		t.Errorf("held job: %+v", s)
	}
	if s := got[ids[1]]; s.State != batch.StateHeld || !s.OverMemory || !strings.Contains(s.Reason, "memory limit") {
		t.Errorf("job over its memory: %+v", s)
	}
	if s, ok := got[ids[2]]; ok {
		t.Errorf("vanished job listed by Poll: %+v", s)
	}
	hist, err := b.History(context.Background(), ids[2:])
	if err != nil {
		t.Fatal(err)
	}
	if s := hist[ids[2]]; s.State != batch.StateFailed || s.Reason == "" {
		t.Errorf("History of the vanished job: %+v", s)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestPlannedTrouble(t *testing.T) {
	state := standin.Install(t, "htcondor")
	standin.Plan(t, state, 2, standin.OverTime, "")
	b := htcondor.New()
	ids := submit(t, b, array(t, "planned", 2, "true"))
	standin.WaitStatus(t, state, ids[1], "walltime", 10*time.Second)
	got, err := b.Poll(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if s := got[ids[1]]; s.State != batch.StateHeld || !s.OverTime {
		t.Errorf("job over its walltime: %+v", s)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestCancelIsOneCallAndStopsJobs(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New()
	ids := submit(t, b, array(t, "cancel", 3, "sleep 30"))
	for _, id := range ids {
		standin.WaitStatus(t, state, id, "running", 10*time.Second)
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if n := standin.Count(t, state, "condor_rm"); n != 1 {
		t.Errorf("%d condor_rm calls, want 1", n)
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
	hist, err := b.History(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if hist[id].State != batch.StateFailed {
			t.Errorf("cancelled job %s: %+v", id, hist[id])
		}
	}
	// Cancelling jobs that already left the queue is not an error.
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestSubmitFailureSaysWhy(t *testing.T) {
	state := standin.Install(t, "htcondor")
	standin.Fail(t, state, "condor_submit", "ERROR: Can't find address of local schedd")
	_, err := htcondor.New().Submit(context.Background(), array(t, "fail", 2, "true"))
	if err == nil || !strings.Contains(err.Error(), "Can't find address of local schedd") {
		t.Fatalf("Submit error %v, want the tool's message", err)
	}
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestGarbageIsAnError(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New()
	ids := submit(t, b, array(t, "garbage", 1, "sleep 30"))
	for _, out := range []string{"<html>503 Service Unavailable</html>", `[{"ClusterId": 1, "ProcId": 0}]`, `[{"ClusterId": 1, "ProcId": 0, "JobStatus": 2}`} {
		standin.Garbage(t, state, "condor_q", out)
		if got, err := b.Poll(context.Background(), ids); err == nil {
			t.Errorf("Poll of %q: %v and no error", out, got)
		}
	}
	standin.Garbage(t, state, "condor_q", "")
	b.Cancel(context.Background(), ids)
}

// Runs against stand-ins built from the HTCondor manual (standin.Install): the real tools cannot be installed here.
func TestScheddReachesEveryTool(t *testing.T) {
	state := standin.Install(t, "htcondor")
	b := htcondor.New(htcondor.Schedd("ap2.example.org"))
	ids := submit(t, b, array(t, "schedd", 1, "sleep 30"))
	if _, err := b.Poll(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if _, err := b.History(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if err := b.Cancel(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	for _, c := range standin.Calls(t, state) {
		if len(c) < 3 || c[1] != "-name" || c[2] != "ap2.example.org" {
			t.Errorf("%q does not name the schedd", c)
		}
	}
}
