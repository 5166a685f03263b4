package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// bwrapArgs describes one bubblewrap sandbox. Every path is an absolute host
// path, and appears at the same path inside.
type bwrapArgs struct {
	// isolate unshares every namespace (user, mount, PID, IPC, network, UTS,
	// cgroup); otherwise only mount, PID, IPC and UTS, as a container needs.
	isolate bool
	// network keeps the host's network when isolating.
	network bool
	// image is an unpacked root file system used as /; empty means the
	// host's root file system, read-only.
	image string
	// hide are host folders replaced by empty ones (the workspace, the
	// output base), so absolute paths into them fail.
	hide []string
	// rw are bound writable, ro read-only, at their own paths, after hide,
	// in this order; then binds, in their order.
	rw, ro []string
	binds  []bind
	// chdir is the working folder.
	chdir string
	// resident makes the command PID 1 of the sandbox and leaves it the
	// capabilities to mount (see serveResident); it drops them for the
	// commands it runs.
	resident bool
	// tmpSize bounds /tmp and /dev/shm, each, in bytes: both are in
	// memory, and a tmpfs left unbounded takes half the machine's.
	tmpSize int64
}

// bind mounts the host path src at dst in the sandbox.
type bind struct {
	src, dst string
	rw       bool
}

// build returns the bwrap command line, ending in "--".
func (b bwrapArgs) build(bwrap string) ([]string, error) {
	args := []string{bwrap, "--die-with-parent", "--new-session"}
	if b.isolate {
		args = append(args, "--unshare-all", "--cap-drop", "ALL")
		if b.resident {
			args = append(args, "--as-pid-1", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP")
		}
		if b.network {
			args = append(args, "--share-net")
		}
	} else {
		args = append(args, "--unshare-pid", "--unshare-ipc", "--unshare-uts")
	}
	if b.image == "" {
		args = append(args, "--ro-bind", "/", "/")
	} else {
		bound := append(append([]string{b.chdir}, b.rw...), b.ro...)
		for _, m := range b.binds {
			bound = append(bound, m.dst)
		}
		m, err := imageMounts(b.image, bound)
		if err != nil {
			return nil, err
		}
		args = append(args, m...)
	}
	size := strconv.FormatInt(tmpSizeOr(b.tmpSize), 10)
	if b.resident {
		args = append(args, residentDev...)
	} else {
		// The /dev bwrap makes is a tmpfs of its own: read-only, so that
		// only the bounded /dev/shm takes writes.
		args = append(args, "--dev", "/dev", "--remount-ro", "/dev")
	}
	args = append(args, "--size", size, "--tmpfs", "/dev/shm")
	args = append(args, "--proc", "/proc", "--size", size, "--tmpfs", "/tmp")
	if b.image == "" {
		for _, h := range b.hide {
			if isFile(h) {
				// A secret file (a signing key): an empty one in its place.
				args = append(args, "--ro-bind", "/dev/null", h)
				continue
			}
			args = append(args, "--tmpfs", h)
		}
	}
	for _, p := range b.rw {
		args = append(args, "--bind", p, p)
	}
	for _, p := range b.ro {
		args = append(args, "--ro-bind", p, p)
	}
	for _, m := range b.binds {
		if m.rw {
			args = append(args, "--bind", m.src, m.dst)
		} else {
			args = append(args, "--ro-bind", m.src, m.dst)
		}
	}
	if b.image != "" {
		// The root is a tmpfs holding the mount points; nothing may write to it.
		args = append(args, "--remount-ro", "/")
	} else {
		// Nor to the empty folders that hide the workspace and output base.
		for _, h := range b.hide {
			if !isFile(h) {
				args = append(args, "--remount-ro", h)
			}
		}
	}
	args = append(args, "--chdir", b.chdir, "--")
	return args, nil
}

// residentDev is the /dev of a resident sandbox: what bwrap's --dev makes
// but the pseudo-terminals. Mounting devpts has unprivileged bwrap set up
// the sandbox as uid 0 of one user namespace and run the command in a
// second, which holds no capabilities over the mounts the resident sandbox
// changes.
var residentDev = []string{
	"--tmpfs", "/dev",
	"--dev-bind", "/dev/null", "/dev/null",
	"--dev-bind", "/dev/zero", "/dev/zero",
	"--dev-bind", "/dev/full", "/dev/full",
	"--dev-bind", "/dev/random", "/dev/random",
	"--dev-bind", "/dev/urandom", "/dev/urandom",
	"--dev-bind", "/dev/tty", "/dev/tty",
	"--symlink", "/proc/self/fd", "/dev/fd",
	"--symlink", "/proc/self/fd/0", "/dev/stdin",
	"--symlink", "/proc/self/fd/1", "/dev/stdout",
	"--symlink", "/proc/self/fd/2", "/dev/stderr",
	"--dir", "/dev/shm",
	"--dir", "/dev/mqueue",
	"--remount-ro", "/dev",
}

// DefaultTmpSize bounds the in-memory /tmp and /dev/shm of an action of
// the linux strategy that declares neither a tmp nor a memory resource.
const DefaultTmpSize = 1 << 30

// tmpSizeOr is size, or DefaultTmpSize when size is not positive.
func tmpSizeOr(size int64) int64 {
	if size <= 0 {
		return DefaultTmpSize
	}
	return size
}

// imageMounts makes the unpacked root file system the sandbox's /: an empty
// root holding each top-level entry of the image, read-only, except the
// top-level folders the bound paths live in, which would hide them (and
// must not be created inside the image).
func imageMounts(image string, bound []string) ([]string, error) {
	entries, err := os.ReadDir(image)
	if err != nil {
		return nil, fmt.Errorf("reading container image %s: %w", image, err)
	}
	skip := map[string]bool{"proc": true, "dev": true, "tmp": true}
	for _, p := range bound {
		if first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/"); first != "" {
			skip[first] = true
		}
	}
	var args []string
	for _, e := range entries {
		name := e.Name()
		if skip[name] {
			continue
		}
		src := filepath.Join(image, name)
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err != nil {
				return nil, fmt.Errorf("reading container image %s: %w", image, err)
			}
			args = append(args, "--symlink", target, "/"+name)
			continue
		}
		args = append(args, "--ro-bind", src, "/"+name)
	}
	return args, nil
}

// imageFolderArgv is the bubblewrap command line that runs a command in an
// unpacked root file system (see runInImage).
func imageFolderArgv(image, dir string, rw, ro []string) ([]string, error) {
	st := ProbeLinux()
	if st.Bwrap == "" {
		return nil, &EnvironmentError{Kind: "container", Err: fmt.Errorf("image %s is a root file system folder, which needs bubblewrap: %v", image, st.Err)}
	}
	return bwrapArgs{image: image, rw: rw, ro: ro, chdir: hostOf(dir)}.build(st.Bwrap)
}
