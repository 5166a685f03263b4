package jobscript

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/sandbox"
)

// The script must hand each job its argv and environment exactly,
// whatever the characters, and pick the job by index.
func TestScriptRunsTheIndexedJobVerbatim(t *testing.T) {
	dir := t.TempDir()
	tricky := []string{"it's", `"quoted" $HOME`, "new\nline", "", "*", "a b\tc"}
	var jobs []batch.Job
	for i := 0; i < 3; i++ {
		jobs = append(jobs, batch.Job{
			Command: append([]string{"bash", "-c", `printf '<%s>' "$@"; printf '[%s]' "$V"`, "argv0"}, tricky...),
			Env:     map[string]string{"V": tricky[i]},
			Log:     filepath.Join(dir, "logs", "job"+string(rune('0'+i))+".log"),
		})
	}
	script := filepath.Join(dir, "jobs.sh")
	if err := Write(script, "t", jobs, "$1", 1); err != nil {
		t.Fatal(err)
	}
	res, err := sandbox.RunTool(context.Background(), sandbox.Tool{Argv: []string{script, "2"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("running the script: %v %s", err, res.Brief())
	}
	got, err := os.ReadFile(jobs[1].Log)
	if err != nil {
		t.Fatal(err)
	}
	want := "<it's><\"quoted\" $HOME><new\nline><><*><a b\tc>[\"quoted\" $HOME]"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("job 2's log mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(jobs[0].Log); err == nil {
		t.Error("index 2 also ran job 1")
	}
	res, _ = sandbox.RunTool(context.Background(), sandbox.Tool{Argv: []string{script, "7"}})
	if res.ExitCode == 0 {
		t.Error("an index outside the array succeeded")
	}
}

func TestScriptRejects(t *testing.T) {
	for _, j := range []batch.Job{
		{Log: "/l"},
		{Command: []string{"true"}, Log: "relative.log"},
		{Command: []string{"true"}, Log: "/l", Env: map[string]string{"A-B": "x"}},
	} {
		if _, err := Script("t", []batch.Job{j}, "$1", 0); err == nil {
			t.Errorf("job %+v accepted", j)
		}
	}
}

func TestArgs(t *testing.T) {
	got := Args([]string{"-q long", `-R rusage[mem=1] span[hosts=1]`, "--resource=ce:8443/cream-pbs-q", "-x", "  ", "accounting_group = a b"})
	want := []string{"-q", "long", "-R", "rusage[mem=1] span[hosts=1]", "--resource=ce:8443/cream-pbs-q", "-x", "accounting_group = a b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}
