package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// strategies returns every strategy available here, each with its own folders.
func strategies(t *testing.T) []Strategy {
	list := []Strategy{None{}, NewSymlink(filepath.Join(t.TempDir(), "sandbox"))}
	if l, err := NewLinux(filepath.Join(t.TempDir(), "sandbox")); err == nil {
		list = append(list, l)
	} else {
		t.Logf("linux strategy not tested: %v", err)
	}
	return list
}

// hostPIDStrategies are the strategies whose commands can write a file
// outside their sandbox and see host process ids; linux_test.go proves the
// same properties for the linux strategy from the host's /proc.
func hostPIDStrategies(t *testing.T) []Strategy {
	return []Strategy{None{}, NewSymlink(filepath.Join(t.TempDir(), "sandbox"))}
}

func hostEnv() map[string]string { return map[string]string{"PATH": "/usr/bin:/bin"} }

func TestExitCodes(t *testing.T) {
	for _, st := range strategies(t) {
		for _, code := range []int{0, 1, 3, 42} {
			t.Run(st.Name()+"/"+strconv.Itoa(code), func(t *testing.T) {
				res, err := st.Run(context.Background(), Spec{
					ExecRoot: t.TempDir(),
					Argv:     []string{"/bin/bash", "-c", "exit " + strconv.Itoa(code)},
					Env:      hostEnv(),
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.ExitCode != code || res.Success() != (code == 0) || res.TimedOut || res.Signal != "" {
					t.Errorf("got %+v, want exit code %d", res, code)
				}
			})
		}
	}
}

func TestSignalIsReported(t *testing.T) {
	res, err := None{}.Run(context.Background(), Spec{
		ExecRoot: t.TempDir(),
		Argv:     []string{"/bin/bash", "-c", "kill -KILL $$"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != -1 || res.Signal != "killed" || res.Success() {
		t.Errorf("got %+v, want killed by SIGKILL", res)
	}
}

// The child sees exactly the given variables, none of the test's own.
func TestEnvIsExactlyGiven(t *testing.T) {
	t.Setenv("HEPBUILD_SHOULD_NOT_LEAK", "1")
	for _, st := range strategies(t) {
		for _, env := range []map[string]string{
			{},
			{"A": "1", "B": "two words", "EMPTY": ""},
		} {
			t.Run(st.Name(), func(t *testing.T) {
				var out bytes.Buffer
				_, err := st.Run(context.Background(), Spec{
					ExecRoot: t.TempDir(),
					Argv:     []string{"/usr/bin/env"},
					Env:      env,
					Stdout:   &out,
				})
				if err != nil {
					t.Fatal(err)
				}
				want := []string{}
				for k, v := range env {
					want = append(want, k+"="+v)
				}
				got := []string{}
				if out.Len() > 0 {
					got = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				}
				if st.Name() == "linux" {
					// bubblewrap sets PWD to the working folder, as a shell would.
					got = slices.DeleteFunc(got, func(kv string) bool { return strings.HasPrefix(kv, "PWD=") })
				}
				if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("environment mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestCommandLookup(t *testing.T) {
	tests := []struct {
		name    string
		argv0   string
		env     map[string]string
		wantErr bool
	}{
		{"on the child's PATH", "true", map[string]string{"PATH": "/usr/bin:/bin"}, false},
		{"no PATH", "true", nil, true},
		{"absolute", "/bin/true", nil, false},
		{"missing", "/no/such/tool", nil, true},
		{"relative to exec root", "tools/run.sh", nil, false},
		{"not executable", "tools/data.txt", nil, true},
	}
	root := t.TempDir()
	writeFile(t, root, "tools/run.sh", "#!/bin/sh\nexit 0\n", 0o755)
	writeFile(t, root, "tools/data.txt", "x", 0o644)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{tc.argv0}, Env: tc.env})
			var se *StartError
			if tc.wantErr {
				if !errors.As(err, &se) {
					t.Fatalf("got %+v, %v; want a StartError", res, err)
				}
				return
			}
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("got %+v, %v; want success", res, err)
			}
		})
	}
}

// retryUntilWritten runs run with a timeout that doubles, from first, until
// the run wrote the pid file before it timed out: on a loaded machine the
// command may not get that far in time, and such a run proves nothing.
func retryUntilWritten(t *testing.T, pidFile string, first time.Duration, run func(timeout time.Duration)) {
	t.Helper()
	for timeout := first; ; timeout *= 2 {
		os.Remove(pidFile)
		run(timeout)
		if fi, err := os.Stat(pidFile); (err == nil && fi.Size() > 0) || timeout > time.Minute {
			return
		}
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	for _, st := range hostPIDStrategies(t) {
		t.Run(st.Name(), func(t *testing.T) {
			root := t.TempDir()
			pidFile := filepath.Join(t.TempDir(), "pid")
			retryUntilWritten(t, pidFile, 300*time.Millisecond, func(timeout time.Duration) {
				start := time.Now()
				res, err := st.Run(context.Background(), Spec{
					ExecRoot: root,
					Argv:     []string{"/bin/bash", "-c", "sleep 100 & echo $! > " + pidFile + "; sleep 100"},
					Env:      hostEnv(),
					Timeout:  timeout,
					Grace:    200 * time.Millisecond,
					LogPath:  filepath.Join(root, "log"),
				})
				if err != nil {
					t.Fatal(err)
				}
				if !res.TimedOut || res.Success() {
					t.Errorf("got %+v, want timed out", res)
				}
				// The command sleeps for 100s.
				if d := time.Since(start); d > timeout+time.Minute {
					t.Errorf("run took %v after a %v timeout", d, timeout)
				}
			})
			assertGone(t, readPID(t, pidFile))
		})
	}
}

// A command that ignores SIGTERM is killed once the grace period is over.
func TestGraceThenKill(t *testing.T) {
	root := t.TempDir()
	pidFile := filepath.Join(root, "pid")
	retryUntilWritten(t, pidFile, 200*time.Millisecond, func(timeout time.Duration) {
		res, err := None{}.Run(context.Background(), Spec{
			ExecRoot: root,
			Argv:     []string{"/bin/bash", "-c", "trap '' TERM; sleep 100 & echo $! > " + pidFile + "; wait; wait"},
			Env:      hostEnv(),
			Timeout:  timeout,
			Grace:    200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.TimedOut || res.Signal != "killed" {
			t.Errorf("got %+v, want timed out and killed", res)
		}
	})
	assertGone(t, readPID(t, pidFile))
}

func TestCancelKillsGroup(t *testing.T) {
	root := t.TempDir()
	pidFile := filepath.Join(root, "pid")
	// Cancelled once the background process runs, however long that took.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if fi, err := os.Stat(pidFile); err == nil && fi.Size() > 0 {
				return
			}
		}
	}()
	res, err := None{}.Run(ctx, Spec{
		ExecRoot: root,
		Argv:     []string{"/bin/bash", "-c", "sleep 100 & echo $! > " + pidFile + "; sleep 100"},
		Env:      hostEnv(),
		Grace:    200 * time.Millisecond,
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want the context's", err)
	}
	if res.Success() || res.TimedOut {
		t.Errorf("got %+v, want a stopped, not timed-out, run", res)
	}
	assertGone(t, readPID(t, pidFile))
}

// A process the command leaves running in the background is killed when the
// command ends, even when it holds the output pipe open.
func TestBackgroundProcessIsKilled(t *testing.T) {
	for _, st := range hostPIDStrategies(t) {
		for _, toPipe := range []bool{false, true} {
			t.Run(st.Name()+"/pipe="+strconv.FormatBool(toPipe), func(t *testing.T) {
				root := t.TempDir()
				pidFile := filepath.Join(t.TempDir(), "pid")
				spec := Spec{
					ExecRoot: root,
					Argv:     []string{"/bin/bash", "-c", "sleep 100 & echo $! > " + pidFile + "; echo done"},
					Env:      hostEnv(),
					Grace:    time.Second,
				}
				var out bytes.Buffer
				if toPipe {
					spec.Stdout, spec.Stderr = &out, &out
				} else {
					spec.LogPath = filepath.Join(root, "logs", "x.log")
				}
				start := time.Now()
				res, err := st.Run(context.Background(), spec)
				if err != nil || !res.Success() {
					t.Fatalf("got %+v, %v; want success", res, err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("run took %v, the background process held it", d)
				}
				assertGone(t, readPID(t, pidFile))
				got := out.String()
				if !toPipe {
					b, err := os.ReadFile(spec.LogPath)
					if err != nil {
						t.Fatal(err)
					}
					got = string(b)
				}
				if got != "done\n" {
					t.Errorf("output = %q, want %q", got, "done\n")
				}
			})
		}
	}
}

func TestNoneWritesInPlace(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "pkg/in.txt", "hello", 0o644)
	res, err := None{}.Run(context.Background(), Spec{
		ExecRoot: root,
		Argv:     []string{"/bin/bash", "-c", "cat pkg/in.txt > hepbuild-out/pkg/out.txt; echo x > hepbuild-out/pkg/dir/f"},
		Env:      hostEnv(),
		Inputs:   []string{"pkg/in.txt"},
		Outputs:  []string{"hepbuild-out/pkg/out.txt"},
		// The folder of an output folder is created empty by the strategy.
		OutputDirs: []string{"hepbuild-out/pkg/dir"},
	})
	if err != nil || !res.Success() {
		t.Fatalf("got %+v, %v", res, err)
	}
	if got := readFile(t, root, "hepbuild-out/pkg/out.txt"); got != "hello" {
		t.Errorf("output = %q, want %q", got, "hello")
	}
	if got := readFile(t, root, "hepbuild-out/pkg/dir/f"); got != "x\n" {
		t.Errorf("output folder file = %q, want %q", got, "x\n")
	}
}

func TestSymlinkHidesUndeclared(t *testing.T) {
	root := t.TempDir()
	base := t.TempDir()
	// hepbuild-out is a symlink to the output base, as in a real workspace.
	if err := os.MkdirAll(filepath.Join(base, "out", "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "out"), filepath.Join(root, "hepbuild-out")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "pkg/in.txt", "hello", 0o644)
	writeFile(t, root, "pkg/secret.txt", "undeclared", 0o644)
	writeFile(t, root, "hepbuild-out/pkg/gen.txt", " world", 0o444)
	writeFile(t, root, "data/a/x.txt", "in a folder", 0o644)
	sb := NewSymlink(filepath.Join(base, "sandbox"))
	script := `set -eu
test ! -e pkg/secret.txt
cat pkg/in.txt hepbuild-out/pkg/gen.txt > hepbuild-out/pkg/out.txt
cat data/a/x.txt > hepbuild-out/pkg/dir/copy.txt
echo stray > hepbuild-out/pkg/undeclared.txt
echo stray > stray.txt`
	res, err := sb.Run(context.Background(), Spec{
		ExecRoot:   root,
		Argv:       []string{"/bin/bash", "-c", script},
		Env:        hostEnv(),
		Inputs:     []string{"data/a", "data/a/x.txt", "hepbuild-out/pkg/gen.txt", "pkg/in.txt"},
		Outputs:    []string{"hepbuild-out/pkg/out.txt"},
		OutputDirs: []string{"hepbuild-out/pkg/dir"},
		LogPath:    filepath.Join(base, "logs", "out.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success() {
		log, _ := os.ReadFile(filepath.Join(base, "logs", "out.log"))
		t.Fatalf("got %+v; want success (an undeclared file was visible?); log:\n%s", res, log)
	}
	if got := readFile(t, root, "hepbuild-out/pkg/out.txt"); got != "hello world" {
		t.Errorf("output = %q, want %q", got, "hello world")
	}
	if got := readFile(t, root, "hepbuild-out/pkg/dir/copy.txt"); got != "in a folder" {
		t.Errorf("output folder = %q, want %q", got, "in a folder")
	}
	for _, p := range []string{"hepbuild-out/pkg/undeclared.txt", "stray.txt"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("undeclared output %s was kept (err %v)", p, err)
		}
	}
	// The folder is kept for the next command, until Close.
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(base, "sandbox")); len(left) != 0 {
		t.Errorf("sandbox folders left behind after Close: %v", left)
	}
}

func writeFile(t *testing.T, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// A new file, so that an earlier read-only one is replaced even when
	// the tests do not run as root.
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// assertGone waits for the process to disappear, for up to half a minute
// on a loaded machine; a zombie counts as gone, since a container's init
// may not reap it at once.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if unix.Kill(pid, 0) == unix.ESRCH {
			return
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("process %d is still running", pid)
	_ = unix.Kill(pid, unix.SIGKILL)
}
