// Package testserver starts the real servers hepbuild's tests talk to
// (bazel-remote, Buildbarn's storage or a whole Buildbarn remote execution
// cluster, nginx WebDAV, XRootD, a Slurm cluster, an ARC CE) on loopback,
// each in a temporary folder, and stops them by process id when the test
// ends. .ci/services/*.sh install or build them; a test whose server is not
// installed fails and says which script installs it, it never skips.
package testserver

import (
	"fmt"
	"math/rand/v2"
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

// BinDir is where .ci/services/*.sh put the servers they build.
func BinDir() string {
	if d := os.Getenv("HEPBUILD_TEST_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "hepbuild-test", "bin")
}

// Binary returns the path of a server program: in BinDir, else on PATH.
// A missing one fails the test naming the script that installs it.
func Binary(t testing.TB, name, script string) string {
	t.Helper()
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is not installed: run .ci/services/%s (or .ci/run, which runs them all)", name, script)
	return ""
}

// FreePort returns a loopback TCP port nobody listens on right now. It
// picks a random port below the kernel's ephemeral range: a port from that
// range (what listening on port 0 gives) may be taken, before the server
// binds it, by any outgoing connection of the tests running beside this
// one, which the many gRPC clients of the suite make all the time.
//
// A port handed out is reserved until the test ends, in this process and,
// through a file in the system's temporary folder, in the other test
// processes `go test ./...` runs beside this one: between FreePort and the
// server's bind another package's FreePort could otherwise pick the same
// port, and a server failed to start (or, worse, a test reached the other
// package's server).
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				low = n
			}
		}
	}
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		if !reservePort(t, port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// staleReservation is how old a port's reservation file must be before
// another process takes it over: one left by a test process that was
// killed before its cleanup ran.
const staleReservation = 2 * time.Hour

var (
	portsMu  sync.Mutex
	reserved = map[int]bool{}
)

// reservationDir is the folder of port reservations, shared by every user
// of the machine: world-writable and sticky, like /tmp, so that one user's
// reservations are honoured by, and safe from, another's. It reports false
// when there is none to be had (no temporary folder, or one that is not a
// real folder: a link planted there is not followed).
func reservationDir() (string, bool) {
	dir := filepath.Join(os.TempDir(), "hepbuild-test-ports")
	os.Mkdir(dir, 0o777)
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	if want := 0o777 | os.ModeSticky; fi.Mode()&(os.ModePerm|os.ModeSticky) != want {
		// Made under a umask, or by an earlier version: its owner opens
		// it to everyone (another user's chmod fails, harmlessly).
		os.Chmod(dir, want)
	}
	return dir, true
}

// reservePort reserves port for the rest of the test, or reports that this
// process or another one holds it.
func reservePort(t testing.TB, port int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if reserved[port] {
		return false
	}
	path := ""
	if dir, ok := reservationDir(); ok {
		path = filepath.Join(dir, strconv.Itoa(port))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if os.IsExist(err) {
			fi, serr := os.Stat(path)
			if serr != nil || time.Since(fi.ModTime()) < staleReservation {
				return false
			}
			// Stale: replace it. Two processes replacing the same stale
			// file at once both win, which costs no more than the
			// unreserved pick did before.
			os.Remove(path)
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		}
		switch {
		case os.IsExist(err):
			return false
		case err != nil:
			// A folder this user cannot write to: the port goes out
			// unreserved across processes, as before reservations.
			path = ""
		default:
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
		}
	}
	reserved[port] = true
	// Registered before the server's own cleanup, so it runs after the
	// server has stopped and let the port go.
	t.Cleanup(func() {
		portsMu.Lock()
		defer portsMu.Unlock()
		delete(reserved, port)
		if path != "" {
			os.Remove(path)
		}
	})
	return true
}

// Process is a started server.
type Process struct {
	Cmd *exec.Cmd
	Log string // its combined output
}

// Stop ends the server: SIGTERM, then SIGKILL after a grace period. It may
// be called more than once (a test that kills the server mid-build).
func (p *Process) Stop() {
	if p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.Cmd.Process.Kill()
		<-done
	}
}

// Start runs the command with its output in dir/<name>.log and stops it
// when the test ends. It does not wait for the server to be ready.
func Start(t testing.TB, dir, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	f.Close()
	p := &Process{Cmd: cmd, Log: logPath}
	t.Cleanup(p.Stop)
	return p
}

// WaitTCP waits until addr accepts connections, or fails the test showing
// the server's log.
func WaitTCP(t testing.TB, p *Process, addr string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
	}
	b, _ := os.ReadFile(p.Log)
	t.Fatalf("server did not listen on %s within %v; its log:\n%s", addr, within, b)
}

// BazelRemote is a running bazel-remote.
type BazelRemote struct {
	*Process
	Dir      string // its storage folder
	HTTPAddr string // host:port of the HTTP cache protocol
	GRPCAddr string // host:port of the REAPI cache services
}

// StartBazelRemote starts bazel-remote (built by
// .ci/services/bazel-remote.sh) with an empty store in a temporary folder.
// Extra arguments are passed on (e.g. --htpasswd_file).
func StartBazelRemote(t testing.TB, args ...string) *BazelRemote {
	t.Helper()
	bin := Binary(t, "bazel-remote", "bazel-remote.sh")
	dir := t.TempDir()
	httpPort, grpcPort := FreePort(t), FreePort(t)
	cmd := exec.Command(bin, append([]string{
		"--dir", filepath.Join(dir, "data"), "--max_size", "1",
		"--host", "127.0.0.1", "--port", strconv.Itoa(httpPort), "--grpc_port", strconv.Itoa(grpcPort),
	}, args...)...)
	p := Start(t, dir, "bazel-remote", cmd)
	s := &BazelRemote{Process: p, Dir: dir,
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", httpPort), GRPCAddr: fmt.Sprintf("127.0.0.1:%d", grpcPort)}
	WaitTCP(t, p, s.HTTPAddr, 20*time.Second)
	WaitTCP(t, p, s.GRPCAddr, 20*time.Second)
	return s
}
