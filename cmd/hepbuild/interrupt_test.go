package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// asMainEnv makes the test binary run hepbuild's main instead of the tests:
// the tests that need a real process (signals go to a process, not to a
// function call) start the test binary itself, so no separate build of
// hepbuild is needed.
const asMainEnv = "HEPBUILD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// hepbuildCommand returns a command that runs hepbuild with args in dir.
func hepbuildCommand(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// startAndWaitFor starts hepbuild in root and returns once its standard
// error contains want; the rest of standard error keeps being collected
// into the returned buffer. Standard error is a Writer, not a pipe read by
// the test: exec.Cmd.Wait then returns only after everything the process
// wrote has been copied, where with StderrPipe Wait may close the pipe
// before the last line ("ERROR: interrupted") was read.
func startAndWaitFor(t *testing.T, root, want string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := hepbuildCommand(t, root, args...)
	seen := make(chan struct{})
	buf := &syncBuffer{watch: want, seen: seen}
	cmd.Stderr = buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case <-seen:
	case <-time.After(60 * time.Second):
		t.Fatalf("hepbuild %v never said %q:\n%s", args, want, buf.String())
	}
	return cmd, buf
}

// waitExit waits for cmd and returns its exit code; a process that does not
// stop within a generous bound fails the test (and is killed).
func waitExit(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hepbuild did not stop after the signal:\n%s", stderr.String())
		return -1
	}
}

// syncBuffer collects a process's output; with watch set it closes seen
// once the output contains watch.
type syncBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	watch string
	seen  chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.watch != "" && s.seen != nil && strings.Contains(s.b.String(), s.watch) {
		close(s.seen)
		s.seen = nil
	}
	return n, err
}

func (s *syncBuffer) WriteString(p string) {
	s.mu.Lock()
	s.b.WriteString(p)
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const spinningBuild = `
def spin():
    n = 0
    for x in range(1000000000):
        n += x
    return n

N = spin()

task(name = "a", outs = ["a.txt"], cmd = "echo > $@")
`

const spinningComprehension = `
N = len([x for x in range(1000000000) if x < 0])

task(name = "a", outs = ["a.txt"], cmd = "echo > $@")
`

const spinningRule = `
def _impl(ctx):
    n = 0
    for x in range(1000000000):
        n += x
    out = ctx.actions.declare_file(ctx.label.name + ".txt")
    ctx.actions.write(out, str(n))
    return [DefaultInfo(files = depset([out]))]

spin = rule(implementation = _impl)
`

// TestInterruptLoadingAndAnalysis starts hepbuild on BUILD files and a rule
// implementation that would loop for minutes, waits until it says what it
// is busy with, interrupts it with SIGINT or SIGTERM and expects it to stop
// at once with exit 8 and "interrupted".
func TestInterruptLoadingAndAnalysis(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		args  []string
		busy  string
	}{
		{"loop in a function", map[string]string{"slow/BUILD": spinningBuild}, []string{"//slow:a"}, "loading package //slow"},
		{"comprehension", map[string]string{"slow/BUILD": spinningComprehension}, []string{"//slow:a"}, "loading package //slow"},
		{"loaded file", map[string]string{"slow/BUILD": "load(\":defs.star\", \"N\")\n", "slow/defs.star": "def f():\n    n = 0\n    for x in range(1000000000):\n        n += x\n    return n\n\nN = f()\n"}, []string{"query", "//slow:all"}, "loading //slow:defs.star"},
		{"rule implementation", map[string]string{"slow/BUILD": "load(\":defs.star\", \"spin\")\nspin(name = \"s\")\n", "slow/defs.star": spinningRule}, []string{"//slow:s"}, "analysing //slow:s"},
	}
	for _, c := range cases {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(c.name+"/"+sig.String(), func(t *testing.T) {
				root := testWorkspace(t, c.files)
				cmd, stderr := startAndWaitFor(t, root, c.busy, c.args...)
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				code := waitExit(t, cmd, stderr)
				out := stderr.String()
				if code != 8 || !strings.Contains(out, "ERROR: interrupted") || strings.Contains(out, "cancel") {
					t.Errorf("after %v: exit %d, want 8 and \"ERROR: interrupted\"\n%s", sig, code, out)
				}
			})
		}
	}
}

// TestInterruptBuildSaysInterrupted interrupts a build while an action
// sleeps: the build stops with exit 8 and says "interrupted", never
// "context canceled".
func TestInterruptBuildSaysInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			root := testWorkspace(t, map[string]string{"BUILD": `task(name = "slow", outs = ["slow.txt"], cmd = "sleep 60; echo > $@")` + "\n"})
			ev := filepath.Join(t.TempDir(), "events.jsonl")
			cmd := hepbuildCommand(t, root, "//:slow", "--progress=plain", "--events", ev)
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(ev)
				if bytes.Contains(b, []byte(`"action_started"`)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the action never started:\n%s", stderr.String())
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := waitExit(t, cmd, stderr)
			out := stderr.String()
			if code != 8 || !strings.Contains(out, "ERROR: interrupted") || strings.Contains(out, "context canceled") {
				t.Errorf("after %v: exit %d, want 8 and \"ERROR: interrupted\" without \"context canceled\"\n%s", sig, code, out)
			}
		})
	}
}
