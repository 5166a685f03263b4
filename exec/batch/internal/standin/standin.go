// Package standin provides stand-ins for the command-line tools of batch
// systems that cannot be installed here (HTCondor, LSF, gLite/CREAM),
// built from their documentation, for tests: condor_submit, condor_q,
// condor_history, condor_rm; bsub, bjobs, bkill; glite-ce-job-submit,
// glite-ce-job-status, glite-ce-job-cancel. They are bash scripts that
// really run each job's command in the background (in its own session, as
// a node would), keep their state in a folder, print the documented
// output formats, record every invocation, and let a test script trouble:
// a held job, a job over its memory or time limit, a job that vanishes, a
// tool that fails or prints garbage.
//
// Tests outside exec/batch (cmd/hepbuild's) use the same API through
// exec/batch/standin, as Go keeps them from importing an internal package.
//
// Install puts one system's tools first on PATH for a test; the other
// functions inspect or disturb the state folder it returns. From another
// package's test (the engine's, cmd/hepbuild's end-to-end tests):
//
//	state := standin.Install(t, "htcondor")  // or "lsf", "glite"
//	standin.Plan(t, state, 2, standin.Held, "input missing") // the 2nd job submitted
//	... run the engine with htcondor.New() (glite.New(glite.Endpoint("ce.example.org:8443/cream-pbs-q"))) ...
//	if standin.Count(t, state, "condor_q") > polls { ... }
//
// Jobs run on this machine with the test's environment (PATH included),
// in the folder of the submit file, so a job's `hepbuild worker` must be
// on PATH or named by its absolute path. Nothing here is safe for use by
// parallel tests (Install uses t.Setenv).
package standin

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed scripts
var scripts embed.FS

// Tools lists each system's stand-in commands.
var Tools = map[string][]string{
	"htcondor": {"condor_submit", "condor_q", "condor_history", "condor_rm"},
	"lsf":      {"bsub", "bjobs", "bkill"},
	"glite":    {"glite-ce-job-submit", "glite-ce-job-status", "glite-ce-job-cancel"},
}

// helpers are sourced or run by the tools, whatever the system.
var helpers = []string{"common.sh", "standin-run-job", "standin-condor-list"}

// Install writes the stand-in tools of system ("htcondor", "lsf" or
// "glite") to a temporary folder, puts it first on PATH and sets
// STANDIN_STATE to a new state folder, which it returns. When the test
// ends, jobs still running are killed.
func Install(t testing.TB, system string) (dir string) {
	t.Helper()
	tools, ok := Tools[system]
	if !ok {
		t.Fatalf("standin: no stand-ins for %q", system)
	}
	bin := t.TempDir()
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "jobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(append([]string{}, helpers...), tools...) {
		body, err := scripts.ReadFile("scripts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if name != "common.sh" {
			body = append([]byte("#!/bin/bash\nBIN=${0%/*}\n"), body...)
		}
		if err := os.WriteFile(filepath.Join(bin, name), body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("STANDIN_STATE", dir)
	t.Cleanup(func() { killAll(dir) })
	return dir
}

// killAll kills the session of every job that may still run, and waits
// for them to die so that none writes into a folder being removed.
func killAll(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "jobs", "*", "pid"))
	var pids []int
	for _, p := range files {
		if pid := readInt(p); pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for sessionAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

// Calls returns every invocation of a stand-in so far, in order: the
// tool's name, then its arguments.
func Calls(t testing.TB, dir string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "calls.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		calls = append(calls, strings.Split(sc.Text(), "\t"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return calls
}

// Count returns how many times the tool was invoked.
func Count(t testing.TB, dir, tool string) int {
	t.Helper()
	n := 0
	for _, c := range Calls(t, dir) {
		if c[0] == tool {
			n++
		}
	}
	return n
}

// Fail makes every later invocation of tool print message to its standard
// error and exit with status 1; an empty message lifts the failure.
func Fail(t testing.TB, dir, tool, message string) {
	t.Helper()
	scriptFile(t, filepath.Join(dir, "fail", tool), message)
}

// Garbage makes every later invocation of tool print output and exit with
// status 0; empty output lifts it.
func Garbage(t testing.TB, dir, tool, output string) {
	t.Helper()
	scriptFile(t, filepath.Join(dir, "garbage", tool), output)
}

func scriptFile(t testing.TB, path, content string) {
	if content == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Pause keeps queued jobs from starting until Resume: they stay pending.
func Pause(t testing.TB, dir string) {
	t.Helper()
	scriptFile(t, filepath.Join(dir, "paused"), "paused")
}

// Resume lets queued jobs start.
func Resume(t testing.TB, dir string) {
	t.Helper()
	scriptFile(t, filepath.Join(dir, "paused"), "")
}

// Trouble is what a stand-in does to a job instead of running it to its end.
type Trouble string

const (
	// Held: the job is held (HTCondor JobStatus 5, LSF PSUSP, CREAM HELD)
	// with the given reason and does not run.
	Held Trouble = "hold"
	// OverMemory: the system killed the job for exceeding its memory
	// limit (an HTCondor hold with code 34, LSF TERM_MEMLIMIT, a CREAM
	// DONE-FAILED with the batch system's vmem message).
	OverMemory Trouble = "memory"
	// OverTime: killed for exceeding its walltime (HTCondor hold code 47,
	// LSF TERM_RUNLIMIT, CREAM's walltime message).
	OverTime Trouble = "walltime"
	// Vanished: the job leaves the queue without a word; HTCondor's
	// history still has it, as removed (JobStatus 3).
	Vanished Trouble = "vanish"
)

// Plan makes the n-th job submitted (1-based, counted across arrays)
// meet the trouble instead of running; reason is the hold reason.
func Plan(t testing.TB, dir string, n int, trouble Trouble, reason string) {
	t.Helper()
	scriptFile(t, filepath.Join(dir, "plan", strconv.Itoa(n)), strings.TrimSpace(string(trouble)+" "+reason))
}

// Inflict makes the job with the given id (as the backend reported it)
// meet the trouble now: a running job is killed. It fails the test when
// the job has already ended.
func Inflict(t testing.TB, dir, id string, trouble Trouble, reason string) {
	t.Helper()
	j := jobDir(dir, id)
	if _, err := os.Stat(j); err != nil {
		t.Fatalf("standin: no job %s: %v", id, err)
	}
	if err := os.Mkdir(filepath.Join(j, "end"), 0o755); err != nil {
		t.Fatalf("standin: job %s has already ended", id)
	}
	status := map[Trouble]string{Held: "held", OverMemory: "memory", OverTime: "walltime", Vanished: "gone"}[trouble]
	if status == "" {
		t.Fatalf("standin: unknown trouble %q", trouble)
	}
	if trouble == Held {
		if reason == "" {
			reason = "held by the stand-in"
		}
		writeAtomic(t, filepath.Join(j, "reason"), reason)
	}
	writeAtomic(t, filepath.Join(j, "status"), status)
	if pid := readInt(filepath.Join(j, "pid")); pid > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
}

func writeAtomic(t testing.TB, path, content string) {
	if err := os.WriteFile(path+".tmp", []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// jobDir is the state folder of a job: ids are "cluster.proc" (HTCondor),
// "JOBID[INDEX]" (LSF) or a CREAM URL ending in the job's name.
func jobDir(dir, id string) string {
	return filepath.Join(dir, "jobs", id[strings.LastIndex(id, "/")+1:])
}

// Status returns the stand-in's own word for where a job is: queued,
// running, done, held, memory, walltime, removed or gone.
func Status(t testing.TB, dir, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(jobDir(dir, id), "status"))
	if err != nil {
		t.Fatalf("standin: job %s: %v", id, err)
	}
	return strings.TrimSpace(string(b))
}

// Alive says whether a process of the job's session still runs. Zombies
// do not count: killed jobs are reparented to PID 1, which may reap them
// late.
func Alive(t testing.TB, dir, id string) bool {
	t.Helper()
	return sessionAlive(readInt(filepath.Join(jobDir(dir, id), "pid")))
}

// sessionAlive says whether a process that is not a zombie is in the
// process group pid.
func sessionAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// WaitStatus waits until the job's stand-in status is want.
func WaitStatus(t testing.TB, dir, id, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(filepath.Join(jobDir(dir, id), "status"))
		got := strings.TrimSpace(string(b))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standin: job %s is %q after %s, want %q", id, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Submitted returns the submit description file condor_submit read for a
// cluster, or "" when there is none.
func Submitted(dir, cluster string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "cluster."+cluster+".submit"))
	return string(b)
}
