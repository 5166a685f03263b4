package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
)

// Executor runs one action whose inputs are in place under root (the exec
// root) and writes its outputs there. The error is an infrastructure failure
// (could not run); a command that ran and failed is an ExecResult.
// Implementations are safe for concurrent use.
type Executor interface {
	Execute(ctx context.Context, a *Action, root string, logPath string) (ExecResult, error)
}

// ExecResult is how an executed action ended.
type ExecResult struct {
	// ExitCode is the exit status; -1 when killed by a signal or not started.
	ExitCode int
	// Signal names the signal that killed the process, if any.
	Signal string
	// TimedOut says that the action exceeded its timeout and was stopped.
	TimedOut bool
	// Timeout is the bound that was exceeded, for the message.
	Timeout time.Duration
	// StartError says why the command could not be started (not found, not
	// executable); a failure of the action, not of the machine.
	StartError string
	// Failure says why an action that started, or whose environment was being
	// set up, failed other than by its exit status: "exceeded its memory
	// limit of 2 GB", "environment //envs:py: pip install failed".
	Failure  string
	Duration time.Duration
	// CPU is the user and system CPU time of the command; zero where it
	// is not known (a batch job, remote execution).
	CPU time.Duration
	// Strategy names the sandbox the action ran in.
	Strategy string
}

// Success reports whether the action ran and exited with status 0.
func (r ExecResult) Success() bool {
	return r.ExitCode == 0 && r.Signal == "" && !r.TimedOut && r.StartError == "" && r.Failure == ""
}

// reason says why a failed run failed, for ActionError.Reason.
func (r ExecResult) reason() string {
	switch {
	case r.StartError != "":
		return r.StartError
	case r.Failure != "":
		return r.Failure
	case r.TimedOut:
		return "timed out after " + r.Timeout.String()
	case r.Signal != "":
		return "killed by signal " + r.Signal
	}
	return fmt.Sprintf("exit status %d", r.ExitCode)
}

// tailLines is how many lines of a failed action's log go into its error.
const tailLines = 20

// Runner does the work of one action (see Work): it decides whether the
// action's outputs are up to date, restorable from the cache or must be
// made, and makes them so. Configure it before the first call; after that
// it is safe for concurrent use: Work runs on many goroutines at once. A
// Runner serves one build: it remembers the files the build restored and
// the sources it read (see freshInput and freshSource).
type Runner struct {
	// ExecRoot is the workspace root; hepbuild-out in it links to OutputBase/out.
	ExecRoot string
	// OutputBase holds out/, logs/, the journal and the sandboxes (see PrepareOutputBase).
	OutputBase string
	// Cache stores results by action key; nil means no cache. A failing cache
	// is disabled for the rest of the build with one warning.
	Cache    cache.Cache
	Executor Executor
	// Stat digests input files; nil hashes every file every time.
	Stat *cache.StatCache
	// Journal records what earlier builds made, to skip up-to-date actions;
	// nil means every action is looked up in the cache or run.
	Journal *Journal
	// Events receives warnings; the scheduler reports the actions themselves.
	Events EventSink
	// Warn receives warnings as text; nil means only Events gets them.
	Warn func(string)
	// Reasons, when set, is told why an action that must run does (what
	// explain would say: what changed since its last run in this output
	// base), with its key, just before it runs here or away. See reasons.go.
	Reasons func(a *Action, key string, why []string)
	// Download says which outputs of results restored from the cache are
	// written to the output tree; the others are kept only in the cache
	// and recorded in the journal (DownloadAll without a journal).
	Download DownloadMode
	// TopLevel holds the paths of the outputs the build was asked for,
	// which DownloadTopLevel writes.
	TopLevel map[string]bool
	// Route picks the remote executor (batch system, REAPI service) that
	// runs an action away from this machine; nil, or a nil answer, runs
	// it here with Executor. The results of remote runs come back through
	// the cache, so an action routed away needs one.
	Route func(*Action) RemoteExecutor
	// Coordinator, when set, shares work with concurrent builds of the
	// group: an action that missed the cache is claimed before it runs,
	// locally or remotely, and one that another build runs meanwhile is
	// waited for and restored from the cache. Nil runs every miss.
	Coordinator Coordinator

	once  sync.Once
	cache *guardedCache
	// outRoot is the output tree (<output base>/out) when the exec root's
	// hepbuild-out links to it, as PrepareOutputBase makes it: see abs.
	outRoot string
	// fetching serialises the fetches of one output kept only in the
	// cache, which several actions may need at once (see fetchInput).
	fetchMu  sync.Mutex
	fetching map[string]*sync.Mutex
	lost     map[string]string // inputs the cache lost, with the reason
	// fresh holds the output files this build restored, by path (see
	// freshInput).
	fresh sync.Map
	// sources holds the source files this build digested, by path (see
	// freshSource).
	sources sync.Map
	// blobUses counts, by file, how often this build found a disk cache
	// blob to link an output to (see noteBlobUse and stampStats).
	blobMu   sync.Mutex
	blobUses map[fileID]int
	// realDirs holds the folders of the output tree, relative to the exec
	// root, that makeOutputParents made real during this build, each with
	// the commandEpoch it was checked in (see outputParents).
	realDirs sync.Map
	// commandEpoch changes as each command starts and ends;
	// commandsRunning counts those running.
	commandEpoch    atomic.Int64
	commandsRunning atomic.Int64
	// logsMade holds the log paths handed out to be written in this
	// build; logsOld whether the logs folder held anything before (see
	// mayHaveLog).
	logsMade sync.Map
	logsAny  atomic.Bool // logsMade holds any
	logsOnce sync.Once
	logsOld  bool
	// commandCPU sums the CPU time of the commands run, in nanoseconds.
	commandCPU atomic.Int64
}

// CommandCPU is the CPU time the commands that ran on this machine used,
// as far as the sandboxes know it: hepbuild's own time is the rest of the
// process's.
func (r *Runner) CommandCPU() time.Duration { return time.Duration(r.commandCPU.Load()) }

// DownloadMode says which outputs of an action result restored from the
// cache are written to the output tree ("build without the bytes"). An
// output not written exists only in the cache: its dependents are keyed
// from its digest in the journal, and it is fetched only before an action
// that reads it runs.
type DownloadMode int

const (
	// DownloadAll writes every output, and restores those an earlier
	// build kept only in the cache.
	DownloadAll DownloadMode = iota
	// DownloadTopLevel writes the outputs of the actions that make an
	// output in Runner.TopLevel.
	DownloadTopLevel
	// DownloadMinimal writes none.
	DownloadMinimal
)

var downloadModes = []string{"all", "toplevel", "minimal"}

func (m DownloadMode) String() string {
	if m < 0 || int(m) >= len(downloadModes) {
		return fmt.Sprintf("DownloadMode(%d)", int(m))
	}
	return downloadModes[m]
}

// ParseDownloadMode parses "all", "toplevel" or "minimal".
func ParseDownloadMode(s string) (DownloadMode, error) {
	if i := slices.Index(downloadModes, s); i >= 0 {
		return DownloadMode(i), nil
	}
	return 0, fmt.Errorf("unknown download mode %q (want %s)", s, strings.Join(downloadModes, ", "))
}

// wantsBytes reports whether a result of the action restored from the
// cache is written to the output tree. Output folders and links always
// are: only plain files are kept in the cache alone.
func (r *Runner) wantsBytes(a *Action) bool {
	if r.Download == DownloadAll || r.Journal == nil {
		return true
	}
	for _, o := range a.Outputs {
		if o.Dir || o.Symlink || (r.Download == DownloadTopLevel && r.TopLevel[o.Path]) {
			return true
		}
	}
	return false
}

func (r *Runner) init() {
	r.once.Do(func() {
		r.cache = newGuardedCache(r.Cache, r.warn)
		if r.OutputBase != "" {
			out, err := filepath.Abs(filepath.Join(r.OutputBase, "out"))
			if t, lerr := os.Readlink(filepath.Join(r.ExecRoot, OutDir)); err == nil && lerr == nil && t == out {
				r.outRoot = out
			}
		}
	})
}

func (r *Runner) warn(msg string) {
	if r.Warn != nil {
		r.Warn(msg)
	}
	if r.Events != nil {
		r.Events.Event(Event{Type: EventWarning, Time: time.Now(), Message: msg})
	}
}

// Work brings the action's outputs up to date: nothing to do when the
// journal says they were made by an action with the same key and are
// unchanged (OutcomeUpToDate), restored from the action cache
// (OutcomeCached), or run (OutcomeExecuted). A failure of the action is an
// *ActionError; it never leaves an output behind. It is an exec.Work.
func (r *Runner) Work(ctx context.Context, a *Action) (Outcome, error) {
	ctx = localOnly(ctx, a)
	// An input edited while it was digested or while the command ran
	// means the key names other inputs than the outputs were made from: the
	// action starts again from its inputs' current content, a few times,
	// and then fails naming the input that keeps changing.
	for attempt := 1; ; attempt++ {
		o, err := r.work(ctx, a)
		var ce *inputChangedError
		if !errors.As(err, &ce) {
			return o, err
		}
		// What this build restored is no longer what is there: the next
		// attempt stats its inputs again. Nothing else may tell it so: a
		// remote executor's upload, say, runs no command here.
		r.fresh.Delete(ce.path)
		r.sources.Delete(ce.path)
		for _, in := range a.Inputs {
			r.fresh.Delete(in.Path)
			r.sources.Delete(in.Path)
		}
		if attempt == inputAttempts {
			ae := ce.failure
			ae.Reason = fmt.Sprintf("input %s kept changing while the action was keyed and run (%d attempts); nothing was kept", ce.path, attempt)
			return OutcomeFailed, ae
		}
		r.warn(fmt.Sprintf("%s: %s: input %s changed while the action was keyed and run; nothing was kept, running it again", a.Pos, a.Owner, ce.path))
	}
}

// inputAttempts bounds how often Work starts an action again because an
// input changed under it.
const inputAttempts = 3

// inputChangedError says that an input changed between the moment it was
// stat'ed for its digest and the moment the result would have been stored.
type inputChangedError struct {
	path    string
	failure *ActionError // the action's failure, should it be the last attempt
}

func (e *inputChangedError) Error() string {
	return "input " + e.path + " changed while the action was keyed and run"
}

func (r *Runner) work(ctx context.Context, a *Action) (Outcome, error) {
	in, key, upToDate, err := r.plan(a)
	switch {
	case err != nil:
		return OutcomeFailed, err
	case upToDate:
		return OutcomeUpToDate, nil
	}
	return r.make(ctx, a, key, in)
}

// make restores the action's outputs from the cache, or runs it.
func (r *Runner) make(ctx context.Context, a *Action, key *Key, in *inputDigests) (Outcome, error) {
	if ok, err := r.restore(ctx, a, key, in); err != nil {
		return OutcomeFailed, err
	} else if ok {
		return OutcomeCached, nil
	}
	if err := r.completeKey(a, in, key); err != nil {
		return OutcomeFailed, err
	}
	if r.coordinated(a) {
		return r.makeClaimed(ctx, a, key, in)
	}
	if err := r.execute(ctx, a, key, in); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeExecuted, nil
}

// coordinated says whether the action is claimed before it runs: only
// commands and downloads are worth a round trip to the coordinator; a
// file written or copied is made faster than it is claimed. Its result
// must reach the other builds through the cache.
func (r *Runner) coordinated(a *Action) bool {
	return r.Coordinator != nil && (a.Kind == KindRun || a.Kind == KindFetch) && r.cacheable(a)
}

// executeClaimed runs an action whose key this build claimed, and
// releases the claim however the run ends (a panic included, which the
// scheduler turns into a failure): waiters must not wait for a run that
// is over.
func (r *Runner) executeClaimed(ctx context.Context, a *Action, key *Key, in *inputDigests, release func(ok bool)) (Outcome, error) {
	stored := false
	defer func() {
		// Waiters restore the result only when it is in the cache; a
		// cache that failed while storing it did not keep it.
		release(stored && r.cache.usable())
	}()
	if err := r.execute(ctx, a, key, in); err != nil {
		return OutcomeFailed, err
	}
	stored = true
	return OutcomeExecuted, nil
}

// claimRounds bounds how often an action that another build ran is looked
// up and claimed again because its result is not in this build's cache
// (the holder's store failed, or the caches are not shared): the
// coordinator grants a second claim by then, and should it keep saying
// "done", the action runs unclaimed rather than never.
const claimRounds = 3

// makeClaimed runs an action that missed the cache once the Coordinator
// grants its key, or restores it from the cache when another build of the
// group ran it meanwhile. A wait for another build holds no job slot and
// does not count in the action's walltime (Unslotted).
func (r *Runner) makeClaimed(ctx context.Context, a *Action, key *Key, in *inputDigests) (Outcome, error) {
	k := key.Digest.String()
	wctx, yield := Unslotted(ctx)
	for round := 1; round <= claimRounds; round++ {
		var waited atomic.Bool
		run, release, err := r.Coordinator.Claim(wctx, a, k, func(holder string) {
			if waited.Swap(true) {
				return
			}
			yield()
			if r.Events != nil {
				msg := "waiting for " + holder
				r.Events.Event(Event{Type: EventActionWaiting, Time: time.Now(), Target: a.Owner.String(), Mnemonic: a.Mnemonic,
					Key: k, Message: msg, Action: a})
			}
		})
		if waited.Load() {
			// The slot went back: the command waits for another, and its
			// walltime starts then (AcquireSlot on wctx).
			ctx = wctx
		}
		if err != nil {
			if errors.Is(context.Cause(wctx), errNoSlot) {
				return OutcomeSkipped, errNoSlot // the build stopped during the wait
			}
			return OutcomeFailed, err
		}
		if run {
			if waited.Load() && r.Events != nil {
				// The wait is over: the action's own run starts.
				r.Events.Event(Event{Type: EventActionStarted, Time: time.Now(), Target: a.Owner.String(), Mnemonic: a.Mnemonic,
					Message: a.Describe(), Key: k, Action: a})
			}
			return r.executeClaimed(ctx, a, key, in, release)
		}
		if ok, err := r.restore(ctx, a, key, in); err != nil {
			return OutcomeFailed, err
		} else if ok {
			return OutcomeCached, nil
		}
	}
	if err := r.execute(ctx, a, key, in); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeExecuted, nil
}

// localOnly marks the context of an action whose results stay on this
// machine: a remote cache tier neither gives nor takes them.
func localOnly(ctx context.Context, a *Action) context.Context {
	if a.HasTag("no-remote-cache") || a.HasTag("no-remote") {
		return cache.WithLocalOnly(ctx)
	}
	return ctx
}

// WorkAs does the work of an action that must have the key want, as a
// worker on a batch node does: it recomputes the key from the action and
// the inputs in the exec root, and refuses (without running anything) an
// action whose key is another, so that no description, however forged,
// can put a result under a key that does not name what ran.
func (r *Runner) WorkAs(ctx context.Context, a *Action, want cache.Digest) (Outcome, error) {
	in, key, _, err := r.plan(a)
	if err == nil && key != nil {
		// The key is checked whole, never taken from the journal.
		err = r.completeKey(a, in, key)
	}
	if err != nil {
		return OutcomeFailed, err
	}
	if key == nil || key.Digest != want {
		got := "none"
		if key != nil {
			got = key.Digest.String()
		}
		return OutcomeFailed, fmt.Errorf("%w: asked to run %s, the description and inputs make %s", ErrKeyMismatch, want, got)
	}
	return r.make(ctx, a, key, in)
}

// ErrKeyMismatch says that an action's description and inputs do not make
// the key a worker was asked to run.
var ErrKeyMismatch = errors.New("the action does not have the key it was sent with")

// plan digests the action's inputs and says whether its outputs are up to
// date. When the journal's fingerprint matches, the full key is not even
// computed: key is nil when the outputs are up to date, and otherwise the
// partial key the journal recorded, which is all a restore needs (equal
// fingerprints imply equal keys, see fingerprint). Otherwise key is the
// action's key.
func (r *Runner) plan(a *Action) (in *inputDigests, key *Key, upToDate bool, err error) {
	r.init()
	in = &inputDigests{r: r, a: a}
	fp, err := r.fingerprint(a, in)
	if err != nil {
		return nil, nil, false, err
	}
	recorded, checked := r.recordedKey(a, fp)
	if checked {
		if r.upToDateFP(a, recorded, fp) {
			return in, nil, true, nil
		}
		// The usual case after clean: the outputs are gone, and the
		// journal's key memo says what the key is.
		env, err := EnvironmentDigest(a.Environment, in)
		if err != nil {
			return nil, nil, false, r.keyError(a, fmt.Errorf("keying %s: %w", a.Describe(), err))
		}
		return in, &Key{Digest: recorded, Environment: env, fingerprint: fp, partial: true}, false, nil
	}
	if key, err = r.key(a, in); err != nil {
		return nil, nil, false, err
	}
	key.fingerprint = fp
	return in, key, r.upToDateFP(a, key.Digest, fp), nil
}

// completeKey computes the whole of a partial key (see plan) in place:
// running an action, or sending it away, needs its Command and Action
// messages, not only their digest.
func (r *Runner) completeKey(a *Action, in *inputDigests, key *Key) error {
	if !key.partial {
		return nil
	}
	full, err := r.key(a, in)
	if err != nil {
		return err
	}
	full.fingerprint = key.fingerprint
	*key = *full
	return nil
}

// Check says what Work would do, without doing it: OutcomeUpToDate,
// OutcomeCached (the action cache has a result) or OutcomeExecuted (it must
// run). It backs `hepbuild status`; it does not verify that the cached blobs
// are still present.
func (r *Runner) Check(ctx context.Context, a *Action) (Outcome, error) {
	ctx = localOnly(ctx, a)
	_, key, upToDate, err := r.plan(a)
	switch {
	case err != nil:
		return OutcomeFailed, err
	case upToDate:
		return OutcomeUpToDate, nil
	}
	if r.cacheable(a) {
		if res, ok := r.cache.actionResult(ctx, key.Digest); ok && resultCovers(a, res) {
			return OutcomeCached, nil
		}
	}
	return OutcomeExecuted, nil
}

// testHookKeyed, when set by a test, is called each time the runner
// computes an action's whole key.
var testHookKeyed func(a *Action)

// key computes the action's key; a missing input is the action's failure.
func (r *Runner) key(a *Action, in *inputDigests) (*Key, error) {
	if testHookKeyed != nil {
		testHookKeyed(a)
	}
	key, err := ComputeKey(a, in)
	if err != nil {
		return nil, r.keyError(a, err)
	}
	return key, nil
}

// fingerprint computes the action's fingerprint, when there is a journal to
// look it up in; a missing input is the action's failure.
func (r *Runner) fingerprint(a *Action, in *inputDigests) (string, error) {
	if r.Journal == nil || len(a.Outputs) == 0 {
		return "", nil
	}
	fp, err := fingerprint(a, in)
	if err != nil {
		return "", r.keyError(a, err)
	}
	return fp, nil
}

func (r *Runner) keyError(a *Action, err error) error {
	var ae *ActionError
	if errors.As(err, &ae) {
		return ae
	}
	return fmt.Errorf("%s: %s: %w", a.Pos, a.Owner, err)
}

// recordedKey returns the key that the journal recorded for the action's
// first output together with the fingerprint fp: the action's key, without
// computing it.
func (r *Runner) recordedKey(a *Action, fp string) (cache.Digest, bool) {
	if fp == "" {
		return cache.Digest{}, false
	}
	key, ok := r.Journal.recordedKey(a.Outputs[0].Path, fp)
	if !ok {
		return cache.Digest{}, false
	}
	return key, true
}

func (r *Runner) cacheable(a *Action) bool {
	return r.cache.usable() && !a.HasTag("no-cache")
}

// abs is the path of p, relative to the exec root, on the host. An output
// is reached in the output tree itself, not through the workspace's link
// to it: what hepbuild writes and removes stays in its own folders
// whatever a command run without the sandbox made of the link, and no
// path lookup follows the link again (an lstat of an output took 2.8 µs
// through it, 2.1 µs without; a restore makes three or four per output).
func (r *Runner) abs(p string) string {
	if rest, ok := strings.CutPrefix(p, OutDir+"/"); ok && r.outRoot != "" {
		return filepath.Join(r.outRoot, rest)
	}
	return filepath.Join(r.ExecRoot, p)
}

// checkOutLink fails the action, before it runs, when the exec root's
// hepbuild-out no longer links to the output tree the runner works in (see
// abs): a command run without the sandbox changed it, or a build of the
// workspace with another --output-base started meanwhile. The executor still
// reaches outputs through the link (a copy, a write, a sandbox moving a
// command's outputs out), so it would write and remove files in whatever
// folder the link now names, and its outputs would be missing from the
// output tree anyway. The next build puts the link back
// (PrepareOutputBase). A readlink per action run, against a run's fork
// and exec or file copy.
func (r *Runner) checkOutLink(a *Action) error {
	if r.outRoot == "" {
		return nil
	}
	t, err := os.Readlink(filepath.Join(r.ExecRoot, OutDir))
	if err == nil && t == r.outRoot {
		return nil
	}
	now := "is gone or not a link"
	if err == nil {
		now = "leads to " + t
	}
	return &ActionError{Action: a, ExitCode: -1, Command: describeCommand(a),
		Reason: fmt.Sprintf("%s no longer links to the output tree %s (it %s): a command run without the sandbox, or a build of this workspace with another output base, changed it since this build began; nothing was run, and the next build puts the link back", OutDir, r.outRoot, now)}
}

// outTree is the output tree on the host: what hepbuild-out stands for.
func (r *Runner) outTree() string {
	if r.outRoot != "" {
		return r.outRoot
	}
	return filepath.Join(r.ExecRoot, OutDir)
}

// upToDate reports whether the journal says every output was made by an
// action with this key and is unchanged since. An output whose stat changed
// but whose content did not (a cache touching a shared inode) still counts.
func (r *Runner) upToDate(a *Action, key cache.Digest) bool { return r.upToDateFP(a, key, "") }

// upToDateFP is upToDate that also teaches the records the action's
// fingerprint fp (unless ""), so that the next check can skip the key.
func (r *Runner) upToDateFP(a *Action, key cache.Digest, fp string) bool {
	j := r.Journal
	if j == nil || len(a.Outputs) == 0 {
		return false
	}
	for _, o := range a.Outputs {
		rec, ok := j.output(o.Path)
		if !ok || rec.Key != key {
			return false
		}
		if rec.Remote {
			// Kept only in the cache: up to date while nothing is at its
			// path and the build does not want its bytes.
			if r.wantsBytes(a) {
				return false
			}
			if _, err := os.Lstat(r.abs(o.Path)); !errors.Is(err, fs.ErrNotExist) {
				return false
			}
			if fp != "" && rec.Fingerprint != fp {
				j.recordRemote(o.Path, key, fp, rec.Digest, rec.Executable)
			}
			continue
		}
		fi, err := os.Lstat(r.abs(o.Path))
		isLink := err == nil && fi.Mode()&fs.ModeSymlink != 0
		if err != nil || fi.IsDir() != o.Dir || (!o.Dir && !fi.Mode().IsRegular() && !isLink) {
			return false
		}
		if !o.Dir && rec.sameStat(fi) {
			if fp != "" && rec.Fingerprint != fp {
				j.record(o.Path, key, fp, rec.Digest, fi)
			}
			continue
		}
		if !o.Dir && !isLink && fi.Size() != rec.Digest.Size {
			return false
		}
		d, err := r.digestOutput(o)
		if err != nil || d != rec.Digest {
			return false
		}
		if !o.Dir {
			if fp == "" {
				fp = rec.Fingerprint
			}
			j.record(o.Path, key, fp, d, fi)
		}
	}
	return true
}

// digestOutput digests an output file, or an output folder's listing.
// A link is identified by its target, never followed.
func (r *Runner) digestOutput(o Artifact) (cache.Digest, error) {
	p := r.abs(o.Path)
	if o.Dir {
		return r.dirDigest(p)
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		return linkDigest(t), err
	}
	return r.fileDigest(p)
}

func (r *Runner) fileDigest(path string) (cache.Digest, error) {
	d, _, err := r.fileDigestInfo(path)
	return d, err
}

// fileDigestInfo digests a file, following symlinks, and reports whether
// it is executable.
func (r *Runner) fileDigestInfo(path string) (cache.Digest, bool, error) {
	if r.Stat != nil {
		return r.Stat.DigestInfo(path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return cache.Digest{}, false, err
	}
	d, err := cache.FromFile(path)
	return d, fi.Mode()&0o111 != 0, err
}

// dirDigest identifies a folder by its files' paths, digests and executable
// bits, for the journal; it is not the REAPI tree digest.
func (r *Runner) dirDigest(path string) (cache.Digest, error) {
	entries, err := r.listDir(path, true)
	if err != nil {
		return cache.Digest{}, err
	}
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\x00%s\x00%t\n", e.Path, e.Digest, e.Executable)
	}
	return cache.FromBytes(b.Bytes()), nil
}

// listDir returns every regular file below the folder, sorted by path.
// With keepLinks (an output folder: its links were checked to stay inside
// it) a link is an entry identified by its target, never followed, so a
// changed target shows; otherwise (a source folder) links are followed.
// Other special files are an error.
func (r *Runner) listDir(root string, keepLinks bool) ([]FileEntry, error) {
	var out []FileEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if keepLinks && d.Type()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, FileEntry{Path: filepath.ToSlash(rel), Digest: linkDigest(t)})
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		dg, err := r.fileDigest(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, FileEntry{Path: filepath.ToSlash(rel), Digest: dg, Executable: fi.Mode()&0o111 != 0})
		return nil
	})
	return out, err
}

// inputDigests gives ComputeKey the digests of an action's inputs. Generated
// inputs recorded in the journal with an unchanged stat are not read again.
type inputDigests struct {
	r *Runner
	a *Action
	// files holds what is known of each input file (and of each file below
	// a folder input, for the explain log), by path: most actions have a
	// few inputs, and one slice costs less than a map for each fact.
	files []inputFile
	// index finds a path in files once there are more than a few.
	index   map[string]int
	listing map[string][]FileEntry
	// links holds the target of each declared-link input, read once:
	// the link is its target, so a retargeted link is a changed input.
	links map[string]string
	// generatedDirs are the folder inputs made by actions, whose links
	// are kept as links when listed (see listDir).
	generatedDirs map[string]bool
	// remote holds the inputs kept only in the cache, digested from their
	// journal records, by path: fetched before the action runs.
	remote map[string]outputRecord
}

// inputFile is what inputDigests knows of one path.
type inputFile struct {
	path string
	// seen is the digest handed out, for the explain log (see seen).
	seen    cache.Digest
	hasSeen bool
	// memo keeps what Digest returned, so that the fingerprint and then
	// the key look at each input once.
	memo    digestInfo
	hasMemo bool
	// baseline is the file's stat taken before it was digested; changed
	// compares it with the file at the end.
	baseline    pathStat
	hasBaseline bool
}

// indexAbove is how many files inputDigests searches one by one.
const indexAbove = 8

// find returns the entry of the path, or nil. It is valid until the next
// call of file.
func (in *inputDigests) find(p string) *inputFile {
	if in.index != nil {
		if i, ok := in.index[p]; ok {
			return &in.files[i]
		}
		return nil
	}
	for i := range in.files {
		if in.files[i].path == p {
			return &in.files[i]
		}
	}
	return nil
}

// file returns the entry of the path, added if need be. It is valid until
// the next call.
func (in *inputDigests) file(p string) *inputFile {
	if f := in.find(p); f != nil {
		return f
	}
	if in.files == nil {
		in.files = make([]inputFile, 0, max(len(in.a.Inputs), 1))
	}
	in.files = append(in.files, inputFile{path: p})
	switch {
	case in.index != nil:
		in.index[p] = len(in.files) - 1
	case len(in.files) > indexAbove:
		in.index = make(map[string]int, cap(in.files))
		for i := range in.files {
			in.index[in.files[i].path] = i
		}
	}
	return &in.files[len(in.files)-1]
}

// seen returns every digest handed out, by path, for the explain log.
func (in *inputDigests) seen() map[string]cache.Digest {
	n := 0
	for i := range in.files {
		if in.files[i].hasSeen {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	m := make(map[string]cache.Digest, n)
	for i := range in.files {
		if f := &in.files[i]; f.hasSeen {
			m[f.path] = f.seen
		}
	}
	return m
}

// testHookDigested, when set by a test, is called after each input file or
// folder is digested, with its path: the moment when an edit to an input
// already digested used to slip into a result stored under the old key.
var testHookDigested func(path string)

type digestInfo struct {
	d cache.Digest
	x bool
}

func (in *inputDigests) note(p string, d cache.Digest) {
	f := in.file(p)
	f.seen, f.hasSeen = d, true
}

// setBaseline records the stat of an input taken before its digest.
func (in *inputDigests) setBaseline(p string, st pathStat) {
	f := in.file(p)
	f.baseline, f.hasBaseline = st, true
}

func (in *inputDigests) missing(art Artifact, err error) error {
	a := in.a
	reason := fmt.Sprintf("input %s: %v", art.Path, err)
	if lost, ok := in.r.lostInput(art.Path); ok && errors.Is(err, fs.ErrNotExist) {
		return &ActionError{Action: a, ExitCode: -1, Reason: lost}
	}
	if errors.Is(err, fs.ErrNotExist) {
		what := "source file"
		if art.Dir {
			what = "source folder"
		}
		if !art.Source || strings.HasPrefix(art.Path, OutDir+"/") {
			what = "generated file (its action did not make it)"
		}
		reason = fmt.Sprintf("missing input %s: the %s does not exist", art.Path, what)
	}
	return &ActionError{Action: a, ExitCode: -1, Reason: reason}
}

func (in *inputDigests) Digest(art Artifact) (cache.Digest, bool, error) {
	if f := in.find(art.Path); f != nil && f.hasMemo {
		return f.memo.d, f.memo.x, nil
	}
	d, x, err := in.digest(art)
	if err == nil {
		f := in.file(art.Path)
		f.memo, f.hasMemo = digestInfo{d, x}, true
	}
	return d, x, err
}

func (in *inputDigests) digest(art Artifact) (cache.Digest, bool, error) {
	p := in.r.abs(art.Path)
	if art.Symlink {
		// A declared link is its target, which may lead anywhere: it is
		// never followed on the host.
		t, err := os.Readlink(p)
		if errors.Is(err, fs.ErrNotExist) {
			return cache.Digest{}, false, in.missing(art, err)
		}
		if err != nil {
			return cache.Digest{}, false, fmt.Errorf("reading link %s: %w", art.Path, err)
		}
		if in.links == nil {
			in.links = map[string]string{}
		}
		in.links[art.Path] = t
		d := linkDigest(t)
		in.note(art.Path, d)
		return d, false, nil
	}
	if !art.Source && strings.HasPrefix(art.Path, OutDir+"/") {
		if f, ok := in.r.freshInput(art.Path); ok {
			in.setBaseline(art.Path, f.st)
			if testHookDigested != nil {
				defer testHookDigested(art.Path)
			}
			in.note(art.Path, f.d)
			return f.d, f.x, nil
		}
	}
	generated := strings.HasPrefix(art.Path, OutDir+"/")
	if !generated {
		if f, ok := in.r.freshSource(art.Path); ok {
			in.setBaseline(art.Path, f.st)
			if testHookDigested != nil {
				defer testHookDigested(art.Path)
			}
			in.note(art.Path, f.d)
			return f.d, f.x, nil
		}
	}
	// The stat before the digest: whatever is read after it, an edit made
	// from here on shows in changed's stat. What the path leads to (fi)
	// serves the journal's and the stat cache's checks below.
	epoch := in.r.commandEpoch.Load()
	recorded := time.Now().UnixNano()
	st, fi, err := statPathInfo(p)
	if err == nil && st.exists {
		in.setBaseline(art.Path, st)
	}
	if testHookDigested != nil {
		defer testHookDigested(art.Path)
	}
	if j := in.r.Journal; j != nil {
		if rec, ok := j.output(art.Path); ok {
			if rec.Remote && absent(p) {
				// Kept only in the cache: its digest is known without it,
				// and it is fetched only if the action runs.
				if in.remote == nil {
					in.remote = map[string]outputRecord{}
				}
				in.remote[art.Path] = rec
				in.note(art.Path, rec.Digest)
				return rec.Digest, rec.Executable, nil
			}
			if fi != nil && rec.sameStat(fi) {
				in.note(art.Path, rec.Digest)
				return rec.Digest, fi.Mode()&0o111 != 0, nil
			}
		}
	}
	var d cache.Digest
	var x bool
	if fi != nil && in.r.Stat != nil {
		d, x, err = in.r.Stat.DigestInfoStat(p, fi, recorded)
	} else {
		d, x, err = in.r.fileDigestInfo(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return cache.Digest{}, false, in.missing(art, err)
	}
	if err != nil {
		return cache.Digest{}, false, fmt.Errorf("digesting %s: %w", art.Path, err)
	}
	if !generated && fi != nil && fi.Mode().IsRegular() && !st.racy(recorded) && !viaLink(st, fi) {
		in.r.sources.Store(art.Path, freshOutput{st: st, d: d, x: x, epoch: epoch})
	}
	in.note(art.Path, d)
	return d, x, nil
}

func (in *inputDigests) ListDir(art Artifact) ([]FileEntry, error) {
	if entries, ok := in.listing[art.Path]; ok {
		return entries, nil
	}
	entries, err := in.r.listDir(in.r.abs(art.Path), !art.Source)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", art.Path, err)
	}
	for _, e := range entries {
		in.note(art.Path+"/"+e.Path, e.Digest)
	}
	if in.listing == nil {
		in.listing = map[string][]FileEntry{}
	}
	in.listing[art.Path] = entries
	if !art.Source {
		if in.generatedDirs == nil {
			in.generatedDirs = map[string]bool{}
		}
		in.generatedDirs[art.Path] = true
	}
	if testHookDigested != nil {
		testHookDigested(art.Path)
	}
	return entries, nil
}

// changed names an input that is not what it was when it was digested, or
// "". A file whose stat (size, mtime, ctime, inode, device, mode) equals
// the baseline taken before its digest is unchanged; any other is digested
// again and compared, because a stat can change without the content (the
// linux sandbox's hard links change ctime, the disk cache refreshes the
// mtime of blobs that outputs are linked to). A folder is listed and
// digested again; the stat cache keeps that to a stat per unchanged file.
func (in *inputDigests) changed() string {
	var based []inputFile
	for _, f := range in.files {
		if f.hasBaseline {
			based = append(based, f)
		}
	}
	slices.SortFunc(based, func(a, b inputFile) int { return strings.Compare(a.path, b.path) })
	for _, f := range based {
		p, was := f.path, f.baseline
		abs := in.r.abs(p)
		if now, err := statPath(abs); err == nil && now == was {
			continue
		}
		m, ok := f.memo, f.hasMemo
		fi, serr := os.Stat(abs) // before the digest: what it vouches for
		d, x, err := in.r.fileDigestInfo(abs)
		if !ok || err != nil || d != m.d || x != m.x {
			return p
		}
		// A generated input whose stat moved without its content (the
		// linux sandbox's links change ctime): record the stat it has now,
		// so the next build need not hash it again.
		if j := in.r.Journal; j != nil && serr == nil {
			if rec, ok := j.output(p); ok && !rec.Remote && rec.Digest == d {
				j.record(p, rec.Key, rec.Fingerprint, d, fi)
			}
		}
	}
	for _, p := range sortedKeys(in.links) {
		if now, err := os.Readlink(in.r.abs(p)); err != nil || now != in.links[p] {
			return p
		}
	}
	for _, p := range sortedKeys(in.listing) {
		now, err := in.r.listDir(in.r.abs(p), in.generatedDirs[p])
		if err != nil || !slices.Equal(now, in.listing[p]) {
			return p
		}
	}
	return ""
}

// restore materialises the outputs from the action cache. It reports false
// (a miss) when the cache has no complete, intact result.
func (r *Runner) restore(ctx context.Context, a *Action, key *Key, in *inputDigests) (bool, error) {
	if !r.cacheable(a) {
		return false, nil
	}
	// Outputs that will be written come inlined with the result where the
	// cache can; those that stay in the cache are not downloaded at all.
	var res *repb.ActionResult
	var ok bool
	if r.wantsBytes(a) {
		res, ok = r.cache.resultToRestore(ctx, key.Digest, a)
	} else {
		res, ok = r.cache.actionResult(ctx, key.Digest)
	}
	if !ok {
		return false, nil
	}
	return r.restoreResult(ctx, a, key, in, res)
}

// restoreResult materialises the outputs a result from the cache names
// (a lookup's, or what a remote executor returned), or reports false
// when it does not cover the action or a blob is gone.
func (r *Runner) restoreResult(ctx context.Context, a *Action, key *Key, in *inputDigests, res *repb.ActionResult) (bool, error) {
	if !resultCovers(a, res) {
		return false, nil
	}
	// Whoever can write to a shared cache can add to a result: only what
	// the action declares is fetched, and recorded in the disk cache.
	res = declaredResult(a, res)
	if !r.wantsBytes(a) && len(res.GetOutputDirectories()) == 0 && len(resultLinks(res)) == 0 {
		err := r.available(ctx, key.Digest, res)
		if err == nil {
			return true, r.rememberRemote(a, key, in, res)
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// A blob is gone: the result is restored with its bytes, which
		// fails the same way, and the action runs.
	}
	if pf, ok := r.cache.c.(prefetcher); ok {
		// A result from a remote: its blobs come to the disk cache in
		// batches before anything in the output tree is touched.
		if err := pf.Prefetch(ctx, key.Digest, res); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if !errors.Is(err, cache.ErrNotFound) {
				r.cache.fail(ctx, "fetching the blobs of "+key.Digest.String(), err)
			}
			return false, nil
		}
	}
	r.forget(a)
	epoch := r.commandEpoch.Load()
	for _, o := range a.Outputs {
		r.fresh.Delete(o.Path)
	}
	if err := r.clearForRestore(a, res); err != nil {
		return false, err
	}
	digests, stats, err := r.materialize(ctx, a, res)
	if err != nil {
		_ = r.removeOutputs(a)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, nil // a blob went missing or is corrupt: run instead
	}
	if err := r.rememberStats(a, key, in, digests, stats); err != nil {
		return false, err
	}
	// stats holds the outputs when all are plain files (see materialize).
	for i, fi := range stats {
		r.fresh.Store(a.Outputs[i].Path, freshOutput{st: statOf(fi), d: digests[i], x: fi.Mode()&0o111 != 0, epoch: epoch})
	}
	r.restoreLog(ctx, a, res)
	return true, nil
}

// freshOutput is an output file this build restored, as its stat found it
// right after it was put in place (see inputDigests.digest).
type freshOutput struct {
	st    pathStat
	d     cache.Digest
	x     bool
	epoch int64 // commandEpoch before it was restored
}

// freshInput returns what the build knows of a generated input it
// restored itself, when no command started or ended since and none runs:
// nothing but a command (run without the linux sandbox) or someone outside
// hepbuild can have changed the file since, and a command that runs and
// reads it finds out in changed, where the stat that was recorded is the
// baseline. It saves an lstat per generated input of a restore.
func (r *Runner) freshInput(path string) (freshOutput, bool) { return r.quietLoad(&r.fresh, path) }

// quietLoad returns the entry of m at path while no command started or
// ended since it was stored, and none runs (see quietSince).
func (r *Runner) quietLoad(m *sync.Map, path string) (freshOutput, bool) {
	v, ok := m.Load(path)
	if !ok {
		return freshOutput{}, false
	}
	f := v.(freshOutput)
	if !r.quietSince(f.epoch) {
		return freshOutput{}, false
	}
	return f, true
}

// quietSince reports whether no command started or ended since
// commandEpoch was epoch, and none runs. The count of running commands is
// read first: execute counts a command as running before it moves the
// epoch, and moves the epoch again before it stops counting it, so a
// command that started and ended between the two reads still shows in
// the epoch read second. Read the other way round, it would show in
// neither.
func (r *Runner) quietSince(epoch int64) bool {
	if r.commandsRunning.Load() != 0 {
		return false
	}
	if testHookQuiet != nil {
		testHookQuiet()
	}
	return r.commandEpoch.Load() == epoch
}

// testHookQuiet, when set by a test, is called by quietSince between its
// two reads.
var testHookQuiet func()

// viaLink says whether statPathInfo followed a symbolic link to fi: the
// stat it returns then holds another inode than fi's (see statPathInfo).
func viaLink(st pathStat, fi fs.FileInfo) bool {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.ino != uint64(sys.Ino)
}

// freshSource returns what the build found of a source file when an
// earlier action digested it, while no command started or ended since
// that stat and none runs: it saves an lstat per action that reads a
// source many others read too. The argument is freshInput's: hepbuild
// itself writes only below OutDir, so nothing but a command (run without
// the linux sandbox, which would have moved the epoch) or someone outside
// hepbuild can have changed the file since that stat. An outside edit is
// then taken as made just after it, as any edit after a stat is: a
// command that reads the file finds it in changed, whose baseline is that
// stat, and the next build digests the file afresh (a Runner serves one
// build). A stat too recent to vouch for the content (racy) is not kept,
// nor one of a source that is a symbolic link: it may lead into the output
// tree, where a restore replaces files without a command.
func (r *Runner) freshSource(path string) (freshOutput, bool) { return r.quietLoad(&r.sources, path) }

// fileID names a file (not a path) on this machine.
type fileID struct{ dev, ino uint64 }

// noteBlobUse counts a use of the blob file the cache returned to link an
// output to: the link, and a touch of its times the cache may have made
// when it returned it, each change the ctime of every output that is a
// link to that file.
func (r *Runner) noteBlobUse(fi fs.FileInfo) {
	st := statOf(fi)
	r.blobMu.Lock()
	if r.blobUses == nil {
		r.blobUses = map[fileID]int{}
	}
	r.blobUses[fileID{st.dev, st.ino}]++
	r.blobMu.Unlock()
}

// stampStats returns what the build knows without a stat of the output
// file at a path (relative to the exec root): for one it restored as the
// sole use of its file, in a build that ran no command, the stat taken
// right after it was put in place, and its digest; nil when a command
// ran. Call it once the build is done: no restore may run while the
// function returned is used (it reads blobUses without the lock, on the
// stamp's goroutines; the lock taken here orders it after every count).
//
// Why that is the file's state now: since then, a change to the file
// would be by a command (none ran here, and sandboxes link and unlink only
// for commands), by this runner (it restores an output once, and every
// other link it made to a disk cache blob, or touch of one, is counted in
// blobUses: a second use of the same file, which would move the ctime of
// this output, disqualifies it), or from outside hepbuild (another build
// sharing the disk cache linking the same blob, someone editing the
// output). None of those can make the stamp match wrongly: a stat recorded
// earlier than the change differs from the file's stat after it (the ctime
// moves, and never back), so the next check of the stamp fails and the
// build looks at everything. It only costs that null build. A change that
// left the stat as it was (within one clock tick) would be as invisible
// to an lstat now. When nothing changed, the stat is the one an lstat now
// would return, so the stamp judges it racy or not as it would have, and
// the digest, taken as the output was restored, is the one the journal
// holds for it. Where the file system keeps no inode numbers (statOf
// finds none), all blobs count as one file, used more than once.
func (r *Runner) stampStats() func(path string) (pathStat, cache.Digest, bool) {
	if r.commandEpoch.Load() != 0 || r.commandsRunning.Load() != 0 {
		return nil
	}
	r.blobMu.Lock()
	uses := r.blobUses
	r.blobMu.Unlock()
	return func(path string) (pathStat, cache.Digest, bool) {
		v, ok := r.fresh.Load(path)
		if !ok {
			return pathStat{}, cache.Digest{}, false
		}
		f := v.(freshOutput)
		if uses[fileID{f.st.dev, f.st.ino}] > 1 {
			return pathStat{}, cache.Digest{}, false
		}
		return f.st, f.d, true
	}
}

// resultCovers reports whether an action result holds every declared output
// and comes from a successful run.
func resultCovers(a *Action, res *repb.ActionResult) bool {
	if res.GetExitCode() != 0 {
		return false
	}
	files := map[string]bool{}
	for _, f := range res.GetOutputFiles() {
		files[f.GetPath()] = true
	}
	dirs := map[string]bool{}
	for _, d := range res.GetOutputDirectories() {
		// A folder is restored from its Tree; a result with only a root
		// digest (or none) cannot restore it.
		if d.GetTreeDigest().GetHash() != "" {
			dirs[d.GetPath()] = true
		}
	}
	for p := range resultLinks(res) {
		files[p] = true
	}
	for _, o := range a.Outputs {
		if (o.Dir && !dirs[o.Path]) || (!o.Dir && !files[o.Path]) {
			return false
		}
	}
	return true
}

// declaredResult returns the part of a result that restoring the action
// uses: its declared outputs, and the log when it is small enough to be
// restored. A result from a shared cache may name other paths (out of the
// output tree, absolute), blobs of any claimed size, a stderr hepbuild
// never stores: none of it is downloaded or kept.
func declaredResult(a *Action, res *repb.ActionResult) *repb.ActionResult {
	files, dirs := map[string]bool{}, map[string]bool{}
	for _, o := range a.Outputs {
		if o.Dir {
			dirs[o.Path] = true
		} else {
			files[o.Path] = true
		}
	}
	out := &repb.ActionResult{}
	for _, f := range res.GetOutputFiles() {
		if files[f.GetPath()] {
			out.OutputFiles = append(out.OutputFiles, f)
		}
	}
	for _, d := range res.GetOutputDirectories() {
		if dirs[d.GetPath()] && d.GetTreeDigest().GetHash() != "" {
			out.OutputDirectories = append(out.OutputDirectories, d)
		}
	}
	for _, l := range res.GetOutputFileSymlinks() {
		if files[l.GetPath()] {
			out.OutputFileSymlinks = append(out.OutputFileSymlinks, l)
		}
	}
	for _, l := range res.GetOutputSymlinks() {
		if files[l.GetPath()] {
			out.OutputSymlinks = append(out.OutputSymlinks, l)
		}
	}
	if d := res.GetStdoutDigest(); d.GetSizeBytes() > 0 && d.GetSizeBytes() <= maxRestoredLog {
		out.StdoutDigest = d
	}
	return out
}

// execute runs the action and stores its outputs.
func (r *Runner) execute(ctx context.Context, a *Action, key *Key, in *inputDigests) error {
	if err := r.completeKey(a, in, key); err != nil {
		return err
	}
	r.tellReasons(a, key, in)
	if rx := r.route(a); rx != nil {
		return r.executeRemote(ctx, rx, a, key, in)
	}
	if r.Executor == nil {
		return errors.New("runner has no executor")
	}
	// Inputs kept only in the cache come first, without a slot: a
	// download is not work for the machine.
	if err := r.fetchInputs(ctx, a, in); err != nil {
		return err
	}
	// An action started to look its result up (Scheduler.Lookahead) waits
	// here for a job slot; its walltime runs from now.
	ctx, err := AcquireSlot(ctx)
	if err != nil {
		return err
	}
	r.forget(a)
	if err := r.removeOutputs(a); err != nil {
		return err
	}
	if err := r.checkOutLink(a); err != nil {
		return err
	}
	logPath := r.logPath(a)
	r.commandsRunning.Add(1)
	r.commandEpoch.Add(1)
	res, err := r.Executor.Execute(ctx, a, r.ExecRoot, logPath)
	r.commandEpoch.Add(1)
	r.commandsRunning.Add(-1)
	CommandDone(ctx)
	r.commandCPU.Add(int64(res.CPU))
	if err != nil {
		_ = r.removeOutputs(a)
		if ctx.Err() == context.DeadlineExceeded {
			// The scheduler's bound on the attempt ended it.
			return r.failure(a, ExecResult{ExitCode: -1, TimedOut: true, Timeout: a.RunTimeout()}, logPath)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %s: could not run %s: %w", a.Pos, a.Owner, a.Mnemonic, err)
	}
	if !res.Success() {
		_ = r.removeOutputs(a)
		if changed := in.changed(); changed != "" {
			// The failure may be the edit's doing (a file deleted under
			// the command): try the inputs as they are now.
			return &inputChangedError{path: changed, failure: r.failure(a, res, logPath)}
		}
		return r.failure(a, res, logPath)
	}
	if err := checkOutputs(r.outTree(), a); err != nil {
		_ = r.removeOutputs(a)
		ae := r.failure(a, res, logPath)
		ae.Reason = err.Error()
		return ae
	}
	// The key says which inputs the outputs were made from. An input edited
	// while it was digested or while the command ran makes that a lie:
	// storing the result would hand it to every later build (and every
	// user of the cache) under the old key.
	if changed := in.changed(); changed != "" {
		_ = r.removeOutputs(a)
		return &inputChangedError{path: changed, failure: r.failure(a, res, logPath)}
	}
	digests, err := r.store(ctx, a, key.Digest, logPath)
	if err != nil {
		// A cache that fails only disables itself (guardedCache); what
		// store reports is an output that cannot be read: the action's
		// failure, not the build's.
		_ = r.removeOutputs(a)
		ae := r.failure(a, res, logPath)
		ae.Reason = err.Error()
		return ae
	}
	return r.remember(a, key, in, digests)
}

// actionOutputPaths lists the action's output paths in order.
func actionOutputPaths(a *Action) []string {
	ps := make([]string, len(a.Outputs))
	for i, o := range a.Outputs {
		ps[i] = o.Path
	}
	return ps
}

// failure describes a failed run, with the end of its log.
func (r *Runner) failure(a *Action, res ExecResult, logPath string) *ActionError {
	ae := &ActionError{Action: a, ExitCode: res.ExitCode, Reason: res.reason(), Command: describeCommand(a)}
	if a.Kind == KindRun {
		// The log exists only when the command printed something.
		if _, err := os.Stat(logPath); err == nil {
			ae.Log = logPath
			ae.Tail = tail(logPath, tailLines)
		}
	}
	if res.StartError != "" || res.Failure != "" || res.Signal != "" || res.TimedOut {
		ae.ExitCode = -1
	}
	return ae
}

// describeCommand shows what ran: the script of a bash -c command, else argv.
func describeCommand(a *Action) string {
	switch a.Kind {
	case KindWrite:
		return "write " + strings.Join(actionOutputPaths(a), " ")
	case KindSymlink:
		if len(a.Outputs) == 1 && a.Outputs[0].Symlink {
			return "symlink " + a.Outputs[0].Path + " -> " + string(a.Extras().Content)
		}
		return "copy to " + strings.Join(actionOutputPaths(a), " ")
	case KindFetch:
		if a.Extras().Remote != nil {
			return "download " + a.Extras().Remote.URL + " to " + strings.Join(actionOutputPaths(a), " ")
		}
	}
	if len(a.Argv) >= 3 && strings.HasSuffix(a.Argv[0], "sh") && a.Argv[1] == "-c" {
		return a.Argv[2]
	}
	quoted := make([]string, len(a.Argv))
	for i, s := range a.Argv {
		quoted[i] = shellQuote(s)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c == '/' || c == '.' || c == '-' || c == '_' || c == '=' || c == ':' || c == ',' || c == '+' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the last n lines of the file, reading at most its last 64 KiB.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogPath is where the action's log is: what its last run printed, or,
// for outputs restored from a cache, what the run that made them printed.
func (r *Runner) LogPath(a *Action) string { return r.logPath(a) }

// logPath is where the action's output goes: logs/ mirrors the output tree,
// named after the action's first output.
func (r *Runner) logPath(a *Action) string {
	p := r.logPathOf(a)
	r.logsAny.Store(true)
	r.logsMade.Store(p, struct{}{})
	return p
}

// logPathOf is logPath for a caller that does not write the log.
func (r *Runner) logPathOf(a *Action) string {
	name := "action"
	if len(a.Outputs) > 0 {
		name = strings.TrimPrefix(a.Outputs[0].Path, OutDir+"/")
	}
	return filepath.Join(r.OutputBase, "logs", filepath.FromSlash(name)+".log")
}

// mayHaveLog says whether a log may be at the action's log path: left by
// an earlier build (the logs folder held anything when first looked at),
// or written in this one (logPath handed it out). A restored action
// without a log removes a stale one only then, saving an unlink per action
// after clean (and the path itself, when no log was handed out).
func (r *Runner) mayHaveLog(a *Action) bool {
	r.logsOnce.Do(func() {
		f, err := os.Open(filepath.Join(r.OutputBase, "logs"))
		if err != nil {
			r.logsOld = !errors.Is(err, fs.ErrNotExist)
			return
		}
		defer f.Close()
		names, err := f.Readdirnames(1)
		r.logsOld = len(names) > 0 || err != io.EOF
	})
	if r.logsOld {
		return true
	}
	if !r.logsAny.Load() {
		return false
	}
	_, ok := r.logsMade.Load(r.logPathOf(a))
	return ok
}

// forget drops the action's outputs from the journal before they are
// touched, so a build killed from here on never trusts them.
func (r *Runner) forget(a *Action) {
	if r.Journal == nil {
		return
	}
	r.Journal.forget(actionOutputPaths(a))
}

// remember records the finished outputs in the journal, and what the action
// ran with in the explain log.
func (r *Runner) remember(a *Action, key *Key, in *inputDigests, digests map[string]cache.Digest) error {
	if r.Journal == nil {
		return nil
	}
	ds := make([]cache.Digest, len(a.Outputs))
	for i, o := range a.Outputs {
		ds[i] = digests[o.Path]
	}
	return r.rememberStats(a, key, in, ds, nil)
}

// rememberStats is remember with the outputs' digests and Lstat (stats,
// unless nil) in the order of a.Outputs, where the caller just took them
// (materialize).
func (r *Runner) rememberStats(a *Action, key *Key, in *inputDigests, digests []cache.Digest, stats []fs.FileInfo) error {
	j := r.Journal
	if j == nil {
		return nil
	}
	// The record's outputs are the paths the journal records: one slice
	// for both, which only read it.
	rec := newActionRecord(a, key, in.seen())
	paths := rec.Outputs
	recs := make([]outputRecord, len(a.Outputs))
	for i, o := range a.Outputs {
		var fi fs.FileInfo
		var err error
		if stats != nil {
			fi = stats[i]
		} else {
			fi, err = os.Lstat(r.abs(o.Path))
		}
		if err != nil {
			return fmt.Errorf("%s: %s: output %s vanished: %w", a.Pos, a.Owner, o.Path, err)
		}
		recs[i] = statRecord(key.Digest, key.fingerprint, digests[i], fi)
	}
	j.recordAll(paths, recs)
	j.explain(rec)
	return nil
}

// blobPather is a cache that keeps each verified blob as a file, which
// outputs can be hard-linked to (cache/disk).
type blobPather interface {
	BlobPath(d cache.Digest) (string, error)
}

// blobFiler is a blobPather that also returns the file's stat, taken as
// it verified the file (cache/disk).
type blobFiler interface {
	BlobFile(d cache.Digest) (string, fs.FileInfo, error)
}

// blobFile returns the verified file of the blob and its stat (nil when
// it could not be taken).
func (g *guardedCache) blobFile(d cache.Digest) (string, fs.FileInfo, error) {
	if bf, ok := g.blobs.(blobFiler); ok {
		return bf.BlobFile(d)
	}
	p, err := g.blobs.BlobPath(d)
	if err != nil {
		return "", nil, err
	}
	fi, _ := os.Stat(p)
	return p, fi, nil
}

// prefetcher is a cache with a remote tier (cache/tiered): it brings a
// remote result's blobs to the disk cache, in batches, before they are
// materialised.
type prefetcher interface {
	Prefetch(ctx context.Context, action cache.Digest, res *repb.ActionResult) error
}

// filePutter is a cache that stores a file by hard-linking it (cache/disk).
type filePutter interface {
	PutFile(ctx context.Context, path string) (cache.Digest, error)
}

// guardedCache wraps the configured cache so that a failure disables it for
// the rest of the build with a single warning: the build goes on uncached,
// never with a wrong result. Safe for concurrent use.
type guardedCache struct {
	c      cache.Cache
	blobs  blobPather // nil when the cache has no files to link
	files  filePutter // nil when the cache cannot store a file by link
	failed atomic.Bool
	once   sync.Once
	warn   func(string)
}

func newGuardedCache(c cache.Cache, warn func(string)) *guardedCache {
	g := &guardedCache{c: c, warn: warn}
	if c == nil {
		return g
	}
	if b, ok := c.(blobPather); ok {
		g.blobs = b
	}
	if f, ok := c.(filePutter); ok {
		g.files = f
	}
	return g
}

func (g *guardedCache) usable() bool { return g.c != nil && !g.failed.Load() }

// fail disables the cache; a miss or a cancelled build is not a failure.
func (g *guardedCache) fail(ctx context.Context, op string, err error) {
	if errors.Is(err, cache.ErrNotFound) || ctx.Err() != nil {
		return
	}
	g.failed.Store(true)
	g.once.Do(func() {
		g.warn(fmt.Sprintf("cache failed, continuing without it: %s: %v", op, err))
	})
}

// resultInliner is a cache that can bring a result's small outputs with
// the result itself (cache/tiered with a REAPI remote).
type resultInliner interface {
	GetActionResultFor(ctx context.Context, action cache.Digest, paths []string) (*repb.ActionResult, error)
}

// entryReader is a cache that can return a result without checking that
// its blobs are present (cache/disk).
type entryReader interface {
	GetActionResultEntry(ctx context.Context, action cache.Digest) (*repb.ActionResult, error)
}

// resultToRestore is actionResultFor for a result whose outputs are all
// written next: from a cache that keeps blobs as files, whose presence the
// restore finds out as it links them (a blob gone is a miss, and the
// action runs), the entry alone.
func (g *guardedCache) resultToRestore(ctx context.Context, key cache.Digest, a *Action) (*repb.ActionResult, bool) {
	er, ok := g.c.(entryReader)
	if !ok || g.blobs == nil {
		return g.actionResultFor(ctx, key, a)
	}
	res, err := er.GetActionResultEntry(ctx, key)
	if err != nil {
		g.fail(ctx, "reading action result "+key.String(), err)
		return nil, false
	}
	return res, true
}

// actionResultFor is actionResult for an action about to be restored.
func (g *guardedCache) actionResultFor(ctx context.Context, key cache.Digest, a *Action) (*repb.ActionResult, bool) {
	ri, ok := g.c.(resultInliner)
	if !ok {
		return g.actionResult(ctx, key)
	}
	paths := make([]string, 0, len(a.Outputs))
	for _, o := range a.Outputs {
		if !o.Dir {
			paths = append(paths, o.Path)
		}
	}
	res, err := ri.GetActionResultFor(ctx, key, paths)
	if err != nil {
		g.fail(ctx, "reading action result "+key.String(), err)
		return nil, false
	}
	return res, true
}

func (g *guardedCache) actionResult(ctx context.Context, key cache.Digest) (*repb.ActionResult, bool) {
	res, err := g.c.GetActionResult(ctx, key)
	if err != nil {
		g.fail(ctx, "reading action result "+key.String(), err)
		return nil, false
	}
	return res, true
}
