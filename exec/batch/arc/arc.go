// Package arc is the batch backend for ARC computing elements (NorduGrid
// A-REX): it submits jobs with arcsub, polls them with arcstat, fetches
// their logs with arcget and removes them with arckill and arcclean. ARC
// has no job arrays; an array's jobs go into one xRSL multi-job
// description, so one arcsub call submits them all.
package arc

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hepbuild/hepbuild/sandbox"
)

// Backend talks to ARC computing elements through the ARC client tools.
// It is safe for concurrent use: it keeps no state of its own, and the
// tools' job list is an SQLite database, which they lock (the tests do
// not run tools against one job list concurrently).
type Backend struct {
	ce      string
	jobList string
	proxy   string
	timeout time.Duration
	calls   atomic.Int64
}

// Option configures a Backend.
type Option func(*Backend)

// WithCE selects the computing element (arcsub -c): a host name or an
// endpoint URL such as https://ce.example.org:443/arex. Without it, the
// arrays' options must say where to submit (-c) or the client's
// configuration must name a default.
func WithCE(ce string) Option { return func(b *Backend) { b.ce = ce } }

// WithJobList sets the client's job list file (the tools' -j). The ARC
// tools only act on jobs listed there, so every call of a Backend uses the
// same file; it belongs under the output base, so that a restarted
// hepbuild polls the jobs it submitted before. Without it the tools use
// the user's default (~/.arc/jobs.dat).
func WithJobList(path string) Option { return func(b *Backend) { b.jobList = path } }

// WithProxy sets the X.509 proxy the tools present (X509_USER_PROXY).
// Without it they use the environment's, or ARC's default location.
func WithProxy(path string) Option { return func(b *Backend) { b.proxy = path } }

// WithTimeout bounds each tool run; the default is two minutes, as a
// status query of many jobs at a slow CE takes a while.
func WithTimeout(d time.Duration) Option { return func(b *Backend) { b.timeout = d } }

// New returns a Backend.
func New(opts ...Option) *Backend {
	b := &Backend{timeout: 2 * time.Minute}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Name is the executor's name.
func (b *Backend) Name() string { return "arc" }

// ShipsFiles says that ARC sends files with a job (xRSL inputfiles).
func (b *Backend) ShipsFiles() bool { return true }

// Calls is how many ARC tools the backend has run: tests check that a
// poll of many jobs is one call.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// clientArgs are the options every ARC tool takes: where the job list is
// and how long to wait for the service (-t, in seconds).
func (b *Backend) clientArgs() []string {
	var args []string
	if b.jobList != "" {
		args = append(args, "-j", b.jobList)
	}
	return append(args, "-t", strconv.Itoa(int(b.timeout.Seconds())))
}

// run runs one ARC tool. A tool that ran and failed is a result, not an
// error: each caller knows which exit statuses mean something.
func (b *Backend) run(ctx context.Context, argv []string) (sandbox.ToolResult, error) {
	b.calls.Add(1)
	t := sandbox.Tool{Argv: argv, Timeout: b.timeout + 30*time.Second}
	if b.proxy != "" {
		t.Env = map[string]string{"X509_USER_PROXY": b.proxy}
	}
	res, err := sandbox.RunTool(ctx, t)
	if err != nil {
		return res, fmt.Errorf("arc: %w", err)
	}
	return res, nil
}
