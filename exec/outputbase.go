package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// An output base is hepbuild's: hepbuild writes a marker file into the
// folder when it creates it (or finds it empty), and never writes into, and
// never removes anything from, a folder without one. A mistyped
// --output-base (a home folder, the workspace itself) is refused instead
// of being filled with build state and later removed by clean --expunge.
//
// Output bases made before the marker existed have none; a folder whose
// every entry is one hepbuild makes in an output base (outputBaseEntry) is
// taken to be one of those and gets its marker then.

// OutputBaseMarker is the marker file's name. It holds a first line naming
// what the folder is and a line "workspace: PATH" naming the workspace it
// belongs to, so that a clean of every workspace can say whose it removes.
const OutputBaseMarker = ".hepbuild-output-base"

const markerHeader = "hepbuild output base"

// NotOwnedError says that a folder named as an output base (or cache) holds
// files hepbuild did not make.
type NotOwnedError struct {
	Dir    string
	What   string   // "output base"
	Marker string   // the marker file's name
	Sample []string // a few of the entries hepbuild did not make
	// Workspace, when set, is the workspace whose output base Dir is.
	Workspace string
}

func (e *NotOwnedError) Error() string {
	if e.Workspace != "" {
		return fmt.Sprintf("%s is the output base of the workspace %s: name another folder for this one", e.Dir, e.Workspace)
	}
	return fmt.Sprintf("%s is not a hepbuild %s: it holds files hepbuild did not make (%s) and no %s marker; "+
		"hepbuild neither writes into nor removes from such a folder: name a new or empty folder",
		e.Dir, e.What, strings.Join(e.Sample, ", "), e.Marker)
}

// outputBaseEntry reports whether name is a file or folder hepbuild makes at
// the top of an output base: what recognises an output base made before the
// marker, and the only entries clean --expunge removes.
func outputBaseEntry(name string) bool {
	switch name {
	case "out", "logs", "tmp", "sandbox", stampDir, "stat.cache", journalFile, explainFile, lockFile, OutputBaseMarker:
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
type OutputBaseState int

const (
	// OutputBaseAbsent: nothing there yet.
	OutputBaseAbsent OutputBaseState = iota
	// OutputBaseEmpty: an empty folder, which hepbuild may claim.
	OutputBaseEmpty
	// OutputBaseOwned: hepbuild's, with its marker.
	OutputBaseOwned
	// OutputBaseLegacy: hepbuild's layout without the marker (made by an
	// older hepbuild).
	OutputBaseLegacy
)

// InspectOutputBase says whether dir is hepbuild's output base. It returns a
// *NotOwnedError when dir holds anything else, and an error when dir is not a
// folder.
func InspectOutputBase(dir string) (OutputBaseState, error) {
	// Names like out/ and logs/ are common in users' own folders: an
	// unmarked folder is taken for an old output base only when it also
	// holds the lock file, which only hepbuild writes there.
	return inspectOwned(dir, OutputBaseMarker, "output base", outputBaseEntry, []string{lockFile})
}

func inspectOwned(dir, marker, what string, known func(string) bool, signature []string) (OutputBaseState, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return OutputBaseAbsent, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s exists and is not a folder", dir)
	}
	if mfi, err := os.Lstat(filepath.Join(dir, marker)); err == nil && mfi.Mode().IsRegular() {
		return OutputBaseOwned, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	if len(ents) == 0 {
		return OutputBaseEmpty, nil
	}
	var foreign []string
	for _, e := range ents {
		if !known(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	for _, sig := range signature {
		if fi, err := os.Lstat(filepath.Join(dir, sig)); err != nil || !fi.Mode().IsRegular() {
			foreign = append(foreign, "no "+sig)
		}
	}
	if len(foreign) == 0 {
		return OutputBaseLegacy, nil
	}
	sort.Strings(foreign)
	if len(foreign) > 3 {
		foreign = append(foreign[:3], "...")
	}
	return 0, &NotOwnedError{Dir: dir, What: what, Marker: marker, Sample: foreign}
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
		if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
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
