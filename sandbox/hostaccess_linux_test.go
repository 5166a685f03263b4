package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// socketProbe is a Python script that tries to connect to each Unix socket
// named on its command line ("@name" is an abstract one) and prints
// "REACHED <path>" for those it could.
const socketProbe = `
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect("\0" + p[1:] if p.startswith("@") else p)
        print("REACHED", p)
    except OSError as e:
        print("no", p, e)
    s.close()
`

// hostSockets listens on Unix sockets in every place a host service may
// keep one, and counts the connections they accept.
type hostSockets struct {
	paths    []string // as the probe names them
	accepted atomic.Int32
}

func listenHostSockets(t *testing.T) *hostSockets {
	t.Helper()
	id := fmt.Sprintf("hepbuild-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	h := &hostSockets{}
	var dirs []string
	for _, d := range []string{"/run", "/tmp", "/var/tmp", "/dev/shm", home, "/root", "/home"} {
		dir := filepath.Join(d, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if os.IsExist(err) {
				continue // $HOME is /root
			}
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		t.Cleanup(func() { os.RemoveAll(dir) })
		h.paths = append(h.paths, filepath.Join(dir, "s"))
	}
	// /var/run is a link to /run on most systems: reached through it too.
	if fi, err := os.Lstat("/var/run"); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		h.paths = append(h.paths, filepath.Join("/var/run", id, "s"))
	}
	var listeners []net.Listener
	for _, p := range append(h.paths[:len(dirs):len(dirs)], "@"+id) {
		addr := p
		if strings.HasPrefix(p, "@") {
			addr = "\x00" + p[1:]
		}
		ln, err := net.Listen("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				h.accepted.Add(1)
				c.Close()
			}
		}()
	}
	h.paths = append(h.paths, "@"+id)
	// A host process's root folder in /proc leads to the host's sockets,
	// unless the PID namespace hides the process.
	h.paths = append(h.paths, fmt.Sprintf("/proc/%d/root%s", os.Getpid(), h.paths[0]))
	t.Cleanup(func() {
		for _, ln := range listeners {
			ln.Close()
		}
	})
	return h
}

// No Unix socket of the host is reachable from an action without network
// access: not in /run (also through /var/run), /tmp, /var/tmp, /dev/shm or
// home folders, not through /proc/PID/root, not in the abstract namespace.
// The same probe run without a sandbox reaches every one of them, which
// proves it can.
func TestLinuxHostSocketsUnreachable(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 to probe sockets with")
	}
	h := listenHostSockets(t)
	argv := append([]string{"/usr/bin/python3", "-c", socketProbe}, h.paths...)
	var out strings.Builder
	res, err := None{}.Run(context.Background(), Spec{ExecRoot: t.TempDir(), Argv: argv, Env: hostEnv(), Stdout: &out, Stderr: &out})
	if err != nil || !res.Success() {
		t.Fatalf("probe without a sandbox: %+v, %v\n%s", res, err, out.String())
	}
	if n := strings.Count(out.String(), "REACHED"); n != len(h.paths) {
		t.Fatalf("without a sandbox the probe reached %d of %d sockets:\n%s", n, len(h.paths), out.String())
	}
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		before := h.accepted.Load()
		var out strings.Builder
		res, err := l.Run(context.Background(), Spec{ExecRoot: root, Argv: argv, Env: hostEnv(), Stdout: &out, Stderr: &out})
		if err != nil || !res.Success() {
			t.Fatalf("probe: %+v, %v\n%s", res, err, out.String())
		}
		if strings.Contains(out.String(), "REACHED") || h.accepted.Load() != before {
			t.Errorf("host sockets reached from the sandbox (%d connections):\n%s", h.accepted.Load()-before, out.String())
		}
	})
	// With network access the action shares the host's network namespace,
	// abstract sockets included, but still sees no socket file of the host.
	t.Run("network", func(t *testing.T) {
		l, root, _ := linuxOrSkip(t)
		var out strings.Builder
		res, err := l.Run(context.Background(), Spec{ExecRoot: root, Argv: argv, Env: hostEnv(), Network: true, Stdout: &out, Stderr: &out})
		if err != nil || !res.Success() {
			t.Fatalf("probe: %+v, %v\n%s", res, err, out.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if p, ok := strings.CutPrefix(line, "REACHED "); ok && !strings.HasPrefix(p, "@") {
				t.Errorf("with network access the sandbox reached %s", p)
			}
		}
		// Name resolution still works: the resolver's configuration is there.
		out.Reset()
		res, err = l.Run(context.Background(), Spec{ExecRoot: root, Argv: []string{"/bin/bash", "-c", "cat /etc/resolv.conf >/dev/null && echo ok"},
			Env: hostEnv(), Network: true, Stdout: &out, Stderr: &out})
		if _, serr := os.Stat("/etc/resolv.conf"); serr == nil && (err != nil || out.String() != "ok\n") {
			t.Errorf("/etc/resolv.conf unreadable with network access: %+v, %v, %s", res, err, out.String())
		}
	})
}

// Home folders, folders given to Hide (--sandbox-hide) and /proc/1/environ
// of the host are not readable; a path in Spec.Expose (--sandbox-expose)
// is, read-only.
func TestLinuxHidesHomeFolders(t *testing.T) {
	id := fmt.Sprintf("hepbuild-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	plant := func(dir string) string {
		t.Helper()
		p := filepath.Join(dir, id+".secret")
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		return p
	}
	// A folder of its own outside /tmp (which is private anyway) for Hide.
	hidden := filepath.Join("/var/lib", id)
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hidden) })
	exposedDir := filepath.Join(home, id+"-exposed")
	if err := os.Mkdir(exposedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(exposedDir) })
	otherUser := filepath.Join("/home", id)
	if err := os.Mkdir(otherUser, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(otherUser) })
	secrets := []string{plant(home), plant("/root"), plant(hidden), plant(otherUser)}
	exposed := plant(exposedDir)
	script := fmt.Sprintf(`for f in %s; do cat "$f" 2>/dev/null && echo "READ $f"; done
cat %s >/dev/null && echo exposed-readable
(echo x >> %s) 2>/dev/null && echo exposed-writable
tr '\0' '\n' </proc/1/environ | grep -q '^HEPBUILD_TEST_SECRET=' && echo READ-ENVIRON
test -z "$(ls -A "$HOME" | grep -v -- '-exposed$')" && echo empty-home
true`, strings.Join(secrets, " "), exposed, exposed)
	os.Setenv("HEPBUILD_TEST_SECRET", "x")
	defer os.Unsetenv("HEPBUILD_TEST_SECRET")
	for _, network := range []bool{false, true} {
		t.Run("network="+strconv.FormatBool(network), func(t *testing.T) {
			bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
				l.Hide = append(l.Hide, hidden)
				env := hostEnv()
				env["HOME"] = home
				res, out := runLinux(t, l, Spec{ExecRoot: root, Env: env, Network: network, Expose: []string{exposedDir}}, script)
				if !res.Success() {
					t.Fatalf("got %+v, output:\n%s", res, out)
				}
				if strings.Contains(out, "READ") || strings.Contains(out, "exposed-writable") ||
					!strings.Contains(out, "exposed-readable") || !strings.Contains(out, "empty-home") {
					t.Errorf("want no READ line, the exposed file readable and not writable, an empty home; got:\n%s", out)
				}
			})
		})
	}
}

// A folder given to Hide that does not exist yet when the first action
// runs is hidden from the actions that run once it does.
func TestLinuxHidesFolderMadeLater(t *testing.T) {
	id := fmt.Sprintf("hepbuild-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	// Outside /tmp, which is private anyway.
	hidden := filepath.Join("/var/lib", id)
	t.Cleanup(func() { os.RemoveAll(hidden) })
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		os.RemoveAll(hidden)
		l.Hide = append(l.Hide, hidden)
		script := "cat " + hidden + "/secret 2>/dev/null && echo READ; true"
		if res, out := runLinux(t, l, Spec{ExecRoot: root}, script); !res.Success() || out != "" {
			t.Fatalf("before the folder exists: got %+v, output:\n%s", res, out)
		}
		if err := os.Mkdir(hidden, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hidden, "secret"), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if res, out := runLinux(t, l, Spec{ExecRoot: root}, script); !res.Success() || out != "" {
			t.Errorf("once the folder exists: got %+v, output:\n%s", res, out)
		}
	})
}

// /tmp and /dev/shm are bounded by the tmp resource, or else the memory
// resource, or else DefaultTmpSize: writing past the bound fails inside
// the action with ENOSPC.
func TestLinuxTmpIsBounded(t *testing.T) {
	const mb = 1 << 20
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		for _, c := range []struct {
			name string
			spec Spec
		}{
			{"tmp", Spec{Tmp: 32 * mb}},
			{"memory", Spec{Memory: 32 * mb}},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := c.spec
				s.ExecRoot = root
				res, out := runLinux(t, l, s, `for d in /tmp /dev/shm; do
  if err=$( { head -c 64M /dev/zero > $d/big; } 2>&1 ); then echo "$d: wrote 64MB"
  elif [[ $err == *"No space left on device"* ]]; then echo "$d: ENOSPC"
  else echo "$d: $err"; fi
  rm -f $d/big
done`)
				if !res.Success() || out != "/tmp: ENOSPC\n/dev/shm: ENOSPC\n" {
					t.Errorf("got %+v, output:\n%s\nwant writing 64MB to fail with ENOSPC with a bound of 32MB", res, out)
				}
			})
		}
		t.Run("default", func(t *testing.T) {
			res, out := runLinux(t, l, Spec{ExecRoot: root}, `df -B1 --output=size /tmp /dev/shm | tail -n +2`)
			if !res.Success() {
				t.Fatalf("got %+v, output:\n%s", res, out)
			}
			for _, f := range strings.Fields(out) {
				if n, err := strconv.ParseInt(f, 10, 64); err != nil || n != DefaultTmpSize {
					t.Errorf("size %q, want %d; df said:\n%s", f, DefaultTmpSize, out)
				}
			}
		})
	})
}

// A path exposed inside /tmp stays visible to every action, also after a
// resident sandbox replaced /tmp for the next one.
func TestLinuxExposedInTmp(t *testing.T) {
	dir := t.TempDir() // under /tmp
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
		for i := 0; i < 2; i++ {
			res, out := runLinux(t, l, Spec{ExecRoot: root, Expose: []string{dir}}, "echo left > /tmp/left; cat "+dir+"/f")
			if !res.Success() || out != "x\n" {
				t.Errorf("action %d: got %+v, output %q", i, res, out)
			}
		}
	})
}
