//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Linux runs each command with bubblewrap in new user, mount, PID, IPC,
// network, UTS and cgroup namespaces: the host's file system read-only;
// the workspace, the home folders, /var/tmp, /run (but for what name
// resolution needs, with Spec.Network) and the folders in Hide replaced by
// empty ones, and Spec.Expose shown again; the command's private exec root
// (built as Symlink builds it, with only the declared inputs) writable; a
// private /tmp and /dev/shm bounded by Spec.Tmp; no network unless
// Spec.Network; and no capabilities. When the command ends, the PID
// namespace ends with it, so no process it started survives. Memory and CPU are limited through
// cgroups v2 where this process may create cgroups with the memory
// controller; elsewhere the limits are not enforced and Warn says so once.
// Safe for concurrent use.
type Linux struct {
	// Root holds one folder per running command, e.g. <output base>/sandbox.
	Root string
	// Hide are host folders the command must not see, besides the exec
	// root and those every command is denied (see hiddenFolders): the
	// output base, the disk cache, --sandbox-hide.
	Hide []string
	// Warn receives the one warning about limits that cannot be enforced;
	// nil discards it.
	Warn io.Writer

	bwrap    string
	warnOnce sync.Once
	// hideReal is what hidden returned for hideFor, the folders
	// hiddenFolders and Hide said.
	hideMu            sync.Mutex
	hideFor, hideReal []string
	// lastRoot is the exec root last resolved, and its real path (see realRoot).
	lastRoot atomic.Pointer[[2]string]
	// noResident is set once resident sandboxes failed (see runResident).
	noResident       atomic.Bool
	residentFailures atomic.Int32 // in a row
	residentOnce     sync.Once
}

// bwrapVersion is what bubblewrap says it is ("bubblewrap 0.8.0"), or ""
// when it says nothing. Only hepbuild info shows it, so a build does not
// start a process to ask.
func bwrapVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func probeLinux() LinuxStatus {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		if checkExecutable("/usr/bin/bwrap") != nil {
			return LinuxStatus{Err: errors.New("bubblewrap (bwrap) is not installed; install the bubblewrap package")}
		}
		path = "/usr/bin/bwrap"
	}
	st := LinuxStatus{Bwrap: path}
	args, _ := bwrapArgs{isolate: true, chdir: "/"}.build(path)
	cmd := exec.Command(args[0], append(args[1:], "/bin/true")...)
	cmd.Env = []string{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		st.Err = fmt.Errorf("running %s: %w", path, err)
		return st
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		err = errors.New("bwrap did not finish within 10s")
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		st.Err = fmt.Errorf("%s cannot create namespaces here: %s", path, msg)
	}
	return st
}

// NewLinux returns the linux strategy with its folders under root, hiding
// the given folders too, or an *UnavailableError.
func NewLinux(root string, hide ...string) (*Linux, error) {
	st := ProbeLinux()
	if st.Err != nil {
		return nil, &UnavailableError{Strategy: "linux", Reason: st.Err}
	}
	inheritedOnce.Do(func() {
		// Descriptors this process inherited without close-on-exec (a
		// shell's, a make jobserver's) would pass through bwrap into every
		// command; os/exec only chooses what goes to descriptors 0 to 2.
		_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	})
	return &Linux{Root: root, Hide: hide, bwrap: st.Bwrap}, nil
}

var inheritedOnce sync.Once

// Name returns "linux".
func (*Linux) Name() string { return "linux" }

// Run builds the private exec root, runs the command in the namespaces,
// moves the declared outputs into the exec root and removes the rest.
//
// Inputs are hard links in the private exec root, which is mounted
// read-only over the workspace's own path; only the folders of the
// declared outputs are writable. Mounting each input instead would cost a
// mount per input, and bubblewrap rereads the mount table for each.
func (l *Linux) Run(ctx context.Context, s Spec) (Result, error) {
	p := poolFor(l.Root)
	t, err := p.acquire(s, true)
	if err != nil {
		return Result{}, err
	}
	// Only the output folders are writable: the rest cannot have changed.
	defer func() { p.release(t, outputFolders(s)) }()
	execRoot := l.realRoot(s.ExecRoot)
	// The private exec root is mounted over the workspace's path, which
	// hides it; the other folders are replaced by empty ones. Each mount
	// costs, so folders inside hidden ones are left out.
	hide := l.hidden()
	exposed := s.Expose
	if s.Network {
		exposed = append(append([]string(nil), exposed...), resolverPaths()...)
	}
	expose := realPaths(exposed)
	tmpSize := s.Tmp
	if tmpSize <= 0 {
		tmpSize = tmpSizeOr(s.Memory)
	}
	// Symlinked inputs (folders, other file systems) and the environment's
	// folders are shown where they are, if hidden; / shows the rest.
	var ro []string
	hidden := append([]string{"/tmp", execRoot}, hide...)
	for _, p := range realPaths(append(append([]string(nil), t.targets...), s.HostPaths...)) {
		if s.Image != "" || underAny(p, hidden) {
			ro = append(ro, p)
		}
	}
	// Limits go through a cgroup the command starts in, which a resident
	// sandbox, in a cgroup namespace of its own, cannot move it into.
	limited := false
	if s.Memory > 0 || s.CPU > 0 {
		if err := CgroupStatus(); err != nil {
			l.warn(err)
		} else {
			limited = true
		}
	}
	// A resident sandbox mounts a fresh /tmp and /dev/shm between actions,
	// which would cover an exposed path inside them.
	exposedInTmp := false
	for _, p := range expose {
		exposedInTmp = exposedInTmp || underAny(p, []string{"/tmp", "/dev/shm"})
	}
	if s.Image == "" && !s.Network && len(t.mounts) == 0 && len(ro) == 0 && !limited && !exposedInTmp && !l.noResident.Load() {
		res, err := l.runResident(ctx, s, t, execRoot, hide, expose, tmpSize)
		if !errors.Is(err, errResidentUnusable) {
			if cerr := t.collect(s); cerr != nil && err == nil {
				err = cerr
			}
			return res, err
		}
	}
	l2 := launch{dir: t.ExecRoot, inImage: s.Image != ""}
	if s.Image != "" && !isDir(s.Image) {
		// An image for Apptainer or Podman: they isolate it themselves.
		l2.wrapper, err = runtimeArgv(s, t.ExecRoot, []string{t.ExecRoot}, ro, true)
	} else {
		b := bwrapArgs{isolate: true, network: s.Network, image: s.Image, hide: hide, ro: expose, chdir: execRoot, tmpSize: tmpSize}
		b.binds = append(b.binds, bind{src: t.ExecRoot, dst: execRoot})
		// Output folders before the input folders mounted inside them
		// (a folder input beside the outputs of its package): a later bind
		// hides what earlier ones mounted below it.
		var inner []bind
		for _, d := range outputFolders(s) {
			inner = append(inner, bind{src: filepath.Join(t.ExecRoot, d), dst: filepath.Join(execRoot, d), rw: true})
		}
		for _, m := range t.mounts {
			inner = append(inner, bind{src: m.src, dst: filepath.Join(execRoot, m.rel)})
		}
		sort.SliceStable(inner, func(i, j int) bool { return inner[i].dst < inner[j].dst })
		b.binds = append(b.binds, inner...)
		for _, p := range ro {
			b.binds = append(b.binds, bind{src: p, dst: p})
		}
		l2.wrapper, err = b.build(l.bwrap)
	}
	if err != nil {
		return Result{}, err
	}
	var cg *cgroupRun
	if s.Memory > 0 || s.CPU > 0 {
		cg, err = startCgroup(s.Memory, s.CPU)
		if err != nil {
			l.warn(err)
		} else {
			defer cg.remove()
			l2.cgroupFD = cg.fd
		}
	}
	res, runErr := launchProcess(ctx, s, l2)
	if cg != nil && cg.memoryExceeded() {
		res.MemoryExceeded = true
	}
	if err := t.collect(s); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// realRoot is the real path of the exec root p, where the private exec
// root is mounted. It is resolved once per strategy, that is per build:
// resolving it per action was a twentieth of hepbuild's own CPU in the
// linux strategy, and within a build every command must see the
// workspace in one place anyway, as the resident sandboxes, made for one
// real path, do.
// Only the last one is kept: a build has one exec root.
func (l *Linux) realRoot(p string) string {
	if last := l.lastRoot.Load(); last != nil && last[0] == p {
		return last[1]
	}
	r := hostOf(p)
	if r != p || isDir(p) {
		// A path that does not exist (yet) is resolved again next time.
		l.lastRoot.Store(&[2]string{p, r})
	}
	return r
}

// hidden is the real paths of the folders to replace by empty ones: those
// of hiddenFolders and Hide, without those inside others or in /tmp (a
// private tmpfs anyway). Resolving them took a tenth of hepbuild's CPU per
// action in the linux strategy, so they are resolved again only when the
// folders asked for change or one of them did not exist, which a later
// action must not miss once it does.
func (l *Linux) hidden() []string {
	want := append(hiddenFolders(), l.Hide...)
	l.hideMu.Lock()
	defer l.hideMu.Unlock()
	if l.hideFor != nil && slices.Equal(want, l.hideFor) {
		return l.hideReal
	}
	var hide []string
	complete := true
	for _, h := range want {
		if _, err := os.Stat(h); err != nil {
			complete = false
		}
	}
	for _, h := range realPaths(want) {
		if !underAny(h, hide) && !underAny(h, []string{"/tmp"}) {
			hide = append(hide, h)
		}
	}
	if complete {
		l.hideFor, l.hideReal = want, hide
	}
	return hide
}

// runResident runs s in the slot's resident sandbox, starting one when the
// slot has none, or one made for other folders. An error wrapping
// errResidentUnusable means that s did not run; after resident sandboxes
// failed three times in a row, none is used from then on.
func (l *Linux) runResident(ctx context.Context, s Spec, t *slot, execRoot string, hide, expose []string, tmpSize int64) (Result, error) {
	key := fmt.Sprintf("%s\x00%d\x00%s\x00\x00%s", execRoot, tmpSize, strings.Join(hide, "\x00"), strings.Join(expose, "\x00"))
	if t.resident != nil && (t.resident.key != key || t.resident.done()) {
		t.stopResident()
	}
	if t.resident == nil {
		b := bwrapArgs{isolate: true, resident: true, hide: hide, ro: expose, chdir: "/", tmpSize: tmpSize,
			binds: []bind{{src: t.ExecRoot, dst: execRoot}}}
		argv, err := b.build(l.bwrap)
		if err == nil {
			t.resident, err = startResident(key, execRoot, tmpSize, argv)
		}
		if err != nil {
			l.residentFailed(err)
			return Result{}, fmt.Errorf("%w: %v", errResidentUnusable, err)
		}
	}
	var writable []string
	for _, d := range outputFolders(s) {
		writable = append(writable, filepath.Join(execRoot, d))
	}
	res, err := t.resident.run(ctx, s, execRoot, writable)
	if errors.Is(err, errResidentUnusable) && t.resident.done() {
		t.stopResident()
		l.residentFailed(err)
	} else {
		l.residentFailures.Store(0)
	}
	return res, err
}

// residentFailed counts a failure of a resident sandbox. One may be an
// action's doing; three in a row are the machine's: then every later
// command runs in a bwrap of its own, and a warning says so once.
func (l *Linux) residentFailed(err error) {
	if l.residentFailures.Add(1) < 3 {
		return
	}
	l.noResident.Store(true)
	l.residentOnce.Do(func() {
		if l.Warn != nil {
			fmt.Fprintf(l.Warn, "WARNING: the linux sandbox starts a bwrap per action, which is slower: %v\n", err)
		}
	})
}

// Close removes the sandbox folders and stops the resident sandboxes and
// the reapers (of no-sandbox actions) kept for reuse. Runs may follow;
// they create new ones.
func (l *Linux) Close() error {
	stopReapers()
	return poolFor(l.Root).close()
}

// hiddenFolders are the host folders no command sees, whatever the
// workspace: home folders hold credentials (ssh keys, grid proxies,
// tokens), and /run, /var/run and /var/tmp the Unix sockets of the
// machine's services (munge, whose credentials Slurm accepts; D-Bus; the
// container runtimes, root to whoever reaches them; the user's ssh and gpg
// agents under /run/user). /tmp is a private tmpfs anyway.
func hiddenFolders() []string {
	hide := []string{"/home", "/root", "/var/tmp", "/run", "/var/run"}
	if h := os.Getenv("HOME"); filepath.IsAbs(h) && h != "/" {
		hide = append(hide, h)
	}
	return hide
}

// resolverPaths are what name resolution reads under /run, shown to a
// command with network access: the file /etc/resolv.conf leads to there
// (systemd-resolved's, NetworkManager's), resolved's and nscd's sockets.
// Nothing else of /run is: a service's socket is not the network.
func resolverPaths() []string {
	var paths []string
	if r, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && underAny(r, []string{"/run"}) {
		paths = append(paths, r)
	}
	for _, p := range []string{"/run/systemd/resolve", "/run/nscd"} {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return paths
}

// outputFolders are the exec-root relative folders the command writes in:
// those of its outputs and its output folders, without those inside others.
func outputFolders(s Spec) []string {
	var dirs []string
	for _, o := range s.Outputs {
		dirs = append(dirs, filepath.Dir(filepath.Clean(o)))
	}
	for _, d := range s.OutputDirs {
		dirs = append(dirs, filepath.Clean(d))
	}
	sort.Strings(dirs)
	var out []string
	for _, d := range dirs {
		if d == "." || (len(out) > 0 && underAny(d, out)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (l *Linux) warn(err error) {
	l.warnOnce.Do(func() {
		if l.Warn != nil {
			fmt.Fprintf(l.Warn, "WARNING: memory and cpu limits are not enforced: %v\n", err)
		}
	})
}
