package testserver

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// XRootD is a running XRootD server.
type XRootD struct {
	*Process
	Data string // the exported folder on disk (oss.localroot)
	Addr string // host:port
	// HTTPAddr is the host:port of the HTTP/WebDAV interface (XrdHttp),
	// set by StartXRootDHTTP only.
	HTTPAddr string
}

// StartXRootD starts an XRootD server (installed by .ci/services/xrootd.sh)
// exporting an empty folder. It runs as the xrootd user, so its folder is
// made under /tmp with mode 0755 (t.TempDir is 0700 under a 0700 parent,
// which that user cannot reach) and removed when the test ends. Extra
// configuration lines are appended, e.g. "all.export / r/o" for a
// read-only server (a later all.export of the same path replaces the first).
//
// A server that does not listen within 30 s (it happened once, in a fully
// loaded test run, with nothing in its log to say why) is stopped and
// started once more on another port; its log goes into the test's.
func StartXRootD(t testing.TB, extra ...string) *XRootD {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := startXRootD(t, extra...)
		if listens(s.Addr, 30*time.Second) {
			return s
		}
		log := s.logs()
		s.Stop()
		if attempt == 2 {
			t.Fatalf("xrootd did not listen on %s within 30s, twice; its log:\n%s", s.Addr, log)
		}
		t.Logf("xrootd did not listen on %s within 30s; starting another; its log:\n%s", s.Addr, log)
	}
}

// logs is what the server wrote: its output, and its own log files.
func (s *XRootD) logs() string {
	b, _ := os.ReadFile(s.Log)
	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Data), "xrd.log*"))
	for _, l := range logs {
		c, _ := os.ReadFile(l)
		b = append(b, c...)
	}
	return string(b)
}

// startXRootD starts the server of StartXRootD without waiting for it.
func startXRootD(t testing.TB, extra ...string) *XRootD {
	bin := Binary(t, "xrootd", "xrootd.sh")
	dir, err := os.MkdirTemp("", "hepbuild-xrootd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, d := range []string{data, filepath.Join(dir, "admin"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	export := "all.export /"
	for _, e := range extra {
		if len(e) > 10 && e[:10] == "all.export" {
			export = ""
		}
	}
	cfg := fmt.Sprintf("%s\noss.localroot %s\nxrd.port %d\nall.adminpath %s\nall.pidpath %s\nxrootd.chksum adler32\nxrd.allow host localhost\n",
		export, data, port, filepath.Join(dir, "admin"), filepath.Join(dir, "run"))
	for _, e := range extra {
		cfg += e + "\n"
	}
	cfgPath := filepath.Join(dir, "xrd.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", cfgPath, "-l", filepath.Join(dir, "xrd.log")}
	if os.Geteuid() == 0 {
		// xrootd refuses to run as root; it drops to the xrootd user,
		// which must own the data folder to write into it.
		u, err := user.Lookup("xrootd")
		if err != nil {
			t.Fatalf("no xrootd user: run .ci/services/xrootd.sh")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, uid, gid) })
		args = append(args, "-R", "xrootd")
	}
	p := Start(t, dir, "xrootd", exec.Command(bin, args...))
	return &XRootD{Process: p, Data: data, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
}

// StartXRootDHTTP starts XRootD like StartXRootD with its HTTP/WebDAV
// interface (XrdHttp) on a second loopback port: PROPFIND lists folders,
// and HEAD with "Want-Digest: adler32" answers the stored checksum.
func StartXRootDHTTP(t testing.TB, extra ...string) *XRootD {
	t.Helper()
	// XRootD binds its HTTP port on every address, while FreePort checked
	// loopback only, and under a loaded test run another server may take
	// the port in between: a server whose HTTP door does not open is
	// stopped and started again on other ports, its log kept in the test's.
	var last string
	for attempt := 1; attempt <= 3; attempt++ {
		port := FreePort(t)
		s := StartXRootD(t, append([]string{
			fmt.Sprintf("xrd.protocol XrdHttp:%d libXrdHttp.so", port),
			"http.listingdeny false",
		}, extra...)...)
		s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", port)
		if listens(s.HTTPAddr, 20*time.Second) {
			return s
		}
		last = s.logs()
		t.Logf("xrootd's HTTP door did not open on %s (attempt %d); its log:\n%s", s.HTTPAddr, attempt, last)
		s.Stop()
	}
	t.Fatalf("xrootd's HTTP door did not open in three attempts")
	return nil
}

// listens reports whether something accepts connections on addr within
// the time given.
func listens(addr string, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}
