package arc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// Cancel kills the jobs with one arckill call. It keeps them on the CE
// (--keep): they stay listed as Killed, so the engine sees them end and
// may fetch their logs, until Clean removes them. Jobs that have already
// ended, or that the job list no longer has, are left alone.
func (b *Backend) Cancel(ctx context.Context, ids []string) error {
	return b.each(ctx, "arckill", []string{"--keep"}, ids, "successfully killed")
}

// Clean removes the jobs from the CE and the job list with one arcclean
// call. A job still running is not removed (cancel it first).
func (b *Backend) Clean(ctx context.Context, ids []string) error {
	return b.each(ctx, "arcclean", nil, ids, "deleted")
}

// processedRE is the summary arckill and arcclean print:
// "Jobs processed: 2, successfully killed: 2", "Jobs processed: 2, deleted: 2".
var processedRE = regexp.MustCompile(`Jobs processed: (\d+), ([a-z ]+): (\d+)`)

// each runs one of the tools that act on a list of jobs, with all ids in
// one -i file, and checks its summary.
func (b *Backend) each(ctx context.Context, tool string, opts, ids []string, done string) error {
	if len(ids) == 0 {
		return nil
	}
	file, err := writeIDs("", ids)
	if err != nil {
		return fmt.Errorf("%s: writing the job ids: %w", tool, err)
	}
	defer os.Remove(file)
	argv := append([]string{tool}, opts...)
	argv = append(argv, b.clientArgs()...)
	argv = append(argv, "-i", file)
	res, err := b.run(ctx, argv)
	if err != nil {
		return fmt.Errorf("%s of %d jobs: %w", tool, len(ids), err)
	}
	out := string(res.Stdout)
	m := processedRE.FindStringSubmatch(out)
	if m == nil {
		if noJobs(out) {
			return nil // none of them is listed any more
		}
		return fmt.Errorf("%s of %d jobs: unexpected answer (exit status %d): %s", tool, len(ids), res.ExitCode, res.Brief())
	}
	processed, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[3])
	if m[2] != done || n < processed || res.ExitCode != 0 {
		return fmt.Errorf("%s: %s of %d jobs (exit status %d): %s", tool, strings.TrimSpace(m[0]), len(ids), res.ExitCode, res.Brief())
	}
	return nil
}

// noJobs says whether a tool found none of the jobs it was given in the
// job list ("No jobs", "No jobs found, try later").
func noJobs(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "No jobs") {
			return true
		}
	}
	return false
}

// Retrieve fetches the job's log with arcget into a folder next to
// job.Log, then moves it to job.Log. It keeps the job on the CE (--keep):
// Clean removes it.
func (b *Backend) Retrieve(ctx context.Context, id string, job batch.Job) error {
	if job.Log == "" {
		return fmt.Errorf("retrieving %s: the job has no log path", id)
	}
	dir := filepath.Dir(job.Log)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("retrieving %s: %w", id, err)
	}
	tmp, err := os.MkdirTemp(dir, ".arcget-")
	if err != nil {
		return fmt.Errorf("retrieving %s: %w", id, err)
	}
	defer os.RemoveAll(tmp)
	argv := append([]string{"arcget", "--keep", "--force", "-D", tmp}, b.clientArgs()...)
	argv = append(argv, id)
	res, err := b.run(ctx, argv)
	if err != nil {
		return fmt.Errorf("retrieving %s: %w", id, err)
	}
	// arcget makes one folder per job, named after the last part of the
	// job's URL; find the log in whatever folder it made.
	logs, _ := filepath.Glob(filepath.Join(tmp, "*", logName))
	if len(logs) != 1 {
		return fmt.Errorf("retrieving %s: arcget brought back no %s (exit status %d): %s", id, logName, res.ExitCode, res.Brief())
	}
	if err := os.Rename(logs[0], job.Log); err != nil {
		return fmt.Errorf("retrieving %s: %w", id, err)
	}
	return nil
}
