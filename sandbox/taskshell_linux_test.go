package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/internal/shell"
)

// taskRun is what a task's command did: how it ended, what it printed,
// and the files of its folder.
type taskRun struct {
	Exit   int
	Signal string
	Stdout string
	Stderr string
	Files  map[string]string
}

// runTask runs cmd as a task runs it, in a fresh folder holding the
// files of setup, with the take-over on or off.
func runTask(t *testing.T, st Strategy, cmd string, env map[string]string, takeOver bool) taskRun {
	t.Helper()
	defer func(was bool) { takeOverTasks = was }(takeOverTasks)
	takeOverTasks = takeOver
	root := t.TempDir()
	for name, content := range map[string]string{
		"in.txt": "one\ntwo\n", "in2.txt": "three\n", "o/app.txt": "first\n",
		"script.sh": "#!/bin/sh\necho script \"$@\" $SHLVL\n", "noline.sh": "echo no interpreter line \"$@\"\n",
		"bin/tool": "#!/bin/sh\necho tool from bin\n", "lib/tool": "not executable\n",
		"bin/badinterp": badELF(t, "interp"), "bin/badarch": badELF(t, "arch"),
		"dollar0.sh": "#!/bin/sh\necho \"$0\"\n", "crlf.sh": "#!/bin/sh\r\necho crlf\r\n", "bin/%tool": "#!/bin/sh\necho percent\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") || strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	env2 := map[string]string{}
	for k, v := range env {
		env2[k] = strings.ReplaceAll(v, "ROOT", root)
	}
	var stdout, stderr bytes.Buffer
	res, err := st.Run(context.Background(), Spec{
		ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: env2, Stdout: &stdout, Stderr: &stderr,
		Outputs: []string{"o/out.txt", "o/app.txt"},
		Inputs:  []string{"in.txt", "in2.txt", "script.sh", "noline.sh", "bin/tool", "lib/tool", "dollar0.sh", "crlf.sh", "bin/%tool", "bin/badinterp", "bin/badarch"},
	})
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	files := map[string]string{}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			files[rel] = strings.ReplaceAll(string(b), root, "ROOT")
		}
		return nil
	})
	clean := func(s string) string {
		s = strings.ReplaceAll(s, root, "ROOT")
		// The report of a program a signal killed is worded differently
		// (and names its pid).
		return signalReport.ReplaceAllString(s, "SIGNAL REPORT")
	}
	return taskRun{Exit: res.ExitCode, Signal: res.Signal, Stdout: clean(stdout.String()), Stderr: clean(stderr.String()), Files: files}
}

var signalReport = regexp.MustCompile(`(?m)^(/bin/bash: line 2: +[0-9]+ .*|hepbuild: line 1: [0-9]+ .*|Terminated)$`)

// Commands run by bash and taken over from it do the same: same outputs,
// same environment (order included), same exit status, same errors.
func TestTakeOverIsBash(t *testing.T) {
	envs := map[string]map[string]string{
		"plain":  {"PATH": "/usr/local/bin:/usr/bin:/bin"},
		"shlvl":  {"PATH": "ROOT/lib:ROOT/bin:/usr/bin:/bin", "SHLVL": "5", "LANG": "C", "HOME": "/nonexistent", "Z_LAST": "a b", "A_FIRST": "", "not-a-name": "x"},
		"nopath": {"X": "1"},
	}
	commands := []string{
		`sed 's/$/ s0/' in.txt > o/out.txt`,
		`cat in.txt in2.txt | wc -l > o/out.txt`,
		`/usr/bin/env > o/out.txt`,
		`env`,
		`env | cat`,
		`printenv SHLVL _ PWD OLDPWD`,
		`printenv SHLVL _ PWD > o/out.txt`,
		`sh -c 'exit 3'`,
		`sh -c 'exit 3' | cat`,
		`cat | sh -c 'exit 4' | sh -c 'exit 0'`,
		`cat missing.txt | cat`,
		`yes | head -c 10 > o/out.txt`,
		`sh -c 'kill -SEGV $$'`,
		`sh -c 'kill -SEGV $$' > o/out.txt`,
		`sh -c 'kill -TERM $$' | cat`,
		`nosuchprog a > o/out.txt`,
		`cat in.txt > nodir/out.txt`,
		`cat < nosuch.txt`,
		`./script.sh a 'b c'`,
		`./script.sh a | cat > o/out.txt`,
		`./noline.sh a`,
		`./noline.sh a > o/out.txt`,
		`tool`,
		`cat < in.txt 2>&1 >> o/app.txt`,
		`ls /nonexistent 2>&1 | cat > o/out.txt`,
		`ls /nonexistent 2>o/out.txt >&2`,
		`/usr/bin/printf '%s|' "a b" '' c"d"'e' > o/out.txt`,
		`wc -c in.txt in2.txt>o/out.txt`,
		`sh -c 'cat /proc/$PPID/comm >/dev/null; echo $0 "$@"' x y z`,
	}
	for _, st := range strategies(t) {
		for envName, env := range envs {
			for _, cmd := range commands {
				bash := runTask(t, st, cmd, env, false)
				taken := runTask(t, st, cmd, env, true)
				if d := cmp.Diff(bash, taken); d != "" {
					t.Errorf("%s, env %s: %s: bash (-) and taken over (+) differ:\n%s", st.Name(), envName, cmd, d)
				}
			}
		}
	}
}

// The take-over happens: bash is not the programs' parent.
func TestTakeOverSkipsBash(t *testing.T) {
	env := map[string]string{"PATH": "/usr/bin:/bin"}
	for _, st := range strategies(t) {
		for cmd, taken := range map[string]bool{
			`sh -c 'cat /proc/$PPID/comm' > o/out.txt`:              true,
			`sh -c 'cat /proc/$PPID/comm' | cat > o/out.txt`:        true,
			`cat in.txt | sh -c 'cat /proc/$PPID/comm' > o/out.txt`: true,
			`sh -c 'cat /proc/$PPID/comm' > o/out.txt; true`:        false,
			`sh -c 'cat /proc/$PPID/comm' > o/out.txt # $HOME`:      false,
			`X=1 sh -c 'cat /proc/$PPID/comm' > o/out.txt`:          false,
			`sh -c 'cat /proc/$PPID/comm' 2>/dev/null >>o/out.txt`:  true,
			`sh -c 'cat /proc/$PPID/comm' <in.txt > o/new.txt`:      true,
			`sh -c 'cat /proc/$PPID/comm' > /dev/stdout`:            false,
		} {
			run := runTask(t, st, cmd, env, true)
			parent := run.Files["o/out.txt"] + run.Files["o/new.txt"] + run.Stdout
			if got := parent != "bash\n"; got != taken {
				t.Errorf("%s: %s: parent %q, want taken over %v", st.Name(), cmd, parent, taken)
			}
		}
	}
}

// Result.CPU is the command's CPU time, whoever starts it: bash, a
// taken-over pipeline, or a program bash runs in a child.
func TestCommandCPUIsMeasured(t *testing.T) {
	busy := `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'`
	for _, st := range strategies(t) {
		for _, cmd := range []string{busy, busy + " | cat", "true; " + busy} {
			root := t.TempDir()
			res, err := st.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: map[string]string{"PATH": "/usr/bin:/bin"}})
			if err != nil || !res.Success() {
				t.Fatalf("%s: %s: %+v %v", st.Name(), cmd, res, err)
			}
			// The loop takes a good fraction of a second of CPU; the
			// command cannot have used more CPU than 2 cores for its
			// duration.
			if res.CPU < 100*time.Millisecond || res.CPU > 2*res.Duration+50*time.Millisecond {
				t.Errorf("%s: %s: CPU %v in %v", st.Name(), cmd, res.CPU, res.Duration)
			}
		}
	}
}

// Environments with the same names as one bash was asked about, but values
// bash treats otherwise: bash resets some variables whatever their value,
// warns about others on its stderr. Each pair runs in order, the first
// environment filling the cache of what bash makes of those names.
func TestTakeOverEnvValues(t *testing.T) {
	pairs := [][2]map[string]string{
		{{"OPTIND": "1", "OPTERR": "1"}, {"OPTIND": "7", "OPTERR": "0"}},
		{{"BASH": "/bin/bash"}, {"BASH": "/bin/sh"}},
		{{"LINENO": "0"}, {"LINENO": "9"}},
		{{"SHLVL": "3"}, {"SHLVL": "999"}},
		{{"LC_ALL": "C"}, {"LC_ALL": "xx_NOWHERE.UTF-8"}},
	}
	cmds := []string{`env > o/out.txt`, `env`}
	for _, st := range strategies(t) {
		for _, pair := range pairs {
			for _, cmd := range cmds {
				for _, e := range pair {
					env := map[string]string{"PATH": "/usr/bin:/bin"}
					for k, v := range e {
						env[k] = v
					}
					bash := runTask(t, st, cmd, env, false)
					taken := runTask(t, st, cmd, env, true)
					if d := cmp.Diff(bash, taken); d != "" {
						t.Errorf("%s, env %v: %s: bash (-) and taken over (+) differ:\n%s", st.Name(), e, cmd, d)
					}
				}
			}
		}
	}
}

// A redirection is opened by the process that runs the program: a FIFO
// that no one writes to blocks only that process, which the timeout
// ends; /dev/stdout and /proc/self are the program's, not its starter's.
func TestTakeOverRedirectTargets(t *testing.T) {
	for _, st := range strategies(t) {
		for _, cmd := range []string{
			`cat in.txt > /dev/stdout`,
			`cat in.txt 2> /dev/stderr >&2`,
			`cat < /dev/stdin`,
			`cat < /proc/self/comm`,
			`cat /proc/self/comm < /proc/self/comm > o/out.txt`,
		} {
			bash := runTask(t, st, cmd, hostEnv(), false)
			taken := runTask(t, st, cmd, hostEnv(), true)
			if d := cmp.Diff(bash, taken); d != "" {
				t.Errorf("%s: %s: bash (-) and taken over (+) differ:\n%s", st.Name(), cmd, d)
			}
		}
		for _, cmd := range []string{`cat < fifo`, `cat in.txt > fifo`} {
			for _, takeOver := range []bool{false, true} {
				func() {
					defer func(was bool) { takeOverTasks = was }(takeOverTasks)
					takeOverTasks = takeOver
					root := t.TempDir()
					if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o666); err != nil {
						t.Fatal(err)
					}
					_ = os.WriteFile(filepath.Join(root, "in.txt"), []byte("x\n"), 0o644)
					start := time.Now()
					res, err := st.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: hostEnv(),
						Inputs: []string{"fifo", "in.txt"}, Timeout: time.Second, Grace: 100 * time.Millisecond})
					if took := time.Since(start); err != nil || !res.TimedOut || took > 10*time.Second {
						t.Errorf("%s: %s (take-over %v): %+v, %v after %v; want a timeout", st.Name(), cmd, takeOver, res, err, took)
					}
				}()
			}
		}
	}
}

// The resident sandbox keeps capabilities its commands lack: a
// redirection it opens for a program must not get past a permission the
// program (or bash) would be refused.
func TestTakeOverRedirectPermissions(t *testing.T) {
	for _, st := range strategies(t) {
		for _, cmd := range []string{`cat < secret.txt`, `cat in.txt > ro.txt`, `cat in.txt >> ro.txt`} {
			var runs [2]string
			for i, takeOver := range []bool{false, true} {
				func() {
					defer func(was bool) { takeOverTasks = was }(takeOverTasks)
					takeOverTasks = takeOver
					root := t.TempDir()
					_ = os.WriteFile(filepath.Join(root, "in.txt"), []byte("x\n"), 0o644)
					_ = os.WriteFile(filepath.Join(root, "secret.txt"), []byte("secret\n"), 0)
					_ = os.WriteFile(filepath.Join(root, "ro.txt"), []byte("kept\n"), 0o444)
					var stdout, stderr bytes.Buffer
					res, err := st.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: hostEnv(),
						Inputs: []string{"secret.txt", "in.txt", "ro.txt"}, Stdout: &stdout, Stderr: &stderr})
					ro, _ := os.ReadFile(filepath.Join(root, "ro.txt"))
					runs[i] = fmt.Sprintf("exit %d %v, stdout %q, stderr %q, ro.txt %q", res.ExitCode, err, stdout.String(), stderr.String(), ro)
				}()
			}
			if runs[0] != runs[1] {
				t.Errorf("%s: %s: bash: %s\ntaken over: %s", st.Name(), cmd, runs[0], runs[1])
			}
		}
	}
}

// Programs as bash starts them: a path as written (a script's
// interpreter sees it), an interpreter line as the kernel reads it, a
// command word bash reads as a job.
func TestTakeOverPrograms(t *testing.T) {
	env := map[string]string{"PATH": "ROOT/bin:/usr/bin:/bin"}
	for _, st := range strategies(t) {
		for _, cmd := range []string{
			`./dollar0.sh`, `./dollar0.sh > o/out.txt`, `./bin/../dollar0.sh | cat`, `.//dollar0.sh > o/out.txt`,
			`cat in.txt | ./crlf.sh`, `./crlf.sh > o/out.txt`, `cat in.txt | ./crlf.sh | cat`,
			`%tool`, `%tool > o/out.txt`,
			`cat in.txt | badinterp`, `cat in.txt | badarch > o/out.txt`, `badarch`,
		} {
			bash := runTask(t, st, cmd, env, false)
			taken := runTask(t, st, cmd, env, true)
			if d := cmp.Diff(bash, taken); d != "" {
				t.Errorf("%s: %s: bash (-) and taken over (+) differ:\n%s", st.Name(), cmd, d)
			}
		}
	}
}

// The programs get the descriptors bash gives them and no others, and a
// helper keeps none of them from one command to the next.
func TestTakeOverDescriptors(t *testing.T) {
	for _, st := range strategies(t) {
		for _, cmd := range []string{`ls /proc/self/fd`, `ls /proc/self/fd | cat`, `cat in.txt | sh -c 'cat >/dev/null; exec ls /proc/self/fd' > o/out.txt 2>&1`, `ls /proc/self/fd < in.txt 2>&1 | cat | cat > o/out.txt`} {
			bash := runTask(t, st, cmd, hostEnv(), false)
			taken := runTask(t, st, cmd, hostEnv(), true)
			if d := cmp.Diff(bash, taken); d != "" {
				t.Errorf("%s: %s: bash (-) and taken over (+) differ:\n%s", st.Name(), cmd, d)
			}
		}
		// The helper's descriptors, as its child sees them, stay as many.
		// (A single command: while a pipeline's first program runs, the
		// helper may still hold the descriptors of the next ones. The
		// fewest of a few counts: the Go runtime opens files of its own
		// now and then.)
		count := func() int {
			fewest := -1
			for i := 0; i < 3; i++ {
				n := strings.Count(runTask(t, st, `sh -c 'ls /proc/$PPID/fd'`, hostEnv(), true).Stdout, "\n")
				if fewest < 0 || n < fewest {
					fewest = n
				}
			}
			return fewest
		}
		first := count()
		for i := 0; i < 100; i++ {
			runTask(t, st, `cat in.txt in2.txt < in.txt 2>> o/app.txt | cat | wc -l > o/out.txt`, hostEnv(), true)
		}
		if last := count(); last > first || first < 3 {
			t.Errorf("%s: the helper had %d descriptors, then %d", st.Name(), first, last)
		}
	}
}

// A timeout ends every program of a pipeline, and the run returns.
func TestTakeOverTimeout(t *testing.T) {
	for _, st := range strategies(t) {
		for _, cmd := range []string{`sleep 30.0417 | sleep 30.0418 > o/out.txt`, `true | sh -c 'trap "" TERM; sleep 30.0419' | cat`} {
			start := time.Now()
			root := t.TempDir()
			res, err := st.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: hostEnv(),
				Outputs: []string{"o/out.txt"}, Timeout: 500 * time.Millisecond, Grace: 200 * time.Millisecond})
			if took := time.Since(start); err != nil || !res.TimedOut || took > 5*time.Second {
				t.Errorf("%s: %s: %+v, %v after %v; want a timeout", st.Name(), cmd, res, err, took)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	out, _ := exec.Command("pgrep", "-a", "-f", "sleep 30[.]041[789]").Output()
	if len(out) > 0 {
		t.Errorf("left running: %s", out)
	}
}

// badELF is /bin/true made unexecutable: its program interpreter missing
// ("interp"), or its machine another ("arch").
func badELF(t *testing.T, how string) string {
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	switch how {
	case "interp":
		i := bytes.Index(b, []byte(".so."))
		if i < 0 {
			t.Skip("/bin/true has no program interpreter")
		}
		b[i+4] = 'X'
	case "arch":
		b[18], b[19] = 0xfe, 0x7e
	}
	return string(b)
}

// A path with .. after a symlinked folder is resolved by the kernel, not
// cleaned as text: link/.. is the folder the link's target is in.
func TestTakeOverDotDotAfterSymlink(t *testing.T) {
	for _, cmd := range []string{`cat in.txt > link/../x.txt`, `cat < link/../in.txt`, `cat in.txt | ./link/../tool.sh`} {
		var runs [2]string
		for i, takeOver := range []bool{false, true} {
			func() {
				defer func(was bool) { takeOverTasks = was }(takeOverTasks)
				takeOverTasks = takeOver
				root := t.TempDir()
				_ = os.MkdirAll(filepath.Join(root, "sub/deep"), 0o755)
				_ = os.Symlink("sub/deep", filepath.Join(root, "link"))
				_ = os.WriteFile(filepath.Join(root, "in.txt"), []byte("top\n"), 0o644)
				_ = os.WriteFile(filepath.Join(root, "sub/in.txt"), []byte("sub\n"), 0o644)
				_ = os.WriteFile(filepath.Join(root, "tool.sh"), []byte("#!/bin/sh\necho top tool\n"), 0o755)
				var stdout, stderr bytes.Buffer
				res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: hostEnv(), Stdout: &stdout, Stderr: &stderr})
				x, _ := os.ReadFile(filepath.Join(root, "x.txt"))
				subx, _ := os.ReadFile(filepath.Join(root, "sub/x.txt"))
				runs[i] = fmt.Sprintf("exit %d %v, stdout %q, stderr %q, x.txt %q, sub/x.txt %q", res.ExitCode, err, stdout.String(), stderr.String(), x, subx)
			}()
		}
		if runs[0] != runs[1] {
			t.Errorf("%s:\nbash:       %s\ntaken over: %s", cmd, runs[0], runs[1])
		}
	}
}

// The helpers keep what they read of a program file (execFormats): a
// program replaced in place, with its size and modification time as they
// were, is read afresh. Before, it has no interpreter line, and bash runs
// it; after, it is a script the take-over starts itself, whose parent is
// then not bash.
func TestTakeOverNoticesReplacedProgram(t *testing.T) {
	after := "#!/bin/sh\ncat /proc/$PPID/comm\n"
	before := "cat /proc/$PPID/comm\n"
	before += strings.Repeat("#", len(after)-len(before)-1) + "\n"
	for _, st := range strategies(t) {
		root := t.TempDir()
		writeFile(t, root, "tool.sh", before, 0o755)
		tool := filepath.Join(root, "tool.sh")
		info, err := os.Stat(tool)
		if err != nil {
			t.Fatal(err)
		}
		// Old enough for its format to be kept.
		time.Sleep(2 * execFormatMinAge)
		run := func() string {
			res, err := st.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv("./tool.sh > o/out.txt"), Env: hostEnv(),
				Inputs: []string{"tool.sh"}, Outputs: []string{"o/out.txt"}})
			if err != nil || !res.Success() {
				t.Fatalf("%s: %+v %v", st.Name(), res, err)
			}
			b, _ := os.ReadFile(filepath.Join(root, "o/out.txt"))
			return string(b)
		}
		run()
		if err := os.WriteFile(tool, []byte(after), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tool, time.Time{}, info.ModTime()); err != nil {
			t.Fatal(err)
		}
		if now, err := os.Stat(tool); err != nil || now.Size() != info.Size() || !now.ModTime().Equal(info.ModTime()) {
			t.Fatalf("replaced program differs in size or time: %v %v", now, err)
		}
		if got := run(); got == "bash\n" || got == "" {
			t.Errorf("%s: replaced program's parent %q, want the helper", st.Name(), got)
		}
	}
}

// Bash opens a command's redirections in the command's own process, so
// what opening costs is the command's CPU; taken over, the helper opens
// them, and counts what it spent as the command's (Result.CPU). Truncating
// a large file on tmpfs costs enough CPU to tell.
func TestTakeOverCountsRedirectCPU(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	root, err := os.MkdirTemp("/dev/shm", "hepbuild-test-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	// big makes a file of 256 MiB, all of it allocated.
	big := func(name string) string {
		p := filepath.Join(root, name)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Fallocate(fd, 0, 0, 256<<20); err != nil {
			t.Skip(err)
		}
		return p
	}
	// What truncating one costs this process.
	probe := big("probe")
	runtime.LockOSThread()
	before := threadCPU()
	fd, err := unix.Open(probe, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	truncate := time.Duration(threadCPU() - before)
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	os.Remove(probe)
	if truncate < 4*time.Millisecond {
		t.Skipf("truncating costs too little CPU here to tell (%v)", truncate)
	}
	run := func(cmd string) time.Duration {
		res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(cmd), Env: hostEnv()})
		if err != nil || !res.Success() {
			t.Fatalf("%s: %+v %v", cmd, res, err)
		}
		return res.CPU
	}
	small := run(`cat /dev/null > small.txt`)
	big("big.txt")
	if got := run(`cat /dev/null > big.txt`); got-small < truncate/2 {
		t.Errorf("command truncating a large file: CPU %v, %v with an empty one; truncating costs %v", got, small, truncate)
	}
}

// A command run in a folder reached through a symlink sees, in PWD, the
// folder's path without symlinks, as bash gives it.
func TestTakeOverPWDThroughSymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real", "root")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(real) // the temporary folder's own
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	var runs [2]string
	for i, takeOver := range []bool{false, true} {
		func() {
			defer func(was bool) { takeOverTasks = was }(takeOverTasks)
			takeOverTasks = takeOver
			root := filepath.Join(base, "link", "root")
			res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: shell.TaskArgv(`printenv PWD > out.txt`), Env: hostEnv()})
			out, _ := os.ReadFile(filepath.Join(real, "out.txt"))
			runs[i] = fmt.Sprintf("exit %d %v, PWD %q", res.ExitCode, err, out)
		}()
	}
	if want := fmt.Sprintf("exit 0 <nil>, PWD %q", real+"\n"); runs[0] != want || runs[1] != want {
		t.Errorf("bash: %s\ntaken over: %s\nwant: %s", runs[0], runs[1], want)
	}
}
