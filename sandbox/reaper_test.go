package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
