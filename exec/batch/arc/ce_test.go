package arc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/internal/testserver"
	"golang.org/x/tools/txtar"
)

// TestRealCE runs jobs on a real A-REX with the fork LRMS on this machine:
// two jobs submitted with one arcsub, polled with one arcstat per tick
// until they end, their logs fetched, a third job cancelled, and all of
// them cleaned. A-REX takes tens of seconds per state change, so the jobs
// run side by side and the test takes a few minutes.
func TestRealCE(t *testing.T) {
	ce := testserver.StartARC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	jobList := filepath.Join(dir, "jobs.dat")
	b := New(WithCE(ce.CE), WithJobList(jobList), WithProxy(ce.Proxy))

	two := &batch.Array{Name: "hepbuild-test", Dir: dir, Resources: batch.Request{CPU: 1, Memory: 256 << 20, Walltime: 10 * time.Minute}}
	for _, code := range []string{"0", "3"} {
		two.Jobs = append(two.Jobs, batch.Job{
			Command: []string{"/bin/sh", "-c", `echo "hello-$N $WORD $0"; echo to-stderr >&2; exit ` + code, `arg "with" 'quotes' $HOME`},
			Env:     map[string]string{"N": code, "WORD": `it's "quoted" (x)`},
			Log:     filepath.Join(dir, "logs", "job"+code+".log"),
		})
	}
	calls := b.Calls()
	ids, err := b.Submit(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Calls() - calls; got != 1 {
		t.Errorf("Submit of 2 jobs ran %d ARC tools, want 1 arcsub", got)
	}
	if len(ids) != 2 || ids[0] == ids[1] || !strings.HasPrefix(ids[0], ce.CE) {
		t.Fatalf("Submit returned %q, want two job URLs under %s", ids, ce.CE)
	}
	sleeperDir := filepath.Join(dir, "sleeper")
	os.Mkdir(sleeperDir, 0o755)
	sleeper, err := b.Submit(ctx, &batch.Array{Name: "hepbuild-sleeper", Dir: sleeperDir,
		Jobs: []batch.Job{{Command: []string{"/bin/sleep", "600"}, Log: filepath.Join(dir, "logs", "sleeper.log")}}})
	if err != nil {
		t.Fatal(err)
	}
	all := append(ids[:2:2], sleeper...)
	start := time.Now()

	var st map[string]batch.Status
	cancelled := false
	for {
		calls := b.Calls()
		st, err = b.Poll(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Calls() - calls; got != 1 {
			t.Fatalf("Poll of %d jobs ran %d ARC tools, want 1 arcstat", len(all), got)
		}
		if len(st) != len(all) {
			t.Fatalf("Poll returned %d states for %d jobs: %v", len(st), len(all), st)
		}
		if !cancelled {
			calls := b.Calls()
			if err := b.Cancel(ctx, sleeper); err != nil {
				t.Fatal(err)
			}
			if got := b.Calls() - calls; got != 1 {
				t.Errorf("Cancel ran %d ARC tools, want 1 arckill", got)
			}
			cancelled = true
		}
		ended := 0
		for _, id := range all {
			if s := st[id].State; s == batch.StateDone || s == batch.StateFailed {
				ended++
			}
		}
		if ended == len(all) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("jobs did not end within the test's time: %v", st)
		}
		time.Sleep(3 * time.Second)
	}
	t.Logf("all three jobs ended %v after submission", time.Since(start).Round(time.Second))
	if *update {
		record(t, "testdata/arcstat/real-ended.txtar", ce, jobList, all)
	}
	for i, want := range []batch.Status{{State: batch.StateDone}, {State: batch.StateDone, ExitCode: 3}} {
		if got := st[ids[i]]; got.State != want.State || got.ExitCode != want.ExitCode {
			t.Errorf("job %d: %+v, want %v with exit code %d", i, got, want.State, want.ExitCode)
		}
	}
	if got := st[sleeper[0]]; got.State != batch.StateFailed || got.Reason != "Killed" {
		t.Errorf("cancelled job: %+v, want failed, Killed", got)
	}

	for i, job := range two.Jobs {
		if err := b.Retrieve(ctx, ids[i], job); err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(job.Log)
		if err != nil {
			t.Fatal(err)
		}
		want := "hello-" + job.Env["N"] + ` it's "quoted" (x) arg "with" 'quotes' $HOME` + "\n"
		if !strings.Contains(string(log), want) || !strings.Contains(string(log), "to-stderr") {
			t.Errorf("job %d's log is %q, want it to hold %q and the standard error", i, log, want)
		}
	}

	calls = b.Calls()
	if err := b.Clean(ctx, all); err != nil {
		t.Fatal(err)
	}
	if got := b.Calls() - calls; got != 1 {
		t.Errorf("Clean of %d jobs ran %d ARC tools, want 1 arcclean", len(all), got)
	}
	st, err = b.Poll(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 0 {
		t.Errorf("after Clean, Poll still knows %v", st)
	}
}

// record saves what arcstat -l says about the ended jobs, for
// TestParseStatus (go test -run 'TestRealCE|TestParseStatus' -update).
func record(t *testing.T, file string, ce *testserver.ARC, jobList string, ids []string) {
	cmd := exec.Command("arcstat", append([]string{"-l", "-j", jobList}, ids...)...)
	cmd.Env = append(os.Environ(), "X509_USER_PROXY="+ce.Proxy)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	ar := &txtar.Archive{
		Comment: []byte("Recorded by TestRealCE -update from A-REX 6.17 (fork LRMS): jobs that\nexited 0 and 3, and one killed by arckill --keep.\n"),
		Files: []txtar.File{
			{Name: "ids", Data: []byte(strings.Join(ids, "\n") + "\n")},
			{Name: "stdout", Data: []byte(stdout.String())},
			{Name: "stderr", Data: []byte(stderr.String())},
		},
	}
	if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}
