package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch/standin"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// fanout is an analysis in miniature: a fan-out of histograms over
// samples, a merge and a tagged-local summary.
const fanout = `
task(name = "hist_a", srcs = ["a.txt"], outs = ["hist_a.txt"], cmd = "sort $< > $@; echo filled a")
task(name = "hist_b", srcs = ["b.txt"], outs = ["hist_b.txt"], cmd = "sort -r $< > $@; echo filled b")
task(name = "hist_c", srcs = ["c.txt"], outs = ["hist_c.txt"], cmd = "tr a-z A-Z < $< > $@")
task(name = "hist_d", srcs = ["a.txt", "c.txt"], outs = ["hist_d.txt"], cmd = "cat $(SRCS) | wc -l > $@")
task(name = "merge", srcs = [":hist_a", ":hist_b", ":hist_c", ":hist_d"], outs = ["merged.txt"], cmd = "cat $(SRCS) > $@")
task(name = "summary", srcs = [":merge"], outs = ["summary.txt"], cmd = "wc -c < $< > $@", tags = ["local"])
`

var fanoutFiles = map[string]string{"BUILD": fanout, "a.txt": "z\ny\nx\n", "b.txt": "1\n3\n2\n", "c.txt": "abc\n"}

// outputsOf reads every file under hepbuild-out.
func outputsOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, "hepbuild-out")
	err := filepath.Walk(base+"/", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(base, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSlurmBuildsLikeLocal: on a real Slurm cluster, the fan-out runs as
// job arrays through hepbuild worker, the outputs are byte-identical to a
// local build's, the local-tagged action stays here, and a second build
// after clean restores everything from the cache without a job.
func TestSlurmBuildsLikeLocal(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1") // the jobs run this test binary as hepbuild worker

	local, localCache := clone(t, fanoutFiles)
	buildOutcomes(t, local, "//:summary", "--disk-cache", localCache)
	want := outputsOf(t, local)

	root, diskCache := clone(t, fanoutFiles)
	args := []string{"//:summary", "--disk-cache", diskCache, "--executor=slurm", "--batch-poll=300ms", "--batch-window=300ms", "--actions-per-job=2"}
	r, ev := buildOutcomes(t, root, args...)
	if got := outputsOf(t, root); !equalMaps(got, want) {
		t.Errorf("outputs differ from the local build's:\n got %v\nwant %v", got, want)
	}
	if n := len(ev["action_finished"]); n != 6 {
		t.Errorf("%d actions ran, want 6\n%s", n, r.stderr)
	}
	// Every run action but the local summary went through a job.
	submitted := eventTargets(t, ev, "job_submitted")
	if want := []string{"//:hist_a", "//:hist_b", "//:hist_c", "//:hist_d", "//:merge"}; !equalSlices(submitted, want) {
		t.Errorf("jobs submitted for %v, want %v", submitted, want)
	}
	// The log of a remote run comes back like a local one's.
	if b, err := os.ReadFile(logOf(t, root, "hist_a.txt")); err != nil || string(b) != "filled a\n" {
		t.Errorf("log of hist_a: %q %v", b, err)
	}

	if r := hepbuild(t, root, "clean"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	_, ev2 := buildOutcomes(t, root, args...)
	if n := len(ev2["action_finished"]) + len(ev2["job_submitted"]); n != 0 {
		t.Errorf("after clean, %d actions ran or were submitted", n)
	}
	if got := outputsOf(t, root); !equalMaps(got, want) {
		t.Errorf("restored outputs differ")
	}
}

func eventTargets(t *testing.T, ev map[string][]string, typ string) []string {
	seen := map[string]bool{}
	var out []string
	for _, tg := range ev[typ] {
		if !seen[tg] {
			seen[tg] = true
			out = append(out, tg)
		}
	}
	sort.Strings(out)
	return out
}

func logOf(t *testing.T, root, out string) string {
	r := hepbuild(t, root, "info", "output_base")
	return filepath.Join(strings.TrimSpace(r.stdout), "logs", out+".log")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func equalSlices(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// jobEvents reads the job events of an events file: job id by target.
func jobEvents(t *testing.T, path, typ string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Type, Target string
			JobID        string `json:"job_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		if e.Type == typ {
			out[e.Target] = e.JobID
		}
	}
	return out
}

// waitEvents waits until the events file holds n events of the type.
func waitEvents(t *testing.T, path, typ string, n int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte(`"type":"`+typ+`"`)) >= n {
			return
		}
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no %d %s events within %v:\n%s", n, typ, within, b)
}

const slowJobs = `
task(name = "s1", outs = ["s1.txt"], cmd = "sleep 4; echo 1 > $@")
task(name = "s2", outs = ["s2.txt"], cmd = "sleep 4; echo 2 > $@")
task(name = "s3", outs = ["s3.txt"], cmd = "sleep 4; echo 3 > $@")
`

var batchFlags = []string{"--executor=slurm", "--batch-poll=300ms", "--batch-window=200ms"}

// TestSlurmFailureShowsLog: an action failing on the cluster fails the
// build like a local one, with its exit status, its log's tail and the
// job that ran it.
func TestSlurmFailureShowsLog(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1")
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "bad", outs = ["bad.txt"], cmd = "echo the fit did not converge; exit 3")`})
	r := hepbuild(t, root, append([]string{"//:bad", "--disk-cache", diskCache, "--progress=plain"}, batchFlags...)...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"exit status 3", "the fit did not converge", "on slurm job "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestSlurmJobCancelledIsResubmitted: a job killed on the cluster (scancel,
// as an admin or a node failure would) is resubmitted for its actions, and
// the build succeeds; without retries it fails naming the job.
func TestSlurmJobCancelledIsResubmitted(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1")
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "s", outs = ["s.txt"], cmd = "sleep 3; echo ok > $@")`})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	done := make(chan result, 1)
	go func() {
		done <- hepbuild(t, root, append([]string{"//:s", "--disk-cache", diskCache, "--progress=plain", "--events", ev, "--retries=1"}, batchFlags...)...)
	}()
	waitEvents(t, ev, "job_running", 1, 60*time.Second)
	id := jobEvents(t, ev, "job_running")["//:s"]
	if out, err := osexec.Command("scancel", id).CombinedOutput(); err != nil {
		t.Fatalf("scancel %s: %v %s", id, err, out)
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "resubmitting") || !strings.Contains(r.stderr, "slurm job "+id) {
		t.Errorf("no word of the resubmission of job %s:\n%s", id, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/s.txt")); string(b) != "ok\n" {
		t.Errorf("output %q", b)
	}
}

// TestSlurmOverMemory: a job over its memory request is reported as such
// (Slurm's cgroup kills it; without accounting the job's log says so), and
// --retry-bump raises the request so that the retry succeeds.
func TestSlurmOverMemory(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1")
	build := `task(name = "big", outs = ["big.txt"], resources = {"memory": "200MB"},
    cmd = "python3 -c 'b = bytearray(500 * 1024 * 1024); print(len(b))' > $@")`
	root, diskCache := clone(t, map[string]string{"BUILD": build})
	args := append([]string{"//:big", "--disk-cache", diskCache, "--progress=plain"}, batchFlags...)
	r := hepbuild(t, root, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "exceeded its memory request of 191 MB") {
		t.Fatalf("exit %d, want 1 with the memory named:\n%s", r.code, r.stderr)
	}
	r = hepbuild(t, root, append(args, "--retries=1", "--retry-bump=memory=4x")...)
	if r.code != 0 {
		t.Fatalf("with a bigger request: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/big.txt")); string(b) != "524288000\n" {
		t.Errorf("output %q", b)
	}
}

// TestSlurmInterruptCancelsJobs: Ctrl-C leaves no job of the build in the
// queue; with --detach they run on and the next build re-attaches.
func TestSlurmInterruptCancelsJobs(t *testing.T) {
	s := testserver.StartSlurm(t)
	root, diskCache := clone(t, map[string]string{"BUILD": slowJobs})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	cmd := hepbuildCommand(t, root, append([]string{"//:all", "--disk-cache", diskCache, "--progress=plain", "--events", ev}, batchFlags...)...)
	buf := &syncBuffer{}
	cmd.Stderr = buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitEvents(t, ev, "job_submitted", 3, 60*time.Second)
	if q := s.Squeue(t); q == "" {
		t.Fatal("nothing in the queue")
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, buf); code != exitInterrupted {
		t.Errorf("exit %d, want %d\n%s", code, exitInterrupted, buf)
	}
	if !strings.Contains(buf.String(), "cancelled 3 slurm jobs") {
		t.Errorf("no word of the cancelled jobs:\n%s", buf)
	}
	if q := s.Squeue(t); q != "" {
		t.Errorf("jobs left in the queue after Ctrl-C:\n%s", q)
	}
}

// TestSlurmReattachAfterKill: hepbuild killed with SIGKILL while its jobs
// run; the next build re-attaches to them instead of submitting again.
func TestSlurmReattachAfterKill(t *testing.T) {
	s := testserver.StartSlurm(t)
	root, diskCache := clone(t, map[string]string{"BUILD": slowJobs})
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	args := append([]string{"//:all", "--disk-cache", diskCache, "--progress=plain"}, batchFlags...)
	cmd := hepbuildCommand(t, root, append(args, "--events", ev)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, ev, "job_submitted", 3, 60*time.Second)
	first := jobEvents(t, ev, "job_submitted")
	cmd.Process.Kill()
	cmd.Wait()
	if q := s.Squeue(t); q == "" {
		t.Fatal("the jobs did not outlive hepbuild")
	}
	t.Setenv(asMainEnv, "1")
	ev2 := filepath.Join(t.TempDir(), "events2.jsonl")
	r := hepbuild(t, root, append(args, "--events", ev2)...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "re-attached to 3 slurm jobs") {
		t.Errorf("no word of re-attaching:\n%s", r.stderr)
	}
	second := jobEvents(t, ev2, "job_submitted")
	for tg, id := range second {
		if first[tg] != id {
			t.Errorf("%s went to job %s, not to its earlier job %s", tg, id, first[tg])
		}
	}
	for _, n := range []string{"1", "2", "3"} {
		if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/s"+n+".txt")); string(b) != n+"\n" {
			t.Errorf("s%s.txt: %q", n, b)
		}
	}
}

// TestWorkerBinaryMissingOnNode: a worker binary the node cannot run is a
// clear error naming the flag, not a hang or a silent failure.
func TestWorkerBinaryMissingOnNode(t *testing.T) {
	testserver.StartSlurm(t)
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "x", outs = ["x.txt"], cmd = "echo > $@")`})
	r := hepbuild(t, root, append([]string{"//:x", "--disk-cache", diskCache, "--progress=plain", "--worker-binary=/nonexistent/hepbuild"}, batchFlags...)...)
	if r.code == 0 {
		t.Fatalf("built with a missing worker binary:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "is not on this node") || !strings.Contains(r.stderr, "--worker-binary") {
		t.Errorf("the error does not say what is wrong:\n%s", r.stderr)
	}
	// Slurm sends no files with jobs: --ship-worker is refused at once.
	r = hepbuild(t, root, append([]string{"//:x", "--disk-cache", diskCache, "--ship-worker"}, batchFlags...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "slurm does not send files with its jobs") {
		t.Errorf("--ship-worker with slurm: exit %d\n%s", r.code, r.stderr)
	}
}

// TestTolerance: with --tolerance, a build of independent branches that
// lost at most that many succeeds, listing the failures, and the next
// build tries them again; one failure more fails it.
func TestTolerance(t *testing.T) {
	build := `
task(name = "ok1", outs = ["ok1.txt"], cmd = "echo 1 > $@")
task(name = "ok2", outs = ["ok2.txt"], cmd = "echo 2 > $@")
task(name = "bad1", outs = ["bad1.txt"], cmd = "exit 1")
task(name = "bad2", outs = ["bad2.txt"], cmd = "exit 2")
`
	root := testWorkspace(t, map[string]string{"BUILD": build})
	r := hepbuild(t, root, "//:all", "--tolerance=2", "--progress=plain")
	if r.code != 0 {
		t.Fatalf("exit %d within the tolerance\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"2 of 4 actions failed, within --tolerance=2", "//:bad1 Task: exit status 1", "//:bad2 Task: exit status 2"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out/ok2.txt")); err != nil {
		t.Error(err)
	}
	_, ev := buildOutcomesCode(t, root, 1, "//:all", "--tolerance=25%")
	if n := len(ev["action_failed"]); n != 2 {
		t.Errorf("the next build tried %d failed actions again, want 2", n)
	}
	if r := hepbuild(t, root, "//:all", "--tolerance=x"); r.code != 2 {
		t.Errorf("--tolerance=x: exit %d", r.code)
	}
}

func buildOutcomesCode(t *testing.T, root string, code int, args ...string) (result, map[string][]string) {
	t.Helper()
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, append([]string{"--progress=plain", "--events", ev}, args...)...)
	if r.code != code {
		t.Fatalf("hepbuild %v: exit %d, want %d\n%s", args, r.code, code, r.stderr)
	}
	return r, events(t, ev)
}

// TestRemoteExecutorBuildsLikeLocal: with --remote-executor on a real
// Buildbarn, the run actions execute there (the local-tagged one here),
// outputs match a local build's, and another workspace with an empty disk
// cache restores everything from the service's cache.
func TestRemoteExecutorBuildsLikeLocal(t *testing.T) {
	bb := testserver.StartBuildbarn(t)
	url := "grpc://" + bb.Addr
	local, localCache := clone(t, fanoutFiles)
	buildOutcomes(t, local, "//:summary", "--disk-cache", localCache)
	want := outputsOf(t, local)

	root, diskCache := clone(t, fanoutFiles)
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, "//:summary", "--disk-cache", diskCache, "--remote-executor", url, "--progress=plain", "--events", ev)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := outputsOf(t, root); !equalMaps(got, want) {
		t.Errorf("outputs differ from the local build's:\n got %v\nwant %v", got, want)
	}
	ran := jobEvents(t, ev, "job_running")
	if _, ok := ran["//:summary"]; ok || len(ran) != 5 {
		t.Errorf("ran remotely: %v; want the five untagged actions", ran)
	}
	if !strings.Contains(r.stderr, "on reapi job /operations/") {
		t.Errorf("the progress does not say where actions ran:\n%s", r.stderr)
	}

	other, otherCache := clone(t, fanoutFiles)
	_, ev2 := buildOutcomes(t, other, "//:summary", "--disk-cache", otherCache, "--remote-cache", url)
	if n := len(ev2["action_cached"]); n != 6 {
		t.Errorf("another workspace restored %d actions from the service, want all 6", n)
	}
	if r := hepbuild(t, root, "//:summary", "--remote-executor", url, "--remote-cache", "grpc://127.0.0.1:1"); r.code != 2 {
		t.Errorf("a remote cache other than the executor's: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStandInSystemsBuildLikeLocal runs the fan-out through hepbuild
// worker on HTCondor, LSF and gLite/CREAM. These systems cannot be
// installed here: their tools are stand-ins built from the systems'
// documentation (exec/batch/standin) that really run the jobs; what is
// checked is hepbuild's side: one submission per array (per job on CREAM,
// which has no arrays), one status query per poll, outputs identical to a
// local build's.
func TestStandInSystemsBuildLikeLocal(t *testing.T) {
	local, localCache := clone(t, fanoutFiles)
	buildOutcomes(t, local, "//:summary", "--disk-cache", localCache)
	want := outputsOf(t, local)
	for _, c := range []struct {
		system, submit, poll string
		extra                []string
		submits              int
	}{
		{"htcondor", "condor_submit", "condor_q", nil, 2},
		{"lsf", "bsub", "bjobs", nil, 2},
		{"glite", "glite-ce-job-submit", "glite-ce-job-status", []string{"--batch-option=glite:-r ce.example.org:8443/cream-pbs-grid"}, 5},
	} {
		t.Run(c.system, func(t *testing.T) {
			state := standin.Install(t, c.system)
			t.Setenv(asMainEnv, "1")
			root, diskCache := clone(t, fanoutFiles)
			args := append([]string{"//:summary", "--disk-cache", diskCache, "--executor=" + c.system, "--batch-poll=300ms", "--batch-window=300ms"}, c.extra...)
			r, ev := buildOutcomes(t, root, args...)
			if got := outputsOf(t, root); !equalMaps(got, want) {
				t.Errorf("outputs differ from the local build's:\n got %v\nwant %v\n%s", got, want, r.stderr)
			}
			if n := len(eventTargets(t, ev, "job_submitted")); n != 5 {
				t.Errorf("%d actions went to jobs, want 5", n)
			}
			if n := standin.Count(t, state, c.submit); n != c.submits {
				t.Errorf("%d calls of %s, want %d (hist_* gathered, then merge)", n, c.submit, c.submits)
			}
			polls := standin.Count(t, state, c.poll)
			if !strings.Contains(r.stderr, fmt.Sprintf("%d status queries", polls)) {
				t.Errorf("%d calls of %s, not one per poll as hepbuild counted:\n%s", polls, c.poll, r.stderr)
			}
		})
	}
}

// TestARCBuild: an action runs through hepbuild worker on a real ARC CE
// (A-REX with the fork LRMS on this machine), the worker binary sent with
// the job, its output and log come back through the cache, and the CE
// forgets the job afterwards.
func TestARCBuild(t *testing.T) {
	ce := testserver.StartARC(t)
	for k, v := range ce.Env {
		t.Setenv(k, v)
	}
	// As on the grid, the job runs as a mapped account (here nobody) on
	// a node that shares no file system with this machine: the worker
	// binary comes with the job, the inputs from the remote cache.
	cacheServer := testserver.StartBazelRemote(t)
	root, diskCache := clone(t, fanoutFiles)
	ev := filepath.Join(t.TempDir(), "events.jsonl")
	r := hepbuild(t, root, "//:hist_a", "--disk-cache", diskCache, "--progress=plain", "--events", ev,
		"--remote-cache=grpc://"+cacheServer.GRPCAddr, "--ship-worker",
		"--executor=arc", "--batch-option=arc:--computing-element="+ce.CE, "--worker-env="+asMainEnv+"=1",
		"--batch-poll=3s", "--batch-window=200ms")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/hist_a.txt")); string(b) != "x\ny\nz\n" {
		t.Errorf("output %q", b)
	}
	id := jobEvents(t, ev, "job_submitted")["//:hist_a"]
	if !strings.HasPrefix(id, "https://") {
		t.Errorf("job id %q is not an ARC job URL", id)
	}
	if b, err := os.ReadFile(logOf(t, root, "hist_a.txt")); err != nil || string(b) != "filled a\n" {
		t.Errorf("log %q %v", b, err)
	}
	out, _ := osexec.Command("arcstat", "-j", filepath.Join(strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout), "batch/arc/arc-jobs.dat"), id).CombinedOutput()
	if !strings.Contains(string(out), "not found") && !strings.Contains(string(out), "No jobs") {
		t.Errorf("the CE still knows the job after the build:\n%s", out)
	}
}

// TestWorkerIgnoresHepbuildrc: a node's ~/.hepbuildrc must not change what
// a job's worker was told (here: a second cache, which it would refuse).
func TestWorkerIgnoresHepbuildrc(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, ".hepbuildrc"), []byte("common --remote-cache=grpc://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := hepbuild(t, t.TempDir(), "worker", "--disk-cache", t.TempDir(), "0000000000000000000000000000000000000000000000000000000000000000/1:0000000000000000000000000000000000000000000000000000000000000000/1")
	if strings.Contains(r.stderr, "exactly one of") || !strings.Contains(r.stdout, "could not run") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r.code != 3 {
		t.Errorf("exit %d, want 3 (could not run: the action is not in the cache)", r.code)
	}
}

// TestNoRemoteCacheStaysHere: an action tagged no-remote-cache (or
// no-remote) leaves nothing in the group's cache, result nor outputs, and
// takes no result from it; its neighbours are shared as usual.
func TestNoRemoteCacheStaysHere(t *testing.T) {
	group := filepath.Join(t.TempDir(), "group")
	url := "file://" + group
	files := map[string]string{"BUILD": `
task(name = "open", outs = ["open.txt"], cmd = "echo shared-result > $@")
task(name = "secret", outs = ["secret.txt"], cmd = "echo private-result > $@", tags = ["no-remote-cache"])
task(name = "quiet", outs = ["quiet.txt"], cmd = "echo quiet-result > $@", tags = ["no-remote"])
`}
	root, diskCache := clone(t, files)
	buildOutcomes(t, root, "//:all", "--disk-cache", diskCache, "--remote-cache", url)
	var stored []string
	filepath.Walk(group, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			stored = append(stored, string(b))
		}
		return nil
	})
	all := strings.Join(stored, "\n")
	if !strings.Contains(all, "shared-result") {
		t.Fatalf("the untagged action's output is not in the group's cache")
	}
	for _, private := range []string{"private-result", "quiet-result"} {
		if strings.Contains(all, private) {
			t.Errorf("%q reached the group's cache", private)
		}
	}
	// Another member restores the open result and runs the others.
	other, otherCache := clone(t, files)
	_, ev := buildOutcomes(t, other, "//:all", "--disk-cache", otherCache, "--remote-cache", url)
	if got := eventTargets(t, ev, "action_cached"); !equalSlices(got, []string{"//:open"}) {
		t.Errorf("restored from the group's cache: %v, want only //:open", got)
	}
	// A result someone else put in the group's cache (the same action
	// without the tag, which is not in the key) is not taken either.
	untagged, untaggedCache := clone(t, map[string]string{"BUILD": `task(name = "secret", outs = ["secret.txt"], cmd = "echo private-result > $@")`})
	buildOutcomes(t, untagged, "//:secret", "--disk-cache", untaggedCache, "--remote-cache", url)
	third, thirdCache := clone(t, files)
	_, ev = buildOutcomes(t, third, "//:secret", "--disk-cache", thirdCache, "--remote-cache", url)
	if n := len(ev["action_cached"]); n != 0 {
		t.Errorf("a no-remote-cache action took a result from the group's cache")
	}
	if n := len(ev["action_finished"]); n != 1 {
		t.Errorf("the no-remote-cache action did not run: %v", ev)
	}
}
