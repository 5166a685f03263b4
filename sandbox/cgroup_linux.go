package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupParent is the cgroup v2 folder under which each limited run gets a
// child, or why there is none. Found (and prepared) once per process.
var cgroupParent = sync.OnceValues(findCgroupParent)

// CgroupStatus says whether memory and cpu limits can be enforced here, and
// if not, why.
func CgroupStatus() error {
	_, err := cgroupParent()
	return err
}

// findCgroupParent finds this process's cgroup v2 folder and makes it able
// to hold limited children: the memory controller must be available, the
// folder writable, and (cgroups v2 allow no processes in inner cgroups)
// this process moved into a leaf of its own when it is the only one there.
func findCgroupParent() (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	var rel string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = r, true
		}
	}
	if !found {
		return "", errors.New("this process is in no cgroup v2")
	}
	dir := filepath.Join(mount, rel)
	ctrl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return "", fmt.Errorf("reading the controllers of %s: %w", dir, err)
	}
	if !hasWord(string(ctrl), "memory") {
		return "", fmt.Errorf("the memory controller is not delegated to cgroup %s (available: %q)", dir, strings.TrimSpace(string(ctrl)))
	}
	if unix.Access(dir, unix.W_OK) != nil {
		return "", fmt.Errorf("cgroup %s is not writable by this user (run hepbuild under systemd-run --user --scope -p Delegate=yes)", dir)
	}
	sub, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if hasWord(string(sub), "memory") {
		return dir, nil
	}
	enable := "+memory"
	if hasWord(string(ctrl), "cpu") {
		enable += " +cpu"
	}
	if os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(enable), 0) == nil {
		return dir, nil
	}
	// The folder holds processes: move this one into a leaf, if it is alone.
	procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if f := strings.Fields(string(procs)); len(f) != 1 || f[0] != strconv.Itoa(os.Getpid()) {
		return "", fmt.Errorf("cgroup %s holds other processes, so it cannot delegate the memory controller (run hepbuild under systemd-run --user --scope -p Delegate=yes)", dir)
	}
	leaf := filepath.Join(dir, "hepbuild-main")
	if err := os.Mkdir(leaf, 0o755); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("creating cgroup %s: %w", leaf, err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return "", fmt.Errorf("moving hepbuild into cgroup %s: %w", leaf, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(enable), 0); err != nil {
		return "", fmt.Errorf("enabling the memory controller in %s: %w", dir, err)
	}
	return dir, nil
}

func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return f[4], nil
			}
		}
	}
	return "", errors.New("cgroups v2 are not mounted")
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// cgroupRun is the cgroup of one run.
type cgroupRun struct {
	dir string
	fd  int
}

var cgroupSeq atomic.Int64

// startCgroup creates a cgroup limited to memory bytes (no swap) and cpu
// cores; zero leaves a bound out.
func startCgroup(memory int64, cpu float64) (*cgroupRun, error) {
	parent, err := cgroupParent()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, fmt.Sprintf("hepbuild-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup: %w", err)
	}
	c := &cgroupRun{dir: dir, fd: -1}
	write := func(name, value string) error {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s of cgroup %s: %w", name, dir, err)
		}
		return nil
	}
	if memory > 0 {
		if err := write("memory.max", strconv.FormatInt(memory, 10)); err != nil {
			c.remove()
			return nil, err
		}
		_ = write("memory.swap.max", "0") // absent without swap accounting
	}
	if cpu > 0 {
		const period = 100000
		if err := write("cpu.max", fmt.Sprintf("%d %d", int64(cpu*period), period)); err != nil {
			c.remove()
			return nil, err
		}
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.remove()
		return nil, fmt.Errorf("opening cgroup %s: %w", dir, err)
	}
	c.fd = fd
	return c, nil
}

// memoryExceeded reports whether the kernel killed a process of the run
// for exceeding memory.max.
func (c *cgroupRun) memoryExceeded() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "memory.events"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(line, "oom_kill "); ok && n != "0" {
			return true
		}
	}
	return false
}

// remove kills whatever is left in the cgroup and removes it.
func (c *cgroupRun) remove() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	_ = os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0)
	for i := 0; i < 50; i++ {
		if err := unix.Rmdir(c.dir); err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
