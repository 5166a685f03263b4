package testserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func portFile(port int) string {
	return filepath.Join(os.TempDir(), "hepbuild-test-ports", strconv.Itoa(port))
}

// A port FreePort hands out is reserved, for this process and for the
// others of the suite, until the test that took it ends.
func TestFreePortReservesUntilTheTestEnds(t *testing.T) {
	var port int
	t.Run("holder", func(t *testing.T) {
		port = FreePort(t)
		if _, err := os.Stat(portFile(port)); err != nil {
			t.Fatalf("no reservation for port %d: %v", port, err)
		}
		if reservePort(t, port) {
			t.Fatalf("port %d reserved twice in one process", port)
		}
	})
	if _, err := os.Stat(portFile(port)); !os.IsNotExist(err) {
		t.Fatalf("reservation of port %d outlived its test: %v", port, err)
	}
}

// Another process's reservation keeps a port from being handed out, unless
// it is so old that its process must have died without cleaning up.
func TestFreePortHonoursOtherProcesses(t *testing.T) {
	port := FreePort(t)
	// Stand in for another test process: drop this process's own claim
	// but keep the file.
	portsMu.Lock()
	delete(reserved, port)
	portsMu.Unlock()
	if reservePort(t, port) {
		t.Fatalf("port %d handed out while another process holds it", port)
	}
	old := time.Now().Add(-staleReservation - time.Minute)
	if err := os.Chtimes(portFile(port), old, old); err != nil {
		t.Fatal(err)
	}
	if !reservePort(t, port) {
		t.Fatalf("stale reservation of port %d was not taken over", port)
	}
}

// The reservation folder is shared by every user of the machine: another
// user reserves ports in the folder the first one made.
func TestFreePortReservationsAcrossUsers(t *testing.T) {
	if os.Getenv("HEPBUILD_TEST_PORT_CHILD") == "user" {
		for port := 20000; port < 20010; port++ {
			if reservePort(t, port) {
				if _, err := os.Stat(portFile(port)); err != nil {
					t.Fatalf("uid %d reserved port %d without a file: %v", os.Getuid(), port, err)
				}
				return
			}
		}
		t.Fatalf("uid %d could reserve none of 10 ports", os.Getuid())
	}
	tmp, err := os.MkdirTemp("", "ports-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777|os.ModeSticky)
	t.Setenv("TMPDIR", tmp)
	FreePort(t) // this user is the first
	fi, err := os.Stat(filepath.Join(tmp, "hepbuild-test-ports"))
	if err != nil {
		t.Fatal(err)
	}
	if want := 0o777 | os.ModeSticky; fi.Mode()&(os.ModePerm|os.ModeSticky) != want {
		t.Errorf("reservation folder %v, want %v", fi.Mode(), want)
	}
	if os.Getuid() != 0 {
		return // another user's run needs root to start it
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "testserver.test") // where nobody can run it
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestFreePortReservationsAcrossUsers$")
	cmd.Env = append(os.Environ(), "HEPBUILD_TEST_PORT_CHILD=user", "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("as uid 65534: %v\n%s", err, out)
	}
}

// Without a usable temporary folder FreePort still hands out ports, as it
// did before reservations.
func TestFreePortWithoutTempFolder(t *testing.T) {
	if os.Getenv("HEPBUILD_TEST_PORT_CHILD") == "notmp" {
		a, b := FreePort(t), FreePort(t)
		if a == b {
			t.Fatalf("port %d handed out twice in one process", a)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	cmd := exec.Command(self, "-test.run=^TestFreePortWithoutTempFolder$")
	cmd.Env = append(os.Environ(), "HEPBUILD_TEST_PORT_CHILD=notmp", "TMPDIR="+file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("FreePort with TMPDIR=%s: %v\n%s", file, err, out)
	}
}
