package exec_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
)

// TestStoredLogIsTheLogFile: the log kept with a result (and uploaded to
// the group's cache) is the log file itself, never what a link at its path
// points to (an action that replaced its log by a link to a private key
// would publish the key), and never one larger than a restore would bring
// back (lowered here), which was also read into memory whole.
func TestStoredLogIsTheLogFile(t *testing.T) {
	defer exec.SetMaxRestoredLog(1000)()
	secret := filepath.Join(t.TempDir(), "id_rsa")
	if err := os.WriteFile(secret, []byte("PRIVATE-KEY-never-in-the-cache\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newMemCache()
	w := newWorkspace(t, "none", c)
	logs := filepath.Join(w.base, "logs", "pkg")
	link := shell("link", "echo started; echo hi > hepbuild-out/pkg/link.txt; mkdir -p "+logs+"; ln -sf "+secret+" "+filepath.Join(logs, "link.txt.log"), nil, out("pkg/link.txt"))
	big := shell("big", "head -c 5000 /dev/zero | tr '\\0' x; echo > hepbuild-out/pkg/big.txt", nil, out("pkg/big.txt"))
	w.mustBuild([]exec.Outcome{executed, executed}, link, big)
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, b := range c.blobs {
		if strings.Contains(string(b), "PRIVATE-KEY") {
			t.Errorf("the cache holds the file the log linked to (%s)", d)
		}
		if d.Size > 1000 {
			t.Errorf("the cache holds a log of %d bytes, beyond the bound", d.Size)
		}
	}
}

// TestRestoreRemovesALogOfThisBuild: a restored action whose result keeps
// no log removes the log at its path. After clean the logs folder is empty,
// and the runner skips that unlink for logs no earlier build left: but a
// log this very build wrote (the action ran, then its output went and it
// was restored) is still removed.
func TestRestoreRemovesALogOfThisBuild(t *testing.T) {
	defer exec.SetMaxRestoredLog(1000)()
	w := newWorkspace(t, "none", newMemCache())
	quiet := shell("quiet", "echo > hepbuild-out/pkg/quiet.txt", nil, out("pkg/quiet.txt"))
	big := shell("big", "head -c 5000 /dev/zero | tr '\\0' x; echo > hepbuild-out/pkg/big.txt", nil, out("pkg/big.txt"))
	zap := shell("zap", "rm hepbuild-out/pkg/big.txt; echo > hepbuild-out/pkg/zap.txt", nil, out("pkg/zap.txt"))
	w.mustBuild([]exec.Outcome{executed}, quiet)
	// As after clean: no outputs, no logs.
	for _, d := range []string{"out", "logs"} {
		if err := os.RemoveAll(filepath.Join(w.base, d)); err != nil {
			t.Fatal(err)
		}
	}
	// quiet is restored first, with the logs folder empty; big runs and
	// writes a log too large to keep with its result; zap removes big's
	// output, and big comes back from the cache, without a log.
	log := filepath.Join(w.base, "logs", "pkg", "big.txt.log")
	w.mustBuild([]exec.Outcome{cached, executed, executed, cached}, quiet, big, zap, big)
	if _, err := os.Stat(log); err == nil {
		t.Errorf("big's log is at %s after big was restored without one", log)
	}
}
