package starlark

import (
	"fmt"

	"go.starlark.net/starlark"
)

// Depset is Bazel's depset: a set built from direct elements and other depsets,
// flattened only when to_list() is called. Immutable once made.
type Depset struct {
	order      string // default, postorder, preorder, topological
	direct     []starlark.Value
	transitive []*Depset
}

var _ starlark.HasAttrs = (*Depset)(nil)

func (d *Depset) String() string {
	l := d.toList()
	return "depset(" + starlark.NewList(l).String() + ")"
}
func (d *Depset) Type() string          { return "depset" }
func (d *Depset) Freeze()               {}
func (d *Depset) Truth() starlark.Bool  { return len(d.direct) > 0 || len(d.toList()) > 0 }
func (d *Depset) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: depset") }
func (d *Depset) AttrNames() []string   { return []string{"to_list"} }
func (d *Depset) Attr(name string) (starlark.Value, error) {
	if name != "to_list" {
		return nil, nil
	}
	return starlark.NewBuiltin("depset.to_list", func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 0); err != nil {
			return nil, err
		}
		return starlark.NewList(d.toList()), nil
	}), nil
}

// toList flattens the depset without duplicates. Postorder (the default)
// lists transitive members before direct ones; preorder the reverse.
func (d *Depset) toList() []starlark.Value {
	var out []starlark.Value
	seen := map[any]bool{}
	visited := map[*Depset]bool{}
	add := func(v starlark.Value) {
		k := hashKey(v)
		if !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	var walk func(x *Depset)
	walk = func(x *Depset) {
		if visited[x] {
			return
		}
		visited[x] = true
		if x.order == "preorder" {
			for _, v := range x.direct {
				add(v)
			}
		}
		for _, t := range x.transitive {
			walk(t)
		}
		if x.order != "preorder" {
			for _, v := range x.direct {
				add(v)
			}
		}
	}
	walk(d)
	return out
}

// hashKey gives a Go map key for a hashable Starlark value: files and labels by identity of content.
func hashKey(v starlark.Value) any {
	switch x := v.(type) {
	case *File:
		return x.art.Path
	case starlark.String:
		return "s:" + string(x)
	case *LabelValue:
		return x.l
	}
	return v
}

func depsetBuiltin(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var direct, transitive starlark.Value
	order := "default"
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "direct?", &direct, "order?", &order, "transitive?", &transitive); err != nil {
		return nil, err
	}
	switch order {
	case "default", "postorder", "preorder", "topological":
	default:
		return nil, fmt.Errorf("depset: order %q: want default, postorder, preorder or topological", order)
	}
	d := &Depset{order: order}
	if direct != nil && direct != starlark.None {
		it, ok := direct.(starlark.Iterable)
		if !ok {
			return nil, fmt.Errorf("depset: direct: got %s, want list", direct.Type())
		}
		for v := range starlark.Elements(it) {
			if _, err := v.Hash(); err != nil {
				return nil, fmt.Errorf("depset: element %s is not hashable", v)
			}
			d.direct = append(d.direct, v)
		}
	}
	if transitive != nil && transitive != starlark.None {
		it, ok := transitive.(starlark.Iterable)
		if !ok {
			return nil, fmt.Errorf("depset: transitive: got %s, want list of depsets", transitive.Type())
		}
		for v := range starlark.Elements(it) {
			t, ok := v.(*Depset)
			if !ok {
				return nil, fmt.Errorf("depset: transitive: element %s is a %s, not a depset", v, v.Type())
			}
			d.transitive = append(d.transitive, t)
		}
	}
	return d, nil
}
