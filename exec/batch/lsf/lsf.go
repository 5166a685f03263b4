// Package lsf is the batch.Backend for IBM Spectrum LSF: one bsub per
// array submits a job array -J "name[1-N]" whose elements pick their job
// by $LSB_JOBINDEX, one bjobs per poll (-o ... -json) asks for every job
// in flight, one bkill cancels. bjobs -a also lists recently finished
// jobs, so there is no separate history. The tools run through
// sandbox.RunTool.
package lsf

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/exec/batch/internal/jobscript"
	"github.com/hepbuild/hepbuild/sandbox"
)

// Backend submits to LSF. It is safe for concurrent use.
type Backend struct {
	queue     string
	limitUnit string
	timeout   time.Duration
}

// Option configures a Backend.
type Option func(*Backend)

// Queue submits to the named queue (bsub -q) unless Options name one.
func Queue(name string) Option { return func(b *Backend) { b.queue = name } }

// LimitUnit writes memory as bare numbers in the cluster's
// LSF_UNIT_FOR_LIMITS ("KB", "MB", "GB", ...), for LSF before 10.1.0.2,
// which does not understand a unit after the number.
func LimitUnit(unit string) Option { return func(b *Backend) { b.limitUnit = strings.ToUpper(unit) } }

// ToolTimeout bounds each run of an LSF tool (default one minute).
func ToolTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// New returns an LSF backend.
func New(opts ...Option) *Backend {
	b := &Backend{}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name is "lsf".
func (b *Backend) Name() string { return "lsf" }

func (b *Backend) run(ctx context.Context, dir string, argv ...string) (sandbox.ToolResult, error) {
	return sandbox.RunTool(ctx, sandbox.Tool{Argv: argv, Dir: dir, Timeout: b.timeout})
}

var submittedRE = regexp.MustCompile(`Job <(\d+)> is submitted to`)

// notInJobName matches what hepbuild keeps out of an LSF job name: the
// brackets and % of the array syntax, quotes, spaces, and anything else
// that a site's wrapper scripts might trip over.
var notInJobName = regexp.MustCompile(`[^A-Za-z0-9_.+-]+`)

// Submit writes jobs.sh in a.Dir (element I runs job I-1) and submits it
// as one job array with one bsub.
func (b *Backend) Submit(ctx context.Context, a *batch.Array) ([]string, error) {
	if len(a.Jobs) == 0 {
		return nil, nil
	}
	script := filepath.Join(a.Dir, "jobs.sh")
	if err := jobscript.Write(script, a.Name, a.Jobs, "$LSB_JOBINDEX", 1); err != nil {
		return nil, fmt.Errorf("lsf: writing %s: %w", script, err)
	}
	args, err := b.SubmitArgs(a)
	if err != nil {
		return nil, fmt.Errorf("lsf: %w", err)
	}
	res, err := b.run(ctx, a.Dir, append(append([]string{"bsub"}, args...), script)...)
	if err != nil {
		return nil, fmt.Errorf("lsf: bsub: %w", err)
	}
	m := submittedRE.FindSubmatch(res.Stdout)
	if res.ExitCode != 0 || m == nil {
		return nil, fmt.Errorf("lsf: bsub exited with status %d: %s", res.ExitCode, res.Brief())
	}
	ids := make([]string, len(a.Jobs))
	for i := range ids {
		ids[i] = fmt.Sprintf("%s[%d]", m[1], i+1)
	}
	return ids, nil
}

// SubmitArgs returns bsub's options for the array. Resources map to -n
// (slots, whole cores rounded up), -M and -R "rusage[mem=...]" (the
// memory limit and the reservation, in MB with an explicit unit so that
// LSF_UNIT_FOR_LIMITS does not matter) and -W (minutes, rounded up).
// Options come last, so the user's -q or -R adds to or overrides ours.
func (b *Backend) SubmitArgs(a *batch.Array) ([]string, error) {
	name := notInJobName.ReplaceAllString(a.Name, "_")
	if name == "" {
		name = "hepbuild"
	}
	args := []string{
		"-J", fmt.Sprintf("%s[1-%d]", name, len(a.Jobs)),
		"-o", filepath.Join(a.Dir, "lsf.%J.%I.out"),
		"-e", filepath.Join(a.Dir, "lsf.%J.%I.err"),
	}
	if b.queue != "" {
		args = append(args, "-q", b.queue)
	}
	r := a.Resources
	if r.CPU > 0 {
		args = append(args, "-n", fmt.Sprint(int(math.Ceil(r.CPU))))
	}
	if r.Memory > 0 {
		mem, err := b.memory(r.Memory)
		if err != nil {
			return nil, err
		}
		args = append(args, "-M", mem, "-R", fmt.Sprintf("rusage[mem=%s]", mem))
	}
	if r.Walltime > 0 {
		args = append(args, "-W", fmt.Sprint(int64(math.Ceil(r.Walltime.Minutes()))))
	}
	return append(args, jobscript.Args(a.Options)...), nil
}

// memory formats bytes, rounded up, in MB with the unit written out, or
// as a bare number in LimitUnit.
func (b *Backend) memory(bytes int64) (string, error) {
	shift := map[string]uint{"": 20, "KB": 10, "K": 10, "MB": 20, "M": 20, "GB": 30, "G": 30, "TB": 40, "T": 40}
	s, ok := shift[b.limitUnit]
	if !ok {
		return "", fmt.Errorf("unknown LSF limit unit %q", b.limitUnit)
	}
	n := (bytes + (1 << s) - 1) >> s
	if b.limitUnit == "" {
		return fmt.Sprintf("%dMB", n), nil
	}
	return fmt.Sprint(n), nil
}

// fields are bjobs -o's fields Poll reads.
const fields = "jobid jobindex stat exit_code exit_reason pend_reason"

// Poll asks one bjobs for every array of ids. A job LSF no longer knows
// (cleaned after CLEAN_PERIOD) is absent.
func (b *Backend) Poll(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	jobs, err := parents(ids)
	if err != nil || len(jobs) == 0 {
		return map[string]batch.Status{}, err
	}
	argv := append([]string{"bjobs", "-a", "-o", fields, "-json"}, jobs...)
	res, err := b.run(ctx, "", argv...)
	if err != nil {
		return nil, fmt.Errorf("lsf: bjobs: %w", err)
	}
	// bjobs exits with 255 when one of the ids is not found, and still
	// lists the others: the output decides, not the status.
	all, err := ParseJobs(res.Stdout)
	if err != nil {
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("lsf: bjobs exited with status %d: %s", res.ExitCode, res.Brief())
		}
		return nil, fmt.Errorf("lsf: reading bjobs' output: %w", err)
	}
	out := make(map[string]batch.Status, len(ids))
	for _, id := range ids {
		if s, ok := all[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

var idRE = regexp.MustCompile(`^(\d+)(\[\d+\])?$`)

// parents returns the distinct job ids of ids "JOBID[INDEX]", in order.
func parents(ids []string) ([]string, error) {
	seen := map[string]bool{}
	var jobs []string
	for _, id := range ids {
		m := idRE.FindStringSubmatch(id)
		if m == nil {
			return nil, fmt.Errorf("lsf: %q is not a job id JOBID[INDEX]", id)
		}
		if !seen[m[1]] {
			seen[m[1]] = true
			jobs = append(jobs, m[1])
		}
	}
	return jobs, nil
}

// Cancel kills the jobs with one bkill. Jobs that already finished or
// are unknown are not an error.
func (b *Backend) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := parents(ids); err != nil {
		return err
	}
	res, err := b.run(ctx, "", append([]string{"bkill"}, ids...)...)
	if err != nil {
		return fmt.Errorf("lsf: bkill: %w", err)
	}
	if res.ExitCode != 0 && !batch.OnlyAbout(res.Stderr, "No matching job found", "Job has already finished", "is not found") {
		return fmt.Errorf("lsf: bkill exited with status %d: %s", res.ExitCode, res.Brief())
	}
	return nil
}
