package glite

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
)

// The files under testdata are written in the CREAM CLI's documented
// format (see testdata/README.md); a CREAM CE cannot be installed here.
func TestParseRecordedOutputs(t *testing.T) {
	out, err := os.ReadFile("testdata/status.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseStatus(out)
	if err != nil {
		t.Fatal(err)
	}
	const u = "https://cream.example.org:8443/CREAM69125488"
	want := map[string]batch.Status{
		u + "1":             {State: batch.StateDone},
		u + "2":             {State: batch.StateDone, ExitCode: 2, Reason: "reason=2"},
		u + "3":             {State: batch.StateFailed, OverMemory: true, Reason: "job killed: vmem 4400312320 exceeded limit 4294967296"},
		u + "4":             {State: batch.StateFailed, OverTime: true, Reason: "job killed: walltime 86432 exceeded limit 86400"},
		u + "5":             {State: batch.StateRunning},
		u + "6":             {State: batch.StatePending},
		u + "7":             {State: batch.StateHeld, Reason: "held by the LRMS administrator"},
		u + "8":             {State: batch.StateFailed, Reason: "ABORTED: BLAH error: submission command failed (exit code = 1)"},
		u + "9":             {State: batch.StateFailed, Reason: "CANCELLED: Cancelled by user"},
		u[:len(u)-1] + "90": {State: batch.StatePending, Reason: "CREAM state UNKNOWN"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	sub, err := os.ReadFile("testdata/submit.txt")
	if err != nil {
		t.Fatal(err)
	}
	if id := lastLine(sub); !jobIDRE.MatchString(id) {
		t.Errorf("job id %q not recognised", id)
	}
}

func TestParseToleratesNotFoundAndRejectsGarbage(t *testing.T) {
	const id = "https://cream.example.org:8443/CREAM1"
	got, err := ParseStatus([]byte("2026-12-06 03:00:00,000 ERROR - JobID [https://cream.example.org:8443/CREAM2] not found\n******  JobID=[" + id + "]\n\tStatus        = [IDLE]\n"))
	if err != nil || len(got) != 1 || got[id].State != batch.StatePending {
		t.Errorf("got %v, %v", got, err)
	}
	for _, out := range []string{
		"ERROR - proxy expired",
		"******  JobID=[" + id + "]\n",
		"******  Status = [IDLE]\n",
	} {
		if got, err := ParseStatus([]byte(out)); err == nil {
			t.Errorf("ParseStatus(%q) = %v, want an error", out, got)
		}
	}
}

func TestJDLMapsResources(t *testing.T) {
	got := string(JDL("/out/b/job-0.sh", batch.Request{CPU: 4, Memory: 3 << 30, Walltime: 90 * 60e9}))
	for _, want := range []string{
		`Executable = "job-0.sh";`,
		`InputSandbox = {"/out/b/job-0.sh"};`,
		"CpuNumber = 4;",
		"SMPGranularity = 4;",
		`CERequirements = "other.GlueHostMainMemoryRAMSize >= 3072 && other.GlueCEPolicyMaxWallClockTime >= 90";`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("JDL lacks %q:\n%s", want, got)
		}
	}
}
