package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/cache/tiered"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/exec/progress"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/sandbox"
)

// EnvFlags add to every action what the command line says: they change
// actions, so every command that shows or runs actions takes them.
type EnvFlags struct {
	DefaultEnv string   `name:"default-environment" placeholder:"LABEL" help:"The software environment (an environment() target) of actions that name none (default: host)."`
	ActionEnv  []string `name:"action-env" placeholder:"NAME[=VALUE]" sep:"none" help:"Pass the variable NAME into every action: with its value in hepbuild's environment, or VALUE. It enters the actions' keys. Repeatable."`
	// An exposed path changes what an action can read, so it is in the
	// key, and here rather than with --sandbox-hide.
	SandboxExpose []string `name:"sandbox-expose" placeholder:"PATH" sep:"none" help:"Show the host path PATH read-only to actions in the linux sandbox although it hides it (home folders, /run, --sandbox-hide). The path, not its content, enters the actions' keys. Repeatable."`
}

// LocationFlags say where the disk cache and the output base are: every
// command that reads or removes them takes them.
type LocationFlags struct {
	DiskCache  pathValue `name:"disk-cache" placeholder:"DIR" env:"HEPBUILD_DISK_CACHE" help:"The local cache shared by all workspaces (default: $XDG_CACHE_HOME/hepbuild)."`
	OutputBase pathValue `name:"output-base" placeholder:"DIR" env:"HEPBUILD_OUTPUT_BASE" help:"Where outputs, logs and build state live (default: under $XDG_CACHE_HOME/hepbuild/output); hepbuild-out links to it."`
}

// AnalysisFlags are the flags of commands that analyse targets and look
// their actions up: what changes the actions, where their results are.
type AnalysisFlags struct {
	EnvFlags
	LocationFlags
	RemoteFlags
	RemoteDataFlags
	NoCache    bool      `name:"no-cache" help:"Neither read nor write the cache (actions still skip when up to date)."`
	SigningKey pathValue `name:"cache-signing-key" placeholder:"FILE" help:"Sign the action results written to the disk cache with the secret in FILE (readable by its owner only), and take only results signed with it as hits."`
}

// SandboxFlags choose how actions are isolated.
type SandboxFlags struct {
	Sandbox string `enum:"none,symlink,linux," default:"" help:"Isolation of actions: none, symlink or linux (default: linux where bubblewrap works, else symlink; see hepbuild info)."`
}

// BuildFlags are the flags of build: what runs actions and reports on them.
type BuildFlags struct {
	AnalysisFlags
	SandboxFlags
	ExecutorFlags
	ReportFlags
	SandboxHide    []string   `name:"sandbox-hide" placeholder:"PATH" sep:"none" help:"Hide the host folder PATH from actions in the linux sandbox, besides home folders, /run, /var/tmp and hepbuild's own folders. Repeatable."`
	Jobs           jobsValue  `short:"j" placeholder:"N" help:"Run at most N actions at once (default: number of cores)."`
	KeepGoing      bool       `short:"k" name:"keep-going" help:"Keep building what does not depend on a failed action."`
	Retries        countValue `placeholder:"N" help:"Retry every failed action up to N more times (on top of its own retries)."`
	Events         pathValue  `placeholder:"FILE" help:"Write every state change as a JSON object per line to FILE."`
	Profile        pathValue  `placeholder:"FILE" help:"Write a Chrome-trace profile of the build to FILE (opens in Perfetto)."`
	Progress       string     `enum:"auto,tty,plain,none" default:"auto" help:"Progress display: tty (live block), plain (a line per action), none, or auto."`
	LocalResources string     `name:"local-resources" placeholder:"cpu=N,memory=SIZE" help:"Capacity of this machine for resource-bounded scheduling (default: all cores and memory)."`
	Tolerance      string     `name:"tolerance" placeholder:"N|F%" help:"Finish successfully when at most N actions (or F percent of them) failed, listing them, and no requested target needs one of them; implies -k. For many independent branches, some of which may fail."`
	RemoteUpload   string     `name:"remote-upload" enum:"wait,async-exit,off" default:"wait" help:"After the build: wait for uploads to the remote cache (wait), exit at once and leave them to the next build (async-exit), or upload nothing (off)."`
	RemoteDownload string     `name:"remote-download-outputs" enum:"all,toplevel,minimal" default:"all" help:"Which outputs of results restored from the cache are written to hepbuild-out: all, those of the targets named (toplevel), or none (minimal); the others stay in the cache until an action that runs reads them."`
	CacheMaxSize   sizeValue  `name:"cache-max-size" placeholder:"SIZE" help:"After the build, prune the disk cache to SIZE (least recently used first; 0 empties it)."`
}

// BuildCmd builds targets.
type BuildCmd struct {
	BuildFlags
	NoBuild bool     `name:"nobuild" help:"Load and analyse the targets, report errors, and stop: run nothing."`
	Targets []string `arg:"" optional:"" name:"target" help:"Targets or patterns to build: //pkg:name, //pkg/..., :all, relative names."`
}

// session is an analysed build, ready to check or run.
type session struct {
	w          *workspace
	g          *exec.Graph
	roots      []exec.Artifact
	actions    []*exec.Action
	targets    []*graph.Target
	outputBase string
	cacheDir   string
	cache      cache.Cache
	tiered     *tiered.Cache // the remote tier behind cache, if any
	building   bool          // a build (not status or explain) uses the remote tier
	stderr     io.Writer     // where closing the remote tier reports
	stat       *cache.StatCache
	journal    *exec.Journal
	unlock     func()
	closers    []io.Closer
	// sandboxes are the strategies whose folders the build leaves; see
	// closeSandboxes.
	sandboxes []io.Closer
	flags     *AnalysisFlags
	// download says which outputs of restored results are written to the
	// output tree (--remote-download-outputs).
	download exec.DownloadMode
	// remoteData validates and downloads remote inputs (remote_files).
	remoteData *remoteData
	// ran is the runner of the build, which knows the outputs it restored
	// (see writeStamp).
	ran *exec.Runner
}

// defaultCacheHome is $XDG_CACHE_HOME/hepbuild or ~/.cache/hepbuild.
func defaultCacheHome() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hepbuild")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "hepbuild")
	}
	return filepath.Join(os.TempDir(), "hepbuild-cache")
}

func (f *LocationFlags) outputBase(root string) string {
	if f.OutputBase != "" {
		return string(f.OutputBase)
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(defaultCacheHome(), "output", hex.EncodeToString(sum[:8]))
}

func (f *LocationFlags) diskCache() string {
	if f.DiskCache != "" {
		return string(f.DiskCache)
	}
	return defaultCacheHome()
}

// analyse loads and analyses the targets and prepares the output base.
func analyse(g *Globals, f *AnalysisFlags, e *env, patterns []string, lock bool) (*session, error) {
	// The key first: a bad key file stops the command before it locks or
	// writes anything.
	var opts []disk.Option
	if f.SigningKey != "" {
		key, err := disk.ReadSigningKey(string(f.SigningKey))
		if err != nil {
			return nil, badInput("--cache-signing-key: %v", err)
		}
		opts = append(opts, disk.WithSigningKey(key))
	}
	w, err := openWorkspace(g, e)
	if err != nil {
		return nil, err
	}
	targets, err := w.expand(patterns)
	if err != nil {
		return nil, err
	}
	rd, err := f.openRemoteData(e.ctx, w.root)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			rd.Close()
		}
	}()
	w.loader.SetRemoteData(globFunc(rd.glob(f.lenient)))
	collectBeforeAnalysis()
	ag, err := w.loader.AnalyzeTargets(targets)
	if err != nil {
		return nil, err
	}
	if err := f.applyEnvironment(w, ag); err != nil {
		return nil, err
	}
	base, err := f.checkOutputBase(w.root)
	if err != nil {
		return nil, err
	}
	if err := disk.Check(f.diskCache()); err != nil {
		return nil, badInput("--disk-cache: %v", err)
	}
	if f.OutputBase == "" {
		// The default output base lives in the default cache folder:
		// mark that folder hepbuild's before the output base is made in it.
		if err := disk.Claim(defaultCacheHome()); err != nil {
			return nil, badInput("the default cache folder: %v", err)
		}
	}
	if _, err := exec.InspectOutputBase(base); err != nil {
		return nil, badInput("--output-base: %v", err)
	}
	s := &session{w: w, g: ag, targets: targets, flags: f, outputBase: base, cacheDir: f.diskCache()}
	seen := map[string]bool{}
	for _, outs := range ag.TargetOutputs {
		for _, a := range outs {
			if !seen[a.Path] {
				seen[a.Path] = true
				s.roots = append(s.roots, a)
			}
		}
	}
	sort.Slice(s.roots, func(i, j int) bool { return s.roots[i].Path < s.roots[j].Path })
	s.actions = ag.Needed(s.roots)
	if !f.lenient {
		if err := rd.resolve(s.actions, e.stderr); err != nil {
			return nil, err
		}
	}
	s.remoteData, keep = rd, true
	s.closers = append(s.closers, rd)
	if err := exec.PrepareOutputBase(w.root, s.outputBase); err != nil {
		if errors.As(err, new(*exec.NotOwnedError)) {
			return nil, badInput("--output-base: %v", err)
		}
		return nil, fmt.Errorf("preparing the output base %s: %w", s.outputBase, err)
	}
	recordCompletionIndexes(s.outputBase, w.loader)
	if lock {
		s.unlock, err = exec.LockOutputBase(s.outputBase)
		if err != nil {
			return nil, fmt.Errorf("locking the output base: %w", err)
		}
	}
	s.stat, err = cache.OpenStatCache(filepath.Join(s.outputBase, "stat.cache"))
	if err != nil {
		return nil, err
	}
	s.journal, err = exec.OpenJournal(s.outputBase)
	if err != nil {
		return nil, err
	}
	if !f.NoCache {
		dc, err := disk.Open(s.cacheDir, opts...)
		if err != nil {
			fmt.Fprintf(e.stderr, "WARNING: disk cache %s unusable, building without it: %v\n", s.cacheDir, err)
		} else {
			s.cache = dc
			if f.RemoteCache != "" {
				if err := s.withRemote(e, &f.RemoteFlags, dc); err != nil {
					s.close()
					return nil, err
				}
			}
		}
	}
	return s, nil
}

func (s *session) close() {
	s.closeSandboxes()
	s.closeRemote()
	for _, c := range s.closers {
		_ = c.Close()
	}
	if s.journal != nil {
		_ = s.journal.Close()
	}
	if s.stat != nil {
		_ = s.stat.Save()
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// closeSandboxes removes the sandboxes' private folders; once.
func (s *session) closeSandboxes() {
	for _, c := range s.sandboxes {
		_ = c.Close()
	}
	s.sandboxes = nil
}

// strategy returns the sandbox --sandbox asks for; by default the strongest
// available here: linux where bubblewrap can create namespaces, else
// symlink. The linux strategy hides the output base and the disk cache
// besides the workspace, and warns once on stderr (where progress goes)
// when it cannot enforce memory and cpu limits.
func (f *SandboxFlags) strategy(outputBase, diskCache string, hidden []string) (sandbox.Strategy, error) {
	root := filepath.Join(outputBase, "sandbox")
	switch f.Sandbox {
	case "none":
		return sandbox.None{}, nil
	case "symlink":
		return sandbox.NewSymlink(root), nil
	case "linux", "":
		hide, err := absolutePaths("--sandbox-hide", hidden)
		if err != nil {
			return nil, err
		}
		l, err := sandbox.NewLinux(root, append([]string{outputBase, diskCache}, hide...)...)
		if err != nil {
			if f.Sandbox == "" {
				return sandbox.NewSymlink(root), nil
			}
			return nil, badInput("--sandbox linux: %v", err)
		}
		l.Warn = os.Stderr
		return l, nil
	}
	return nil, badInput("--sandbox %s: unknown strategy (available: none, symlink, linux)", f.Sandbox)
}

// absolutePaths checks the paths of a flag: absolute, and existing, since
// a misspelt one would hide or show nothing without a word. They come back
// cleaned, sorted and without duplicates.
func absolutePaths(flag string, paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, badInput("%s %q: want an absolute path", flag, p)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, badInput("%s %s: %v", flag, p, err)
		}
		out = append(out, filepath.Clean(p))
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// sandboxInfo says which strategy builds use and why, for hepbuild info.
func (f *SandboxFlags) sandboxInfo() string {
	st := sandbox.ProbeLinux()
	linux := "linux unavailable: " + fmt.Sprint(st.Err)
	if st.Err == nil {
		linux = sandbox.BwrapVersion() + ": namespaces available"
	}
	switch f.Sandbox {
	case "":
		if st.Err == nil {
			return "linux (" + linux + ")"
		}
		return "symlink (" + linux + ")"
	case "linux":
		if st.Err != nil {
			return "linux asked for by --sandbox, but " + linux
		}
		return "linux (--sandbox linux; " + linux + ")"
	}
	return f.Sandbox + " (--sandbox " + f.Sandbox + "; default here: " + linux + ")"
}

// environments builds software environments beside the disk cache, so
// every workspace of the user shares them.
func (f *LocationFlags) environments() *sandbox.Environments {
	return sandbox.NewEnvironments(filepath.Join(f.diskCache(), "environments"))
}

// applyEnvironment completes the analysed actions with what the command
// line and this machine add to them, before any key is computed:
// --default-environment for run actions without a software environment,
// --action-env variables, and what identifies an environment here beyond
// its declaration (the python3 a venv is built with, an image file's
// digest). Nothing else of hepbuild's own environment reaches an action.
func (f *EnvFlags) applyEnvironment(w *workspace, ag *exec.Graph) error {
	var def *exec.Environment
	if f.DefaultEnv != "" {
		l, err := graph.ParseRelative(f.DefaultEnv, w.workingPkg)
		if err != nil {
			return badInput("--default-environment %s: %v", f.DefaultEnv, err)
		}
		if def, err = w.loader.Environment(l); err != nil {
			return badInput("--default-environment %s: %v", f.DefaultEnv, err)
		}
	}
	expose, err := absolutePaths("--sandbox-expose", f.SandboxExpose)
	if err != nil {
		return err
	}
	vars := map[string]string{}
	for _, a := range f.ActionEnv {
		name, value, ok := strings.Cut(a, "=")
		if name == "" || strings.ContainsAny(name, " \t") {
			return badInput("--action-env %q: want NAME or NAME=VALUE", a)
		}
		if !ok {
			value = os.Getenv(name)
		}
		vars[name] = value
	}
	type envPath struct {
		env  *exec.Environment
		path string
	}
	identified := map[envPath]*exec.Environment{}
	for _, a := range ag.Actions {
		if a.Kind != exec.KindRun {
			continue
		}
		if a.Environment == nil && def != nil {
			a.Environment = def
			a.Inputs = append(append([]exec.Artifact(nil), a.Inputs...), def.Files...)
			sort.Slice(a.Inputs, func(i, j int) bool { return a.Inputs[i].Path < a.Inputs[j].Path })
		}
		if len(expose) > 0 {
			a.SetExtra().SandboxExpose = expose
		}
		if len(vars) > 0 {
			env := make(map[string]string, len(a.Env)+len(vars))
			for k, v := range a.Env {
				env[k] = v
			}
			for k, v := range vars {
				env[k] = v
			}
			a.Env = env
		}
		if a.Environment == nil {
			continue
		}
		k := envPath{a.Environment, a.Env["PATH"]}
		id, ok := identified[k]
		if !ok {
			extra, err := sandbox.Identify(&sandbox.Environment{Kind: a.Environment.Kind, Params: a.Environment.Params}, k.path)
			if err != nil {
				return fmt.Errorf("%s: environment %s: %w", a.Pos, a.Environment.Label, err)
			}
			id = a.Environment
			if len(extra) > 0 {
				c := *a.Environment
				c.Params = make(map[string]string, len(c.Params)+len(extra))
				for p, v := range a.Environment.Params {
					c.Params[p] = v
				}
				for p, v := range extra {
					c.Params["host."+p] = v
				}
				id = &c
			}
			identified[k] = id
		}
		a.Environment = id
	}
	return nil
}

// runner makes the Runner that checks, restores or runs the session's
// actions, running them in strat (nil for one that only checks: status and
// explain run nothing, so no sandbox is set up for them).
func (s *session) runner(events exec.EventSink, strat sandbox.Strategy) (*exec.Runner, error) {
	if strat == nil {
		strat = sandbox.None{}
	}
	if c, ok := strat.(io.Closer); ok {
		// Sandboxes keep private folders (hard links to inputs) between
		// actions; they go when the build ends (closeSandboxes).
		s.sandboxes = append(s.sandboxes, c)
	}
	if s.tiered != nil && events != nil {
		s.tiered.SetWarn(func(msg string) {
			events.Event(exec.Event{Type: exec.EventWarning, Time: time.Now(), Message: msg})
		})
	}
	topLevel := map[string]bool{}
	for _, r := range s.roots {
		if !r.Source {
			topLevel[r.Path] = true
		}
	}
	return &exec.Runner{
		ExecRoot:   s.w.root,
		OutputBase: s.outputBase,
		Cache:      s.cache,
		Executor:   local.New(strat, local.WithEnvironments(s.flags.environments()), local.WithFetcher(s.remoteData)),
		Stat:       s.stat,
		Journal:    s.journal,
		Events:     events,
		Download:   s.download,
		TopLevel:   topLevel,
	}, nil
}

func (f *BuildFlags) capacity() (exec.Resources, error) {
	var r exec.Resources
	if f.LocalResources == "" {
		return r, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(f.LocalResources, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return r, badInput("--local-resources %q: want cpu=N,memory=SIZE", f.LocalResources)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	r, err := exec.ParseResources(m)
	if err != nil {
		return r, badInput("--local-resources: %v", err)
	}
	return r, nil
}

// Run builds the targets; with --server the build is reported (from
// the end of analysis on), and with --notify its end is announced,
// whatever the outcome.
func (c *BuildCmd) Run(g *Globals, e *env) (err error) {
	start := time.Now()
	// Every flag value is checked before anything is loaded or written.
	if _, err := c.capacity(); err != nil {
		return err
	}
	rp, err := c.ReportFlags.reporting(&c.RemoteFlags, e, start, c.Targets)
	if err != nil {
		return err
	}
	if c.NoBuild {
		// Nothing runs: nothing to report.
		rp = nil
	}
	defer func() { rp.end(err) }()
	err = c.run(g, e, start, rp)
	if err != nil && exitCodeOf(err) == exitBadInput && len(c.Targets) > 0 {
		// `hepbuild qurey ...` is a build of the target "qurey": say
		// which command was likely meant.
		if cmd := suggestCommand(c.Targets[0]); cmd != "" {
			err = fmt.Errorf("%w (did you mean the command %q?)", err, cmd)
		}
	}
	return err
}

// suggestCommand returns the command whose name word is a likely
// misspelling of, or "" when word is no bare word or near none.
func suggestCommand(word string) string {
	if !bareWord.MatchString(word) {
		return ""
	}
	return graph.Suggest(word, commandNames())
}

// commandNames lists the commands of the CLI.
func commandNames() []string {
	var names []string
	t := reflect.TypeFor[CLI]()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag
		if _, ok := tag.Lookup("cmd"); ok {
			if _, hidden := tag.Lookup("hidden"); !hidden {
				names = append(names, strings.ToLower(t.Field(i).Name))
			}
		}
	}
	return names
}

var bareWord = regexp.MustCompile(`^[a-z][a-z-]*$`)

// testHookAnalysed, when set by a test, is called once a build has loaded
// and analysed its targets, before it takes the state of its sources.
var testHookAnalysed func()

func (c *BuildCmd) run(g *Globals, e *env, start time.Time, rp *reporting) error {
	if c.RemoteExecutor != "" {
		// Inputs and outputs travel through the service's own CAS.
		if c.RemoteCache == "" {
			c.RemoteCache = c.RemoteExecutor
		} else if !sameService(c.RemoteCache, c.RemoteExecutor) {
			return badInput("--remote-cache and --remote-executor name different services: the executor's results are in its own CAS, which must be the remote cache (leave --remote-cache out to use it)")
		}
	}
	if err := c.RemoteFlags.check(); err != nil {
		return err
	}
	if err := c.ExecutorFlags.check(); err != nil {
		return err
	}
	if _, err := c.tolerance(); err != nil {
		return err
	}
	if c.NoBuild {
		return c.analyseOnly(g, e, start)
	}
	if c.nullBuild(g, e, start) {
		// Reported as a build without actions.
		rp.begin(nil, nil, nil, nil)
		return nil
	}
	if c.Sandbox == "" || c.Sandbox == "linux" {
		// Whether bubblewrap works here is found out beside loading.
		sandbox.StartProbeLinux()
	}
	s, err := analyse(g, &c.AnalysisFlags, e, c.Targets, true)
	if err != nil {
		return err
	}
	defer s.close()
	if s.download, err = exec.ParseDownloadMode(c.RemoteDownload); err != nil {
		return badInput("--remote-download-outputs: %v", err)
	}
	if testHookAnalysed != nil {
		testHookAnalysed()
	}
	before := s.snapshotSources()
	// From here on the build needs the action graph only: the target
	// graph, over a third of the heap of a large package, can go.
	s.w.loader.ForgetPackages()
	s.targets = nil
	if err := s.build(e, start, &c.BuildFlags, rp); err != nil {
		if errors.Is(err, errTolerated) {
			// Success, with failures: no stamp, so that the next build
			// tries the failed actions again.
			return nil
		}
		return err
	}
	// Removing a sandbox's hard links to inputs and outputs changes their
	// ctime, which the stamp records (the sources' as changedSources
	// takes them): it goes first.
	s.closeSandboxes()
	changed, sources := s.changedSources(before)
	if changed != "" {
		// A source edited during the build may have been read before the
		// edit; the next build must look at everything again.
		_ = exec.RemoveStamps(s.outputBase)
		fmt.Fprintf(e.stderr, "INFO: %s changed during the build; the next build checks every action again\n", changed)
		return nil
	}
	// The journal's compaction and the stamp's stats are apart (the stamp
	// reads the journal's records, which Close leaves readable): they
	// overlap, and s.close waits for the journal.
	go s.journal.Close()
	if err := s.writeStamp(c.stampKey(s.w.root, s.w.workingPkg), sources, s.ran); err != nil {
		fmt.Fprintf(e.stderr, "WARNING: %v\n", err)
	}
	return nil
}

// collectBeforeAnalysis collects the garbage of loading when the heap is
// large. The loaded packages stay live through analysis, and nearly all of
// what analysis allocates is the action graph, which stays too: a
// collection now marks only the packages and lets analysis run to its end
// without one, which would mark the packages and the graph. For a
// million-action package it lowers the peak by 0.1-0.2 GB. A small heap is
// left alone: there a collection costs more than it saves.
func collectBeforeAnalysis() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() >= 256<<20 {
		runtime.GC()
	}
}

// analyseOnly loads and analyses the targets and says how many actions a build would have.
func (c *BuildCmd) analyseOnly(g *Globals, e *env, start time.Time) error {
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	targets, err := w.expand(c.Targets)
	if err != nil {
		return err
	}
	rd, err := (&RemoteDataFlags{lenient: true, Offline: c.Offline}).openRemoteData(e.ctx, w.root)
	if err != nil {
		return err
	}
	defer rd.Close()
	w.loader.SetRemoteData(globFunc(rd.glob(true)))
	collectBeforeAnalysis()
	ag, err := w.loader.AnalyzeTargets(targets)
	if err != nil {
		return err
	}
	if err := c.applyEnvironment(w, ag); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "hepbuild: analysed %d targets: %d actions; nothing run (--nobuild); elapsed %s\n",
		len(targets), len(ag.Actions), progress.Duration(time.Since(start)))
	return nil
}

func (s *session) build(e *env, start time.Time, f *BuildFlags, rp *reporting) error {
	capacity, err := f.capacity()
	if err != nil {
		return err
	}
	// Loading is done: from here on the garbage is per action and short-lived,
	// so the default GC target keeps the peak memory of a large build down
	// (main raised it for loading), with some headroom for a small one.
	defer tuneGC(buildHeadroom, os.Getenv("GOGC") != "")()
	printer := progress.New(e.stderr, progressMode(f, e))
	sinks := []exec.EventSink{printer}
	var closers []func() error
	if f.Events != "" {
		fh, err := os.Create(string(f.Events))
		if err != nil {
			return badInput("--events: %v", err)
		}
		closers = append(closers, fh.Close)
		sinks = append(sinks, exec.NewJSONLines(fh))
	}
	var prof *exec.Profile
	if f.Profile != "" {
		fh, err := os.Create(string(f.Profile))
		if err != nil {
			return badInput("--profile: %v", err)
		}
		prof = exec.NewProfile(fh)
		closers = append(closers, fh.Close)
		sinks = append(sinks, prof)
	}
	events := exec.Multi(append(sinks, rp.sink())...)
	var runner *exec.Runner
	// The server hears of every event, and its warning shows in the
	// progress; the runner says why actions run, where their logs are,
	// which run away from here.
	rp.begin(s,
		func(msg string) { events.Event(exec.Event{Type: exec.EventWarning, Time: time.Now(), Message: msg}) },
		func(a *exec.Action) string { return runner.LogPath(a) },
		func(a *exec.Action) bool { return runner.Route != nil && runner.Offloaded(a) })
	hidden := f.SandboxHide
	if f.SigningKey != "" {
		// The group's secret: no action may read it and put it in an output.
		if k, err := filepath.Abs(string(f.SigningKey)); err == nil {
			hidden = append(append([]string(nil), hidden...), k)
		}
	}
	strat, err := f.strategy(s.outputBase, s.cacheDir, hidden)
	if err != nil {
		return err
	}
	runner, err = s.runner(events, strat)
	if err != nil {
		return err
	}
	s.ran = runner
	if rp != nil && rp.rep != nil {
		runner.Reasons = rp.rep.Reasons
		rp.coordinate(runner)
	}
	if s.tiered != nil && f.RemoteUpload == "off" {
		s.tiered.DisableWrites()
	}
	warn := func(msg string) { events.Event(exec.Event{Type: exec.EventWarning, Time: time.Now(), Message: msg}) }
	remotes, engines, err := s.batchEngines(e, f, warn)
	if err != nil {
		return err
	}
	if rx, err := s.remoteExecutor(e, f); err != nil {
		closeEngines(e, engines, true)
		return err
	} else if rx != nil {
		if remotes == nil {
			remotes = map[string]exec.RemoteExecutor{}
		}
		remotes["remote"] = rx
	}
	if len(remotes) > 0 {
		runner.Route = f.router(remotes)
	}
	jobs := int(f.Jobs)
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	tolerated, err := f.tolerance()
	if err != nil {
		return err
	}
	sched := &exec.Scheduler{Jobs: jobs, Capacity: capacity, Retries: int(f.Retries), KeepGoing: f.KeepGoing || tolerated != nil, Events: events}
	if s.tiered != nil && !s.tiered.ReadsOff() {
		// A remote lookup is a round trip: as many overlap as there are
		// connections, beside the -j commands.
		sched.Lookahead = f.RemoteMaxConnections
	}
	if runner.Coordinator != nil {
		// A claim is a round trip to the server: actions claim their keys
		// before they hold a slot, while -j others run their commands.
		sched.Lookahead = max(sched.Lookahead, 2*jobs)
	}
	if runner.Route != nil {
		sched.Offloaded = runner.Offloaded
	}
	summary, runErr := sched.Run(e.ctx, s.g, s.actions, runner.Work)
	if rp != nil {
		rp.summary = summary
	}
	if summary != nil {
		summary.Elapsed = time.Since(start)
		summary.CommandCPU = runner.CommandCPU()
		rp.finishOutput(func() { printer.Finish(summary) })
	}
	closeEngines(e, engines, f.Detach)
	uploadErr := s.finishUploads(e, f.RemoteUpload)
	if prof != nil {
		_ = prof.Close()
	}
	for _, c := range closers {
		_ = c()
	}
	if runErr == nil && f.CacheMaxSize != "" && s.cache != nil {
		if err := pruneAfterBuild(s, f.CacheMaxSize, e); err != nil {
			fmt.Fprintf(e.stderr, "WARNING: pruning the cache: %v\n", err)
		}
	}
	if runErr == nil && uploadErr != nil {
		// The actions are done; an interrupt stopped the uploads.
		runErr = uploadErr
	}
	if runErr != nil {
		var bf *exec.BuildFailedError
		if errors.As(runErr, &bf) {
			if tolerated != nil && summary != nil && summary.Failed <= tolerated(summary.Total) {
				// An action skipped because it needs a failed one is on
				// the way to a requested target: that target was not built.
				if summary.Skipped == 0 {
					reportTolerated(e, summary, f.Tolerance)
					return errTolerated
				}
				fmt.Fprintf(e.stderr, "ERROR: %d of %d actions failed, within --tolerance=%s, but %d that need them were skipped: a requested target was not built\n", summary.Failed, summary.Total, f.Tolerance, summary.Skipped)
			}
			return silentError{&buildFailedError{runErr.Error()}}
		}
		return runErr
	}
	if len(s.roots) > 0 && summary != nil && summary.Failed == 0 {
		printOutputs(e, s)
	}
	return nil
}

// printOutputs lists where the requested targets' outputs are, as the user
// will look for them (source files named as targets are where they were).
func printOutputs(e *env, s *session) {
	var roots []string
	for _, r := range s.roots {
		if !r.Source {
			roots = append(roots, r.Path)
		}
	}
	printRoots(e, roots)
}

func pruneAfterBuild(s *session, size sizeValue, e *env) error {
	dc := s.diskTier()
	if dc == nil {
		return nil
	}
	_, err := dc.Prune(e.ctx, disk.PruneOptions{MaxSize: size.bytes(), LimitSize: true})
	return err
}

func progressMode(f *BuildFlags, e *env) progress.Mode {
	mode := progress.Plain
	switch f.Progress {
	case "tty":
		mode = progress.TTY
	case "none":
		mode = progress.None
	case "auto":
		if fl, ok := e.stderr.(*os.File); ok {
			mode = progress.Detect(fl)
		}
	}
	return mode
}

func printRoots(e *env, roots []string) {
	const max = 8
	for i, r := range roots {
		if i == max {
			fmt.Fprintf(e.stderr, "  ... and %d more under %s/\n", len(roots)-max, exec.OutDir)
			break
		}
		fmt.Fprintf(e.stderr, "  %s\n", r)
	}
}

// errTolerated says that actions failed within --tolerance: the build
// succeeds, but is not complete.
var errTolerated = errors.New("failures within the tolerance")

// tolerance parses --tolerance into the number of failures allowed among
// total actions; nil without the flag.
func (f *BuildFlags) tolerance() (func(total int) int, error) {
	t := strings.TrimSpace(f.Tolerance)
	if t == "" {
		return nil, nil
	}
	if p, ok := strings.CutSuffix(t, "%"); ok {
		x, err := strconv.ParseFloat(p, 64)
		if err != nil || x < 0 || x > 100 {
			return nil, badInput("--tolerance %q: want a count N or a percentage F%%, e.g. 5 or 2.5%%", f.Tolerance)
		}
		return func(total int) int { return int(math.Floor(x / 100 * float64(total))) }, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return nil, badInput("--tolerance %q: want a count N or a percentage F%%, e.g. 5 or 2.5%%", f.Tolerance)
	}
	return func(int) int { return n }, nil
}

// reportTolerated lists the failed actions of a build that succeeds
// within --tolerance.
func reportTolerated(e *env, s *exec.Summary, tol string) {
	fmt.Fprintf(e.stderr, "WARNING: %d of %d actions failed, within --tolerance=%s; the build counts as done without them:\n", s.Failed, s.Total, tol)
	for i, ae := range s.Failures {
		if i == 20 {
			fmt.Fprintf(e.stderr, "  ... and %d more\n", len(s.Failures)-20)
			break
		}
		fmt.Fprintf(e.stderr, "  %s %s: %s\n", ae.Action.Owner, ae.Action.Mnemonic, ae.Reason)
	}
}
