package graph

import (
	"fmt"
	"path"
	"strings"
)

// PatternKind says what a target pattern matches.
type PatternKind int

const (
	// PatternSingle matches one target.
	PatternSingle PatternKind = iota
	// PatternRules matches every rule of one package (//pkg:all).
	PatternRules
	// PatternTargets matches every target of one package, files included (//pkg:*).
	PatternTargets
	// PatternRecursiveRules matches every rule of a package and the packages beneath it (//pkg/...).
	PatternRecursiveRules
	// PatternRecursiveTargets matches every target of a package and the packages beneath it (//pkg/...:*).
	PatternRecursiveTargets
)

// Pattern is a parsed target pattern of the command line or of a query.
type Pattern struct {
	Kind  PatternKind
	Label Label // for PatternSingle; Repo and Pkg for the others
}

// String returns the canonical spelling of the pattern.
func (p Pattern) String() string {
	pre := p.Label.PackageString()
	switch p.Kind {
	case PatternRules:
		return pre + ":all"
	case PatternTargets:
		return pre + ":*"
	case PatternRecursiveRules:
		if p.Label.Pkg == "" {
			return pre + "..."
		}
		return pre + "/..."
	case PatternRecursiveTargets:
		if p.Label.Pkg == "" {
			return pre + "...:*"
		}
		return pre + "/...:*"
	}
	return p.Label.String()
}

// ParsePattern parses a target pattern. workingPkg is the package of the
// current folder (relative to the workspace root), used for relative patterns
// such as "analysis/...", ":all" or "hist".
func ParsePattern(s, workingPkg string) (Pattern, error) {
	orig := s
	if s == "" {
		return Pattern{}, fmt.Errorf("empty target pattern")
	}
	repo := ""
	if strings.HasPrefix(s, "@") {
		i := strings.Index(s, "//")
		if i < 0 {
			return Pattern{}, fmt.Errorf("invalid target pattern %q: missing // after the repository name", orig)
		}
		repo = s[1:i]
		s = s[i:]
	}
	abs := strings.HasPrefix(s, "//")
	if abs {
		s = s[2:]
	} else {
		if strings.HasPrefix(s, "/") {
			return Pattern{}, fmt.Errorf("invalid target pattern %q: absolute file system paths are not target patterns; use //pkg:name", orig)
		}
		s = strings.TrimPrefix(s, "./")
		if strings.HasPrefix(s, ":") {
			s = workingPkg + s
		} else if workingPkg != "" {
			s = workingPkg + "/" + s
		}
	}
	pkgPart, name, hasColon := strings.Cut(s, ":")
	if pkgPart == "..." || strings.HasSuffix(pkgPart, "/...") {
		pkg := strings.TrimSuffix(strings.TrimSuffix(pkgPart, "..."), "/")
		if err := checkPackage(pkg); err != nil {
			return Pattern{}, fmt.Errorf("invalid target pattern %q: %v", orig, err)
		}
		kind := PatternRecursiveRules
		switch name {
		case "", "all":
			if hasColon && name == "" {
				return Pattern{}, fmt.Errorf("invalid target pattern %q: empty target name", orig)
			}
		case "*", "all-targets":
			kind = PatternRecursiveTargets
		default:
			return Pattern{}, fmt.Errorf("invalid target pattern %q: after /... only :all or :* may follow", orig)
		}
		return Pattern{Kind: kind, Label: Label{Repo: repo, Pkg: pkg}}, nil
	}
	if hasColon {
		pkg := pkgPart
		if err := checkPackage(pkg); err != nil {
			return Pattern{}, fmt.Errorf("invalid target pattern %q: %v", orig, err)
		}
		switch name {
		case "all":
			return Pattern{Kind: PatternRules, Label: Label{Repo: repo, Pkg: pkg}}, nil
		case "*", "all-targets":
			return Pattern{Kind: PatternTargets, Label: Label{Repo: repo, Pkg: pkg}}, nil
		}
		l, err := ParseRelativeIn("//"+pkg+":"+name, repo, "")
		if err != nil {
			return Pattern{}, fmt.Errorf("invalid target pattern %q: %v", orig, err)
		}
		return Pattern{Kind: PatternSingle, Label: l}, nil
	}
	if s == "" {
		return Pattern{}, fmt.Errorf("invalid target pattern %q: the root package needs a target name, as in //:name or //:all", orig)
	}
	if err := checkPackage(s); err != nil {
		return Pattern{}, fmt.Errorf("invalid target pattern %q: %v", orig, err)
	}
	return Pattern{Kind: PatternSingle, Label: Label{Repo: repo, Pkg: s, Name: path.Base(s)}}, nil
}
