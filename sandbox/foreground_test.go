package sandbox

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunForegroundPassesStreamsAndExitStatus(t *testing.T) {
	var out, errb bytes.Buffer
	code, err := RunForeground(Foreground{
		Path:   "/bin/sh",
		Args:   []string{"-c", `read line; echo "got $line in $PWD with X=$X"; echo oops >&2; exit 3`},
		Dir:    "/",
		Env:    []string{"X=1"},
		Stdin:  strings.NewReader("hello\n"),
		Stdout: &out,
		Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	if want := "got hello in / with X=1\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if errb.String() != "oops\n" {
		t.Errorf("stderr %q, want oops", errb.String())
	}
}

func TestRunForegroundCannotStart(t *testing.T) {
	_, err := RunForeground(Foreground{Path: "/nonexistent/program"})
	if _, ok := err.(*StartError); !ok {
		t.Fatalf("got %v, want a *StartError", err)
	}
}

// A SIGTERM sent to hepbuild reaches the program, whose death by it is
// reported as a shell would: 128+15.
func TestRunForegroundForwardsSignals(t *testing.T) {
	r, w := io.Pipe()
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		if line == "ready\n" {
			time.Sleep(50 * time.Millisecond)
			_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	code, err := RunForeground(Foreground{
		Path:   "/bin/sh",
		Args:   []string{"-c", "echo ready; exec sleep 20"},
		Stdout: w,
		Stderr: io.Discard,
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
}
