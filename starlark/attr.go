package starlark

import (
	"fmt"
	"slices"
	"sort"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/graph"
)

// attrSpec is the schema of one rule attribute (attr.string(...) and friends).
type attrSpec struct {
	typ             graph.AttrType
	def             any // converted default: string, int64, bool, []string, ..., graph.Label, []graph.Label, nil
	mandatory       bool
	allowFiles      bool
	allowedExts     []string // allow_files = [".root"]
	allowSingleFile bool
	executable      bool
	providers       []*Provider
	values          []starlark.Value
	doc             string
	nonEmpty        bool // allow_empty = False or non_empty = True
}

var _ starlark.Value = (*attrSpec)(nil)

func (a *attrSpec) String() string        { return "<attr." + typeName(a.typ) + ">" }
func (a *attrSpec) Type() string          { return "Attribute" }
func (a *attrSpec) Freeze()               {}
func (a *attrSpec) Truth() starlark.Bool  { return true }
func (a *attrSpec) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Attribute") }

func typeName(t graph.AttrType) string {
	switch t {
	case graph.AttrString:
		return "string"
	case graph.AttrInt:
		return "int"
	case graph.AttrBool:
		return "bool"
	case graph.AttrStringList:
		return "string_list"
	case graph.AttrIntList:
		return "int_list"
	case graph.AttrStringDict:
		return "string_dict"
	case graph.AttrLabel:
		return "label"
	case graph.AttrLabelList:
		return "label_list"
	case graph.AttrOutput:
		return "output"
	case graph.AttrOutputList:
		return "output_list"
	}
	return "unknown"
}

func zeroValue(t graph.AttrType) any {
	switch t {
	case graph.AttrString:
		return ""
	case graph.AttrInt:
		return int64(0)
	case graph.AttrBool:
		return false
	case graph.AttrStringList:
		return []string(nil)
	case graph.AttrIntList:
		return []int64(nil)
	case graph.AttrStringDict:
		return map[string]string(nil)
	case graph.AttrLabelList, graph.AttrOutputList:
		return []graph.Label(nil)
	}
	return graph.Label{}
}

// attrModule is the `attr` builtin of .star files.
var attrModule = func() starlark.Value {
	mk := func(t graph.AttrType) *starlark.Builtin {
		return starlark.NewBuiltin("attr."+typeName(t), func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return newAttrSpec(thread, fn, t, args, kwargs)
		})
	}
	d := starlark.StringDict{}
	for _, t := range []graph.AttrType{graph.AttrString, graph.AttrInt, graph.AttrBool, graph.AttrStringList, graph.AttrIntList,
		graph.AttrStringDict, graph.AttrLabel, graph.AttrLabelList, graph.AttrOutput, graph.AttrOutputList} {
		d[typeName(t)] = mk(t)
	}
	for _, name := range []string{"label_keyed_string_dict", "string_keyed_label_dict", "string_list_dict"} {
		d[name] = unsupported("attr." + name)
	}
	return newStruct("attr", d)
}()

func newAttrSpec(thread *starlark.Thread, fn *starlark.Builtin, t graph.AttrType, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: unexpected positional arguments", fn.Name())
	}
	spec := &attrSpec{typ: t, def: zeroValue(t)}
	var def starlark.Value
	var allowFiles starlark.Value
	var providers *starlark.List
	var values *starlark.List
	var cfg, aspects, flags starlark.Value
	var allowRules starlark.Value
	nonEmpty, allowEmpty := false, true
	pairs := []any{"default?", &def, "doc?", &spec.doc, "mandatory?", &spec.mandatory}
	switch t {
	case graph.AttrLabel, graph.AttrLabelList:
		pairs = append(pairs, "allow_files?", &allowFiles, "executable?", &spec.executable, "providers?", &providers, "cfg?", &cfg, "aspects?", &aspects, "allow_rules?", &allowRules, "flags?", &flags)
		if t == graph.AttrLabel {
			pairs = append(pairs, "allow_single_file?", &allowFiles)
		} else {
			pairs = append(pairs, "allow_empty?", &allowEmpty, "non_empty?", &nonEmpty)
		}
	case graph.AttrString, graph.AttrInt:
		pairs = append(pairs, "values?", &values)
	case graph.AttrStringList, graph.AttrIntList, graph.AttrStringDict, graph.AttrOutputList:
		pairs = append(pairs, "allow_empty?", &allowEmpty, "non_empty?", &nonEmpty)
	}
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, pairs...); err != nil {
		return nil, err
	}
	spec.nonEmpty = nonEmpty || !allowEmpty
	if aspects != nil && aspects != starlark.None {
		if l, ok := aspects.(*starlark.List); !ok || l.Len() > 0 {
			return nil, fmt.Errorf("%s: aspects are not supported by hepbuild", fn.Name())
		}
	}
	if cfg != nil && cfg != starlark.None {
		if s, ok := cfg.(starlark.String); !ok || (s != "exec" && s != "host" && s != "target") {
			return nil, fmt.Errorf("%s: cfg = %s: configuration transitions are not supported by hepbuild (cfg = \"exec\", \"host\" or \"target\" are accepted and ignored)", fn.Name(), cfg)
		}
	}
	if allowFiles != nil {
		for _, kv := range kwargs {
			if string(kv[0].(starlark.String)) == "allow_single_file" {
				spec.allowSingleFile = true
			}
		}
		switch v := allowFiles.(type) {
		case starlark.Bool:
			spec.allowFiles = bool(v)
		case *starlark.List:
			spec.allowFiles = true
			for i := 0; i < v.Len(); i++ {
				s, ok := starlark.AsString(v.Index(i))
				if !ok {
					return nil, fmt.Errorf("%s: allow_files: want list of strings", fn.Name())
				}
				spec.allowedExts = append(spec.allowedExts, s)
			}
		default:
			if allowFiles != starlark.None {
				return nil, fmt.Errorf("%s: allow_files: want bool or list of extensions, got %s", fn.Name(), allowFiles.Type())
			}
		}
	}
	if providers != nil {
		for i := 0; i < providers.Len(); i++ {
			switch p := providers.Index(i).(type) {
			case *Provider:
				spec.providers = append(spec.providers, p)
			case *starlark.List:
				for j := 0; j < p.Len(); j++ {
					if pp, ok := p.Index(j).(*Provider); ok {
						spec.providers = append(spec.providers, pp)
					}
				}
			default:
				return nil, fmt.Errorf("%s: providers: want a list of providers, got %s", fn.Name(), p.Type())
			}
		}
	}
	if values != nil {
		for i := 0; i < values.Len(); i++ {
			spec.values = append(spec.values, values.Index(i))
		}
	}
	if def != nil && def != starlark.None {
		if _, isFunc := def.(starlark.Callable); isFunc {
			return nil, fmt.Errorf("%s: computed defaults are not supported by hepbuild", fn.Name())
		}
		file := thread.Local(localFile).(graph.Label)
		v, err := convertAttr(spec, "default", def, file.Repo, file.Pkg)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", fn.Name(), err)
		}
		spec.def = v
	}
	return spec, nil
}

// convertAttr checks a Starlark value against spec and converts it to the Go
// form stored in graph.Attr. Labels are resolved relative to repo//pkg.
func convertAttr(spec *attrSpec, name string, v starlark.Value, repo, pkg string) (any, error) {
	if v == starlark.None {
		return zeroValue(spec.typ), nil
	}
	if spec.nonEmpty {
		if l, ok := v.(starlark.Sequence); ok && l.Len() == 0 && !isString(v) {
			return nil, fmt.Errorf("attribute %s must not be empty", name)
		}
		if d, ok := v.(*starlark.Dict); ok && d.Len() == 0 {
			return nil, fmt.Errorf("attribute %s must not be empty", name)
		}
	}
	want := func() error {
		return fmt.Errorf("attribute %s: got %s, want %s", name, v.Type(), wantDesc(spec.typ))
	}
	switch spec.typ {
	case graph.AttrString:
		s, ok := v.(starlark.String)
		if !ok {
			return nil, want()
		}
		if err := checkValues(spec, name, v); err != nil {
			return nil, err
		}
		return string(s), nil
	case graph.AttrInt:
		i, ok := v.(starlark.Int)
		if !ok {
			return nil, want()
		}
		n, ok := i.Int64()
		if !ok {
			return nil, fmt.Errorf("attribute %s: %s out of range", name, i)
		}
		if err := checkValues(spec, name, v); err != nil {
			return nil, err
		}
		return n, nil
	case graph.AttrBool:
		switch b := v.(type) {
		case starlark.Bool:
			return bool(b), nil
		case starlark.Int:
			n, _ := b.Int64()
			if n == 0 || n == 1 {
				return n == 1, nil
			}
		}
		return nil, want()
	case graph.AttrStringList:
		if l, ok := v.(*starlark.List); ok {
			out := make([]string, l.Len())
			for i := range out {
				s, ok := l.Index(i).(starlark.String)
				if !ok {
					return nil, fmt.Errorf("attribute %s: element %s: got %s, want string", name, l.Index(i), l.Index(i).Type())
				}
				out[i] = string(s)
			}
			return out, nil
		}
		it, ok := v.(starlark.Iterable)
		if !ok || isString(v) {
			return nil, want()
		}
		return iterStrings(it, name)
	case graph.AttrIntList:
		it, ok := v.(starlark.Iterable)
		if !ok || isString(v) {
			return nil, want()
		}
		return iterInts(it, name)
	case graph.AttrStringDict:
		d, ok := v.(*starlark.Dict)
		if !ok {
			return nil, want()
		}
		out := make(map[string]string, d.Len())
		for _, kv := range d.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("attribute %s: key %s: got %s, want string", name, kv[0], kv[0].Type())
			}
			switch x := kv[1].(type) {
			case starlark.String:
				out[string(k)] = string(x)
			case starlark.Int, starlark.Float, starlark.Bool:
				out[string(k)] = x.String()
			default:
				return nil, fmt.Errorf("attribute %s: value of %q: got %s, want string", name, string(k), x.Type())
			}
		}
		return out, nil
	case graph.AttrLabel, graph.AttrOutput:
		l, err := toLabel(v, repo, pkg)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %v", name, err)
		}
		return l, nil
	case graph.AttrLabelList, graph.AttrOutputList:
		// Read the list in place rather than copy its elements: a
		// large package converts millions of label lists.
		var elems starlark.Indexable
		switch x := v.(type) {
		case *starlark.List:
			elems = x
		case starlark.Tuple:
			elems = x
		default:
			return nil, want()
		}
		out := make([]graph.Label, 0, elems.Len())
		for i := range elems.Len() {
			l, err := toLabel(elems.Index(i), repo, pkg)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %v", name, err)
			}
			out = append(out, l)
		}
		if len(out) > 1 {
			// Duplicates: a quadratic scan is cheaper than a map for the short lists of BUILD files.
			if len(out) <= 16 {
				for i := range out {
					for j := i + 1; j < len(out); j++ {
						if out[i] == out[j] {
							return nil, fmt.Errorf("attribute %s: label %s appears twice", name, out[i])
						}
					}
				}
			} else if l, dup := firstDuplicate(out); dup {
				return nil, fmt.Errorf("attribute %s: label %s appears twice", name, l)
			}
		}
		if len(out) == 0 && spec.nonEmpty {
			return nil, fmt.Errorf("attribute %s must not be empty", name)
		}
		return out, nil
	}
	return nil, fmt.Errorf("attribute %s: unsupported type", name)
}

// iterStrings converts the elements of it, a value of attribute name, to
// strings. Its loop is a function of its own: a return from the body of a
// range over a function moves the results of the function that holds it to
// the heap, and convertAttr, called millions of times, would allocate them.
func iterStrings(it starlark.Iterable, name string) ([]string, error) {
	var out []string
	for x := range starlark.Elements(it) {
		s, ok := x.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("attribute %s: element %s: got %s, want string", name, x, x.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}

// iterInts is iterStrings for ints.
func iterInts(it starlark.Iterable, name string) ([]int64, error) {
	var out []int64
	for x := range starlark.Elements(it) {
		i, ok := x.(starlark.Int)
		n, ok2 := i.Int64()
		if !ok || !ok2 {
			return nil, fmt.Errorf("attribute %s: element %s: got %s, want int", name, x, x.Type())
		}
		out = append(out, n)
	}
	return out, nil
}

// firstDuplicate returns the first label of ls, which is long, that
// appears earlier in it too. The labels of a long list are nearly always
// of one package, and a sorted copy of their names costs a fraction of a
// map of labels: a package of a thousand thousand-input merges made
// 130 MB of maps. The map is for mixed lists, and for naming the
// duplicate the sort found.
func firstDuplicate(ls []graph.Label) (graph.Label, bool) {
	onePkg := true
	for _, l := range ls {
		if l.Repo != ls[0].Repo || l.Pkg != ls[0].Pkg {
			onePkg = false
			break
		}
	}
	if onePkg {
		names := make([]string, len(ls))
		for i, l := range ls {
			names[i] = l.Name
		}
		slices.Sort(names)
		if !hasAdjacentEqual(names) {
			return graph.Label{}, false
		}
	}
	seen := make(map[graph.Label]struct{}, len(ls))
	for _, l := range ls {
		if _, dup := seen[l]; dup {
			return l, true
		}
		seen[l] = struct{}{}
	}
	return graph.Label{}, false
}

func hasAdjacentEqual(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return true
		}
	}
	return false
}

func isString(v starlark.Value) bool { _, ok := v.(starlark.String); return ok }

func wantDesc(t graph.AttrType) string {
	switch t {
	case graph.AttrString:
		return "string"
	case graph.AttrInt:
		return "int"
	case graph.AttrBool:
		return "bool"
	case graph.AttrStringList:
		return "list of strings"
	case graph.AttrIntList:
		return "list of ints"
	case graph.AttrStringDict:
		return "dict of string to string"
	case graph.AttrLabel:
		return "label (a string such as \":name\" or \"//pkg:name\")"
	case graph.AttrOutput:
		return "output file name"
	case graph.AttrOutputList:
		return "list of output file names"
	}
	return "list of labels"
}

func checkValues(spec *attrSpec, name string, v starlark.Value) error {
	if len(spec.values) == 0 {
		return nil
	}
	for _, ok := range spec.values {
		if eq, _ := starlark.Equal(ok, v); eq {
			return nil
		}
	}
	return fmt.Errorf("attribute %s: %s is not one of the allowed values %v", name, v, spec.values)
}

func toLabel(v starlark.Value, repo, pkg string) (graph.Label, error) {
	switch x := v.(type) {
	case starlark.String:
		return graph.ParseRelativeIn(string(x), repo, pkg)
	case *LabelValue:
		return x.l, nil
	}
	return graph.Label{}, fmt.Errorf("got %s %s, want a label string", v.Type(), v)
}

// sortedAttrNames returns the keys of m, sorted.
func sortedAttrNames(m map[string]*attrSpec) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
