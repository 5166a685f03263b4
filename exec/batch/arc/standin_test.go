package arc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// standIn puts shell scripts named after ARC tools first on PATH; each
// prints what outputs[name] holds and exits with 0, or with the status
// after "exit=" on the first line. The real CE cannot be made to fail
// half a submission, so these cases use stand-ins; every tool's argv is
// appended to calls.log in the returned folder.
func standIn(t *testing.T, outputs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, out := range outputs {
		code := "0"
		if first, rest, ok := strings.Cut(out, "\n"); ok && strings.HasPrefix(first, "exit=") {
			code, out = strings.TrimPrefix(first, "exit="), rest
		}
		if err := os.WriteFile(filepath.Join(dir, name+".out"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\necho \"$0 $*\" >> " + filepath.Join(dir, "calls.log") + "\ncat " + filepath.Join(dir, name+".out") + "\nexit " + code + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func calls(t *testing.T, dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "calls.log"))
	return string(b)
}

func threeJobs(t *testing.T) *batch.Array {
	a := &batch.Array{Name: "arr", Dir: t.TempDir()}
	for range 3 {
		a.Jobs = append(a.Jobs, batch.Job{Command: []string{"/bin/true"}})
	}
	return a
}

func TestSubmitPartly(t *testing.T) {
	dir := standIn(t, map[string]string{
		"arcsub": "exit=1\nJob submitted with jobid: https://ce/arex/x\nJob submitted with jobid: https://ce/arex/y\n\n2 of 3 jobs were submitted\n",
		"arcstat": "Job: https://ce/arex/x\n Name: arr-0\n State: Accepted\n\nJob: https://ce/arex/y\n Name: arr-2\n State: Accepted\n\n" +
			"Status of 2 jobs was queried, 2 jobs returned information\n",
	})
	ids, err := New().Submit(context.Background(), threeJobs(t))
	if err == nil || !strings.Contains(err.Error(), "only 2 of 3") {
		t.Errorf("Submit: %v, want an error saying only 2 of 3 were submitted", err)
	}
	if want := []string{"https://ce/arex/x", "", "https://ce/arex/y"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("Submit returned %q, want %q", ids, want)
	}
	if got := calls(t, dir); strings.Count(got, "\n") != 2 {
		t.Errorf("tools run:\n%s\nwant arcsub, then one arcstat", got)
	}
}

// TestSubmitPartlyUnplaced: when the submitted jobs cannot be matched to
// the array's, they are cancelled and Submit returns no ids.
func TestSubmitPartlyUnplaced(t *testing.T) {
	dir := standIn(t, map[string]string{
		"arcsub":  "Job submitted with jobid: https://ce/arex/x\n",
		"arcstat": "Job: https://ce/arex/x\n Name: someone-else\n State: Accepted\n\nStatus of 1 jobs was queried, 1 jobs returned information\n",
		"arckill": "Jobs processed: 1, successfully killed: 1\n",
	})
	ids, err := New().Submit(context.Background(), threeJobs(t))
	if err == nil || ids != nil {
		t.Errorf("Submit = %q, %v; want no ids and an error", ids, err)
	}
	if got := calls(t, dir); !strings.Contains(got, "arckill") {
		t.Errorf("tools run:\n%s\nwant an arckill of the unplaced job", got)
	}
}

func TestSubmitNone(t *testing.T) {
	standIn(t, map[string]string{"arcsub": "exit=1\nERROR: Invalid JobDescription:\n"})
	if ids, err := New().Submit(context.Background(), threeJobs(t)); err == nil || ids != nil {
		t.Errorf("Submit = %q, %v; want no ids and an error", ids, err)
	}
}

// TestCancelClean reads arckill's and arcclean's summaries: all done is
// fine, fewer is an error, none listed any more is fine.
func TestCancelClean(t *testing.T) {
	ids := []string{"https://ce/arex/x", "https://ce/arex/y"}
	for _, tc := range []struct {
		kill, clean string
		wantErr     bool
	}{
		{"Jobs processed: 2, successfully killed: 2\n", "Jobs processed: 2, deleted: 2\n", false},
		{"Jobs processed: 2, successfully killed: 1\n", "Jobs processed: 2, deleted: 1\n", true},
		{"exit=1\nWarning: Job not found in job list: https://ce/arex/x\nNo jobs\n", "exit=1\nNo jobs\n", false},
		{"Segmentation fault\n", "<html>\n", true},
	} {
		dir := standIn(t, map[string]string{"arckill": tc.kill, "arcclean": tc.clean})
		b := New(WithJobList(filepath.Join(dir, "jobs.dat")))
		errK := b.Cancel(context.Background(), ids)
		errC := b.Clean(context.Background(), ids)
		if (errK != nil) != tc.wantErr || (errC != nil) != tc.wantErr {
			t.Errorf("arckill %q: %v; arcclean %q: %v; want errors: %v", tc.kill, errK, tc.clean, errC, tc.wantErr)
		}
		if got := calls(t, dir); strings.Count(got, "\n") != 2 || !strings.Contains(got, "-i ") || !strings.Contains(got, "--keep") {
			t.Errorf("tools run:\n%s\nwant one arckill --keep and one arcclean, each with the ids in a file", got)
		}
	}
}
