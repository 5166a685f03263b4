// Package glite is the batch.Backend for gLite/CREAM computing elements
// (legacy). CREAM has no job arrays: Submit runs one glite-ce-job-submit
// per job, a few at a time; Poll asks one glite-ce-job-status for every
// job in flight and Cancel uses one glite-ce-job-cancel. Job ids are the
// CREAM job URLs. The tools run through sandbox.RunTool.
package glite

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hepbuild/hepbuild/exec/batch"
	"github.com/hepbuild/hepbuild/exec/batch/internal/jobscript"
	"github.com/hepbuild/hepbuild/sandbox"
)

// submitters bounds concurrent glite-ce-job-submit runs: each one
// delegates and uploads its input sandbox, and a CE throttles clients
// that open many at once.
const submitters = 4

// Backend submits to one CREAM CE. It is safe for concurrent use.
type Backend struct {
	endpoint   string
	delegation string
	timeout    time.Duration
}

// Option configures a Backend.
type Option func(*Backend)

// Endpoint is the CE and queue, host:port/cream-LRMS-QUEUE (the -r of
// glite-ce-job-submit); an array's Options may name another with "-r ...".
func Endpoint(ce string) Option { return func(b *Backend) { b.endpoint = ce } }

// Delegation uses an existing proxy delegation (-D id) instead of
// delegating automatically for each submission (-a).
func Delegation(id string) Option { return func(b *Backend) { b.delegation = id } }

// ToolTimeout bounds each run of a CREAM tool (default one minute).
func ToolTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// New returns a gLite/CREAM backend.
func New(opts ...Option) *Backend {
	b := &Backend{}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name is "glite".
func (b *Backend) Name() string { return "glite" }

func (b *Backend) run(ctx context.Context, dir string, argv ...string) (sandbox.ToolResult, error) {
	return sandbox.RunTool(ctx, sandbox.Tool{Argv: argv, Dir: dir, Timeout: b.timeout})
}

var jobIDRE = regexp.MustCompile(`^https?://[^/\s]+:\d+/\S+$`)

// Submit writes job-I.sh and job-I.jdl for each job in a.Dir and submits
// each with its own glite-ce-job-submit. On an error, the ids of the jobs
// that were submitted are returned with it, empty for the others.
func (b *Backend) Submit(ctx context.Context, a *batch.Array) ([]string, error) {
	args := []string{"glite-ce-job-submit"}
	if b.delegation != "" {
		args = append(args, "-D", b.delegation)
	} else {
		args = append(args, "-a")
	}
	opts := jobscript.Args(a.Options)
	if !hasEndpoint(opts) {
		if b.endpoint == "" {
			return nil, fmt.Errorf("glite: no CE endpoint: give one as -r host:port/cream-LRMS-QUEUE")
		}
		args = append(args, "-r", b.endpoint)
	}
	args = append(args, opts...)
	jdls := make([]string, len(a.Jobs))
	for i, j := range a.Jobs {
		script := filepath.Join(a.Dir, fmt.Sprintf("job-%d.sh", i))
		if err := jobscript.Write(script, a.Name, []batch.Job{j}, "0", 0); err != nil {
			return nil, fmt.Errorf("glite: writing %s: %w", script, err)
		}
		jdls[i] = filepath.Join(a.Dir, fmt.Sprintf("job-%d.jdl", i))
		if err := os.WriteFile(jdls[i], JDL(script, a.Resources), 0o644); err != nil {
			return nil, fmt.Errorf("glite: %w", err)
		}
	}
	ids := make([]string, len(a.Jobs)) // each goroutine writes its own element
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(submitters)
	for i := range a.Jobs {
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // an earlier submission failed: do not hammer the CE
			}
			res, err := b.run(gctx, a.Dir, append(append([]string{}, args...), jdls[i])...)
			if err != nil {
				return fmt.Errorf("glite: glite-ce-job-submit %s: %w", jdls[i], err)
			}
			id := lastLine(res.Stdout)
			if res.ExitCode != 0 || !jobIDRE.MatchString(id) {
				return fmt.Errorf("glite: glite-ce-job-submit %s exited with status %d: %s", jdls[i], res.ExitCode, res.Brief())
			}
			ids[i] = id
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ids, err
	}
	// Submissions skipped because ctx ended leave empty ids behind.
	for i, id := range ids {
		if id == "" {
			return ids, fmt.Errorf("glite: job %d of %s not submitted: %w", i, a.Name, context.Cause(ctx))
		}
	}
	return ids, nil
}

func hasEndpoint(args []string) bool {
	for _, a := range args {
		if a == "-r" || a == "--resource" || strings.HasPrefix(a, "--resource=") {
			return true
		}
	}
	return false
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// JDL returns the job description of one job running script. The script
// goes in the input sandbox; the job writes its log itself (the engine's
// folder is on a shared file system), so the output sandbox keeps only
// what the job wrapper prints. Resources map to CpuNumber and SMPGranularity
// (cores on one node) and to CERequirements on the Glue attributes a
// CREAM CE passes to its batch system: GlueHostMainMemoryRAMSize (MB)
// and GlueCEPolicyMaxWallClockTime (minutes).
func JDL(script string, r batch.Request) []byte {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("[")
	line("Type = \"Job\";")
	line("JobType = \"Normal\";")
	line("Executable = %q;", filepath.Base(script))
	line("InputSandbox = {%q};", script)
	line("StdOutput = \"stdout\";")
	line("StdError = \"stderr\";")
	line("OutputSandbox = {\"stdout\", \"stderr\"};")
	if r.CPU > 1 {
		n := int(math.Ceil(r.CPU))
		line("CpuNumber = %d;", n)
		line("SMPGranularity = %d;", n)
	}
	var req []string
	if r.Memory > 0 {
		req = append(req, fmt.Sprintf("other.GlueHostMainMemoryRAMSize >= %d", (r.Memory+(1<<20)-1)>>20))
	}
	if r.Walltime > 0 {
		req = append(req, fmt.Sprintf("other.GlueCEPolicyMaxWallClockTime >= %d", int64(math.Ceil(r.Walltime.Minutes()))))
	}
	if len(req) > 0 {
		line("CERequirements = %q;", strings.Join(req, " && "))
	}
	line("]")
	return []byte(b.String())
}

// Poll asks one glite-ce-job-status for all ids. A job the CE does not
// know (purged) is absent.
func (b *Backend) Poll(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	if len(ids) == 0 {
		return map[string]batch.Status{}, nil
	}
	if err := checkIDs(ids); err != nil {
		return nil, err
	}
	args, done, err := idArgs(ids)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := b.run(ctx, "", append([]string{"glite-ce-job-status", "-L", "1"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("glite: glite-ce-job-status: %w", err)
	}
	all, err := ParseStatus(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("glite: reading glite-ce-job-status' output: %w", err)
	}
	if len(all) == 0 && res.ExitCode != 0 {
		return nil, fmt.Errorf("glite: glite-ce-job-status exited with status %d: %s", res.ExitCode, res.Brief())
	}
	out := make(map[string]batch.Status, len(ids))
	for _, id := range ids {
		if s, ok := all[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

// maxIDArgs is how many job ids go on the command line; more go in a
// file (-i), as thousands of URLs would pass the kernel's limit on a
// command line.
var maxIDArgs = 1000

// idArgs returns the arguments naming ids, and a function that removes
// the file it may have written.
func idArgs(ids []string) ([]string, func(), error) {
	if len(ids) <= maxIDArgs {
		return ids, func() {}, nil
	}
	f, err := os.CreateTemp("", "hepbuild-cream-ids-*")
	if err != nil {
		return nil, nil, fmt.Errorf("glite: %w", err)
	}
	done := func() { os.Remove(f.Name()) }
	// The format of glite-ce-job-submit -o: a header line, then one id a line.
	_, err = fmt.Fprintf(f, "##CREAMJOBS##\n%s\n", strings.Join(ids, "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("glite: writing job ids: %w", err)
	}
	return []string{"-i", f.Name()}, done, nil
}

func checkIDs(ids []string) error {
	for _, id := range ids {
		if !jobIDRE.MatchString(id) {
			return fmt.Errorf("glite: %q is not a CREAM job id", id)
		}
	}
	return nil
}

// Cancel cancels the jobs with one glite-ce-job-cancel -N (no question
// asked). Jobs the CE no longer knows, or that ended, are not an error.
func (b *Backend) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := checkIDs(ids); err != nil {
		return err
	}
	args, done, err := idArgs(ids)
	if err != nil {
		return err
	}
	defer done()
	res, err := b.run(ctx, "", append([]string{"glite-ce-job-cancel", "-N"}, args...)...)
	if err != nil {
		return fmt.Errorf("glite: glite-ce-job-cancel: %w", err)
	}
	// The CREAM CLI prints its errors on either stream.
	if res.ExitCode != 0 && !batch.OnlyAbout(append(append([]byte{}, res.Stderr...), res.Stdout...), "not found", "does not allow the cancel") {
		return fmt.Errorf("glite: glite-ce-job-cancel exited with status %d: %s", res.ExitCode, res.Brief())
	}
	return nil
}
