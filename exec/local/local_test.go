package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/sandbox"
)

func action(kind exec.Kind) *exec.Action {
	return &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Test", Kind: kind,
		Env: map[string]string{"PATH": "/usr/bin:/bin"}}
}

func TestWrite(t *testing.T) {
	for _, executable := range []bool{false, true} {
		root := t.TempDir()
		a := action(exec.KindWrite)
		a.SetExtra().Content, a.Executable = []byte("content"), executable
		a.Outputs = []exec.Artifact{{Path: "hepbuild-out/pkg/x.txt"}}
		res, err := New(sandbox.None{}).Execute(context.Background(), a, root, "")
		if err != nil || !res.Success() {
			t.Fatalf("got %+v, %v", res, err)
		}
		p := filepath.Join(root, "hepbuild-out/pkg/x.txt")
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "content" {
			t.Errorf("output = %q (%v)", b, err)
		}
		want := os.FileMode(0o444)
		if executable {
			want = 0o555
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
			t.Errorf("executable=%v: mode %v, want %v", executable, fi.Mode().Perm(), want)
		}
		if left, _ := filepath.Glob(filepath.Join(root, "hepbuild-out/pkg/.*")); len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
}

func TestRunReportsStartErrorInLog(t *testing.T) {
	root := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "logs", "x.log")
	a := action(exec.KindRun)
	a.Argv = []string{"no-such-tool-hepbuild"}
	res, err := New(sandbox.None{}).Execute(context.Background(), a, root, logPath)
	if err != nil {
		t.Fatalf("a missing tool is the action's failure, got error %v", err)
	}
	if res.Success() || !strings.Contains(res.StartError, "no-such-tool-hepbuild") {
		t.Errorf("got %+v, want a start error naming the tool", res)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "no-such-tool-hepbuild") {
		t.Errorf("log = %q, want the start error", b)
	}
}

func TestRunTimeoutAndStrategy(t *testing.T) {
	root := t.TempDir()
	sb := sandbox.NewSymlink(filepath.Join(t.TempDir(), "sandbox"))
	a := action(exec.KindRun)
	a.Argv = []string{"/bin/bash", "-c", "sleep 100"}
	a.SetExtra().Resources.Walltime = 100 * time.Millisecond
	res, err := New(sb, WithGrace(100*time.Millisecond)).Execute(context.Background(), a, root, filepath.Join(root, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Timeout != 100*time.Millisecond || res.Strategy != "symlink" {
		t.Errorf("got %+v, want a symlink run timed out after the walltime", res)
	}
	// no-sandbox runs in the exec root itself.
	a.Argv = []string{"/bin/bash", "-c", "pwd > hepbuild-out/pwd"}
	a.Outputs = []exec.Artifact{{Path: "hepbuild-out/pwd"}}
	a.SetExtra().Tags = []string{"no-sandbox"}
	a.SetExtra().Resources.Walltime = 0
	res, err = New(sb).Execute(context.Background(), a, root, filepath.Join(root, "log"))
	if err != nil || res.Strategy != "none" {
		t.Fatalf("got %+v, %v; want a run with strategy none", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/pwd")); strings.TrimSpace(string(b)) != root {
		t.Errorf("ran in %q, want the exec root %s", b, root)
	}
}

// A setup script that fails fails the action, with the script's output in
// the log, and its outputs are not made.
func TestShellEnvironmentFailure(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "envs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "envs/setup.sh"), []byte("echo cannot find the LCG view >&2\nfalse\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "x.log")
	a := action(exec.KindRun)
	a.Argv = []string{"/bin/bash", "-c", "echo made > hepbuild-out/pkg/out.txt"}
	a.Outputs = []exec.Artifact{{Path: "hepbuild-out/pkg/out.txt"}}
	a.Environment = &exec.Environment{Kind: "shell", Params: map[string]string{"setup": "envs/setup.sh"},
		Files: []exec.Artifact{{Path: "envs/setup.sh", Source: true}}}
	res, err := New(sandbox.NewSymlink(filepath.Join(t.TempDir(), "sb"))).Execute(context.Background(), a, root, logPath)
	if err != nil {
		t.Fatal(err)
	}
	if res.Success() || res.ExitCode != 1 {
		t.Errorf("got %+v, want exit status 1 from the setup script", res)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "cannot find the LCG view") {
		t.Errorf("log = %q, want the setup script's output", b)
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out/pkg/out.txt")); err == nil {
		t.Error("the command ran although its setup failed")
	}
}

func TestEnvironmentCannotBeSetUp(t *testing.T) {
	root := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "x.log")
	a := action(exec.KindRun)
	a.Argv = []string{"true"}
	a.Environment = &exec.Environment{Kind: "container", Params: map[string]string{"image": "/no/such/image.sif"}}
	res, err := New(sandbox.None{}).Execute(context.Background(), a, root, logPath)
	if err != nil {
		t.Fatalf("a missing image is the action's failure, got error %v", err)
	}
	if res.Success() || !strings.Contains(res.Failure, "/no/such/image.sif does not exist") {
		t.Errorf("got %+v, want a failure saying the image does not exist", res)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "/no/such/image.sif does not exist") {
		t.Errorf("log = %q, want the reason", b)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{2e9: "2 GB", 1 << 31: "2.15 GB", 512e6: "512 MB", 1500: "1.5 kB", 12: "12 bytes"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// A daemon started by an action tagged no-sandbox, in its own session or
// double-forked, does not outlive the action, whatever --sandbox says.
func TestNoSandboxDaemonIsKilled(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	sb := sandbox.NewSymlink(filepath.Join(t.TempDir(), "sandbox"))
	a := action(exec.KindRun)
	a.SetExtra().Tags = []string{"no-sandbox"}
	a.Argv = []string{"/bin/bash", "-c", `cd ` + dir + `
setsid sh -c 'echo $$ > d1; exec sleep 1000' &
( setsid sh -c 'sleep 1000 & echo $! > d2' & )
until [ -s d1 ] && [ -s d2 ]; do sleep 0.01; done`}
	res, err := New(sb).Execute(context.Background(), a, root, filepath.Join(root, "log"))
	if err != nil || !res.Success() || res.Strategy != "none" {
		t.Fatalf("got %+v, %v", res, err)
	}
	for _, f := range []string{"d1", "d2"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		// The action has ended: its daemons must be gone by now, reaped
		// (no zombie either), not merely signalled.
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Errorf("daemon %d outlived the action: %s", pid, stat)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// The tmp resource and --sandbox-expose reach the linux sandbox.
func TestLinuxTmpAndExpose(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	exposed, err := os.MkdirTemp(home, "hepbuild-test-expose-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(exposed)
	if err := os.WriteFile(filepath.Join(exposed, "f"), []byte("visible\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := sandbox.NewLinux(filepath.Join(t.TempDir(), "sandbox"))
	if err != nil {
		t.Skipf("linux strategy unavailable: %v", err)
	}
	defer l.Close()
	root := t.TempDir()
	a := action(exec.KindRun)
	a.Outputs = []exec.Artifact{{Path: "hepbuild-out/pkg/out"}}
	a.Argv = []string{"/bin/bash", "-c", "cat " + exposed + "/f > hepbuild-out/pkg/out; head -c 32M /dev/zero > /tmp/big || echo full >> hepbuild-out/pkg/out"}
	for _, expose := range []bool{false, true} {
		a.SetExtra().Resources.Tmp = 16 << 20
		a.SetExtra().SandboxExpose = nil
		if expose {
			a.SetExtra().SandboxExpose = []string{exposed}
		}
		res, err := New(l).Execute(context.Background(), a, root, filepath.Join(root, "log"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "hepbuild-out/pkg/out"))
		want := "full\n"
		if expose {
			want = "visible\nfull\n"
		}
		if string(b) != want || !res.Success() {
			t.Errorf("expose=%v: got %+v, output %q, want %q", expose, res, b, want)
		}
	}
}
