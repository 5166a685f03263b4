// Package htcondor is the batch.Backend for HTCondor: one condor_submit per
// array makes one cluster whose procs are the array's jobs, one condor_q
// per poll asks for every cluster in flight, condor_history accounts for
// jobs that left the queue, one condor_rm cancels. The tools are run with
// sandbox.RunTool; their output is read as JSON (-json), never scraped
// from the human tables.
package htcondor

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/exec/batch/internal/jobscript"
	"github.com/hepbuild/hepbuild/sandbox"
)

// Backend submits to one HTCondor schedd. It is safe for concurrent use.
type Backend struct {
	schedd  string
	timeout time.Duration
}

var _ batch.Historian = (*Backend)(nil)

// Option configures a Backend.
type Option func(*Backend)

// Schedd sends every command to the named schedd (-name) instead of the
// local one.
func Schedd(name string) Option { return func(b *Backend) { b.schedd = name } }

// ToolTimeout bounds each run of an HTCondor tool (default one minute).
func ToolTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// New returns an HTCondor backend.
func New(opts ...Option) *Backend {
	b := &Backend{}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name is "htcondor".
func (b *Backend) Name() string { return "htcondor" }

// run runs an HTCondor tool, at the configured schedd.
func (b *Backend) run(ctx context.Context, dir string, argv ...string) (sandbox.ToolResult, error) {
	if b.schedd != "" {
		argv = append([]string{argv[0], "-name", b.schedd}, argv[1:]...)
	}
	return sandbox.RunTool(ctx, sandbox.Tool{Argv: argv, Dir: dir, Timeout: b.timeout})
}

var submittedRE = regexp.MustCompile(`(?m)^(\d+) job\(s\) submitted to cluster (\d+)\.`)

// Submit writes jobs.sh (proc P runs job P) and jobs.sub in a.Dir and
// submits them with one condor_submit: one cluster of len(a.Jobs) procs.
func (b *Backend) Submit(ctx context.Context, a *batch.Array) ([]string, error) {
	if len(a.Jobs) == 0 {
		return nil, nil
	}
	script := filepath.Join(a.Dir, "jobs.sh")
	if err := jobscript.Write(script, a.Name, a.Jobs, "$1", 0); err != nil {
		return nil, fmt.Errorf("htcondor: writing %s: %w", script, err)
	}
	sub, err := SubmitFile(a, script)
	if err != nil {
		return nil, fmt.Errorf("htcondor: %w", err)
	}
	subPath := filepath.Join(a.Dir, "jobs.sub")
	if err := os.WriteFile(subPath, sub, 0o644); err != nil {
		return nil, fmt.Errorf("htcondor: %w", err)
	}
	res, err := b.run(ctx, a.Dir, "condor_submit", subPath)
	if err != nil {
		return nil, fmt.Errorf("htcondor: condor_submit: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("htcondor: condor_submit exited with status %d: %s", res.ExitCode, res.Brief())
	}
	m := submittedRE.FindSubmatch(res.Stdout)
	if m == nil {
		return nil, fmt.Errorf("htcondor: condor_submit said nothing of a cluster: %s", res.Brief())
	}
	if n, _ := strconv.Atoi(string(m[1])); n != len(a.Jobs) {
		return nil, fmt.Errorf("htcondor: condor_submit submitted %d jobs to cluster %s, not %d", n, m[2], len(a.Jobs))
	}
	ids := make([]string, len(a.Jobs))
	for i := range ids {
		ids[i] = fmt.Sprintf("%s.%d", m[2], i)
	}
	return ids, nil
}

// SubmitFile returns the submit description of the array whose jobs run
// through script. Resources map to request_cpus (whole cores, rounded
// up), request_memory (MB, rounded up) and +MaxRuntime (seconds): the
// walltime attribute of CERN's and DESY's pools; a pool that enforces
// another (+MaxWallTimeMins, allowed_execute_duration) is told through
// Options, which are added as they are, after hepbuild's lines.
func SubmitFile(a *batch.Array, script string) ([]byte, error) {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# hepbuild array %s: %d jobs, one cluster; proc P runs job P of %s.", strings.Map(printable, a.Name), len(a.Jobs), filepath.Base(script))
	line("universe = vanilla")
	line("executable = %s", script)
	line("arguments = $(Process)")
	line("output = %s", filepath.Join(a.Dir, "condor.$(Process).out"))
	line("error = %s", filepath.Join(a.Dir, "condor.$(Process).err"))
	line("log = %s", filepath.Join(a.Dir, "condor.log"))
	if name := strings.Map(printable, a.Name); name != "" {
		line("batch_name = %s", name)
	}
	r := a.Resources
	cpus := 1
	if r.CPU > 0 {
		cpus = int(math.Ceil(r.CPU))
	}
	line("request_cpus = %d", cpus)
	if r.Memory > 0 {
		line("request_memory = %d", (r.Memory+(1<<20)-1)>>20)
	}
	if r.Walltime > 0 {
		line("# walltime in seconds, as CERN's and DESY's pools read it; other pools: see Options")
		line("+MaxRuntime = %d", int64(math.Ceil(r.Walltime.Seconds())))
	}
	for _, o := range a.Options {
		o = strings.TrimSpace(o)
		if strings.Contains(o, "\n") {
			return nil, fmt.Errorf("option %q spans lines", o)
		}
		if f := strings.Fields(o); len(f) > 0 && strings.EqualFold(f[0], "queue") {
			return nil, fmt.Errorf("option %q: hepbuild writes the queue statement", o)
		}
		if o != "" {
			line("%s", o)
		}
	}
	line("queue %d", len(a.Jobs))
	return []byte(b.String()), nil
}

// printable keeps a batch name on its line and out of ClassAd quoting.
func printable(r rune) rune {
	if r < ' ' || r == '"' || r == 0x7f {
		return '_'
	}
	return r
}

// attributes are the job ClassAd attributes Poll and History read.
const attributes = "ClusterId,ProcId,JobStatus,HoldReason,HoldReasonCode,HoldReasonSubCode,ExitCode,ExitBySignal,ExitSignal,RemoveReason"

// Poll asks condor_q once for every cluster of ids. Jobs that left the
// queue (completed and removed jobs do) are absent: History has them.
func (b *Backend) Poll(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	clusters, err := clustersOf(ids)
	if err != nil || len(clusters) == 0 {
		return map[string]batch.Status{}, err
	}
	argv := append([]string{"condor_q", "-json", "-attributes", attributes}, clusters...)
	return b.query(ctx, argv, ids)
}

// History asks condor_history once for the jobs of ids that left the
// queue. The constraint names each cluster's range of procs, which keeps
// it short for large arrays, and -match stops the scan of the history
// (newest first) once every job in those ranges has been found: a job
// leaves the queue, and enters the history, once.
func (b *Backend) History(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	clusters, err := clustersOf(ids)
	if err != nil || len(clusters) == 0 {
		return map[string]batch.Status{}, err
	}
	lo, hi := map[string]int64{}, map[string]int64{}
	for _, id := range ids {
		c, p, _ := strings.Cut(id, ".")
		n, _ := strconv.ParseInt(p, 10, 64)
		if l, ok := lo[c]; !ok || n < l {
			lo[c] = n
		}
		if n > hi[c] {
			hi[c] = n
		}
	}
	terms := make([]string, len(clusters))
	var match int64
	for i, c := range clusters {
		terms[i] = fmt.Sprintf("ClusterId == %s && ProcId >= %d && ProcId <= %d", c, lo[c], hi[c])
		match += hi[c] - lo[c] + 1
	}
	argv := []string{"condor_history", "-json", "-attributes", attributes,
		"-match", strconv.FormatInt(match, 10), "-constraint", strings.Join(terms, " || ")}
	return b.query(ctx, argv, ids)
}

func (b *Backend) query(ctx context.Context, argv []string, ids []string) (map[string]batch.Status, error) {
	res, err := b.run(ctx, "", argv...)
	if err != nil {
		return nil, fmt.Errorf("htcondor: %s: %w", argv[0], err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("htcondor: %s exited with status %d: %s", argv[0], res.ExitCode, res.Brief())
	}
	all, err := ParseJobs(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("htcondor: reading %s's output: %w", argv[0], err)
	}
	out := make(map[string]batch.Status, len(ids))
	for _, id := range ids {
		if s, ok := all[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

// clustersOf returns the distinct clusters of ids "cluster.proc", in order.
func clustersOf(ids []string) ([]string, error) {
	seen := map[string]bool{}
	var clusters []string
	for _, id := range ids {
		c, p, ok := strings.Cut(id, ".")
		if !ok || !isNumber(c) || !isNumber(p) {
			return nil, fmt.Errorf("htcondor: %q is not a job id cluster.proc", id)
		}
		if !seen[c] {
			seen[c] = true
			clusters = append(clusters, c)
		}
	}
	return clusters, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// Cancel removes the jobs with one condor_rm. Jobs already gone are not
// an error: the engine cancels whatever it still believes in flight.
func (b *Backend) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := clustersOf(ids); err != nil {
		return err
	}
	res, err := b.run(ctx, "", append([]string{"condor_rm"}, ids...)...)
	if err != nil {
		return fmt.Errorf("htcondor: condor_rm: %w", err)
	}
	if res.ExitCode != 0 && !batch.OnlyAbout(res.Stderr, "not found", "Couldn't find/remove all jobs") {
		return fmt.Errorf("htcondor: condor_rm exited with status %d: %s", res.ExitCode, res.Brief())
	}
	return nil
}
