package testserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ARC is a running ARC computing element: NorduGrid A-REX with the fork
// LRMS, so its jobs run on this machine as the user nobody.
type ARC struct {
	// CE is the computing element for the client tools' -c: the URL of
	// its job interface (https://<host>:<port>/arex).
	CE string
	// Proxy is an X.509 proxy of the test CA's user, which the CE accepts.
	Proxy string
	// Env is what a client needs in its environment (X509_USER_PROXY).
	Env map[string]string
	// Dir holds the CE's configuration, state and logs (Log).
	Dir string
	Log string
}

// arcLock serialises A-REX between test binaries: two test packages run at
// once, and parts of an ARC CE are global (the test CA's host credentials,
// /var/spool/arc for accounting, the infoprovider's locks).
const arcLock = "hepbuild-arc.lock"

// StartARC configures and starts A-REX (installed, with its test CA and
// user certificate, by .ci/services/arc.sh) and waits until it reports
// itself healthy, which takes from ten seconds to over a minute. Its
// configuration, control and session folders and logs are in a fresh
// folder (ARC_CONFIG points the start scripts at it), and it listens on a
// free port, so the machine's /etc/arc.conf and port 443 are left alone.
// A lock file serialises it with other test binaries' CEs. It is stopped,
// with any job process it left, when the test ends.
func StartARC(t testing.TB) *ARC {
	t.Helper()
	const script = "arc.sh"
	for _, p := range []string{"/usr/sbin/arched", "/usr/share/arc/arc-arex-start", "/usr/share/arc/arc-arex-ws-start"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is not installed: run .ci/services/%s (or .ci/run, which runs them all)", p, script)
		}
	}
	for _, tool := range []string{"arcsub", "arcstat", "arcproxy", "arcinfo"} {
		Binary(t, tool, script)
	}
	home, _ := os.UserHomeDir()
	dh := "/var/spool/arc/jobstatus/dhparam.pem"
	for _, p := range []string{filepath.Join(home, ".globus", "usercert.pem"), "/etc/grid-security/testCA-hostcert.pem", dh} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run .ci/services/%s", p, script)
		}
	}
	host := certHost(t, "/etc/grid-security/testCA-hostcert.pem")

	lock, err := os.OpenFile(filepath.Join(os.TempDir(), arcLock), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // closing releases the lock, after the CE stopped
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("locking %s: %v", lock.Name(), err)
	}

	// The jobs run as nobody, who must reach the session folder:
	// t.TempDir is private to root.
	dir, err := os.MkdirTemp("", "hepbuild-arc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"", "control", "session", "run", "log", "tmp"} {
		mode := os.FileMode(0o755)
		if d == "tmp" {
			mode = 0o777 | os.ModeSticky // A-REX's configuration check insists
		}
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Without Diffie-Hellman parameters in the control folder the web
	// service spends minutes making 4096-bit ones; arc.sh made quick ones.
	b, err := os.ReadFile(dh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "control", "dhparam.pem"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	port := FreePort(t)
	ce := fmt.Sprintf("https://%s:%d/arex", host, port)
	conf := filepath.Join(dir, "arc.conf")
	// The package's zero configuration (test CA, users of the test CA
	// mapped to nobody, the fork LRMS) with every path in dir (tmpdir
	// too: the fork LRMS leaves its job scripts there). A-REX
	// picks up jobs every wakeupperiod seconds (default 180); the
	// status clients see still lags by up to a minute, as the
	// infoprovider, which writes it, runs once a minute.
	cfg := fmt.Sprintf(`[common]
hostname = %[1]s
x509_host_key = /etc/grid-security/testCA-hostkey.pem
x509_host_cert = /etc/grid-security/testCA-hostcert.pem
x509_cert_dir = /etc/grid-security/certificates

[authgroup:testca]
file = /etc/grid-security/testCA.allowed-subjects

[mapping]
map_to_user = testca nobody:nogroup

[lrms]
lrms = fork

[arex]
controldir = %[2]s/control
sessiondir = %[2]s/session
pidfile = %[2]s/run/arex.pid
logfile = %[2]s/log/arex.log
tmpdir = %[2]s/tmp
wakeupperiod = 5

[arex/ws]
wsurl = %[3]s
pidfile = %[2]s/run/arex-ws.pid
logfile = %[2]s/log/ws.log

[arex/ws/jobs]
allowaccess = testca

[infosys]
logfile = %[2]s/log/infoprovider.log

[infosys/glue2]

[infosys/cluster]

[queue:fork]
`, host, dir, ce)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	s := &ARC{CE: ce, Dir: dir, Log: filepath.Join(dir, "log", "arex.log"), Proxy: filepath.Join(dir, "proxy")}
	s.Env = map[string]string{"X509_USER_PROXY": s.Proxy}
	tail := func() string {
		var sb strings.Builder
		for _, f := range []string{"arex.out.log", "arex-ws.out.log", "log/arex.log", "log/ws.log", "log/infoprovider.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) > 30 {
				b = []byte(strings.Join(lines[len(lines)-30:], "\n"))
			}
			fmt.Fprintf(&sb, "--- %s:\n%s\n", f, b)
		}
		return sb.String()
	}

	// A-REX proper (the job manager) and its web service are two arched
	// processes; -f keeps each in the foreground, so its pid is ours.
	// Each leads its own process group, which the fork LRMS's jobs join,
	// so that stopping the group also ends a job its cancel missed. The
	// parent-death signal stops them if the test binary is killed.
	var procs []*Process
	for _, name := range []string{"arex", "arex-ws"} {
		cmd := exec.Command("/usr/share/arc/arc-"+name+"-start", "-f")
		cmd.Env = append(os.Environ(), "ARC_CONFIG="+conf)
		cmd.Dir = dir
		cmd.SysProcAttr = groupLeaderDyingWithParent()
		p := Start(t, dir, name+".out", cmd)
		procs = append(procs, p)
		t.Cleanup(func() {
			pgid := p.Cmd.Process.Pid
			syscall.Kill(-pgid, syscall.SIGTERM)
			p.Stop()
			syscall.Kill(-pgid, syscall.SIGKILL)
		})
	}

	if out, err := exec.Command("arcproxy", "-P", s.Proxy).CombinedOutput(); err != nil {
		t.Fatalf("arcproxy: %v\n%s", err, out)
	}
	started := time.Now()
	deadline := started.Add(3 * time.Minute)
	var last []byte
	for {
		cmd := exec.Command("arcinfo", "-l", "-t", "20", "-c", ce)
		cmd.Env = append(os.Environ(), "X509_USER_PROXY="+s.Proxy)
		last, _ = cmd.CombinedOutput()
		if bytes.Contains(last, []byte("Health state: ok")) {
			t.Logf("A-REX at %s healthy %v after its start", ce, time.Since(started).Round(time.Second))
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("A-REX at %s did not report itself healthy within 3 minutes; arcinfo said:\n%s\n%s", ce, last, tail())
		}
		for _, p := range procs {
			if ended(p.Cmd.Process.Pid) {
				t.Fatalf("A-REX (%s) ended while starting:\n%s", strings.Join(p.Cmd.Args, " "), tail())
			}
		}
		time.Sleep(2 * time.Second)
	}
}

// ended says whether the child process has exited (a zombie not yet
// waited for), without reaping it: Process.Stop waits for it later.
func ended(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// certHost returns the host name in the host certificate ("CN=host/vm"):
// clients must call the CE by that name for TLS to accept it, and the
// package's postinst made it from `hostname -f`, which may differ from
// os.Hostname.
func certHost(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM certificate: run .ci/services/arc.sh", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	host, ok := strings.CutPrefix(cert.Subject.CommonName, "host/")
	if !ok || host == "" {
		t.Fatalf("%s is for %q, not a host/NAME", file, cert.Subject.CommonName)
	}
	return host
}
