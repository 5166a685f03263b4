// Command hepbuild builds high-energy-physics analyses written as Starlark
// BUILD files: it hashes every input, runs only what changed, and keeps every
// result in a content-addressed cache.
//
// This file only wires the commands and maps errors to exit codes; each
// command lives in a file of its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/hepbuild/hepbuild/cache/remote"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/alecthomas/kong"
)

// Exit codes, documented in --help.
const (
	exitOK          = 0
	exitBuildFailed = 1
	exitBadInput    = 2
	exitInfra       = 3
	exitInterrupted = 8
)

// CLI is the command line. `hepbuild TARGET...` means `hepbuild build TARGET...`.
type CLI struct {
	Globals

	Build   BuildCmd   `cmd:"" default:"withargs" help:"Build targets and everything they need (the default command)."`
	Run     RunCmd     `cmd:"" help:"Build one target and run its program in the workspace root with the arguments after --; its exit status is hepbuild's."`
	Query   QueryCmd   `cmd:"" help:"Ask questions about the target graph, with Bazel's query language."`
	Aquery  AqueryCmd  `cmd:"" help:"List the actions of targets: command, environment, inputs and outputs."`
	Status  StatusCmd  `cmd:"" help:"Say, without running anything, which targets are up to date, restorable from cache, or will run."`
	Explain ExplainCmd `cmd:"" help:"Say why the actions of targets will run: which input, command, variable or environment changed."`
	Clean   CleanCmd   `cmd:"" help:"Remove the output tree, one target's outputs, or prune the cache."`
	Fetch   FetchCmd   `cmd:"" help:"Ask storage again for every remote file the targets read, and record them in hepbuild.lock."`
	Export  ExportCmd  `cmd:"" help:"Build targets and copy their outputs to storage (root://, davs://, a folder), verified by checksum."`
	Fmt     FmtCmd     `cmd:"" help:"Format BUILD and .star files."`
	Lint    LintCmd    `cmd:"" help:"Report buildtools' warnings and hepbuild's own checks on BUILD and .star files; --fix fixes what it can."`
	Info    InfoCmd    `cmd:"" help:"Print where things are: workspace, output base, cache, sandbox."`
	Serve   ServeCmd   `cmd:"" help:"Run the group's dashboard, build history and coordinator: builds report to it with --server."`
	Worker  WorkerCmd  `cmd:"" help:"Run actions by their digests from a cache, on a batch node (started by batch jobs, not by hand)."`
	Help    HelpCmd    `cmd:"" help:"Print a topic of the reference (labels, patterns, query, hepbuildrc, exit-codes) or a command's help."`
	Version VersionCmd `cmd:"" help:"Print the version."`
	Init    InitCmd    `cmd:"" help:"Start a new analysis workspace from a template: WORKSPACE.hep, a BUILD with one task, .hepbuildrc, .gitignore."`

	Completion CompletionCmd `cmd:"" help:"Print the script that makes bash, zsh or fish complete commands, flags, target labels and queries."`
	Complete   CompleteCmd   `cmd:"" name:"__complete" hidden:"" help:"Print the candidates for the word under the cursor (the completion scripts run it)."`
}

// Globals are the flags every command accepts.
type Globals struct {
	Directory string `short:"C" name:"directory" placeholder:"DIR" help:"Run as if started in DIR."`
	Config    string `name:"config" placeholder:"NAME" help:"Apply the flags of profile NAME from .hepbuildrc."`
}

// env is what commands need from the outside world; tests replace it.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	ctx            context.Context
	cwd            string
	// args is the command line as given (argv[1:]), for the build's
	// record on a server (redacted there).
	args []string
}

const exitCodesHelp = `Exit codes: 0 success, 1 build failure, 2 bad command line or BUILD error, 3 infrastructure failure (output base, cache, file system), 8 interrupted.`

func main() {
	// Loading a large analysis allocates many small, long-lived objects; the
	// default GC target collects too often for them. A higher target with a
	// memory limit trades a little memory for a third less loading time.
	// The limit is where the GC starts to work harder instead: loading plus
	// analysis of a million actions keeps about 2 GB live, and with the
	// limit at 2.5 GB rather than 3.5 it peaks 0.5 GB lower for no
	// measurable CPU (at 2.3 GB it costs a tenth more, below 2 GB it
	// collects without end). GOGC and GOMEMLIMIT in the environment still
	// win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(2600 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cwd, _ := os.Getwd()
	stopProfile := cpuProfile(os.Getenv("HEPBUILD_CPUPROFILE"))
	code := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, ctx: ctx, cwd: cwd})
	stopProfile()
	heapProfile(os.Getenv("HEPBUILD_MEMPROFILE"))
	os.Exit(code)
}

// cpuProfile writes a profile of hepbuild's own CPU (not that of the
// commands it runs) to path, for `go tool pprof`, until the returned
// function is called; nothing without a path.
func cpuProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "WARNING: HEPBUILD_CPUPROFILE:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// heapProfile writes a heap profile of the whole command to path, for `go
// tool pprof -sample_index=alloc_space`; nothing without a path. Its
// in-use memory is what is left when the command is done.
func heapProfile(path string) {
	if path == "" {
		return
	}
	runtime.GC() // publishes the allocations of the last cycles
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "WARNING: HEPBUILD_MEMPROFILE:", err)
	}
}

// run parses args and runs the command; it returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	var cli CLI
	exitCode := -1
	e.args = args
	parser, err := kong.New(&cli,
		kong.Name("hepbuild"),
		kong.Description("hepbuild builds HEP analyses from Starlark BUILD files: content-hashed, cached, parallel.\n\n"+exitCodesHelp),
		kong.UsageOnError(),
		kong.Writers(e.stdout, e.stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintln(e.stderr, "hepbuild:", err)
		return exitInfra
	}
	args, from, err := expandConfig(args, e.cwd, flagAccepter(parser))
	if err != nil {
		fmt.Fprintln(e.stderr, "hepbuild:", err)
		return exitBadInput
	}
	// A bad value from a .hepbuildrc is reported with its file and line.
	inRC := func(msg string) string {
		if where := rcOrigin(msg, shortFlagNames(parser), from); where != "" {
			return msg + " (set in " + where + ")"
		}
		return msg
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 {
		return exitCode
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "hepbuild:", inRC(err.Error()))
		return exitBadInput
	}
	e.ctx = ctx
	kctx.Bind(e)
	kctx.Bind(&cli.Globals)
	err = kctx.Run()
	var bad *badInputError
	if errors.As(err, &bad) && len(from) > 0 {
		err = &badInputError{errors.New(inRC(err.Error()))}
	}
	return exitCodeFor(err, e.stderr)
}

// shortFlagNames maps every short flag of the command line to its long name.
func shortFlagNames(parser *kong.Kong) map[string]string {
	m := map[string]string{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			if f.Short != 0 {
				m[string(f.Short)] = f.Name
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	return m
}

// exitCodeFor prints err and maps it to an exit code (exitCodeOf).
func exitCodeFor(err error, stderr io.Writer) int {
	code := exitCodeOf(err)
	switch {
	case err == nil:
	case code == exitInterrupted:
		// An interrupt (SIGINT, SIGTERM) cancels the context; whatever was
		// under way then reports "context canceled" somewhere in its error,
		// which says nothing to the user who pressed Ctrl-C.
		fmt.Fprintln(stderr, "ERROR: interrupted")
	case !errors.As(err, new(silentError)):
		fmt.Fprintln(stderr, "ERROR:", err)
	}
	return code
}

// exitCodeOf maps an error to an exit code: the one place that does (a
// reported build's end and notifications say the same as the exit).
func exitCodeOf(err error) int {
	var program *programExitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, new(*badInputError)):
		return exitBadInput
	case errors.Is(err, remote.ErrTransient) || errors.Is(err, remote.ErrDenied):
		// A cache or storage server that is down or refused us, even
		// while a BUILD file was being analysed (remote_glob).
		return exitInfra
	case isLoadError(err):
		return exitBadInput
	case errors.As(err, new(*buildFailedError)):
		return exitBuildFailed
	case errors.As(err, &program):
		// hepbuild run: the program's status, not hepbuild's.
		return program.code
	}
	return exitInfra
}

// badInputError marks a bad command line or workspace.
type badInputError struct{ err error }

func (e *badInputError) Error() string { return e.err.Error() }
func (e *badInputError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	// An interrupt met while checking input is an interrupt, not bad input.
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, context.Canceled) {
			return err
		}
	}
	return &badInputError{fmt.Errorf(format, args...)}
}

// buildFailedError says that actions failed; details were printed already.
type buildFailedError struct{ msg string }

func (e *buildFailedError) Error() string { return e.msg }

// silentError wraps an error whose message was already shown.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

// flagAccepter describes, from the command-line model, which flags each
// command has (long names, and "-x" for a short flag) and which flags take
// a value, for filtering the "common" lines of .hepbuildrc.
func flagAccepter(parser *kong.Kong) *flagModel {
	fm := &flagModel{has: map[string]map[string]bool{}, value: map[string]bool{}}
	for _, n := range parser.Model.Children {
		m := map[string]bool{}
		for _, group := range n.AllFlags(false) {
			for _, f := range group {
				takes := !f.IsBool() && !f.IsCounter()
				m[f.Name] = true
				fm.value[f.Name] = takes
				if f.Tag.Negatable != "" {
					m["no-"+f.Name] = true
				}
				if f.Short != 0 {
					m["-"+string(f.Short)] = true
					fm.value["-"+string(f.Short)] = takes
				}
			}
		}
		fm.has[n.Name] = m
	}
	return fm
}
