package exec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hepbuild/hepbuild/cache"
)

// An action's outputs are checked before anything of them is stored,
// recorded or handed to another action. A symbolic link that an action
// writes is kept as a link (REAPI OutputSymlink, SymlinkNode): its target
// string is its content. hepbuild never follows such a link on the host
// beyond the action's own outputs, so a link is allowed only when it
// resolves, link by link, inside them: an output file may link to another
// output of the same action, an entry of an output folder to something
// inside that folder. Anything else (an absolute target, .. out of the
// outputs, a link to a source or to another action's output, a dangling
// link) fails the action, naming the link.

// maxLinkHops bounds link chains, as the kernel's MAXSYMLINKS does.
const maxLinkHops = 40

// errLeaves is a link that resolves outside the outputs it may point into.
var errLeaves = errors.New("leads outside")

// linkDigest identifies a symbolic link by its target for the journal. The
// prefix keeps it apart from a file whose content is the target's text.
// LinkDigest is what a symbolic link with this target enters keys and
// journals as: its target, never what it leads to.
func LinkDigest(target string) cache.Digest { return linkDigest(target) }

func linkDigest(target string) cache.Digest {
	return cache.FromBytes([]byte("symlink\x00" + target))
}

// resolveIn resolves rel, a slash-separated path below base, the way the
// kernel would, but one component at a time with Lstat so that nothing
// outside base is ever looked at: an absolute link target, or a .. above
// base, is errLeaves. It returns the resolved path relative to base, which
// names no link. A component that does not exist is an fs.ErrNotExist.
func resolveIn(base, rel string) (string, error) {
	var done []string
	todo := strings.Split(rel, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", errLeaves
			}
			done = done[:len(done)-1]
			continue
		}
		cur := filepath.Join(base, filepath.Join(done...), c)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", errors.New("too many levels of symbolic links")
		}
		t, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			return "", errLeaves
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	return strings.Join(done, "/"), nil
}

// outputCheck checks the outputs of one action in out, the output tree on
// the host (what the exec root's hepbuild-out stands for).
type outputCheck struct {
	out string
	a   *Action
	// ownHardLinks says whether a regular file with other hard links is the
	// action's doing and must be copied (after a run), or hepbuild's own
	// link to the cache (after a restore).
	ownHardLinks bool
}

// checkOutputs verifies that the run wrote every declared output with the
// declared type, and nothing that cannot be stored faithfully: only
// regular files, folders and links that stay inside the action's outputs.
// An output file that shares its inode with another file (`ln src $@`) is
// replaced by a copy, so that making it read-only or linking it into the
// cache never touches that other file.
func checkOutputs(out string, a *Action) error {
	// Only a command can link a file it should not; a copy action
	// hard-links a generated, read-only input on purpose.
	return outputCheck{out: out, a: a, ownHardLinks: a.Kind == KindRun}.check()
}

// checkRestored verifies restored outputs the same way: a cache entry, which
// may come from elsewhere, must not plant a link that leads out of them.
func checkRestored(out string, a *Action) error {
	return outputCheck{out: out, a: a}.check()
}

// path is the output's path on the host.
func (c outputCheck) path(o Artifact) string {
	return filepath.Join(c.out, strings.TrimPrefix(o.Path, OutDir+"/"))
}

func (c outputCheck) check() error {
	for _, o := range c.a.Outputs {
		p := c.path(o)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("did not write declared output %s", o.Path)
		}
		switch {
		case o.Symlink && fi.Mode()&fs.ModeSymlink == 0:
			return fmt.Errorf("declared symlink output %s is not a symbolic link but a %s", o.Path, kindOf(fi.Mode()))
		case o.Symlink:
			// declare_symlink: its target is whatever the rule wants.
		case fi.Mode()&fs.ModeSymlink != 0 && o.Dir:
			t, _ := os.Readlink(p)
			return fmt.Errorf("declared output folder %s is a symbolic link to %q, not a folder", o.Path, t)
		case fi.Mode()&fs.ModeSymlink != 0:
			if err := c.checkFileLink(o); err != nil {
				return err
			}
		case o.Dir && !fi.IsDir():
			return fmt.Errorf("declared output folder %s is not a folder", o.Path)
		case o.Dir:
			if err := c.checkTree(o); err != nil {
				return err
			}
		case !fi.Mode().IsRegular():
			return fmt.Errorf("declared output %s is not a regular file but a %s", o.Path, kindOf(fi.Mode()))
		default:
			if err := c.ownInode(p, fi); err != nil {
				return fmt.Errorf("copying output %s away from the file it is a hard link to: %w", o.Path, err)
			}
		}
	}
	return nil
}

// checkFileLink checks an output file that is a link: it must resolve,
// inside the output tree, to a regular file among the action's outputs.
func (c outputCheck) checkFileLink(o Artifact) error {
	p := c.path(o)
	t, _ := os.Readlink(p)
	base := c.out
	rel, err := resolveIn(base, strings.TrimPrefix(o.Path, OutDir+"/"))
	if err != nil {
		return linkError("declared output "+o.Path+" is", t, err)
	}
	final := OutDir + "/" + rel
	if !c.ownOutput(final) {
		return fmt.Errorf("declared output %s is a symbolic link to %q, which resolves to %s: not an output of this action; hepbuild does not follow links outside an action's outputs", o.Path, t, final)
	}
	fi, err := os.Lstat(filepath.Join(base, rel))
	if err != nil {
		return linkError("declared output "+o.Path+" is", t, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("declared output %s is a symbolic link to %q, which is not a regular file but a %s", o.Path, t, kindOf(fi.Mode()))
	}
	return nil
}

// ownOutput reports whether the exec-root relative path is one of the
// action's outputs or inside one of its output folders.
func (c outputCheck) ownOutput(p string) bool {
	for _, o := range c.a.Outputs {
		if p == o.Path || (o.Dir && strings.HasPrefix(p, o.Path+"/")) {
			return true
		}
	}
	return false
}

// checkTree checks every entry below an output folder, at any depth.
func (c outputCheck) checkTree(o Artifact) error {
	base := c.path(o)
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading output folder %s: %w", o.Path, err)
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		what := "output folder " + o.Path + " holds " + rel + ","
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if _, err := resolveIn(base, rel); err != nil {
				return linkError(what, target, err)
			}
			return nil
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if err := c.ownInode(p, fi); err != nil {
				return fmt.Errorf("copying %s of output folder %s away from the file it is a hard link to: %w", rel, o.Path, err)
			}
			return nil
		default:
			return fmt.Errorf("%s a %s: only files, folders and links inside the folder can be stored", what, kindOf(t))
		}
	})
}

// linkError says why a link an action wrote cannot be kept; subject is
// "declared output x is" or "output folder d holds y,".
func linkError(subject, target string, err error) error {
	switch {
	case errors.Is(err, errLeaves):
		return fmt.Errorf("%s a symbolic link to %q, which points outside the action's outputs; hepbuild does not follow it (an output link must stay inside them)", subject, target)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s a symbolic link to %q, which does not exist", subject, target)
	}
	return fmt.Errorf("%s a symbolic link to %q: %v", subject, target, err)
}

// kindOf names a file type for messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "folder"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// ownInode gives a regular output file an inode of its own when it has
// other hard links after a run: `ln pkg/data.txt $@` must not let the
// read-only chmod, or the cache's hard link, reach pkg/data.txt.
func (c outputCheck) ownInode(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !c.ownHardLinks || !ok || st.Nlink <= 1 {
		return nil
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(p), ".hepbuild-tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
