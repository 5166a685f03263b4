package starlark

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
)

// Args is ctx.actions.args(): a command line built up by add, add_all and add_joined.
type Args struct {
	items  []argItem
	frozen bool
}

type argItem struct {
	name         string // arg_name, emitted before the values ("" for none)
	values       []starlark.Value
	mapEach      starlark.Callable
	thread       *starlark.Thread
	format       string // format (add) or format_each
	beforeEach   string
	joinWith     *string
	formatJoined string
	omitIfEmpty  bool
	uniquify     bool
	terminate    string
	single       bool // add(): a single value
}

var _ starlark.HasAttrs = (*Args)(nil)

func (a *Args) String() string        { return "<Args>" }
func (a *Args) Type() string          { return "Args" }
func (a *Args) Freeze()               { a.frozen = true }
func (a *Args) Truth() starlark.Bool  { return true }
func (a *Args) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Args") }
func (a *Args) AttrNames() []string {
	return []string{"add", "add_all", "add_joined", "set_param_file_format", "use_param_file"}
}

func (a *Args) Attr(name string) (starlark.Value, error) {
	switch name {
	case "add":
		return starlark.NewBuiltin("Args.add", a.add), nil
	case "add_all":
		return starlark.NewBuiltin("Args.add_all", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return a.addAll(th, b, args, kwargs, false)
		}), nil
	case "add_joined":
		return starlark.NewBuiltin("Args.add_joined", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return a.addAll(th, b, args, kwargs, true)
		}), nil
	case "use_param_file", "set_param_file_format":
		// Parameter files exist to dodge command-line length limits; hepbuild
		// passes arguments directly, so these are accepted and have no effect.
		return starlark.NewBuiltin("Args."+name, func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return a, nil
		}), nil
	}
	return nil, nil
}

func (a *Args) add(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if a.frozen {
		return nil, fmt.Errorf("%s: cannot modify frozen Args", b.Name())
	}
	var first, second starlark.Value
	var format string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "arg_name_or_value", &first, "value?", &second, "format?", &format); err != nil {
		return nil, err
	}
	it := argItem{single: true, format: format}
	if second != nil {
		s, ok := starlark.AsString(first)
		if !ok {
			return nil, fmt.Errorf("%s: arg_name must be a string when a value follows", b.Name())
		}
		it.name, it.values = s, []starlark.Value{second}
	} else {
		it.values = []starlark.Value{first}
	}
	a.items = append(a.items, it)
	return a, nil
}

func (a *Args) addAll(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, joined bool) (starlark.Value, error) {
	if a.frozen {
		return nil, fmt.Errorf("%s: cannot modify frozen Args", b.Name())
	}
	var first, second starlark.Value
	var mapEach starlark.Value
	var formatEach, beforeEach, joinWith, formatJoined, terminate string
	omitIfEmpty, uniquify, expandDirs, allowClosure := true, false, true, false
	pairs := []any{"arg_name_or_values", &first, "values?", &second, "map_each?", &mapEach, "format_each?", &formatEach,
		"omit_if_empty?", &omitIfEmpty, "uniquify?", &uniquify, "expand_directories?", &expandDirs, "allow_closure?", &allowClosure}
	if joined {
		pairs = append(pairs, "join_with", &joinWith, "format_joined?", &formatJoined)
	} else {
		pairs = append(pairs, "before_each?", &beforeEach, "terminate_with?", &terminate)
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return nil, err
	}
	it := argItem{format: formatEach, beforeEach: beforeEach, omitIfEmpty: omitIfEmpty, uniquify: uniquify, terminate: terminate, thread: thread}
	if joined {
		it.joinWith = &joinWith
		it.formatJoined = formatJoined
	}
	vals := first
	if second != nil {
		s, ok := starlark.AsString(first)
		if !ok {
			return nil, fmt.Errorf("%s: arg_name must be a string when values follow", b.Name())
		}
		it.name, vals = s, second
	}
	switch x := vals.(type) {
	case *Depset:
		it.values = x.toList()
	case starlark.Iterable:
		for e := range starlark.Elements(x) {
			it.values = append(it.values, e)
		}
	default:
		return nil, fmt.Errorf("%s: values: got %s, want list or depset", b.Name(), vals.Type())
	}
	if mapEach != nil && mapEach != starlark.None {
		c, ok := mapEach.(starlark.Callable)
		if !ok {
			return nil, fmt.Errorf("%s: map_each must be a function", b.Name())
		}
		it.mapEach = c
	}
	a.items = append(a.items, it)
	return a, nil
}

// argString renders one value as Bazel does: a File by its path, a Label canonically.
func argString(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case *File:
		return execPath(x.art), nil
	case *LabelValue:
		return x.l.String(), nil
	case starlark.Int, starlark.Bool, starlark.Float:
		return x.String(), nil
	}
	return "", fmt.Errorf("cannot use a %s (%s) as a command-line argument", v.Type(), v)
}

func applyFormat(format, s string) (string, error) {
	if format == "" {
		return s, nil
	}
	if strings.Count(format, "%s") != 1 {
		return "", fmt.Errorf("format %q must contain exactly one %%s", format)
	}
	return strings.Replace(format, "%s", s, 1), nil
}

// expand renders the command line.
func (a *Args) expand(fn string) ([]string, error) {
	var out []string
	for _, it := range a.items {
		var strs []string
		seen := map[string]bool{}
		for _, v := range it.values {
			vals := []starlark.Value{v}
			if it.mapEach != nil {
				r, err := starlark.Call(it.thread, it.mapEach, starlark.Tuple{v}, nil)
				if err != nil {
					return nil, fmt.Errorf("%s: map_each: %v", fn, err)
				}
				switch rr := r.(type) {
				case starlark.NoneType:
					vals = nil
				case *starlark.List:
					vals = nil
					for i := 0; i < rr.Len(); i++ {
						vals = append(vals, rr.Index(i))
					}
				default:
					vals = []starlark.Value{r}
				}
			}
			for _, x := range vals {
				s, err := argString(x)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", fn, err)
				}
				if s, err = applyFormat(it.format, s); err != nil {
					return nil, fmt.Errorf("%s: %v", fn, err)
				}
				if it.uniquify {
					if seen[s] {
						continue
					}
					seen[s] = true
				}
				strs = append(strs, s)
			}
		}
		if len(strs) == 0 && it.omitIfEmpty && !it.single {
			continue
		}
		if it.name != "" {
			out = append(out, it.name)
		}
		switch {
		case it.joinWith != nil:
			j, err := applyFormat(it.formatJoined, strings.Join(strs, *it.joinWith))
			if err != nil {
				return nil, fmt.Errorf("%s: %v", fn, err)
			}
			out = append(out, j)
		case it.beforeEach != "":
			for _, s := range strs {
				out = append(out, it.beforeEach, s)
			}
		default:
			out = append(out, strs...)
		}
		if it.terminate != "" {
			out = append(out, it.terminate)
		}
	}
	return out, nil
}
