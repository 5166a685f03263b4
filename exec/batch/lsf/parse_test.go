package lsf

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
)

// The files under testdata are written in the format IBM's LSF
// documentation describes (see testdata/README.md); LSF cannot be
// installed here.
func TestParseRecordedOutputs(t *testing.T) {
	out, err := os.ReadFile("testdata/bjobs.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseJobs(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]batch.Status{
		"731045[1]": {State: batch.StateDone},
		"731045[2]": {State: batch.StateDone, ExitCode: 1},
		"731045[3]": {State: batch.StateFailed, ExitCode: 130, OverMemory: true, Reason: "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit"},
		"731045[4]": {State: batch.StateFailed, ExitCode: 140, OverTime: true, Reason: "TERM_RUNLIMIT: job killed after reaching LSF run time limit"},
		"731045[5]": {State: batch.StateRunning},
		"731045[6]": {State: batch.StatePending, Reason: "Job's requirements for reserving resources (mem) not satisfied: 12 hosts"},
		"731045[7]": {State: batch.StateHeld, Reason: "The job was suspended by the user while pending"},
		"731046":    {State: batch.StateRunning, Reason: "suspended by LSF"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	sub, err := os.ReadFile("testdata/bsub.txt")
	if err != nil {
		t.Fatal(err)
	}
	if m := submittedRE.FindSubmatch(sub); m == nil || string(m[1]) != "731045" {
		t.Errorf("job id of %q: %q", sub, m)
	}
}

func TestUnknownStateWaitsWithAReason(t *testing.T) {
	got, err := ParseJobs([]byte(`{"COMMAND":"bjobs","JOBS":1,"RECORDS":[{"JOBID":"5","JOBINDEX":"0","STAT":"BLOCKED"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := got["5"]; s.State != batch.StatePending || s.Reason == "" {
		t.Errorf("unknown state: %+v", s)
	}
}

func TestSubmitArgsMapResources(t *testing.T) {
	a := &batch.Array{
		Name: "tth", Dir: "/out/b", Jobs: make([]batch.Job, 4),
		Resources: batch.Request{CPU: 4, Memory: 1536 << 20, Walltime: 61 * 60e9},
		Options:   []string{"-q long", "-R span[hosts=1]", "-x"},
	}
	got, err := New().SubmitArgs(a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-J", "tth[1-4]", "-o", "/out/b/lsf.%J.%I.out", "-e", "/out/b/lsf.%J.%I.err",
		"-n", "4", "-M", "1536MB", "-R", "rusage[mem=1536MB]", "-W", "61",
		"-q", "long", "-R", "span[hosts=1]", "-x",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bsub arguments mismatch (-want +got):\n%s", diff)
	}
	old, err := New(LimitUnit("KB")).SubmitArgs(a)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"-M", "1572864", "-R", "rusage[mem=1572864]"}, old[8:12]); diff != "" {
		t.Errorf("memory in KB mismatch (-want +got):\n%s", diff)
	}
	a.Name = "hepbuild //ana:hist[1]"
	if got, _ := New().SubmitArgs(a); got[1] != "hepbuild_ana_hist_1_[1-4]" {
		t.Errorf("job name %q", got[1])
	}
}
