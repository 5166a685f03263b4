package htcondor

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
)

// The files under testdata are written in the format the HTCondor manual
// documents (see testdata/README.md); HTCondor cannot be installed here.
func TestParseRecordedOutputs(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string]batch.Status
	}{
		{"condor_q.json", map[string]batch.Status{
			"4242.0": {State: batch.StatePending},
			"4242.1": {State: batch.StateRunning},
			"4242.2": {State: batch.StateHeld, OverMemory: true, Reason: "Error from slot1_3@wn123.example.org: Job has gone over cgroup memory limit of 2048 megabytes. Last measured usage: 2311 megabytes.  Consider resubmitting with a higher request_memory."},
			"4242.3": {State: batch.StateHeld, Reason: "Error from slot1_1@wn007.example.org: Failed to open '/eos/user/x/xyz/in.root' as standard input: No such file or directory (errno 2)"},
			"4243.0": {State: batch.StateHeld, OverTime: true, Reason: "The job exceeded allowed execute duration of 0+01:00:00"},
			"4243.1": {State: batch.StateRunning, Reason: "transferring output"},
			"4243.2": {State: batch.StateRunning, Reason: "suspended"},
			"4243.3": {State: batch.StateHeld, OverMemory: true, Reason: "Job exceeded its memory request (periodic hold by the pool's SYSTEM_PERIODIC_HOLD)"},
			"4243.4": {State: batch.StatePending, Reason: "unknown JobStatus 9"},
		}},
		{"condor_history.json", map[string]batch.Status{
			"4241.0": {State: batch.StateDone},
			"4241.1": {State: batch.StateDone, ExitCode: 1},
			"4241.2": {State: batch.StateFailed, Reason: "killed by signal 9"},
			"4241.3": {State: batch.StateFailed, Reason: "via condor_rm (by user xyz)"},
		}},
	} {
		out, err := os.ReadFile("testdata/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseJobs(out)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tc.file, diff)
		}
	}
}

func TestParseRejectsWhatIsNotAJobList(t *testing.T) {
	for _, out := range []string{
		"-- Schedd: ap1.example.org : <10.0.0.1:9618?... @ 12/06/26 03:00:00\nOWNER BATCH_NAME SUBMITTED DONE RUN IDLE TOTAL JOB_IDS",
		`{"ClusterId": 1, "ProcId": 0, "JobStatus": 2}`,
		`[{"ClusterId": 1, "JobStatus": 2}]`,
		`[{"ClusterId": "one", "ProcId": 0, "JobStatus": 2}]`,
		`[{"ClusterId": 1, "ProcId": 0, "JobStatus": 2}`,
	} {
		if got, err := ParseJobs([]byte(out)); err == nil {
			t.Errorf("ParseJobs(%q) = %v, want an error", out, got)
		}
	}
	for _, out := range []string{"", "\n", " \n\n"} {
		if got, err := ParseJobs([]byte(out)); err != nil || len(got) != 0 {
			t.Errorf("ParseJobs(%q) = %v, %v; want no jobs (condor_q prints nothing when none match)", out, got, err)
		}
	}
}

func TestSubmitFileMapsResources(t *testing.T) {
	a := &batch.Array{
		Name: "hepbuild-tth", Dir: "/out/batch/1",
		Jobs:      make([]batch.Job, 3),
		Resources: batch.Request{CPU: 1.5, Memory: 2<<30 + 1, Walltime: 90*60e9 + 1},
		Options:   []string{"accounting_group = group_u_CMS.u_zh", `+JobFlavour = "longlunch"`},
	}
	got, err := SubmitFile(a, "/out/batch/1/jobs.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := `# hepbuild array hepbuild-tth: 3 jobs, one cluster; proc P runs job P of jobs.sh.
universe = vanilla
executable = /out/batch/1/jobs.sh
arguments = $(Process)
output = /out/batch/1/condor.$(Process).out
error = /out/batch/1/condor.$(Process).err
log = /out/batch/1/condor.log
batch_name = hepbuild-tth
request_cpus = 2
request_memory = 2049
# walltime in seconds, as CERN's and DESY's pools read it; other pools: see Options
+MaxRuntime = 5401
accounting_group = group_u_CMS.u_zh
+JobFlavour = "longlunch"
queue 3
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("submit file mismatch (-want +got):\n%s", diff)
	}
	a.Options = []string{"queue 10"}
	if _, err := SubmitFile(a, "/x"); err == nil {
		t.Error("an option with a queue statement was accepted")
	}
}
