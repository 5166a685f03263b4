package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// A private exec root per action used to be created and removed for each
// action. Creating thousands of folders right after removing thousands
// makes ext4 scan its inode tables for recently deleted inodes on every new
// folder, which cost more than the actions themselves. So the private exec
// roots are slots, kept for the life of the process and reused: an action
// that takes a slot changes only what differs from what the slot's previous
// action needed, and consecutive actions of the same package need the same
// folders.

// pools holds one pool per sandbox root in this process, so that strategies
// sharing a root share its slots instead of removing each other's.
var pools sync.Map // cleaned root -> *pool

// poolFor returns the pool of slots under root.
func poolFor(root string) *pool {
	root = filepath.Clean(root)
	if p, ok := pools.Load(root); ok {
		return p.(*pool)
	}
	p, _ := pools.LoadOrStore(root, &pool{root: root})
	return p.(*pool)
}

// pool hands out slots, one per running action, created lazily. Safe for
// concurrent use.
type pool struct {
	root string

	mu      sync.Mutex
	started bool
	free    []*slot
	next    int
}

// get returns a free slot, creating one if none is free. The first call
// removes the slots an earlier process left under the root: the output
// base lock makes this process their only user, and their contents are
// unknown.
func (p *pool) get() (*slot, error) {
	p.mu.Lock()
	if !p.started {
		p.started = true
		entries, _ := os.ReadDir(p.root)
		for _, e := range entries {
			if n := e.Name(); strings.HasPrefix(n, "slot-") || strings.HasPrefix(n, "run-") {
				_ = removeAll(filepath.Join(p.root, n))
			}
		}
	}
	if n := len(p.free); n > 0 {
		sl := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return sl, nil
	}
	id := p.next
	p.next++
	p.mu.Unlock()
	return newSlot(p.root, id)
}

// put returns a slot whose record matches its tree.
func (p *pool) put(sl *slot) {
	sl.targets, sl.mounts = nil, nil
	p.mu.Lock()
	p.free = append(p.free, sl)
	p.mu.Unlock()
}

// discard removes a slot whose tree may not match its record.
func (p *pool) discard(sl *slot) {
	sl.stopResident()
	_ = removeAll(sl.Dir)
}

// close removes the free slots.
func (p *pool) close() error {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	var errs []error
	for _, sl := range free {
		sl.stopResident()
		if err := removeAll(sl.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox slot: %w", err))
		}
	}
	return errors.Join(errs...)
}

// slot is a reusable private exec root, <root>/slot-<id>/execroot, and the
// record of what it holds. The slot folder is left for the linux strategy
// to hold mount points beside the exec root. Not safe for concurrent use:
// one action holds it at a time.
type slot struct {
	Dir      string // <root>/slot-<id>
	ExecRoot string // <root>/slot-<id>/execroot
	dev      uint64 // the file system of the exec root: hard links stay on it
	// have is what the exec root holds, by exec-root relative path; the
	// exec root itself is not in it.
	have map[string]node

	// The current action's: targets are the host paths of the inputs that
	// are symlinked (a sandbox that hides the workspace must show them);
	// mounts are the inputs a hard-linked tree could not link (folders,
	// files on other file systems): their place in the tree is an empty
	// mount point, and src (a host path) must be mounted there.
	targets []string
	mounts  []mountPoint

	// resident is the slot's resident sandbox, if the linux strategy
	// started one; it lives as long as the slot.
	resident *resident
}

// stopResident ends the slot's resident sandbox, if any.
func (sl *slot) stopResident() {
	if sl.resident != nil {
		sl.resident.stop()
		sl.resident = nil
	}
}

// mountPoint is an input to mount at its exec-root relative path.
type mountPoint struct{ src, rel string }

type nodeKind uint8

const (
	kindDir       nodeKind = iota + 1
	kindHardLink           // a hard link to target: ino is target's inode
	kindSymlink            // a symlink to target
	kindMountDir           // an empty folder where target is mounted
	kindMountFile          // an empty file where target is mounted
)

// node is one entry of a slot's tree. ino is the inode the entry has on
// disk, which tells a kept entry from one a command replaced.
type node struct {
	kind   nodeKind
	ino    uint64
	target string
}

// same reports whether an existing entry n serves as the wanted entry w.
// A wanted hard link carries the inode of its target, so a link to an
// older version of the file is not the same.
func (n node) same(w node) bool {
	if n.kind != w.kind {
		return false
	}
	switch n.kind {
	case kindDir:
		return true
	case kindHardLink:
		return n.ino == w.ino
	}
	return n.target == w.target
}

func newSlot(root string, id int) (*slot, error) {
	dir := filepath.Join(root, fmt.Sprintf("slot-%d", id))
	sl := &slot{Dir: dir, ExecRoot: filepath.Join(dir, "execroot"), have: map[string]node{}}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating sandbox root: %w", err)
	}
	if err := removeAll(dir); err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	if err := os.MkdirAll(sl.ExecRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	fi, err := os.Stat(sl.ExecRoot)
	if err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	sl.dev = uint64(fi.Sys().(*syscall.Stat_t).Dev)
	return sl, nil
}

// acquire takes a slot from the pool and makes its tree hold exactly what
// s needs (see slot.prepare). A slot that cannot be prepared is replaced
// by a fresh one; when that fails too, the error is the action's.
func (p *pool) acquire(s Spec, hard bool) (*slot, error) {
	sl, err := p.get()
	if err != nil {
		return nil, err
	}
	if sl.prepare(s, hard) == nil {
		return sl, nil
	}
	p.discard(sl)
	if sl, err = newSlot(p.root, p.nextID()); err != nil {
		return nil, err
	}
	if err := sl.prepare(s, hard); err != nil {
		p.discard(sl)
		return nil, err
	}
	return sl, nil
}

func (p *pool) nextID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	return p.next - 1
}

// release settles the slot after its action (see slot.settle) and returns
// it to the pool, or removes it when its tree cannot be trusted.
func (p *pool) release(sl *slot, written []string) {
	if err := sl.settle(written); err != nil {
		p.discard(sl)
		return
	}
	p.put(sl)
}

// prepare makes the exec root hold exactly the inputs of s, linked at their
// exec-root paths to their real paths, the folders of its outputs and its
// output folders (empty), and the folders leading to them: entries of the
// previous action that s does not need are removed, deepest first, and
// those it needs as they are are kept. With hard, inputs are hard links
// where the file system allows (folders and other file systems become
// mount points): a hard link shows the file even where its path is hidden.
// Otherwise inputs are symlinks. An input inside an input folder is
// reachable through it.
func (sl *slot) prepare(s Spec, hard bool) error {
	sl.targets, sl.mounts = nil, nil
	want, err := sl.wanted(s, hard)
	if err != nil {
		return err
	}
	var gone []string
	for p, n := range sl.have {
		if w, ok := want[p]; !ok || !n.same(w) {
			gone = append(gone, p)
		}
	}
	// Reverse order puts what a folder holds before the folder.
	sort.Sort(sort.Reverse(sort.StringSlice(gone)))
	for _, p := range gone {
		abs := filepath.Join(sl.ExecRoot, p)
		var err error
		if k := sl.have[p].kind; k == kindDir || k == kindMountDir {
			err = syscall.Rmdir(abs)
		} else {
			err = syscall.Unlink(abs)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clearing sandbox: removing %s: %w", p, err)
		}
		delete(sl.have, p)
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths) // folders before what they hold
	for _, p := range paths {
		w := want[p]
		if _, ok := sl.have[p]; ok {
			continue
		}
		n, err := sl.create(p, w)
		if err != nil {
			return err
		}
		sl.have[p] = n
	}
	for _, p := range paths {
		switch n := sl.have[p]; n.kind {
		case kindSymlink:
			sl.targets = append(sl.targets, n.target)
		case kindMountDir, kindMountFile:
			sl.mounts = append(sl.mounts, mountPoint{src: n.target, rel: p})
		}
	}
	return nil
}

// wanted is the tree s needs, by exec-root relative path.
func (sl *slot) wanted(s Spec, hard bool) (map[string]node, error) {
	// Links point at real paths, not through hepbuild-out, which is a
	// symlink in the exec root but a real folder in the sandbox. Both are
	// resolved once: file system calls are what a sandbox costs.
	execReal := hostOf(s.ExecRoot)
	outReal := hostOf(filepath.Join(s.ExecRoot, "hepbuild-out"))
	want := map[string]node{}
	dirs := func(d string) {
		for ; d != "." && d != "/" && d != ""; d = filepath.Dir(d) {
			if _, ok := want[d]; ok {
				return
			}
			want[d] = node{kind: kindDir}
		}
	}
	inputs := append([]string(nil), s.Inputs...)
	sort.Strings(inputs) // folders before what they hold
	keepLink := map[string]bool{}
	for _, in := range s.LinkInputs {
		keepLink[filepath.Clean(in)] = true
	}
	linked := map[string]bool{}
	for _, in := range inputs {
		in = filepath.Clean(in)
		if linked[in] || insideLinked(in, linked) {
			continue
		}
		if in == "." || in == ".." || strings.HasPrefix(in, "../") {
			return nil, fmt.Errorf("linking input %s: not inside the exec root", in)
		}
		linked[in] = true
		target := filepath.Join(execReal, in)
		if rest, ok := strings.CutPrefix(in, "hepbuild-out/"); ok {
			target = filepath.Join(outReal, rest)
		}
		dirs(filepath.Dir(in))
		if !hard {
			want[in] = node{kind: kindSymlink, target: target}
			continue
		}
		fi, err := os.Lstat(target)
		if err != nil {
			return nil, fmt.Errorf("linking input %s: %w", in, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 && !keepLink[in] {
			// A hard link to a symbolic link is the link itself, whose
			// (relative) target need not be in the sandbox: link what
			// it leads to, as its content is what the key hashed.
			real, err := filepath.EvalSymlinks(target)
			if err != nil {
				return nil, fmt.Errorf("linking input %s: a symbolic link that leads nowhere: %w", in, err)
			}
			if fi, err = os.Stat(real); err != nil {
				return nil, fmt.Errorf("linking input %s: %w", in, err)
			}
			target = real
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() && uint64(st.Dev) == sl.dev {
			want[in] = node{kind: kindHardLink, ino: st.Ino, target: target}
			continue
		}
		want[in] = mountNode(target, fi)
	}
	for _, o := range s.Outputs {
		dirs(filepath.Dir(filepath.Clean(o)))
	}
	for _, d := range s.OutputDirs {
		dirs(filepath.Clean(d))
	}
	return want, nil
}

// mountNode is the mount point of target, whose Lstat is fi.
func mountNode(target string, fi fs.FileInfo) node {
	if fi.Mode()&fs.ModeSymlink != 0 {
		if f, err := os.Stat(target); err == nil {
			fi = f
		}
	}
	if fi.IsDir() {
		return node{kind: kindMountDir, target: target}
	}
	return node{kind: kindMountFile, target: target}
}

// create makes the wanted entry w at p and returns what was made.
func (sl *slot) create(p string, w node) (node, error) {
	abs := filepath.Join(sl.ExecRoot, p)
	switch w.kind {
	case kindDir:
		if err := os.Mkdir(abs, 0o755); err != nil {
			return node{}, fmt.Errorf("creating sandbox folder %s: %w", p, err)
		}
		return w, nil
	case kindHardLink:
		if os.Link(w.target, abs) == nil {
			return w, nil
		}
		// Hard links to files of others may be refused
		// (fs.protected_hardlinks): mount those.
		fi, err := os.Lstat(w.target)
		if err != nil {
			return node{}, fmt.Errorf("linking input %s: %w", p, err)
		}
		w = mountNode(w.target, fi)
	case kindSymlink:
		if err := os.Symlink(w.target, abs); err != nil {
			return node{}, fmt.Errorf("linking input %s: %w", p, err)
		}
	}
	if w.kind == kindMountDir {
		if err := os.Mkdir(abs, 0o755); err != nil {
			return node{}, fmt.Errorf("linking input %s: %w", p, err)
		}
	}
	if w.kind == kindMountFile {
		f, err := os.OpenFile(abs, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
		if err != nil {
			return node{}, fmt.Errorf("linking input %s: %w", p, err)
		}
		f.Close()
	}
	// Symlinks and mount points are new inodes: their number tells them
	// from what a command may put in their place.
	fi, err := os.Lstat(abs)
	if err != nil {
		return node{}, fmt.Errorf("linking input %s: %w", p, err)
	}
	w.ino = fi.Sys().(*syscall.Stat_t).Ino
	return w, nil
}

// matches reports whether the entry on disk, fi, is the recorded node n.
func (n node) matches(fi fs.FileInfo) bool {
	ino := fi.Sys().(*syscall.Stat_t).Ino
	switch n.kind {
	case kindDir, kindMountDir:
		// A folder the command made unwritable could not be cleared.
		return fi.IsDir() && fi.Mode().Perm()&0o700 == 0o700 && (n.kind == kindDir || ino == n.ino)
	case kindSymlink:
		return fi.Mode()&fs.ModeSymlink != 0 && ino == n.ino
	}
	return !fi.IsDir() && ino == n.ino
}

// settle brings the tree back to the slot's record after a command ran
// and its outputs were collected: in the given exec-root relative folders
// (those the command could write; "." for all), every entry that is not
// recorded or not as recorded is removed, and recorded entries that are
// gone (collected outputs, what the command removed) leave the record.
func (sl *slot) settle(folders []string) error {
	seen := map[string]bool{}
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(sl.ExecRoot, rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(rel, e.Name())
			abs := filepath.Join(sl.ExecRoot, p)
			n, ok := sl.have[p]
			if ok {
				fi, err := os.Lstat(abs)
				if err != nil {
					return err
				}
				if n.matches(fi) {
					seen[p] = true
					if n.kind == kindDir {
						if err := walk(p); err != nil {
							return err
						}
					}
					continue
				}
			}
			if err := removeAll(abs); err != nil {
				return err
			}
		}
		return nil
	}
	// scopes are the folders walked, or removed: what the record holds
	// inside them and was not seen is gone.
	var scopes []string
	all := false
	for _, f := range folders {
		f = filepath.Clean(f)
		if f == "." {
			all = true
		} else {
			n, ok := sl.have[f]
			if !ok || n.kind != kindDir {
				continue // not a folder of the tree
			}
			scopes = append(scopes, f)
			abs := filepath.Join(sl.ExecRoot, f)
			if fi, err := os.Lstat(abs); err != nil || !n.matches(fi) {
				if err := removeAll(abs); err != nil {
					return fmt.Errorf("clearing sandbox: %w", err)
				}
				continue
			}
			seen[f] = true
		}
		if err := walk(f); err != nil {
			return fmt.Errorf("clearing sandbox: %w", err)
		}
	}
	for p := range sl.have {
		if !seen[p] && (all || underAny(p, scopes)) {
			delete(sl.have, p)
		}
	}
	return nil
}

// collect moves the declared outputs that exist into the exec root,
// replacing what is there. Missing outputs are left for the caller to report.
func (sl *slot) collect(s Spec) error {
	paths := append(append([]string(nil), s.Outputs...), s.OutputDirs...)
	for _, p := range paths {
		src := filepath.Join(sl.ExecRoot, p)
		dst := filepath.Join(s.ExecRoot, p)
		// Usually nothing is in the way, and one system call does it.
		if renameNew(src, dst) == nil {
			continue
		}
		if _, err := os.Lstat(src); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
		if err := removeAll(dst); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("moving output %s: %w", p, err)
		}
	}
	return nil
}
