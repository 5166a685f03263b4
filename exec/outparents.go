package exec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// An output's path runs through folders of the output tree that other
// actions may have made: a link declared by one target (declare_symlink)
// can sit where another target, built another time, has a folder of
// outputs. Followed on the host, writing or removing that output would
// write or remove wherever the link leads. So hepbuild never goes through
// a link, or through anything but a real folder, inside the output tree.

// OutputParentsAreReal reports whether every folder between root (the real
// output tree, <output base>/out) and rel is a real folder or absent: no
// link, no file. Clean uses it to leave an output
// behind a link alone.
func OutputParentsAreReal(root, rel string) bool {
	p := root
	parts := strings.Split(filepath.Dir(filepath.Clean(rel)), string(filepath.Separator))
	for _, part := range parts {
		if part == "." || part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return true // absent: nothing below it to follow
		}
		if !fi.IsDir() {
			return false
		}
	}
	return true
}

// makeOutputParents makes every folder between the exec root and the
// output path o real: a link or a file in the way (an output of another
// target, from another build) is removed, as the link itself, never
// followed, and a folder is made in its place.
func makeOutputParents(root, o string) error { return makeParents(root, o, true) }

// makeOutputParentsIn is makeOutputParents for rel, a path in out, the
// output tree itself: every folder below out is checked, one called
// hepbuild-out (an output folder of the root package) included.
func makeOutputParentsIn(out, rel string) error { return makeParents(out, rel, false) }

// makeParents makes the folders between root and o real; the first,
// when inExecRoot and it is hepbuild-out, is the workspace's link to the
// output tree and is left alone.
func makeParents(root, o string, inExecRoot bool) error {
	dir := filepath.Dir(filepath.Clean(o))
	if dir == "." {
		return nil
	}
	p := root
	for i, part := range strings.Split(dir, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if inExecRoot && i == 0 && part == OutDir {
			continue // the workspace's link to the output tree
		}
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			// Not a folder: a link (never followed) or a file, made by
			// some action under the output tree.
			if fi.Mode()&fs.ModeSymlink == 0 && !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is in the way of output %s and is neither a file nor a link", p, o)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s, in the way of output %s: %w", p, o, err)
			}
		case !os.IsNotExist(err):
			return err
		}
		if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

// outputParents is makeOutputParents for the runner's exec root, once per
// folder while no command runs: a folder made real stays so until one
// does. Nothing else hepbuild does in a build puts a link or a file there
// (no output lies below another, and outputs are removed and replaced at
// their own paths only), but a command run without the linux sandbox can
// (rm -rf a folder, ln -s a folder of the user's in its place), and an
// output written below it after that would be written, or removed, there.
// So a folder is trusted from the cache only when no command started or
// ended since it was checked, as in a build that only restores.
func (r *Runner) outputParents(o string) error {
	dir := filepath.Dir(filepath.Clean(o))
	epoch := r.commandEpoch.Load()
	if e, ok := r.realDirs.Load(dir); ok && r.quietSince(e.(int64)) {
		return nil
	}
	var err error
	if rest, ok := strings.CutPrefix(o, OutDir+"/"); ok && r.outRoot != "" {
		// In the output tree itself (see abs), where a first folder
		// called hepbuild-out is an output folder, not the link.
		err = makeOutputParentsIn(r.outRoot, rest)
	} else {
		err = makeOutputParents(r.ExecRoot, o)
	}
	if err != nil {
		return err
	}
	r.realDirs.Store(dir, epoch)
	return nil
}
