//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// linuxOrSkip returns the linux strategy for a workspace laid out as
// hepbuild lays it out: the exec root, and an output base holding the
// outputs (hepbuild-out links to it) and the sandbox folders. It skips the
// test only where bubblewrap is not installed; bubblewrap that cannot create
// namespaces is a failure.
func linuxOrSkip(t *testing.T) (l *Linux, root, base string) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil && checkExecutable("/usr/bin/bwrap") != nil {
		t.Skip("bubblewrap (bwrap) is not installed: the linux strategy cannot be tested (apt-get install bubblewrap)")
	}
	root, base = t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "out"), filepath.Join(root, "hepbuild-out")); err != nil {
		t.Fatal(err)
	}
	l, err := NewLinux(filepath.Join(base, "sandbox"), base)
	if err != nil {
		t.Fatalf("bwrap is installed but the linux strategy is unavailable: %v", err)
	}
	return l, root, base
}

// bothWays runs f with the linux strategy as it is, running commands in a
// resident sandbox per slot, and again with a bwrap per command, which
// commands with network access, a container image or cgroup limits get.
func bothWays(t *testing.T, f func(t *testing.T, l *Linux, root, base string)) {
	t.Run("resident", func(t *testing.T) {
		l, root, base := linuxOrSkip(t)
		var warn bytes.Buffer
		l.Warn = &warn
		f(t, l, root, base)
		if l.noResident.Load() {
			t.Errorf("the resident sandbox was given up: %s", warn.String())
		}
	})
	t.Run("per-command", func(t *testing.T) {
		l, root, base := linuxOrSkip(t)
		l.noResident.Store(true)
		f(t, l, root, base)
	})
}

// runLinux runs a bash script in the linux strategy and returns its result
// and output.
func runLinux(t *testing.T, l *Linux, s Spec, script string) (Result, string) {
	t.Helper()
	var out bytes.Buffer
	s.Argv = []string{"/bin/bash", "-c", script}
	if s.Env == nil {
		s.Env = hostEnv()
	}
	s.Stdout, s.Stderr = &out, &out
	if s.Grace == 0 {
		s.Grace = time.Second
	}
	res, err := l.Run(context.Background(), s)
	if err != nil {
		t.Fatalf("run: %v; output:\n%s", err, out.String())
	}
	return res, out.String()
}

func TestProbeLinux(t *testing.T) {
	linuxOrSkip(t)
	st := ProbeLinux()
	if st.Err != nil || !strings.HasPrefix(BwrapVersion(), "bubblewrap ") {
		t.Errorf("got %+v, want an available bubblewrap with its version", st)
	}
}

func TestLinuxDeclaredInputsAndOutputs(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		writeFile(t, root, "pkg/in.txt", "hello", 0o644)
		writeFile(t, root, "hepbuild-out/pkg/gen.txt", " world", 0o444)
		writeFile(t, root, "data/a/x.txt", "in a folder", 0o644)
		res, out := runLinux(t, l, Spec{
			ExecRoot: root,
			// Listed twice, as an environment's files can be.
			Inputs:     []string{"data/a", "hepbuild-out/pkg/gen.txt", "pkg/in.txt", "pkg/in.txt"},
			Outputs:    []string{"hepbuild-out/pkg/out.txt"},
			OutputDirs: []string{"hepbuild-out/pkg/dir"},
		}, `set -eu
cat pkg/in.txt hepbuild-out/pkg/gen.txt > hepbuild-out/pkg/out.txt
cat data/a/x.txt > hepbuild-out/pkg/dir/copy.txt
echo stray > hepbuild-out/pkg/undeclared.txt
# The exec root is read-only but for the output folders.
! (echo stray > stray.txt) 2>/dev/null
! (echo changed > pkg/in.txt) 2>/dev/null
! (echo changed > hepbuild-out/pkg/gen.txt) 2>/dev/null
! chmod u+w pkg/in.txt 2>/dev/null`)
		if !res.Success() {
			t.Fatalf("got %+v; output:\n%s", res, out)
		}
		if got := readFile(t, root, "hepbuild-out/pkg/out.txt"); got != "hello world" {
			t.Errorf("output = %q, want %q", got, "hello world")
		}
		if got := readFile(t, root, "hepbuild-out/pkg/dir/copy.txt"); got != "in a folder" {
			t.Errorf("output folder = %q, want %q", got, "in a folder")
		}
		for _, p := range []string{"stray.txt", "hepbuild-out/pkg/undeclared.txt"} {
			if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("undeclared output %s was kept (err %v)", p, err)
			}
		}
		if got := readFile(t, root, "pkg/in.txt"); got != "hello" {
			t.Errorf("input changed to %q", got)
		}
	})
}

// Nothing outside the action's own folder and its private /tmp can be
// written: not the host's file system, not the workspace, not the output
// base, not the host's /tmp.
func TestLinuxCannotWriteOutside(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, base string) {
		writeFile(t, root, "pkg/in.txt", "declared", 0o644)
		outside := t.TempDir() // a writable host folder under /tmp
		hostTmp := filepath.Join(os.TempDir(), "hepbuild-linux-test-"+strconv.Itoa(os.Getpid()))
		targets := []string{
			filepath.Join(outside, "x"),
			filepath.Join(root, "pkg", "in.txt"),
			filepath.Join(root, "new.txt"),
			filepath.Join(base, "out", "new.txt"),
			"/hepbuild-linux-test-root",
			"/usr/hepbuild-linux-test",
		}
		var script strings.Builder
		for _, p := range targets {
			fmt.Fprintf(&script, "if (echo x > %q) 2>/dev/null; then echo WROTE %s; fi\n", p, p)
		}
		fmt.Fprintf(&script, "echo private > %q && cat %q\n", hostTmp, hostTmp)
		res, out := runLinux(t, l, Spec{ExecRoot: root, Inputs: []string{"pkg/in.txt"}}, script.String())
		if !res.Success() {
			t.Fatalf("got %+v; output:\n%s", res, out)
		}
		if out != "private\n" {
			t.Errorf("output = %q, want only the private /tmp file's content (a WROTE line is a write that got through)", out)
		}
		for _, p := range targets {
			if p == filepath.Join(root, "pkg", "in.txt") {
				if got := readFile(t, root, "pkg/in.txt"); got != "declared" {
					t.Errorf("input changed to %q", got)
				}
				continue
			}
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written from inside the sandbox", p)
				os.Remove(p)
			}
		}
		if _, err := os.Stat(hostTmp); err == nil {
			t.Errorf("the sandbox's /tmp is the host's: %s was written", hostTmp)
			os.Remove(hostTmp)
		}
	})
}

// An undeclared file of the workspace or the output base cannot be read,
// neither by its exec-root path nor by its absolute host path.
func TestLinuxCannotReadUndeclared(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, base string) {
		writeFile(t, root, "pkg/in.txt", "declared", 0o644)
		writeFile(t, root, "pkg/secret.txt", "undeclared", 0o644)
		writeFile(t, root, "hepbuild-out/pkg/gen_secret.txt", "undeclared output", 0o444)
		paths := []string{
			"pkg/secret.txt",
			filepath.Join(root, "pkg", "secret.txt"),
			"hepbuild-out/pkg/gen_secret.txt",
			filepath.Join(root, "hepbuild-out", "pkg", "gen_secret.txt"),
			filepath.Join(base, "out", "pkg", "gen_secret.txt"),
		}
		var script strings.Builder
		script.WriteString("cat pkg/in.txt; echo\n")
		for _, p := range paths {
			fmt.Fprintf(&script, "if cat %q 2>/dev/null; then echo ' <- READ %s'; fi\n", p, p)
		}
		res, out := runLinux(t, l, Spec{ExecRoot: root, Inputs: []string{"pkg/in.txt"}}, script.String())
		if !res.Success() {
			t.Fatalf("got %+v; output:\n%s", res, out)
		}
		if out != "declared\n" {
			t.Errorf("output = %q, want only the declared input (READ lines are undeclared files that were readable)", out)
		}
	})
}

// A loopback listener of the host is reachable only with Spec.Network.
func TestLinuxNetwork(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var mu sync.Mutex
		accepted := 0
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
				c.Write([]byte("hello from the host\n"))
				c.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && head -n1 <&3", port)
		for _, network := range []bool{false, true} {
			t.Run("network="+strconv.FormatBool(network), func(t *testing.T) {
				mu.Lock()
				before := accepted
				mu.Unlock()
				res, out := runLinux(t, l, Spec{ExecRoot: root, Network: network}, script)
				mu.Lock()
				got := accepted - before
				mu.Unlock()
				if network {
					if !res.Success() || out != "hello from the host\n" || got != 1 {
						t.Errorf("with network: got %+v, %d connections, output %q; want a connection", res, got, out)
					}
					return
				}
				if res.Success() || got != 0 {
					t.Errorf("without network: got %+v, %d connections, output %q; want the connection to fail", res, got, out)
				}
			})
		}
	})
}

// procWatcher records the host pids of processes whose command line holds
// a marker, polling /proc while an action runs.
type procWatcher struct {
	marker string
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	pids   map[int]string // pid -> command line, NULs as spaces
}

func watchProcs(marker string) *procWatcher {
	w := &procWatcher{marker: marker, stop: make(chan struct{}), done: make(chan struct{}), pids: map[int]string{}}
	go func() {
		defer close(w.done)
		for {
			w.scan()
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *procWatcher) scan() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(w.marker)) {
			w.mu.Lock()
			w.pids[pid] = string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			w.mu.Unlock()
		}
	}
}

// await waits until the watcher has seen n processes whose command line
// starts with prefix, and returns them. After a minute it fails the test
// (it may run in a goroutine of its own, so it does not stop it) and
// returns nil: a state that never comes is a failure, however loaded the
// machine.
func (w *procWatcher) await(t *testing.T, prefix string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var pids []int
		w.mu.Lock()
		for p, c := range w.pids {
			if strings.HasPrefix(c, prefix) {
				pids = append(pids, p)
			}
		}
		w.mu.Unlock()
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Errorf("saw %d processes starting with %q, want %d", len(pids), prefix, n)
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// seen stops watching and returns the pids found.
func (w *procWatcher) seen() []int {
	close(w.stop)
	<-w.done
	var pids []int
	for p := range w.pids {
		pids = append(pids, p)
	}
	return pids
}

// releaseWhenSeen sends SIGUSR1 to the action's bash (whose command line
// holds the marker too) once the watcher has seen n daemons, "sleep
// <marker>": an action that waits for that signal ends only after the
// host saw what it left, without a window that a loaded machine misses.
func releaseWhenSeen(t *testing.T, w *procWatcher, n int) {
	t.Helper()
	go func() {
		w.await(t, "sleep "+w.marker, n)
		// The first bash, not one forked to run a command.
		first, firstStart := 0, int64(-1)
		for _, p := range w.await(t, "/bin/bash -c", 1) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if start, err := strconv.ParseInt(f[19], 10, 64); err == nil && (firstStart < 0 || start < firstStart || start == firstStart && p < first) {
				first, firstStart = p, start
			}
		}
		if first > 0 {
			_ = syscall.Kill(first, syscall.SIGUSR1)
		}
	}()
}

// awaitRelease is the end of a script that waits for releaseWhenSeen.
const awaitRelease = "\ntrap 'echo done; exit 0' USR1; while :; do sleep 0.01; done"

// marker returns a sleep duration unique to this test run, to find its
// processes in /proc.
func marker() string {
	return fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1000000)
}

// A daemon the command leaves behind, double-forked or in its own session,
// is gone once the action has ended.
func TestLinuxDaemonIsKilled(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		m := marker()
		w := watchProcs(m)
		start := time.Now()
		releaseWhenSeen(t, w, 2)
		res, out := runLinux(t, l, Spec{ExecRoot: root},
			fmt.Sprintf("(sleep %s &) ; setsid sleep %s &", m, m)+awaitRelease)
		pids := w.seen()
		if !res.Success() || out != "done\n" {
			t.Fatalf("got %+v, output %q", res, out)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("run took %v: the daemons held it", d)
		}
		for _, pid := range pids {
			assertGone(t, pid)
		}
	})
}

func TestLinuxTimeoutKillsEverything(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		// A loaded machine may not start the daemon before the timeout:
		// then the run proves nothing, and runs again with twice the time.
		for timeout := 500 * time.Millisecond; ; timeout *= 2 {
			m := marker()
			w := watchProcs(m)
			start := time.Now()
			res, _ := runLinux(t, l, Spec{ExecRoot: root, Timeout: timeout, Grace: 200 * time.Millisecond},
				fmt.Sprintf("trap '' TERM; setsid sleep %s & sleep %s", m, m))
			pids := w.seen()
			if !res.TimedOut || res.Success() {
				t.Errorf("got %+v, want timed out", res)
			}
			// The daemon sleeps for 300s.
			if d := time.Since(start); d > timeout+time.Minute {
				t.Errorf("run took %v after a %v timeout", d, timeout)
			}
			daemons := 0
			for _, c := range w.pids {
				if strings.HasPrefix(c, "sleep "+m) {
					daemons++
				}
			}
			if daemons < 2 && timeout < time.Minute {
				continue
			}
			if daemons < 2 {
				t.Fatalf("saw %d sleep processes while the action ran, want 2", daemons)
			}
			for _, pid := range pids {
				assertGone(t, pid)
			}
			return
		}
	})
}

func TestLinuxCancelKillsEverything(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		m := marker()
		w := watchProcs(m)
		// Cancelled once the daemon runs, however long starting it took.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			w.await(t, "sleep "+m, 2)
			cancel()
		}()
		res, err := l.Run(ctx, Spec{ExecRoot: root, Env: hostEnv(), Grace: 200 * time.Millisecond,
			Argv: []string{"/bin/bash", "-c", fmt.Sprintf("setsid sleep %s & sleep %s", m, m)}})
		pids := w.seen()
		if !errors.Is(err, context.Canceled) || res.Success() {
			t.Errorf("got %+v, %v; want the context's error", res, err)
		}
		for _, pid := range pids {
			assertGone(t, pid)
		}
	})
}

func TestLinuxMemoryLimit(t *testing.T) {
	l, root, _ := linuxOrSkip(t)
	if err := CgroupStatus(); err != nil {
		t.Skipf("memory limits cannot be enforced on this machine: %v", err)
	}
	res, out := runLinux(t, l, Spec{ExecRoot: root, Memory: 64 << 20},
		"head -c 400M /dev/zero | tail -c 1 >/dev/null; echo survived")
	if !res.MemoryExceeded || res.Success() {
		t.Errorf("got %+v, output %q; want the run stopped for exceeding 64 MiB", res, out)
	}
	res, out = runLinux(t, l, Spec{ExecRoot: root, Memory: 64 << 20}, "head -c 1M /dev/zero | tail -c 1 >/dev/null")
	if !res.Success() {
		t.Errorf("a run within its limit failed: %+v, output %q", res, out)
	}
}

// Without cgroups, a limited run still runs, and the warning says why once.
func TestLinuxWarnsOnceWithoutCgroups(t *testing.T) {
	l, root, _ := linuxOrSkip(t)
	if CgroupStatus() == nil {
		t.Skip("cgroups can enforce limits here: nothing to warn about")
	}
	var warn bytes.Buffer
	l.Warn = &warn
	for i := 0; i < 2; i++ {
		if res, out := runLinux(t, l, Spec{ExecRoot: root, Memory: 1 << 30, CPU: 1}, "true"); !res.Success() {
			t.Fatalf("got %+v, output %q", res, out)
		}
	}
	if n := strings.Count(warn.String(), "WARNING"); n != 1 || !strings.Contains(warn.String(), "not enforced") {
		t.Errorf("warnings = %q, want one saying limits are not enforced and why", warn.String())
	}
}

// The commands of one slot run one after another in one resident sandbox,
// each without capabilities, with a /tmp of its own, unable to stop the
// sandbox's PID 1, and with only its output folder writable.
func TestLinuxResidentSandbox(t *testing.T) {
	l, root, _ := linuxOrSkip(t)
	var warn bytes.Buffer
	l.Warn = &warn
	pid1 := func(out string) string {
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "pid1="); ok {
				return v
			}
		}
		t.Fatalf("no pid1= line in %q", out)
		return ""
	}
	// The start time of PID 1 (field 22 of /proc/1/stat) tells one sandbox from another.
	const show = `echo "pid1=$(tr '\0' ' ' </proc/1/cmdline)$(cut -d' ' -f22 /proc/1/stat)"; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status;`
	var first string
	for i, script := range []string{
		show + `echo left >/tmp/left; echo left >/dev/shm/left; (echo left >/dev/left) 2>/dev/null; python3 -c 'import sys; from ctypes import CDLL; sys.exit(CDLL(None).shmget(1234, 4096, 0o1600) < 0)' || echo no-shm; kill -TERM 1; kill -SEGV 1; kill -QUIT 1; echo done`,
		show + `test ! -e /tmp/left && test ! -e /dev/shm/left && test ! -e /dev/left && ! grep -q 1234 /proc/sysvipc/shm && echo fresh-tmp; echo x >out/pkg/ok && echo wrote-output; echo x >pkg/no 2>/dev/null || echo read-only-elsewhere`,
	} {
		res, out := runLinux(t, l, Spec{ExecRoot: root, Outputs: []string{"out/pkg/ok"}}, script)
		if !res.Success() {
			t.Fatalf("command %d: got %+v, output:\n%s", i, res, out)
		}
		p := pid1(out)
		if !strings.Contains(p, residentArg) {
			t.Errorf("command %d ran under %q, not in a resident sandbox", i, p)
		}
		if i == 0 {
			first = p
		} else if p != first {
			t.Errorf("command %d ran in a new sandbox (PID 1 %q, before %q): the signals stopped the first", i, p, first)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Cap") && !strings.HasSuffix(line, "0000000000000000") {
				t.Errorf("command %d has capabilities: %s", i, line)
			}
		}
		if i == 0 && strings.Contains(out, "no-shm") {
			t.Errorf("command 0 could not make a shared memory segment:\n%s", out)
		}
		if i == 1 {
			for _, want := range []string{"fresh-tmp", "wrote-output", "read-only-elsewhere"} {
				// fresh-tmp: no file in /tmp, /dev/shm or /dev, and no shared memory segment.
				if !strings.Contains(out, want) {
					t.Errorf("command %d: no %q in output:\n%s", i, want, out)
				}
			}
		}
	}
	if warn.Len() > 0 || l.noResident.Load() {
		t.Errorf("the resident sandbox was given up: %s", warn.String())
	}
}

// A command that changes the mode of its output folder has the slot replace
// the folder; the next command of the package still writes its output.
func TestLinuxResidentReplacedOutputFolder(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		for i, script := range []string{
			"echo a >out/pkg/a && chmod 300 out/pkg", // writable, so a can be moved out, but not as the slot left it
			"echo b >out/pkg/b",
			"echo c >out/pkg/c",
		} {
			out := fmt.Sprintf("out/pkg/%c", 'a'+i)
			res, log := runLinux(t, l, Spec{ExecRoot: root, Outputs: []string{out}}, script)
			if !res.Success() {
				t.Fatalf("command %d: got %+v, output:\n%s", i, res, log)
			}
			if _, err := os.Stat(filepath.Join(root, out)); err != nil {
				t.Errorf("command %d: %v", i, err)
			}
		}
	})
}

// Nothing an action changes reaches the next action of its slot: each
// case's first command changes some state, the second prints "clean"
// only when it finds none of it, then writes its output. (Found by review
// of the resident sandbox; a bwrap per command passes them trivially.)
func TestLinuxNothingReachesTheNextAction(t *testing.T) {
	const py = `python3 -c '
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
rt = ctypes.CDLL("librt.so.1", use_errno=True)
%s'`
	oom, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, change, check string }{{
		name:   "OOM score of PID 1",
		change: `echo 500 >/proc/1/oom_score_adj`,
		check:  fmt.Sprintf(`test "$(cat /proc/self/oom_score_adj)" = %s && echo clean`, strings.TrimSpace(string(oom))),
	}, {
		name:   "file size limit of PID 1",
		change: `prlimit --pid 1 --fsize=10:10`,
		check:  `test "$(ulimit -f)" = unlimited && echo clean`,
	}, {
		name:   "open files limit of PID 1",
		change: `prlimit --pid 1 --nofile=4:4`,
		check:  `test "$(ulimit -Hn)" -gt 4 && echo clean`,
	}, {
		name:   "mode of /tmp and /dev/shm",
		change: `chmod 555 /tmp /dev/shm`,
		check:  `echo x >/tmp/y && echo x >/dev/shm/y && echo clean`,
	}, {
		name:   "files in /tmp and /dev/shm",
		change: `mkdir -p /tmp/a/b && echo x >/tmp/a/b/c && echo x >/dev/shm/d && echo x >"$(dirname "$PWD")/e"`,
		check:  `! test -e /tmp/a && test -z "$(ls -A /dev/shm)" && ! test -e "$(dirname "$PWD")/e" && echo clean`,
	}, {
		name:   "folder leading to the exec root moved",
		change: `first=/tmp/$(echo "$PWD" | cut -d/ -f3) && mv "$first" /tmp/moved`,
		check:  `test -d "$PWD" && ! test -e /tmp/moved && echo clean`,
	}, {
		name: "POSIX message queue",
		change: fmt.Sprintf(py, `fd = rt.mq_open(b"/leak", 0o102, 0o600, None)
sys.exit(fd < 0 or rt.mq_send(fd, b"secret", 6, 0) != 0)`),
		check: fmt.Sprintf(py, `sys.exit(rt.mq_open(b"/leak", 0o2) >= 0)`) + ` && echo clean`,
	}, {
		name:   "System V shared memory",
		change: fmt.Sprintf(py, `sys.exit(libc.shmget(1234, 4096, 0o1600) < 0)`),
		check:  `! grep -q 1234 /proc/sysvipc/shm && echo clean`,
	}, {
		name: "user keyring",
		// add_key(2) is system call 248, keyctl(2) 250 (KEYCTL_SEARCH is 10); -4 is the user keyring.
		change: fmt.Sprintf(py, `sys.exit(libc.syscall(248, b"user", b"leak", b"secret", 6, ctypes.c_long(-4)) < 0)`),
		check:  fmt.Sprintf(py, `sys.exit(libc.syscall(250, 10, ctypes.c_long(-4), b"user", b"leak", 0) >= 0)`) + ` && echo clean`,
	}} {
		t.Run(c.name, func(t *testing.T) {
			bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
				s := Spec{ExecRoot: root, Outputs: []string{"out/o"}}
				res, out := runLinux(t, l, s, c.change+" && echo changed >out/o")
				if !res.Success() {
					t.Fatalf("changing: got %+v, output:\n%s", res, out)
				}
				for i := 0; i < 2; i++ {
					res, out = runLinux(t, l, s, c.check+"; echo x >out/o")
					if !res.Success() || !strings.Contains(out, "clean") {
						t.Errorf("action %d after the change: got %+v, output:\n%s", i+1, res, out)
					}
				}
			})
		})
	}
}

// The commands see no descriptor but their standard ones: not the
// resident sandbox's socket, nor the binary it was started from.
func TestLinuxOnlyStandardDescriptors(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		res, out := runLinux(t, l, Spec{ExecRoot: root}, `ls /proc/self/fd`)
		// ls sees 0, 1, 2 and the folder it reads (3).
		if !res.Success() || strings.Fields(out)[len(strings.Fields(out))-1] != "3" || len(strings.Fields(out)) != 4 {
			t.Errorf("got %+v, descriptors:\n%s", res, out)
		}
	})
}

// A command that cannot be found is a StartError, however long the PATH
// that was searched.
func TestLinuxLongStartError(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		env := hostEnv()
		env["PATH"] = strings.Repeat("/nonexistent/dir", 400) + ":" + env["PATH"]
		_, err := l.Run(context.Background(), Spec{ExecRoot: root, Env: env, Argv: []string{"no-such-tool"}})
		var se *StartError
		if !errors.As(err, &se) {
			t.Errorf("got %v, want a StartError", err)
		}
	})
}

// Where resident sandboxes cannot start, each command still runs, in a
// bwrap of its own; after three failures in a row one warning says so and
// no resident sandbox is tried again.
func TestLinuxWithoutResidentSandboxes(t *testing.T) {
	l, root, base := linuxOrSkip(t)
	// A bwrap that refuses what only a resident sandbox asks for.
	wrapper := filepath.Join(base, "bwrap")
	writeFile(t, base, "bwrap", fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *' --as-pid-1 '*) echo no resident here >&2; exit 1;; esac\nexec %s \"$@\"\n", l.bwrap), 0o755)
	l.bwrap = wrapper
	var warn bytes.Buffer
	l.Warn = &warn
	for i := 0; i < 5; i++ {
		res, out := runLinux(t, l, Spec{ExecRoot: root}, `tr '\0' ' ' </proc/1/cmdline`)
		if !res.Success() || strings.Contains(out, residentArg) {
			t.Fatalf("command %d: got %+v under %q, want a success in a bwrap of its own", i, res, out)
		}
		if gaveUp := l.noResident.Load(); gaveUp != (i >= 2) {
			t.Errorf("after command %d: resident sandboxes given up: %v", i, gaveUp)
		}
	}
	if n := strings.Count(warn.String(), "WARNING"); n != 1 || !strings.Contains(warn.String(), "no resident here") {
		t.Errorf("got %d warnings, want one with bwrap's reason:\n%s", n, warn.String())
	}
}

// A strategy remembers the real path of the exec root it last ran in; a
// command in another exec root, here reached through a symbolic link, must
// still run in that one.
func TestLinuxSecondExecRoot(t *testing.T) {
	bothWays(t, func(t *testing.T, l *Linux, root, base string) {
		real := t.TempDir()
		if err := os.Symlink(filepath.Join(base, "out"), filepath.Join(real, "hepbuild-out")); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "workspace")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{root, link, root, link} {
			res, out := runLinux(t, l, Spec{ExecRoot: r}, "pwd -P")
			want, _ := filepath.EvalSymlinks(r)
			if !res.Success() || strings.TrimSpace(out) != want {
				t.Errorf("in %s: got %+v, output %q; want it run in %s", r, res, out, want)
			}
		}
	})
}
