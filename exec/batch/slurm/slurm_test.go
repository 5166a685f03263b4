package slurm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		state, reason, exit string
		want                batch.Status
	}{
		{"PENDING", "Resources", "", batch.Status{State: batch.StatePending, Reason: "Resources"}},
		{"RUNNING", "None", "", batch.Status{State: batch.StateRunning}},
		{"COMPLETED", "", "0:0", batch.Status{State: batch.StateDone}},
		{"FAILED", "", "2:0", batch.Status{State: batch.StateFailed, Reason: "FAILED", ExitCode: 2}},
		{"OUT_OF_MEMORY", "", "0:125", batch.Status{State: batch.StateFailed, OverMemory: true, Reason: "OUT_OF_MEMORY"}},
		{"TIMEOUT", "", "0:15", batch.Status{State: batch.StateFailed, OverTime: true, Reason: "TIMEOUT"}},
		{"CANCELLED by 0", "", "0:15", batch.Status{State: batch.StateFailed, Reason: "CANCELLED"}},
		{"NODE_FAIL", "", "", batch.Status{State: batch.StateFailed, Reason: "NODE_FAIL"}},
		{"WEIRD", "", "", batch.Status{State: batch.StatePending, Reason: "unknown Slurm state WEIRD"}},
		{"PENDING", "launch failed requeued held", "", batch.Status{State: batch.StateHeld, Reason: "launch failed requeued held"}},
		{"PENDING", "JobHeldUser", "", batch.Status{State: batch.StatePending, Reason: "JobHeldUser"}},
	} {
		if got := status(c.state, c.reason, c.exit); got != c.want {
			t.Errorf("status(%q, %q, %q) = %+v, want %+v", c.state, c.reason, c.exit, got, c.want)
		}
	}
}

// Without accounting, slurmstepd's lines in the job's log say why Slurm
// ended a job (recorded from the cluster of the tests).
func TestFromLog(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		log  string
		want batch.Status
		ok   bool
	}{
		"oom":     {"hello\nslurmstepd: error: Detected 1 oom_kill event in StepId=51.batch. Some of the step tasks have been OOM Killed.\n", batch.Status{State: batch.StateFailed, OverMemory: true, Reason: "OUT_OF_MEMORY"}, true},
		"time":    {"slurmstepd: error: *** JOB 52 ON host CANCELLED AT 2026-12-06T03:00:00 DUE TO TIME LIMIT ***\n", batch.Status{State: batch.StateFailed, OverTime: true, Reason: "TIMEOUT"}, true},
		"cancel":  {"slurmstepd: error: *** JOB 53 ON host CANCELLED AT 2026-12-06T03:00:00 ***\n", batch.Status{State: batch.StateFailed, Reason: "CANCELLED"}, true},
		"clean":   {"hepbuild worker: abc/1: done\n", batch.Status{}, false},
		"spoofed": {"out of memory, says the action\n", batch.Status{}, false},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(c.log), 0o644)
		got, ok := fromLog(p)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %v, want %+v %v", name, got, ok, c.want, c.ok)
		}
	}
}

func TestArrayScriptQuotes(t *testing.T) {
	a := &batch.Array{Dir: "/b", Jobs: []batch.Job{
		{Command: []string{"hepbuild", "worker", "it's"}, Env: map[string]string{"B": "2", "A": "x y"}, Log: "/b/job-0.log"},
		{Command: []string{"x"}, Log: "/elsewhere/j.log"},
	}}
	want := `#!/bin/bash
# hepbuild: one task per job; the task id picks the job.
case "$SLURM_ARRAY_TASK_ID" in
0) exec env 'A=x y' 'B=2' 'hepbuild' 'worker' 'it'\''s' ;;
1) exec >>'/elsewhere/j.log' 2>&1; exec env 'x' ;;
*) echo "hepbuild: no job for array task $SLURM_ARRAY_TASK_ID" >&2; exit 3 ;;
esac
`
	if got := arrayScript(a); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	if got := strings.Join(requestArgs(batch.Request{CPU: 2.5, Memory: 1500 << 20, Walltime: 90 * time.Second}), " "); got != "--cpus-per-task=3 --mem=1500M --time=2" {
		t.Errorf("request args %q", got)
	}
}

// The backend alone on a real cluster: one sbatch for an array, one
// squeue for all, one scancel for all, and logs where asked.
func TestBackendOnCluster(t *testing.T) {
	testserver.StartSlurm(t)
	ctx := context.Background()
	b := New()
	dir := t.TempDir()
	a := &batch.Array{Name: "hepbuild-test", Dir: dir, Resources: batch.Request{Memory: 64 << 20}}
	for _, cmd := range []string{"echo one", "echo two; exit 4", "sleep 300"} {
		a.Jobs = append(a.Jobs, batch.Job{Command: []string{"/bin/sh", "-c", cmd}, Log: filepath.Join(dir, "job-"+string(rune('0'+len(a.Jobs)))+".log")})
	}
	b.maxTasks = 2 // as on a cluster with MaxArraySize=3: two arrays
	ids, err := b.Submit(ctx, a)
	if err != nil || len(ids) != 3 {
		t.Fatalf("submit: %v %v", ids, err)
	}
	base := func(id string) string { s, _, _ := strings.Cut(id, "_"); return s }
	if base(ids[0]) != base(ids[1]) || base(ids[1]) == base(ids[2]) || !strings.HasSuffix(ids[2], "_0") {
		t.Errorf("ids %v: want jobs 0 and 1 in one array, 2 in another", ids)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		st, err := b.Poll(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		_, listed0 := st[ids[0]]
		_, listed1 := st[ids[1]]
		if !listed0 && !listed1 && st[ids[2]].State == batch.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs never ended: %+v", st)
		}
	}
	if b0, _ := os.ReadFile(filepath.Join(dir, "job-0.log")); string(b0) != "one\n" {
		t.Errorf("log of job 0: %q", b0)
	}
	if err := b.Cancel(ctx, ids); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		st, _ := b.Poll(ctx, ids)
		if len(st) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancelled job still listed: %+v", st)
		}
	}
	// Accounting is off on this cluster: History falls back to the logs.
	h, err := b.History(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if h[ids[2]].Reason != "CANCELLED" {
		t.Errorf("history of the cancelled job: %+v", h[ids[2]])
	}
}

// A recorded job id that squeue lists under another name is somebody
// else's job (a cluster whose ids started over): it counts as gone, never
// as ours. squeue here is a stand-in printing what the real one prints.
func TestPollIgnoresForeignJobs(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\necho '77_0|RUNNING|None|hepbuild-tth'\necho '78_0|RUNNING|None|someone-elses-fit'\n"
	if err := os.WriteFile(filepath.Join(dir, "squeue"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	st, err := New().Poll(context.Background(), []string{"77_0", "78_0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st["78_0"]; ok || st["77_0"].State != batch.StateRunning {
		t.Errorf("poll %+v: want 77_0 running and 78_0 absent", st)
	}
}
