package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

// tmpCounter names temporary files; the output base lock keeps other
// processes out of its tmp folder.
var tmpCounter atomic.Uint64

func randomSuffix() string {
	return strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(tmpCounter.Add(1), 10)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// errCorrupt is a blob whose content does not match its digest: a miss.
var errCorrupt = errors.New("cached blob does not match its digest")

// removeOutputs deletes the action's outputs, whatever they are now.
func (r *Runner) removeOutputs(a *Action) error { return r.removeOutputsBut(a, nil) }

// clearForRestore is removeOutputs before a result is restored: an output
// restored as a plain file is left where it is, since fetchFile puts the
// file in its place whatever is there (a file, a link or a folder), in
// one link where nothing is, the usual case. That saves an unlink per
// output after clean.
func (r *Runner) clearForRestore(a *Action, res *repb.ActionResult) error {
	links := resultLinks(res)
	return r.removeOutputsBut(a, func(o Artifact) bool {
		_, link := links[o.Path]
		return !o.Dir && !o.Symlink && !link
	})
}

// removeOutputsBut makes the parents of every output real and removes the
// outputs, except those keep (if set) says to leave where they are.
func (r *Runner) removeOutputsBut(a *Action, keep func(Artifact) bool) error {
	for _, o := range a.Outputs {
		if !strings.HasPrefix(o.Path, OutDir+"/") {
			return fmt.Errorf("%s: %s: output %s is not under %s", a.Pos, a.Owner, o.Path, OutDir)
		}
		if err := r.outputParents(o.Path); err != nil {
			return fmt.Errorf("%s: %s: %w", a.Pos, a.Owner, err)
		}
		if keep != nil && keep(o) {
			continue
		}
		if err := cache.RemoveTree(r.abs(o.Path)); err != nil {
			return fmt.Errorf("%s: %s: removing output %s: %w", a.Pos, a.Owner, o.Path, err)
		}
	}
	return nil
}

// replaceInto renames the file tmp to dst, replacing what is there: a
// folder in the way (an output that was one) is removed first.
func replaceInto(tmp, dst string) error {
	err := os.Rename(tmp, dst)
	if err == nil {
		return nil
	}
	if fi, lerr := os.Lstat(dst); lerr == nil && fi.IsDir() {
		if rerr := cache.RemoveTree(dst); rerr != nil {
			return rerr
		}
		return os.Rename(tmp, dst)
	}
	return err
}

// readOnlyMode is the mode of a finished output: read-only, so that a tool
// writing into it in place cannot corrupt the cache blob it may share an
// inode with; executable bits are kept.
func readOnlyMode(m fs.FileMode) fs.FileMode {
	if m&0o111 != 0 {
		return 0o555
	}
	return 0o444
}

// makeReadOnly makes an output file, or every file below an output folder,
// read-only. Folders stay writable so outputs can be removed.
func makeReadOnly(p string) error {
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if m := readOnlyMode(fi.Mode()); fi.Mode().Perm() != m {
			return os.Chmod(q, m)
		}
		return nil
	})
}

// store makes the outputs read-only, stores them in the CAS and the result
// in the action cache, and returns each output's digest for the journal.
// A failing cache only means the outputs are not cached.
func (r *Runner) store(ctx context.Context, a *Action, key cache.Digest, logPath string) (map[string]cache.Digest, error) {
	useCache := r.cacheable(a)
	digests := make(map[string]cache.Digest, len(a.Outputs))
	res := &repb.ActionResult{}
	if useCache {
		// The log travels with the result (as REAPI's stdout), so a hit in
		// another workspace, from a shared cache, shows what the run said.
		res.StdoutDigest = r.storeLog(ctx, logPath)
	}
	for _, o := range a.Outputs {
		p := r.abs(o.Path)
		if o.Dir {
			if err := makeReadOnly(p); err != nil {
				return nil, fmt.Errorf("making output %s read-only: %w", o.Path, err)
			}
			if useCache {
				tree, err := r.storeTree(ctx, p)
				if err != nil {
					return nil, fmt.Errorf("storing output %s: %w", o.Path, err)
				}
				res.OutputDirectories = append(res.OutputDirectories,
					&repb.OutputDirectory{Path: o.Path, TreeDigest: tree.ToProto()})
			}
			d, err := r.dirDigest(p)
			if err != nil {
				return nil, fmt.Errorf("digesting output %s: %w", o.Path, err)
			}
			digests[o.Path] = d
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		// As makeReadOnly does, from the stat at hand.
		if m := readOnlyMode(fi.Mode()); fi.Mode().IsRegular() && fi.Mode().Perm() != m {
			if err := os.Chmod(p, m); err != nil {
				return nil, fmt.Errorf("making output %s read-only: %w", o.Path, err)
			}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// checkOutputs made sure it stays inside the outputs: kept as a link.
			t, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			digests[o.Path] = linkDigest(t)
			res.OutputSymlinks = append(res.OutputSymlinks, &repb.OutputSymlink{Path: o.Path, Target: t})
			continue
		}
		d, err := r.storeFile(ctx, p, useCache)
		if err != nil {
			return nil, fmt.Errorf("storing output %s: %w", o.Path, err)
		}
		digests[o.Path] = d
		res.OutputFiles = append(res.OutputFiles,
			&repb.OutputFile{Path: o.Path, Digest: d.ToProto(), IsExecutable: fi.Mode()&0o111 != 0})
	}
	// Only a result whose every blob was stored may enter the action cache;
	// any failure above disabled the cache.
	if useCache && r.cache.usable() {
		if err := r.cache.c.PutActionResult(ctx, key, res); err != nil {
			r.cache.fail(ctx, "storing action result "+key.String(), err)
		}
	}
	return digests, nil
}

// storeLog stores the action's log by copy (the file stays writable for
// the next run; a hard link would let that run change the cached blob) and
// returns its digest, or nil when there is no log or it cannot be stored.
//
// Only the log file itself is stored, and only when a restore would bring
// it back: a link at its path (the action's doing) is not followed, so
// the file it points to never reaches the group's cache, and a runaway
// log is neither read into memory nor uploaded.
func (r *Runner) storeLog(ctx context.Context, logPath string) *repb.Digest {
	if !r.cache.usable() {
		return nil
	}
	f, err := os.OpenFile(logPath, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 || fi.Size() > maxRestoredLog {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRestoredLog+1))
	if err != nil || len(b) == 0 || int64(len(b)) > maxRestoredLog {
		return nil
	}
	d := cache.FromBytes(b)
	if err := r.cache.c.Put(ctx, d, bytesReader(b)); err != nil {
		r.cache.fail(ctx, "storing the log "+d.String(), err)
		return nil
	}
	return d.ToProto()
}

// restoreLog puts the log of the run that made a restored result where the
// action's own log goes; without one, a stale log of an earlier run of the
// action is removed. The log is a copy: the next run rewrites it.
func (r *Runner) restoreLog(ctx context.Context, a *Action, res *repb.ActionResult) {
	d := cache.FromProto(res.GetStdoutDigest())
	// A log is a file: one unlink, where os.Remove would also try rmdir
	// when there is none (the usual case).
	if d.IsZero() || d.Size > maxRestoredLog {
		if r.mayHaveLog(a) {
			syscall.Unlink(r.logPathOf(a))
		}
		return
	}
	logPath := r.logPathOf(a)
	b, err := r.readBlob(ctx, d)
	if err != nil {
		syscall.Unlink(logPath)
		return
	}
	r.logPath(a) // written from here on
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return
	}
	// A fresh temporary file (O_EXCL): nothing planted at a guessable
	// name is written through.
	f, err := os.CreateTemp(filepath.Dir(logPath), ".restore-*.log")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Chmod(f.Name(), 0o644) != nil || os.Rename(f.Name(), logPath) != nil {
		os.Remove(f.Name())
	}
}

// maxRestoredLog bounds a log kept with a result and brought back from a
// cache (a variable for tests).
var maxRestoredLog int64 = 64 << 20

// storeFile digests the file and, when useCache, stores it in the CAS, by
// hard link when the cache can.
func (r *Runner) storeFile(ctx context.Context, p string, useCache bool) (cache.Digest, error) {
	g := r.cache
	if useCache && g.usable() && g.files != nil {
		d, err := g.files.PutFile(ctx, p)
		if err == nil {
			return d, nil
		}
		// An output that cannot be read is the action's failure; only a
		// cache that cannot take a readable file has failed.
		if _, rerr := cache.FromFile(p); rerr != nil {
			return cache.Digest{}, rerr
		}
		g.fail(ctx, "putting an output in the cache", err) // err names the file
	}
	d, err := cache.FromFile(p)
	if err != nil || !useCache || !g.usable() {
		return d, err
	}
	f, err := cache.Open(p)
	if err != nil {
		return cache.Digest{}, err
	}
	defer f.Close()
	if err := g.c.Put(ctx, d, f); err != nil {
		g.fail(ctx, "storing "+d.String(), err)
	}
	return d, nil
}

// storeTree stores every file below the folder and the REAPI Tree message
// describing it, and returns the Tree's digest.
func (r *Runner) storeTree(ctx context.Context, root string) (cache.Digest, error) {
	children := map[cache.Digest]*repb.Directory{}
	rootDir, err := r.storeDirectory(ctx, root, children)
	if err != nil {
		return cache.Digest{}, err
	}
	tree := &repb.Tree{Root: rootDir}
	ds := make([]cache.Digest, 0, len(children))
	for d := range children {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Hash < ds[j].Hash })
	for _, d := range ds {
		tree.Children = append(tree.Children, children[d])
	}
	return r.putMessage(ctx, tree)
}

func (r *Runner) storeDirectory(ctx context.Context, p string, children map[cache.Digest]*repb.Directory) (*repb.Directory, error) {
	entries, err := os.ReadDir(p) // sorted by name, as REAPI requires
	if err != nil {
		return nil, err
	}
	dir := &repb.Directory{}
	for _, e := range entries {
		q := filepath.Join(p, e.Name())
		fi, err := os.Lstat(q) // a link is stored as a link, never followed
		if err != nil {
			return nil, err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(q)
			if err != nil {
				return nil, err
			}
			dir.Symlinks = append(dir.Symlinks, &repb.SymlinkNode{Name: e.Name(), Target: t})
		case fi.IsDir():
			child, err := r.storeDirectory(ctx, q, children)
			if err != nil {
				return nil, err
			}
			b, err := deterministic.Marshal(child)
			if err != nil {
				return nil, err
			}
			d := cache.FromBytes(b)
			children[d] = child
			dir.Directories = append(dir.Directories, &repb.DirectoryNode{Name: e.Name(), Digest: d.ToProto()})
		case fi.Mode().IsRegular():
			d, err := r.storeFile(ctx, q, true)
			if err != nil {
				return nil, err
			}
			dir.Files = append(dir.Files, &repb.FileNode{Name: e.Name(), Digest: d.ToProto(), IsExecutable: fi.Mode()&0o111 != 0})
		default:
			return nil, fmt.Errorf("%s is not a regular file or folder", q)
		}
	}
	return dir, nil
}

func (r *Runner) putMessage(ctx context.Context, m proto.Message) (cache.Digest, error) {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return cache.Digest{}, err
	}
	d := cache.FromBytes(b)
	if r.cache.usable() {
		if err := r.cache.c.Put(ctx, d, bytesReader(b)); err != nil {
			r.cache.fail(ctx, "storing "+d.String(), err)
		}
	}
	return d, nil
}

// materialize restores every output of a cached result into the output
// tree and returns their digests for the journal, and, when every output
// is a plain file, their stats (for the journal too: see rememberStats),
// each in the order of a.Outputs. An error means the result cannot be
// used (a missing or corrupt blob, a failing cache).
func (r *Runner) materialize(ctx context.Context, a *Action, res *repb.ActionResult) ([]cache.Digest, []fs.FileInfo, error) {
	files := map[string]*repb.OutputFile{}
	for _, f := range res.GetOutputFiles() {
		files[f.GetPath()] = f
	}
	dirs := map[string]*repb.OutputDirectory{}
	for _, d := range res.GetOutputDirectories() {
		dirs[d.GetPath()] = d
	}
	links := resultLinks(res)
	digests := make([]cache.Digest, len(a.Outputs))
	blobs := make([]fs.FileInfo, len(a.Outputs)) // the files linked, or nil
	// Only links and folders need checkRestored: a plain file is what
	// fetchFile made, a hard link to a verified blob or a copy (but see
	// below).
	check := false
	for i, o := range a.Outputs {
		check = check || o.Symlink
		dst := r.abs(o.Path)
		if err := r.outputParents(o.Path); err != nil {
			return nil, nil, err
		}
		if l, ok := links[o.Path]; ok && !o.Dir {
			check = true
			if err := r.restoreLink(l.GetTarget(), dst); err != nil {
				return nil, nil, err
			}
			digests[i] = linkDigest(l.GetTarget())
			continue
		}
		if o.Dir {
			check = true
			if err := r.restoreTree(ctx, cache.FromProto(dirs[o.Path].GetTreeDigest()), dst); err != nil {
				return nil, nil, err
			}
			d, err := r.dirDigest(dst)
			if err != nil {
				return nil, nil, err
			}
			digests[i] = d
			continue
		}
		f := files[o.Path]
		d := cache.FromProto(f.GetDigest())
		if !wellFormed(d) {
			return nil, nil, fmt.Errorf("%w: output %s has digest %q", errCorrupt, o.Path, d.String())
		}
		linked, err := r.fetchFileLinked(ctx, d, f.GetIsExecutable(), dst)
		if err != nil {
			return nil, nil, err
		}
		blobs[i] = linked
		digests[i] = d
	}
	// A result from a shared cache is not trusted to hold only links
	// that stay inside the outputs.
	if !check {
		// Each output is the file fetchFile linked or copied there, but
		// for a blob that someone who can write a shared cache swapped
		// (for a link, or another file) between its check and the hard
		// link to it: the output is then that. The stat the journal
		// records tells, taken once every output is in place (a second
		// link to a blob changes the first one's ctime).
		stats := make([]fs.FileInfo, len(a.Outputs))
		for i, o := range a.Outputs {
			fi, err := os.Lstat(r.abs(o.Path))
			if err != nil {
				return nil, nil, err
			}
			if !fi.Mode().IsRegular() {
				return nil, nil, fmt.Errorf("%w: restored output %s is a %s", errCorrupt, o.Path, kindOf(fi.Mode()))
			}
			if b := blobs[i]; b != nil && !cache.SameInode(fi, b) {
				return nil, nil, fmt.Errorf("%w: restored output %s is not the blob file that was verified", errCorrupt, o.Path)
			}
			stats[i] = fi
		}
		return digests, stats, nil
	}
	if err := checkRestored(r.outTree(), a); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return digests, nil, nil
}

// resultLinks returns the result's output links by path. REAPI v2.1 servers
// fill output_symlinks; older ones only output_file_symlinks.
func resultLinks(res *repb.ActionResult) map[string]*repb.OutputSymlink {
	if len(res.GetOutputFileSymlinks()) == 0 && len(res.GetOutputSymlinks()) == 0 {
		return nil // the usual case, without a map
	}
	links := map[string]*repb.OutputSymlink{}
	for _, l := range res.GetOutputFileSymlinks() {
		links[l.GetPath()] = l
	}
	for _, l := range res.GetOutputSymlinks() {
		links[l.GetPath()] = l
	}
	return links
}

// restoreLink makes dst a symbolic link to target, replacing whatever is
// there in one rename.
func (r *Runner) restoreLink(target, dst string) error {
	tmpDir, err := r.tmpDir()
	if err != nil {
		return err
	}
	tmp := filepath.Join(tmpDir, "symlink-"+randomSuffix())
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// tmpDir is where restored outputs are assembled before they are renamed
// into place; it is on the same file system as the output tree.
func (r *Runner) tmpDir() (string, error) {
	dir := filepath.Join(r.OutputBase, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// FetchFile puts the blob at dst, as fetchFile does; a worker materialises
// an action's inputs with it.
func (r *Runner) FetchFile(ctx context.Context, d cache.Digest, executable bool, dst string) error {
	r.init()
	return r.fetchFile(ctx, d, executable, dst)
}

// fetchFile puts the blob at dst: a hard link to the cache's own file when
// the cache offers one with the right mode, else a verified copy. The file
// appears at dst complete or not at all.
func (r *Runner) fetchFile(ctx context.Context, d cache.Digest, executable bool, dst string) error {
	_, err := r.fetchFileLinked(ctx, d, executable, dst)
	return err
}

// fetchFileLinked is fetchFile that also returns, when it hard-linked the
// cache's file, the stat of that file as it was verified (nil for a copy).
// The link goes by path: whoever can write a shared cache can rename
// another file over the blob in between, and the file at dst then is not
// that one (see materialize).
func (r *Runner) fetchFileLinked(ctx context.Context, d cache.Digest, executable bool, dst string) (fs.FileInfo, error) {
	g := r.cache
	if g.blobs != nil {
		p, fi, err := g.blobFile(d)
		switch {
		case errors.Is(err, cache.ErrNotFound):
			return nil, err
		case err != nil:
			g.fail(ctx, "finding blob "+d.String(), err)
			return nil, err
		}
		if fi != nil {
			r.noteBlobUse(fi)
		}
		// A blob shared with an output of the other mode is copied, never
		// chmod-ed: that would change the other output too.
		if fi != nil && fi.Size() == d.Size && (fi.Mode()&0o111 != 0) == executable {
			linked, err := r.linkBlob(p, d, dst)
			if err != nil {
				return nil, err
			}
			if linked {
				return fi, nil
			}
			// Another file system, or too many links: copy.
		}
	}
	return nil, r.copyBlob(ctx, d, executable, dst)
}

// copyBlob puts a verified copy of the blob at dst.
func (r *Runner) copyBlob(ctx context.Context, d cache.Digest, executable bool, dst string) error {
	g := r.cache
	tmpDir, err := r.tmpDir()
	if err != nil {
		return err
	}
	rc, err := g.c.Get(ctx, d)
	if err != nil {
		g.fail(ctx, "reading blob "+d.String(), err)
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(tmpDir, "copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	got, err := cache.FromReader(io.TeeReader(rc, tmp))
	if err != nil {
		// A cache that verifies while streaming reports corruption here,
		// in its own error type: a miss. A real I/O failure will show again
		// on the next call that can tell.
		tmp.Close()
		return fmt.Errorf("%w: reading %s: %v", errCorrupt, d, err)
	}
	if got != d {
		tmp.Close()
		return fmt.Errorf("%w: want %s, got %s", errCorrupt, d, got)
	}
	mode := fs.FileMode(0o444)
	if executable {
		mode = 0o555
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return replaceInto(tmp.Name(), dst)
}

// linkBlob hard-links the cache's file p of blob d at dst. It links
// straight to dst when nothing is there (the usual case: an output tree
// after clean, or outputs the runner removed; link never follows or
// replaces what is at a path). What is in the way (an earlier output, a
// link, a folder) is removed, never followed, and the blob linked in its
// place; renaming a second link over it instead would do nothing when it
// is the blob's own link already (rename between two links to one file
// leaves both), and leave that second link behind. Should something
// appear there again, the link goes through a temporary name and rename
// (see replaceInto). It reports false when the file system cannot link p
// there, for the caller to copy.
func (r *Runner) linkBlob(p string, d cache.Digest, dst string) (bool, error) {
	err := os.Link(p, dst)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err := cache.RemoveTree(dst); err != nil {
		return false, err
	}
	err = os.Link(p, dst)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	tmpDir, err := r.tmpDir()
	if err != nil {
		return false, err
	}
	tmp := filepath.Join(tmpDir, "link-"+d.Hash[:16]+"-"+randomSuffix())
	if err := os.Link(p, tmp); err != nil {
		return false, nil
	}
	if err := replaceInto(tmp, dst); err != nil {
		os.Remove(tmp)
		return false, err
	}
	syscall.Unlink(tmp) // still there if dst was a link to p already
	return true, nil
}

// restoreTree assembles the folder described by a REAPI Tree beside the
// output tree and renames it into place.
func (r *Runner) restoreTree(ctx context.Context, treeDigest cache.Digest, dst string) error {
	b, err := r.readBlob(ctx, treeDigest)
	if err != nil {
		return err
	}
	var tree repb.Tree
	if err := proto.Unmarshal(b, &tree); err != nil {
		return fmt.Errorf("%w: tree %s: %v", errCorrupt, treeDigest, err)
	}
	children := map[cache.Digest]*repb.Directory{}
	for _, c := range tree.GetChildren() {
		cb, err := deterministic.Marshal(c)
		if err != nil {
			return err
		}
		children[cache.FromBytes(cb)] = c
	}
	// A Tree is a DAG: a few children, each named twice by its parent,
	// expand to 2^depth entries. Count before writing anything.
	if n := treeEntries(tree.GetRoot(), children, map[*repb.Directory]int64{}, 0); n > maxTreeEntries {
		return fmt.Errorf("%w: tree %s expands to more than %d entries", errCorrupt, treeDigest, maxTreeEntries)
	}
	tmpDir, err := r.tmpDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(tmpDir, "tree-*")
	if err != nil {
		return err
	}
	defer cache.RemoveTree(tmp)
	var fill func(dir *repb.Directory, p string, depth int) error
	fill = func(dir *repb.Directory, p string, depth int) error {
		if depth > 256 {
			return fmt.Errorf("%w: tree %s nests too deep", errCorrupt, treeDigest)
		}
		for _, f := range dir.GetFiles() {
			if !validName(f.GetName()) {
				return fmt.Errorf("%w: bad file name %q", errCorrupt, f.GetName())
			}
			if d := cache.FromProto(f.GetDigest()); !wellFormed(d) {
				return fmt.Errorf("%w: file %q has digest %q", errCorrupt, f.GetName(), d.String())
			}
			if err := r.fetchFile(ctx, cache.FromProto(f.GetDigest()), f.GetIsExecutable(), filepath.Join(p, f.GetName())); err != nil {
				return err
			}
		}
		for _, l := range dir.GetSymlinks() {
			if !validName(l.GetName()) {
				return fmt.Errorf("%w: bad link name %q", errCorrupt, l.GetName())
			}
			if err := os.Symlink(l.GetTarget(), filepath.Join(p, l.GetName())); err != nil {
				return err
			}
		}
		for _, sub := range dir.GetDirectories() {
			child, ok := children[cache.FromProto(sub.GetDigest())]
			if !ok || !validName(sub.GetName()) {
				return fmt.Errorf("%w: tree %s lacks folder %s", errCorrupt, treeDigest, sub.GetName())
			}
			q := filepath.Join(p, sub.GetName())
			if err := os.Mkdir(q, 0o755); err != nil {
				return err
			}
			if err := fill(child, q, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fill(tree.GetRoot(), tmp, 0); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// maxTreeEntries bounds the files, links and folders of one restored
// output folder: no action makes more, and a Tree from a shared cache that
// expands beyond it is a lie (a variable for tests).
var maxTreeEntries int64 = 1 << 24

// treeEntries counts the entries dir expands to, at most maxTreeEntries+1,
// each distinct folder counted once per Tree (memo). A folder missing from
// the Tree counts as empty: fill reports it.
func treeEntries(dir *repb.Directory, children map[cache.Digest]*repb.Directory, memo map[*repb.Directory]int64, depth int) int64 {
	over := maxTreeEntries + 1
	if dir == nil {
		return 0
	}
	if depth > 256 {
		return over
	}
	if n, ok := memo[dir]; ok {
		return n
	}
	n := int64(len(dir.GetFiles()) + len(dir.GetSymlinks()) + len(dir.GetDirectories()))
	for _, sub := range dir.GetDirectories() {
		if n >= over {
			break
		}
		n += treeEntries(children[cache.FromProto(sub.GetDigest())], children, memo, depth+1)
	}
	n = min(n, over)
	memo[dir] = n
	return n
}

// wellFormed reports whether d, from a result that may come from a shared
// cache, is a digest at all: the disk cache refuses any other with an
// error that would turn it off.
func wellFormed(d cache.Digest) bool {
	if len(d.Hash) != 64 || d.Size < 0 {
		return false
	}
	for i := 0; i < len(d.Hash); i++ {
		if c := d.Hash[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func validName(n string) bool {
	return n != "" && n != "." && n != ".." && filepath.Base(n) == n
}

// readBlob reads a small blob whole and verifies it.
func (r *Runner) readBlob(ctx context.Context, d cache.Digest) ([]byte, error) {
	rc, err := r.cache.c.Get(ctx, d)
	if err != nil {
		r.cache.fail(ctx, "reading blob "+d.String(), err)
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", errCorrupt, d, err) // see fetchFile
	}
	if cache.FromBytes(b) != d {
		return nil, fmt.Errorf("%w: %s", errCorrupt, d)
	}
	return b, nil
}
