package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/cache"
)

// An output base is hepbuild's: hepbuild writes a marker file into the
// folder when it creates it (or finds it empty), and never writes into, and
// never removes anything from, a folder without one. A mistyped
// --output-base (a home folder, the workspace itself) is refused instead
// of being filled with build state and later removed by clean --expunge.
//
// Output bases made before the marker existed have none; a folder of the
// old layout (outputBaseFolder) is taken to be one of those and gets its
// marker then.

// OutputBaseMarker is the marker file's name. It holds a first line naming
// what the folder is and a line "workspace: PATH" naming the workspace it
// belongs to, so that a clean of every workspace can say whose it removes.
const OutputBaseMarker = ".hepbuild-output-base"

const markerHeader = "hepbuild output base"

// CompletionIndexDir holds the target names shell completion reads
// (cmd/hepbuild), one file per package.
const CompletionIndexDir = "completion.v1"

// NotOwnedError says that a folder named as an output base holds files
// hepbuild did not make, or is another workspace's.
type NotOwnedError = cache.NotOwnedError

// outputBaseEntry reports whether name is a file or folder hepbuild makes at
// the top of an output base: what recognises an output base made before the
// marker, and the only entries clean --expunge removes.
func outputBaseEntry(name string) bool {
	switch name {
	case "out", "logs", "tmp", "sandbox", "batch", stampDir, "stat.cache", journalFile, explainFile, lockFile, OutputBaseMarker, CompletionIndexDir:
		return true
	}
	// Temporary files of atomic writes (journal, explain log, stat cache).
	for _, p := range []string{journalFile + ".tmp", explainFile + ".tmp", "stat.cache.tmp", "." + OutputBaseMarker + ".tmp"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// OutputBaseState says what a folder named as an output base is.
type OutputBaseState = cache.FolderState

const (
	OutputBaseAbsent = cache.FolderAbsent
	OutputBaseEmpty  = cache.FolderEmpty
	OutputBaseOwned  = cache.FolderOwned
	OutputBaseLegacy = cache.FolderLegacy
)

// outputBaseFolder is what an output base is. Names like out/ and logs/ are
// common in users' own folders: an unmarked folder is taken for an old
// output base only when it also holds the lock file, which only hepbuild
// writes there.
var outputBaseFolder = cache.OwnedFolder{What: "output base", Marker: OutputBaseMarker,
	Known: outputBaseEntry, Files: []string{lockFile}}

// InspectOutputBase says whether dir is hepbuild's output base. It returns a
// *NotOwnedError when dir holds anything else, and an error when dir is not a
// folder.
func InspectOutputBase(dir string) (OutputBaseState, error) {
	return outputBaseFolder.Inspect(dir)
}

// ClaimOutputBase creates the output base dir for the workspace, or checks
// that the existing folder is hepbuild's, and makes sure it holds the
// marker. It refuses (with a *NotOwnedError) a folder with other files.
func ClaimOutputBase(dir, workspace string) error {
	st, err := InspectOutputBase(dir)
	if err != nil {
		return err
	}
	if st == OutputBaseOwned {
		// Two workspaces sharing one output base would overwrite each
		// other's outputs, journal and build stamps.
		if other := OutputBaseWorkspace(dir); other != "" && !sameFolder(other, workspace) {
			return &NotOwnedError{Dir: dir, What: "output base", Marker: OutputBaseMarker, Workspace: other}
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating output base: %w", err)
	}
	data := markerHeader + "\nworkspace: " + workspace + "\n"
	if err := writeFileAtomic(filepath.Join(dir, OutputBaseMarker), []byte(data)); err != nil {
		return fmt.Errorf("marking output base %s: %w", dir, err)
	}
	return nil
}

// OutputBaseWorkspace returns the workspace recorded in the marker of the
// output base dir, or "" when it records none.
func OutputBaseWorkspace(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, OutputBaseMarker))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if ws, ok := strings.CutPrefix(line, "workspace: "); ok {
			return ws
		}
	}
	return ""
}

// RemoveOutputBase removes what hepbuild made in the output base dir (its
// known entries, the marker last) and then the folder if that left it
// empty. It removes nothing from a folder that is not an output base
// (*NotOwnedError), and follows no symbolic link: a link inside the output
// base is removed, never what it points to. left lists the entries that
// hepbuild did not make and therefore kept.
func RemoveOutputBase(dir string) (left []string, err error) {
	st, err := InspectOutputBase(dir)
	if err != nil || st == OutputBaseAbsent {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !outputBaseEntry(e.Name()) {
			left = append(left, e.Name())
			continue
		}
		if e.Name() == OutputBaseMarker {
			continue
		}
		if err := cache.RemoveTree(filepath.Join(dir, e.Name())); err != nil {
			return left, fmt.Errorf("removing output base %s: %w", dir, err)
		}
	}
	if len(left) > 0 {
		return left, nil
	}
	if err := os.Remove(filepath.Join(dir, OutputBaseMarker)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing output base %s: %w", dir, err)
	}
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		if err := os.Remove(dir); err != nil {
			return nil, fmt.Errorf("removing output base %s: %w", dir, err)
		}
	}
	return nil, nil
}

// sameFolder reports whether a and b name the same folder, through links.
func sameFolder(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	return errA == nil && errB == nil && ra == rb
}
