package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Slurm is a running single-node Slurm cluster.
type Slurm struct {
	Dir  string // its state, spool, logs and configuration
	Conf string // its slurm.conf; SLURM_CONF points at it for the test
	// Env is what a process needs to talk to this cluster (SLURM_CONF).
	Env []string
}

// StartSlurm starts a single-node Slurm cluster (installed by
// .ci/services/slurm.sh) for the test: its own munged with its own socket
// and key, slurmctld and slurmd on free loopback ports, configuration and
// state in a temporary folder, 16 slots, memory enforced through cgroup
// v1 as on a real cluster, no accounting (sacct fails, as on clusters
// without slurmdbd). SLURM_CONF is set for the test so that sbatch, squeue
// and scancel (and hepbuild started by the test) talk to it. Two packages'
// tests never run a cluster at once: slurmd keeps its cgroups under one
// fixed folder, so the clusters take turns through a lock file.
func StartSlurm(t *testing.T) *Slurm {
	t.Helper()
	for _, b := range []string{"slurmctld", "slurmd", "munged", "sbatch"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", b)); err != nil {
				t.Fatalf("%s is not installed: run .ci/services/slurm.sh (or .ci/run, which runs them all)", b)
			}
		}
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "hepbuild-test-slurm.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // runs last: after the daemons stopped

	// A short path: the munge socket's name must fit in sun_path.
	dir, err := os.MkdirTemp("", "slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"state", "spool", "munge"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	f, _ := os.Open("/dev/urandom")
	_, _ = f.Read(key)
	f.Close()
	keyFile := filepath.Join(dir, "munge", "munge.key")
	if err := os.WriteFile(keyFile, key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge", "sock")
	munged := Start(t, dir, "munged", exec.Command(sbin("munged"), "-F", "--force", "--socket="+sock,
		"--key-file="+keyFile, "--pid-file="+filepath.Join(dir, "munge", "pid"),
		"--seed-file="+filepath.Join(dir, "munge", "seed"), "--log-file="+filepath.Join(dir, "munge", "log")))
	waitFile(t, munged, sock, 10*time.Second)

	host, _ := os.Hostname()
	mem := memMB() - 1024
	ctldPort, slurmdPort := FreePort(t), FreePort(t)
	conf := filepath.Join(dir, "slurm.conf")
	// FirstJobId differs per cluster, so job ids (and their cgroups) of
	// an earlier cluster are never reused.
	first := 1000 + int(time.Now().UnixNano()/1e6%1000000)*10
	cfg := fmt.Sprintf(`ClusterName=hepbuildtest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmdPort=%[3]d
AuthType=auth/munge
AuthInfo=socket=%[4]s
CredType=cred/munge
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
ReturnToService=2
SlurmctldPidFile=%[5]s/slurmctld.pid
SlurmdPidFile=%[5]s/slurmd.pid
SlurmdSpoolDir=%[5]s/spool
StateSaveLocation=%[5]s/state
SlurmUser=root
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2000
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/cgroup
AccountingStorageType=accounting_storage/none
FirstJobId=%[6]d
MinJobAge=300
SlurmctldLogFile=%[5]s/slurmctld.log
SlurmdLogFile=%[5]s/slurmd.log
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=16 RealMemory=%[7]d State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`, host, ctldPort, slurmdPort, sock, dir, first, mem)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := "CgroupPlugin=cgroup/v1\nCgroupAutomount=yes\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n"
	if err := os.WriteFile(filepath.Join(dir, "cgroup.conf"), []byte(cg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLURM_CONF", conf)
	s := &Slurm{Dir: dir, Conf: conf, Env: []string{"SLURM_CONF=" + conf}}
	// Stopped in reverse order of starting: slurmd, slurmctld, munged.
	ctld := Start(t, dir, "slurmctld-out", exec.Command(sbin("slurmctld"), "-D", "-f", conf))
	WaitTCP(t, ctld, fmt.Sprintf("127.0.0.1:%d", ctldPort), 20*time.Second)
	slurmd := Start(t, dir, "slurmd-out", exec.Command(sbin("slurmd"), "-D", "-f", conf))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := exec.Command("sinfo", "-h", "-o", "%t").Output()
		if strings.Contains(string(out), "idle") {
			return s
		}
	}
	_ = slurmd
	b, _ := os.ReadFile(filepath.Join(dir, "slurmd.log"))
	c, _ := os.ReadFile(filepath.Join(dir, "slurmctld.log"))
	t.Fatalf("slurm did not come up within 30s; slurmd.log:\n%s\nslurmctld.log:\n%s", tailLines(string(b), 30), tailLines(string(c), 30))
	return nil
}

// Squeue lists the cluster's jobs (for tests checking nothing is left).
func (s *Slurm) Squeue(t *testing.T) string {
	out, err := exec.Command("squeue", "-h", "-r", "-o", "%i %T").CombinedOutput()
	if err != nil {
		t.Fatalf("squeue: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return filepath.Join("/usr/sbin", name)
}

func waitFile(t *testing.T, p *Process, path string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	b, _ := os.ReadFile(p.Log)
	t.Fatalf("%s did not appear within %v; log:\n%s", path, within, b)
}

func memMB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 4096
	}
	var kb int
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
		}
	}
	return kb / 1024
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
