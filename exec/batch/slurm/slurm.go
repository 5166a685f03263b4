// Package slurm is the Slurm backend of the batch engine: one sbatch
// --array per array, one squeue for every job in flight, sacct (where
// accounting is on) or the job's log for jobs squeue forgot, one scancel.
package slurm

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/sandbox"
)

// Backend submits to Slurm with its command-line tools.
type Backend struct {
	mu       sync.Mutex
	logs     map[string]string // job id → its log, for jobs squeue no longer lists
	maxTasks int               // the cluster's MaxArraySize-1, asked once
}

// New returns the Slurm backend.
func New() *Backend { return &Backend{logs: map[string]string{}} }

// Name is "slurm".
func (b *Backend) Name() string { return "slurm" }

// Submit writes one script for the array, whose task N runs job N's
// command, and submits it with one sbatch --array. Resources map to
// --cpus-per-task, --mem (MB, rounded up) and --time (minutes, rounded up:
// Slurm enforces it at minute granularity).
func (b *Backend) Submit(ctx context.Context, a *batch.Array) ([]string, error) {
	if len(a.Jobs) == 0 {
		return nil, nil
	}
	for _, o := range a.Options {
		if o == "-J" || strings.HasPrefix(o, "-J") || strings.HasPrefix(o, "--job-name") || strings.HasPrefix(o, "--array") || strings.HasPrefix(o, "--output") {
			return nil, fmt.Errorf("option %q: hepbuild sets the job name, the array and the output itself (it recognises its jobs by their name)", o)
		}
	}
	script := filepath.Join(a.Dir, "array.sh")
	if err := os.WriteFile(script, []byte(arrayScript(a)), 0o755); err != nil {
		return nil, err
	}
	// A cluster takes arrays of at most MaxArraySize-1 tasks: larger
	// arrays go as several, each of one sbatch call.
	max := b.maxArray(ctx)
	if len(a.Jobs) > max {
		var ids []string
		for start := 0; start < len(a.Jobs); start += max {
			part := *a
			part.Jobs = a.Jobs[start:min(start+max, len(a.Jobs))]
			part.Dir = filepath.Join(a.Dir, strconv.Itoa(start/max))
			if err := os.MkdirAll(part.Dir, 0o755); err != nil {
				return ids, err
			}
			got, err := b.Submit(ctx, &part)
			ids = append(ids, got...)
			if err != nil {
				return ids, err
			}
		}
		return ids, nil
	}
	args := []string{"sbatch", "--parsable",
		"--array=0-" + strconv.Itoa(len(a.Jobs)-1),
		"--job-name=" + a.Name,
		"--output=" + filepath.Join(a.Dir, "job-%a.log"),
		"--chdir=" + a.Dir,
	}
	args = append(args, requestArgs(a.Resources)...)
	args = append(args, a.Options...)
	args = append(args, script)
	res, err := sandbox.RunTool(ctx, sandbox.Tool{Argv: args, Timeout: 2 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("sbatch: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("sbatch refused the array (exit status %d): %s", res.ExitCode, res.Brief())
	}
	// "JOBID" or "JOBID;CLUSTER"
	line := strings.TrimSpace(string(res.Stdout))
	id, _, _ := strings.Cut(line, ";")
	if _, err := strconv.Atoi(id); err != nil {
		return nil, fmt.Errorf("sbatch printed %q, not a job id", line)
	}
	ids := make([]string, len(a.Jobs))
	b.mu.Lock()
	for i := range a.Jobs {
		ids[i] = id + "_" + strconv.Itoa(i)
		b.logs[ids[i]] = filepath.Join(a.Dir, "job-"+strconv.Itoa(i)+".log")
	}
	b.mu.Unlock()
	return ids, nil
}

// maxArray returns the largest array the cluster takes: MaxArraySize-1
// from scontrol show config, asked once; 1000 (Slurm's default) if the
// question fails.
func (b *Backend) maxArray(ctx context.Context) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxTasks > 0 {
		return b.maxTasks
	}
	b.maxTasks = 1000
	res, err := sandbox.RunTool(ctx, sandbox.Tool{Argv: []string{"scontrol", "show", "config"}, Timeout: time.Minute})
	if err != nil || res.ExitCode != 0 {
		return b.maxTasks
	}
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == "MaxArraySize" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 1 {
				b.maxTasks = n - 1
			}
		}
	}
	return b.maxTasks
}

// requestArgs maps a request to sbatch options.
func requestArgs(r batch.Request) []string {
	var args []string
	if r.CPU > 1 {
		args = append(args, "--cpus-per-task="+strconv.Itoa(int(math.Ceil(r.CPU))))
	}
	if r.Memory > 0 {
		args = append(args, "--mem="+strconv.FormatInt((r.Memory+(1<<20)-1)>>20, 10)+"M")
	}
	if r.Walltime > 0 {
		args = append(args, "--time="+strconv.Itoa(int(math.Ceil(r.Walltime.Minutes()))))
	}
	return args
}

// arrayScript is the array's job script: task N runs job N's command,
// with its log where the engine looks for it (the engine asks for
// DIR/job-N.log, which --output writes; another name is redirected to).
func arrayScript(a *batch.Array) string {
	var sb strings.Builder
	sb.WriteString("#!/bin/bash\n# hepbuild: one task per job; the task id picks the job.\ncase \"$SLURM_ARRAY_TASK_ID\" in\n")
	for i, j := range a.Jobs {
		fmt.Fprintf(&sb, "%d)", i)
		if j.Log != filepath.Join(a.Dir, "job-"+strconv.Itoa(i)+".log") {
			fmt.Fprintf(&sb, " exec >>%s 2>&1;", quote(j.Log))
		}
		sb.WriteString(" exec env")
		for _, k := range sortedKeys(j.Env) {
			sb.WriteString(" " + quote(k+"="+j.Env[k]))
		}
		for _, w := range j.Command {
			sb.WriteString(" " + quote(w))
		}
		sb.WriteString(" ;;\n")
	}
	sb.WriteString("*) echo \"hepbuild: no job for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 3 ;;\nesac\n")
	return sb.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for k := i; k > 0 && keys[k] < keys[k-1]; k-- {
			keys[k], keys[k-1] = keys[k-1], keys[k]
		}
	}
	return keys
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Poll asks squeue once for every job in flight, by their array job ids.
func (b *Backend) Poll(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	arrays := map[string]bool{}
	var list []string
	for _, id := range ids {
		base, _, _ := strings.Cut(id, "_")
		if !arrays[base] {
			arrays[base] = true
			list = append(list, base)
		}
	}
	res, err := sandbox.RunTool(ctx, sandbox.Tool{
		Argv:    []string{"squeue", "--noheader", "--array", "--format=%i|%T|%r|%j", "--jobs=" + strings.Join(list, ",")},
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("squeue: %w", err)
	}
	if res.ExitCode != 0 {
		msg := res.Brief()
		if strings.Contains(msg, "Invalid job id") {
			// Every job asked for ended and was forgotten.
			return map[string]batch.Status{}, nil
		}
		return nil, fmt.Errorf("squeue (exit status %d): %s", res.ExitCode, msg)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]batch.Status{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("squeue printed %q, not JOBID|STATE|REASON|NAME", line)
		}
		if !strings.HasPrefix(f[3], "hepbuild") {
			// Not a job of hepbuild's: the id was given anew (a cluster
			// whose ids started over since a recorded job was submitted).
			// The recorded job is gone; the cache decides what it made.
			continue
		}
		if want[f[0]] {
			st := status(f[1], f[2], "")
			if st.State == batch.StateDone || st.State == batch.StateFailed {
				// squeue lists an ended job for a moment, as COMPLETED
				// even when the cgroup killed a process of it: slurmstepd
				// says so in the job's log.
				b.mu.Lock()
				logged, ok := fromLog(b.logs[f[0]])
				b.mu.Unlock()
				if ok && (logged.OverMemory || logged.OverTime) {
					st = logged
				}
			}
			out[f[0]] = st
		}
	}
	return out, nil
}

// status maps a Slurm job state (squeue's %T, sacct's State) to the engine's.
func status(state, reason, exit string) batch.Status {
	state, _, _ = strings.Cut(strings.TrimSpace(state), " ") // "CANCELLED by 0"
	s := batch.Status{Reason: strings.TrimSpace(reason)}
	if s.Reason == "None" {
		s.Reason = ""
	}
	if code, _, ok := strings.Cut(exit, ":"); ok {
		s.ExitCode, _ = strconv.Atoi(code)
	}
	if state == "PENDING" && strings.Contains(s.Reason, "launch failed requeued held") {
		// The node could not start it and Slurm held it: it will not run
		// until an admin releases it; removed and resubmitted, as a hold.
		s.State = batch.StateHeld
		return s
	}
	switch state {
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT":
		s.State = batch.StatePending
	case "RUNNING", "COMPLETING":
		s.State = batch.StateRunning
	case "COMPLETED":
		s.State = batch.StateDone
	case "OUT_OF_MEMORY":
		s.State, s.OverMemory = batch.StateFailed, true
		s.Reason = join(s.Reason, "OUT_OF_MEMORY")
	case "TIMEOUT", "DEADLINE":
		s.State, s.OverTime = batch.StateFailed, true
		s.Reason = join(s.Reason, state)
	case "FAILED", "NODE_FAIL", "BOOT_FAIL", "CANCELLED", "PREEMPTED", "REVOKED", "SPECIAL_EXIT":
		s.State = batch.StateFailed
		s.Reason = join(s.Reason, state)
	default:
		s.State = batch.StatePending
		s.Reason = join(s.Reason, "unknown Slurm state "+state)
	}
	return s
}

func join(a, b string) string {
	if a == "" || a == b {
		return b
	}
	return b + " (" + a + ")"
}

// History asks sacct for jobs squeue forgot; where accounting is off, a
// job's log says whether Slurm killed it for its memory or time.
func (b *Backend) History(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	out := map[string]batch.Status{}
	res, err := sandbox.RunTool(ctx, sandbox.Tool{
		Argv:    []string{"sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,ExitCode", "--jobs=" + strings.Join(ids, ",")},
		Timeout: 2 * time.Minute,
	})
	if err == nil && res.ExitCode == 0 {
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for _, line := range strings.Split(string(res.Stdout), "\n") {
			f := strings.Split(strings.TrimSpace(line), "|")
			if len(f) == 3 && want[f[0]] {
				out[f[0]] = status(f[1], "", f[2])
			}
		}
		return out, nil
	}
	// No accounting: what slurmstepd wrote into the job's log.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		if s, ok := fromLog(b.logs[id]); ok {
			out[id] = s
		}
	}
	return out, nil
}

var (
	oomRe  = regexp.MustCompile(`(?i)oom[-_ ]kill|out of memory|OUT_OF_MEMORY`)
	timeRe = regexp.MustCompile(`DUE TO TIME LIMIT`)
	killRe = regexp.MustCompile(`\*\*\* JOB \S+ ON \S+ CANCELLED AT`)
)

// fromLog reads the end of a job's log for slurmstepd's own lines.
func fromLog(path string) (batch.Status, bool) {
	if path == "" {
		return batch.Status{}, false
	}
	f, err := os.Open(path)
	if err != nil {
		return batch.Status{}, false
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, 2)
	}
	buf := make([]byte, max)
	n, _ := f.Read(buf)
	text := string(buf[:n])
	var s batch.Status
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "slurmstepd") {
			continue
		}
		switch {
		case timeRe.MatchString(l):
			return batch.Status{State: batch.StateFailed, OverTime: true, Reason: "TIMEOUT"}, true
		case oomRe.MatchString(l):
			s = batch.Status{State: batch.StateFailed, OverMemory: true, Reason: "OUT_OF_MEMORY"}
		case killRe.MatchString(l) && !s.OverMemory:
			s = batch.Status{State: batch.StateFailed, Reason: "CANCELLED"}
		}
	}
	return s, s.State == batch.StateFailed
}

// Cancel removes the jobs with one scancel.
func (b *Backend) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	res, err := sandbox.RunTool(ctx, sandbox.Tool{Argv: append([]string{"scancel"}, ids...), Timeout: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("scancel: %w", err)
	}
	if res.ExitCode != 0 && !strings.Contains(res.Brief(), "Invalid job id") {
		return fmt.Errorf("scancel (exit status %d): %s", res.ExitCode, res.Brief())
	}
	return nil
}
