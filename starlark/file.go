package starlark

import (
	"fmt"
	"path"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// File is the Starlark File type: a source file or an output of an action.
type File struct {
	art exec.Artifact
	// owner is the target that declares the file, or the source file's
	// own target: a pointer rather than a copy of its label, as a large
	// analysis has millions of files.
	owner *graph.Target
}

var _ starlark.HasAttrs = (*File)(nil)
var _ starlark.Comparable = (*File)(nil)

func sourceArtifact(l graph.Label, dir bool) exec.Artifact {
	return exec.Artifact{Path: l.Path(), Source: true, Dir: dir}
}

func outputArtifact(l graph.Label, dir bool) exec.Artifact {
	return exec.Artifact{Path: exec.OutDir + "/" + l.Path(), Dir: dir}
}

func (f *File) shortPath() string {
	return strings.TrimPrefix(f.art.Path, exec.OutDir+"/")
}

func (f *File) String() string {
	kind := "source"
	if !f.art.Source {
		kind = "generated"
	}
	return fmt.Sprintf("<%s file %s>", kind, f.shortPath())
}
func (f *File) Type() string          { return "File" }
func (f *File) Freeze()               {}
func (f *File) Truth() starlark.Bool  { return true }
func (f *File) Hash() (uint32, error) { return starlark.String(f.art.Path).Hash() }
func (f *File) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return starlark.Compare(op, starlark.String(f.art.Path), starlark.String(y.(*File).art.Path))
}

func (f *File) Attr(name string) (starlark.Value, error) {
	switch name {
	case "path":
		// A file streamed from storage is read by its URL.
		return starlark.String(execPath(f.art)), nil
	case "url":
		return starlark.String(f.art.URL), nil
	case "short_path":
		return starlark.String(f.shortPath()), nil
	case "basename":
		return starlark.String(path.Base(f.art.Path)), nil
	case "dirname":
		return starlark.String(path.Dir(f.art.Path)), nil
	case "extension":
		return starlark.String(strings.TrimPrefix(path.Ext(f.art.Path), ".")), nil
	case "owner":
		return &LabelValue{f.owner.Label}, nil
	case "is_source":
		return starlark.Bool(f.art.Source), nil
	case "is_directory":
		return starlark.Bool(f.art.Dir), nil
	case "is_symlink":
		return starlark.Bool(f.art.Symlink), nil
	case "root":
		p := ""
		if !f.art.Source {
			p = exec.OutDir
		}
		return newStruct("root", starlark.StringDict{"path": starlark.String(p)}), nil
	case "tree_relative_path":
		return nil, fmt.Errorf("File.tree_relative_path is not supported")
	}
	return nil, nil
}

func (f *File) AttrNames() []string {
	return []string{"basename", "dirname", "extension", "is_directory", "is_source", "is_symlink", "owner", "path", "root", "short_path", "url"}
}
