package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Logs written through spare log files (see spareLog) behave as those
// written through a pipe: one file of stdout and stderr in the order
// written, no log after a silent run, nothing of one run in another's
// log, nothing written after the command's end, and a long command's log
// in place while it runs.
func TestSpareLogs(t *testing.T) {
	for _, st := range strategies(t) {
		t.Run(st.Name(), func(t *testing.T) {
			root := t.TempDir()
			base := t.TempDir()
			run := func(log, script string) {
				t.Helper()
				res, err := st.Run(context.Background(), Spec{
					ExecRoot: root,
					Argv:     []string{"/bin/bash", "-c", script},
					Env:      hostEnv(),
					LogPath:  filepath.Join(base, "logs", log),
				})
				if err != nil || !res.Success() {
					t.Fatalf("%q: got %+v, %v", script, res, err)
				}
			}
			wantLog := func(log, want string) {
				t.Helper()
				b, err := os.ReadFile(filepath.Join(base, "logs", log))
				switch {
				case want == "" && !errors.Is(err, fs.ErrNotExist):
					t.Errorf("log %s: got %q, %v; want none", log, b, err)
				case want != "" && (err != nil || string(b) != want):
					t.Errorf("log %s: got %q, %v; want %q", log, b, err, want)
				}
			}

			run("a/x.log", "echo out; echo err >&2; echo out2")
			wantLog("a/x.log", "out\nerr\nout2\n")
			// The same log after a silent run: gone.
			run("a/x.log", "true")
			wantLog("a/x.log", "")
			// Silent runs leave no folder either, and their spare serves
			// the next, whose log holds its own output alone.
			for i := 0; i < 5; i++ {
				run("b/silent.log", ":")
			}
			wantLog("b/silent.log", "")
			if _, err := os.Stat(filepath.Join(base, "logs", "b")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a silent run made the log's folder: %v", err)
			}
			run("c/y.log", "printf y")
			wantLog("c/y.log", "y")
			// What a command leaves behind is killed before it writes.
			run("d/z.log", "(sleep 0.3; echo late) & echo now")
			time.Sleep(600 * time.Millisecond)
			wantLog("d/z.log", "now\n")
			run("e/after.log", ":")
			run("e/next.log", "echo next")
			time.Sleep(600 * time.Millisecond)
			wantLog("e/after.log", "")
			wantLog("e/next.log", "next\n")
			wantLog("d/z.log", "now\n")

			// A running command's log shows up once it has printed.
			done := make(chan struct{})
			go func() {
				defer close(done)
				run("f/live.log", "echo early; sleep 5; echo late")
			}()
			live := filepath.Join(base, "logs", "f", "live.log")
			for {
				b, _ := os.ReadFile(live)
				if string(b) == "early\n" {
					break
				}
				select {
				case <-done:
					t.Fatal("the log of a running command did not show up while it ran")
				case <-time.After(20 * time.Millisecond):
				}
			}
			<-done
			wantLog("f/live.log", "early\nlate\n")
		})
	}
}

// A spare whose status flags the command changed is not used again: the
// next command must not write at the last one's offset.
func TestSpareLogFlagsChanged(t *testing.T) {
	root, base := t.TempDir(), t.TempDir()
	log := filepath.Join(base, "logs", "x.log")
	for _, script := range []string{
		// Clears O_APPEND of the shared stdout, and moves its offset.
		`python3 -c 'import fcntl, os; fcntl.fcntl(1, fcntl.F_SETFL, 0); os.lseek(1, 100, 0)'`,
		"echo next",
	} {
		res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{"/bin/bash", "-c", script}, Env: hostEnv(), LogPath: log})
		if err != nil || !res.Success() {
			t.Fatalf("%q: got %+v, %v", script, res, err)
		}
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "next\n" {
		t.Errorf("log: got %q, %v; want %q", b, err, "next\n")
	}
}

// A spare that the command gave a name, or whose mode or owner it
// changed, is not used again: the next command's log would reach the
// name (an output, which the cache may link into an entry) or carry the
// mode.
func TestSpareLogTamperedNotReused(t *testing.T) {
	root, base := t.TempDir(), t.TempDir()
	log := filepath.Join(base, "logs", "x.log")
	stolen := filepath.Join(base, "stolen")
	run := func(script string) {
		t.Helper()
		res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{"/bin/bash", "-c", script}, Env: hostEnv(), LogPath: log})
		if err != nil || !res.Success() {
			t.Fatalf("%q: got %+v, %v", script, res, err)
		}
	}
	run("ln -L /proc/self/fd/1 " + stolen)
	run("echo secret")
	if b, err := os.ReadFile(stolen); err != nil || len(b) != 0 {
		t.Errorf("the file the last command named: got %q, %v; want it empty", b, err)
	}

	run("chmod 600 /proc/self/fd/1")
	run("echo next")
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	fi, err := os.Stat(log)
	if want := fs.FileMode(0o644 &^ umask); err != nil || fi.Mode() != want {
		t.Errorf("log after a command chmod'ed its stdout: got %v, %v; want mode %v", fi.Mode(), err, want)
	}
}

// A command stopped from outside (here, at its timeout) may have handed
// its stdout to a process that is not its own, which the reaper cannot
// kill: systemd-run --pipe hands it to the service manager's service. Its
// spare is not used again, or what that process writes later would be in
// the next command's log.
func TestSpareLogOfStoppedCommandNotReused(t *testing.T) {
	root, base := t.TempDir(), t.TempDir()
	log := filepath.Join(base, "logs", "x.log")
	sock := filepath.Join(base, "outsider.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	handed := make(chan *os.File, 1)
	go func() {
		defer close(handed)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		oob := make([]byte, syscall.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(make([]byte, 1), oob)
		if err != nil {
			return
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return
		}
		handed <- os.NewFile(uintptr(fds[0]), "handed")
	}()
	hand := `import socket, time; s = socket.socket(socket.AF_UNIX); s.connect("` + sock + `"); socket.send_fds(s, [b"x"], [1]); time.sleep(30)`
	res, err := None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{"python3", "-c", hand}, Env: hostEnv(), LogPath: log, Timeout: time.Second, Grace: 100 * time.Millisecond})
	if err != nil || !res.TimedOut {
		t.Fatalf("got %+v, %v; want a timeout", res, err)
	}
	f := <-handed
	if f == nil {
		t.Fatal("the command did not hand its stdout over")
	}
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(200 * time.Millisecond)
		f.WriteString("late\n")
	}()
	res, err = None{}.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{"/bin/bash", "-c", "sleep 0.5; echo next"}, Env: hostEnv(), LogPath: log})
	<-done
	if err != nil || !res.Success() {
		t.Fatalf("got %+v, %v", res, err)
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "next\n" {
		t.Errorf("log: got %q, %v; want %q", b, err, "next\n")
	}
}
