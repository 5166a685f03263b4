package graph

// Package is one loaded BUILD file and its targets.
type Package struct {
	Repo string
	Name string
	// BuildFile is the workspace-relative path of the BUILD or BUILD.hep file.
	BuildFile string
	// Loads are the labels of every .star/.bzl file the BUILD file loads, directly or
	// transitively, sorted.
	Loads []Label
	// ReadFiles are workspace-relative paths of files read while loading (read_json),
	// which the package depends on.
	ReadFiles []string
	// Targets by name; Order keeps declaration order (rules and their outputs,
	// then source files in order of first mention).
	Targets map[string]*Target
	Order   []string
}

// Target returns the named target of the package, or nil.
func (p *Package) Target(name string) *Target { return p.Targets[name] }

// PackageSource loads packages on demand. It is implemented by the Starlark
// loader; tests may build packages by hand.
type PackageSource interface {
	// Package returns the loaded package pkg of repository repo, or an error
	// (*NoSuchPackageError when there is no BUILD file).
	Package(repo, pkg string) (*Package, error)
	// PackagesBeneath returns the names of all packages at or beneath prefix,
	// sorted, without descending into output trees or hidden folders.
	PackagesBeneath(repo, prefix string) ([]string, error)
}

// NoSuchPackageError says that a folder holds no BUILD file.
type NoSuchPackageError struct {
	Pkg        string
	Suggestion string // nearest existing package, if any
}

func (e *NoSuchPackageError) Error() string {
	msg := "no such package '" + e.Pkg + "': no BUILD or BUILD.hep file in it"
	if e.Suggestion != "" {
		msg += " (did you mean '" + e.Suggestion + "'?)"
	}
	return msg
}

// NoSuchTargetError says that a package has no target of that name.
type NoSuchTargetError struct {
	Label      Label
	Suggestion string
}

func (e *NoSuchTargetError) Error() string {
	msg := "no such target '" + e.Label.String() + "'"
	if e.Suggestion != "" {
		msg += " (did you mean '" + e.Suggestion + "'?)"
	}
	return msg
}
