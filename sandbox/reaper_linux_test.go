package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A daemon a command leaves behind without a PID namespace (in its own
// session, double-forked, nohup'd) is killed when the command ends, and
// zombies are reaped; the processes of another action running meanwhile
// are not touched.
func TestDaemonsAreKilledWithoutPIDNamespace(t *testing.T) {
	for _, st := range hostPIDStrategies(t) {
		t.Run(st.Name(), func(t *testing.T) {
			dir := t.TempDir()
			m := marker()
			// The other action runs until told to stop.
			otherPID := filepath.Join(dir, "other.pid")
			stop := filepath.Join(dir, "stop")
			var wg sync.WaitGroup
			wg.Add(1)
			var otherRes Result
			var otherErr error
			go func() {
				defer wg.Done()
				otherRes, otherErr = st.Run(context.Background(), Spec{ExecRoot: t.TempDir(), Env: hostEnv(),
					Argv: []string{"/bin/bash", "-c", fmt.Sprintf("echo $$ > %s; until [ -e %s ]; do sleep 0.02; done", otherPID, stop)}})
			}()
			defer wg.Wait()
			defer os.WriteFile(stop, nil, 0o644)
			waitForFile(t, otherPID)

			script := fmt.Sprintf(`cd %[1]s
setsid sh -c 'echo $$ > d1; exec sleep %[2]s' &
( setsid sh -c 'sleep %[2]s & echo $! > d2' & )
( setsid nohup sh -c 'echo $$ > d3; exec sleep %[2]s' >/dev/null 2>&1 & )
( sh -c 'sleep %[2]s & echo $! > d4; wait' & )
for f in d1 d2 d3 d4; do until [ -s $f ]; do sleep 0.01; done; done
echo done`, dir, m)
			var out strings.Builder
			res, err := st.Run(context.Background(), Spec{ExecRoot: t.TempDir(), Env: hostEnv(),
				Argv: []string{"/bin/bash", "-c", script}, Stdout: &out, Stderr: &out, Grace: time.Second})
			if err != nil || !res.Success() || out.String() != "done\n" {
				t.Fatalf("got %+v, %v, output %q", res, err, out.String())
			}
			for _, f := range []string{"d1", "d2", "d3", "d4"} {
				assertGone(t, readPID(t, filepath.Join(dir, f)))
			}
			if other := readPID(t, otherPID); !alive(other) {
				t.Errorf("the other action's process %d was killed", other)
			}
			os.WriteFile(stop, nil, 0o644)
			wg.Wait()
			if otherErr != nil || !otherRes.Success() {
				t.Errorf("the other action: %+v, %v", otherRes, otherErr)
			}
		})
	}
}

// With network access the linux strategy runs the command in a bwrap of
// its own, and its PID namespace still takes every daemon with it.
func TestLinuxNetworkDaemonIsKilled(t *testing.T) {
	l, root, _ := linuxOrSkip(t)
	m := marker()
	w := watchProcs(m)
	releaseWhenSeen(t, w, 2)
	res, out := runLinux(t, l, Spec{ExecRoot: root, Network: true},
		fmt.Sprintf(`( setsid nohup sleep %[1]s >/dev/null 2>&1 & ); setsid sleep %[1]s &`, m)+awaitRelease)
	pids := w.seen()
	if !res.Success() || out != "done\n" {
		t.Fatalf("got %+v, output %q", res, out)
	}
	for _, pid := range pids {
		assertGone(t, pid)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// waitForFile waits until the file exists and is not empty.
func waitForFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", p)
}

// Two actions running at once, each leaving a daemon: each daemon is
// killed when its own action ends, and not when the other's does.
func TestConcurrentDaemonsAreKilledWithTheirAction(t *testing.T) {
	for _, st := range hostPIDStrategies(t) {
		t.Run(st.Name(), func(t *testing.T) {
			dir := t.TempDir()
			m := marker()
			// Each action leaves a daemon, says its pid, and ends when told.
			script := func(name string) string {
				return fmt.Sprintf(`cd %[1]s
( setsid sh -c 'echo $$ > %[2]s.pid.tmp; mv %[2]s.pid.tmp %[2]s.pid; exec sleep %[3]s' & )
until [ -e %[2]s.stop ]; do sleep 0.01; done`, dir, name, m)
			}
			type outcome struct {
				res Result
				err error
			}
			done := map[string]chan outcome{}
			for _, name := range []string{"a", "b"} {
				ch := make(chan outcome, 1)
				done[name] = ch
				go func() {
					res, err := st.Run(context.Background(), Spec{ExecRoot: t.TempDir(), Env: hostEnv(),
						Argv: []string{"/bin/bash", "-c", script(name)}, Grace: time.Second})
					ch <- outcome{res, err}
				}()
			}
			defer func() {
				for _, name := range []string{"a", "b"} {
					os.WriteFile(filepath.Join(dir, name+".stop"), nil, 0o644)
				}
			}()
			waitForFile(t, filepath.Join(dir, "a.pid"))
			waitForFile(t, filepath.Join(dir, "b.pid"))
			a, b := readPID(t, filepath.Join(dir, "a.pid")), readPID(t, filepath.Join(dir, "b.pid"))

			os.WriteFile(filepath.Join(dir, "a.stop"), nil, 0o644)
			if o := <-done["a"]; o.err != nil || !o.res.Success() {
				t.Fatalf("a: %+v, %v", o.res, o.err)
			}
			// Gone (reaped, not a zombie) as soon as its action has ended.
			if _, err := os.Stat("/proc/" + strconv.Itoa(a)); err == nil {
				t.Errorf("a's daemon %d outlived a", a)
			}
			if !alive(b) {
				t.Fatalf("b's daemon %d was killed when a ended", b)
			}
			os.WriteFile(filepath.Join(dir, "b.stop"), nil, 0o644)
			if o := <-done["b"]; o.err != nil || !o.res.Success() {
				t.Fatalf("b: %+v, %v", o.res, o.err)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(b)); err == nil {
				t.Errorf("b's daemon %d outlived b", b)
			}
		})
	}
}

// reaperOf runs a command that prints its parent's pid: the reaper's.
func reaperOf(t *testing.T) int {
	t.Helper()
	var out strings.Builder
	res, err := None{}.Run(context.Background(), Spec{ExecRoot: t.TempDir(), Env: hostEnv(),
		Argv: []string{"/bin/sh", "-c", "echo $PPID"}, Stdout: &out})
	if err != nil || !res.Success() {
		t.Fatalf("got %+v, %v", res, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// Commands run one after another reuse a reaper; one killed from
// outside while idle is replaced, and the next command runs all the same.
func TestReaperIsReused(t *testing.T) {
	stopReapers()
	first := reaperOf(t)
	if first == os.Getpid() {
		t.Fatal("the command ran without a reaper")
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(first) + "/cmdline")
	if !strings.Contains(string(cmdline), reaperArg) {
		t.Fatalf("the command's parent %d is no resident reaper: %q", first, cmdline)
	}
	if again := reaperOf(t); again != first {
		t.Errorf("the second command ran under reaper %d, the first under %d", again, first)
	}

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	assertGone(t, first)
	if next := reaperOf(t); next == first {
		t.Errorf("the command ran under the killed reaper %d", next)
	}

	// Closing the strategy stops the idle reapers.
	last := reaperOf(t)
	if err := (None{}).Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, last)
}
