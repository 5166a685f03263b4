package starlark

import (
	"path/filepath"
	"strings"

	"github.com/bazelbuild/buildtools/build"
)

// Format returns the canonical formatting of a BUILD, WORKSPACE.hep, .star or
// .bzl file (name decides which dialect), or a syntax error naming the line.
func Format(name string, src []byte) ([]byte, error) {
	base := filepath.Base(name)
	var f *build.File
	var err error
	if strings.HasSuffix(base, ".star") || strings.HasSuffix(base, ".bzl") {
		f, err = build.ParseBzl(name, src)
	} else {
		f, err = build.ParseBuild(name, src)
	}
	if err != nil {
		return nil, err
	}
	return build.Format(f), nil
}
