package testserver

import (
	"os"
	"path/filepath"
	"strconv"
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
