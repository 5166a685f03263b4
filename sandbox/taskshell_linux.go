package sandbox

import (
	"bytes"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hepbuild/hepbuild/internal/shell"
)

// A task's command runs in bash (shell.TaskArgv). When it is one pipeline
// of programs (shell.Parse), the reaper or resident sandbox that would
// start bash starts the programs itself, as bash would have: the same
// programs, found on the same PATH, with the same arguments, descriptors
// and environment, and the same exit status. Starting bash cost more than
// most of those programs' own run. What the programs see differs in no
// way a program can tell but its parent's pid; anything the take-over
// cannot do exactly (a missing program, an output it cannot create, a
// script without an interpreter line) runs in bash after all.

// pipelineRequest is a task's command taken over from bash.
type pipelineRequest struct {
	Stages []shell.Stage
	// Env is the environment bash gives the programs, in bash's order;
	// the server fills in "_=" (the program's path) and "PWD=" (the
	// physical working folder), as bash does.
	Env []string
	// Forks is shell.Pipeline.Forks: SHLVL and the exit status are those
	// of programs bash started as its children.
	Forks bool
	// Text is the command as bash reports it.
	Text string
}

// takeOverTasks turns the take-over on; tests turn it off to compare.
var takeOverTasks = true

// takeOver returns the pipeline request for s when its command line is a
// task's that bash need not run, else nil.
func takeOver(s Spec) *pipelineRequest {
	if !takeOverTasks || s.Image != "" {
		return nil
	}
	cmd, ok := shell.TaskCommand(s.Argv)
	if !ok {
		return nil
	}
	p, ok := shell.Parse(cmd)
	if !ok {
		return nil
	}
	env := bashEnvFor(s.Env)
	if env == nil {
		return nil
	}
	return &pipelineRequest{Stages: p, Env: env.list(s.Env, p.Forks()), Forks: p.Forks(), Text: p.String()}
}

// bashEnv is what bash makes of an environment with a given set of
// names: which it passes on, in which order, and SHLVL.
type bashEnv struct {
	names []string
	shlvl int
}

// list is the environment bash gives the programs it starts with env:
// its own values for _, PWD (placeholders) and SHLVL, one lower for a
// program it executes in its place.
func (b *bashEnv) list(env map[string]string, forks bool) []string {
	l := make([]string, len(b.names))
	for i, n := range b.names {
		switch n {
		case "_", "PWD":
			l[i] = n + "="
		case "SHLVL":
			lvl := b.shlvl
			if !forks {
				lvl--
			}
			l[i] = "SHLVL=" + strconv.Itoa(lvl)
		default:
			l[i] = n + "=" + env[n]
		}
	}
	return l
}

// bashEnvs caches what bash made of each set of names: the first command
// with a new set asks bash once (bashEnvFor).
var bashEnvs struct {
	sync.Mutex
	m map[string]*bashEnv // nil value: not to be taken over
}

// bashVariables are the variables bash reads at its start, or sets: a
// command with one of them keeps bash (PWD, SHLVL and _ bash sets, and
// their values are checked). Bash passes on OPTIND, OPTERR, BASH,
// BASH_VERSION, LINENO and BASH_EXECUTION_STRING with values of its own
// whatever they were, and SECONDS and EPOCH* with values that change as
// time passes: a probe whose values happen to match says nothing of the
// next environment with those names.
var bashVariables = map[string]bool{"BASH_ENV": true, "ENV": true, "SHELLOPTS": true, "BASHOPTS": true,
	"POSIXLY_CORRECT": true, "BASH_COMPAT": true, "EXECIGNORE": true, "IFS": true, "PWD": true, "OLDPWD": true,
	"_": true, "BASH_XTRACEFD": true, "PS4": true, "GLOBIGNORE": true,
	"OPTIND": true, "OPTERR": true, "BASH": true, "BASH_VERSION": true, "LINENO": true, "BASH_EXECUTION_STRING": true,
	"SECONDS": true, "EPOCHSECONDS": true, "EPOCHREALTIME": true}

// valueKeyed says whether what bash does at its start depends on the
// variable's value, beyond passing it on: SHLVL's (a level of 1000 or
// more is reset, with a warning) and the locale's (a locale bash cannot
// set gets a warning). Their values are part of the cache's key.
func valueKeyed(name string) bool {
	return name == "SHLVL" || name == "LANG" || name == "LANGUAGE" || strings.HasPrefix(name, "LC_")
}

// bashEnvFor returns what bash makes of env, asking bash the first time a
// set of names comes, or nil when bash would change a value it was given.
func bashEnvFor(env map[string]string) *bashEnv {
	names := make([]string, 0, len(env))
	for n := range env {
		if bashVariables[n] || strings.HasPrefix(n, "BASH_FUNC_") {
			return nil
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var key strings.Builder
	for _, n := range names {
		key.WriteString(n)
		if valueKeyed(n) {
			key.WriteString("=" + env[n])
		}
		key.WriteByte(0)
	}
	bashEnvs.Lock()
	defer bashEnvs.Unlock()
	if b, ok := bashEnvs.m[key.String()]; ok {
		return b
	}
	if bashEnvs.m == nil {
		bashEnvs.m = map[string]*bashEnv{}
	}
	b := probeBashEnv(env)
	bashEnvs.m[key.String()] = b
	return b
}

// printEnvArg, as the only argument, makes this binary print its
// environment, NUL-separated, and exit.
const printEnvArg = "__hepbuild-print-env__"

func init() {
	if len(os.Args) == 2 && os.Args[1] == printEnvArg {
		os.Stdout.WriteString(strings.Join(os.Environ(), "\x00"))
		os.Exit(0)
	}
}

// probeBashEnv asks bash which environment it gives a program it starts
// as its child, with env: this binary, started by a task command with a
// redirection (so bash forks), prints it. A bash that says anything on
// its stderr (a warning about the environment) keeps its commands.
func probeBashEnv(env map[string]string) *bashEnv {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	cmd := exec.Command(shell.Bash, "-c", shell.TaskPrefix+shell.Quote(exe)+" "+printEnvArg+" 2>&1")
	cmd.Env = envList(env)
	cmd.Dir = "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		return nil
	}
	b := &bashEnv{}
	for _, kv := range bytes.Split(out, []byte{0}) {
		n, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			return nil
		}
		switch n {
		case "_", "PWD":
		case "SHLVL":
			if b.shlvl, err = strconv.Atoi(v); err != nil || b.shlvl < 1 {
				return nil
			}
		default:
			if w, ok := env[n]; !ok || w != v {
				return nil
			}
		}
		b.names = append(b.names, n)
	}
	if b.shlvl == 0 {
		return nil
	}
	return b
}
