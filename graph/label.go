package graph

import (
	"fmt"
	"path"
	"strings"
)

// Label names a target: a rule, a source file or a generated file.
// Repo is "" for the main workspace and "hepbuild" for the built-in rule library.
// Labels are small comparable values, usable as map keys.
type Label struct {
	Repo string
	Pkg  string
	Name string
}

// String returns the canonical form, "//pkg:name" or "@repo//pkg:name".
func (l Label) String() string {
	// One concatenation makes one allocation; a Builder grows several times.
	if l.Repo != "" {
		return "@" + l.Repo + "//" + l.Pkg + ":" + l.Name
	}
	return "//" + l.Pkg + ":" + l.Name
}

// PackageLabel returns the label of the package, "//pkg" ("@repo//pkg").
func (l Label) PackageString() string {
	if l.Repo != "" {
		return "@" + l.Repo + "//" + l.Pkg
	}
	return "//" + l.Pkg
}

// Path returns the workspace-relative path of a file label: pkg/name.
func (l Label) Path() string {
	if l.Pkg == "" {
		return l.Name
	}
	return l.Pkg + "/" + l.Name
}

// IsZero reports whether l is the zero label.
func (l Label) IsZero() bool { return l == Label{} }

// ParseLabel parses an absolute label: "//pkg:name", "//pkg" or "@repo//pkg:name".
func ParseLabel(s string) (Label, error) {
	if !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "@") {
		return Label{}, fmt.Errorf("invalid label %q: an absolute label starts with // or @", s)
	}
	return ParseRelative(s, "")
}

// MustParseLabel is ParseLabel for tests and constants; it panics on error.
func MustParseLabel(s string) Label {
	l, err := ParseLabel(s)
	if err != nil {
		panic(err)
	}
	return l
}

// ParseRelative parses a label that may be relative to package pkg of the main
// workspace: ":name", "name", "sub/file.txt", "//pkg:name", "//pkg", "@repo//pkg:name".
func ParseRelative(s, pkg string) (Label, error) {
	return ParseRelativeIn(s, "", pkg)
}

// ParseRelativeIn is ParseRelative for a package of repository repo: a
// relative label inherits the repository, an absolute "//x" label does too
// (as in Bazel, "//x" inside @repo means @repo//x).
func ParseRelativeIn(s, repo, pkg string) (Label, error) {
	orig := s
	if s == "" {
		return Label{}, fmt.Errorf("empty label")
	}
	l := Label{Repo: repo}
	if strings.HasPrefix(s, "@") {
		i := strings.Index(s, "//")
		if i < 0 {
			return Label{}, fmt.Errorf("invalid label %q: missing // after the repository name", orig)
		}
		l.Repo = strings.TrimPrefix(s[1:i], "@")
		if l.Repo == "" || l.Repo == "hepbuild_main" {
			l.Repo = ""
		}
		if err := checkRepo(l.Repo); err != nil {
			return Label{}, fmt.Errorf("invalid label %q: %v", orig, err)
		}
		s = s[i:]
	}
	if strings.HasPrefix(s, "//") {
		s = s[2:]
		if i := strings.IndexByte(s, ':'); i >= 0 {
			l.Pkg, l.Name = s[:i], s[i+1:]
		} else {
			l.Pkg = s
			l.Name = path.Base(s)
			if s == "" {
				return Label{}, fmt.Errorf("invalid label %q: the root package needs an explicit target name, as in //:name", orig)
			}
		}
	} else {
		l.Pkg = pkg
		l.Name = strings.TrimPrefix(s, ":")
	}
	if err := checkPackage(l.Pkg); err != nil {
		return Label{}, fmt.Errorf("invalid label %q: %v", orig, err)
	}
	if err := checkName(l.Name); err != nil {
		return Label{}, fmt.Errorf("invalid label %q: %v", orig, err)
	}
	return l, nil
}

func checkRepo(r string) error {
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("invalid character %q in repository name", c)
		}
	}
	return nil
}

// checkPackage rejects package names that could escape the workspace.
func checkPackage(p string) error {
	if p == "" {
		return nil
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("package name %q must not start or end with / or contain //", p)
	}
	if seg := dotSegment(p); seg != "" {
		return fmt.Errorf("package name %q must not contain %q: labels cannot leave the workspace", p, seg)
	}
	if strings.ContainsAny(p, ":\x00") {
		return fmt.Errorf("package name %q contains an invalid character", p)
	}
	return nil
}

// ValidName reports whether n is a valid target name: one that
// ParseRelative(":"+n, pkg) accepts, without making the label text (a
// package of a million rules checks a million names).
func ValidName(n string) bool { return checkName(n) == nil }

// checkName rejects target names that are empty or escape their package.
func checkName(n string) error {
	if n == "" {
		return fmt.Errorf("empty target name")
	}
	if strings.HasPrefix(n, "/") || strings.HasSuffix(n, "/") || strings.Contains(n, "//") {
		return fmt.Errorf("target name %q must not start or end with / or contain //", n)
	}
	if seg := dotSegment(n); seg != "" {
		return fmt.Errorf("target name %q must not contain %q: labels cannot leave the workspace", n, seg)
	}
	if strings.ContainsAny(n, ":\x00") {
		return fmt.Errorf("target name %q contains an invalid character", n)
	}
	return nil
}

// dotSegment returns the first "." or ".." segment of the slash-separated
// path s, or "". It splits nothing off: every label parsed passes here.
func dotSegment(s string) string {
	for s != "" {
		seg, rest, _ := strings.Cut(s, "/")
		if seg == "." || seg == ".." {
			return seg
		}
		s = rest
	}
	return ""
}
