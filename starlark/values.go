package starlark

import (
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/hepbuild/hepbuild/graph"
)

// newStruct makes an immutable struct value named name (used for modules such as attr and native).
func newStruct(name string, d starlark.StringDict) starlark.Value {
	return starlarkstruct.FromStringDict(starlark.String(name), d)
}

// unsupported returns a builtin that fails with a clear "not supported" error.
func unsupported(name string) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return nil, fmt.Errorf("%s is not supported by hepbuild (toolchains, configurations, aspects, transitions and select are outside its rule API; see BUILD.md)", name)
	})
}

// Provider is a provider symbol made by provider(), or a built-in one (DefaultInfo).
type Provider struct {
	name   string // set when exported: the global name it is bound to
	fields []string
	doc    string
	id     *int // identity, stable across copies
}

var (
	_ starlark.Callable = (*Provider)(nil)
	_ starlark.Value    = (*Provider)(nil)
)

func newProvider(name string, fields []string, doc string) *Provider {
	return &Provider{name: name, fields: fields, doc: doc, id: new(int)}
}

func (p *Provider) String() string {
	if p.name == "" {
		return "<provider>"
	}
	return "<provider " + p.name + ">"
}
func (p *Provider) Type() string          { return "Provider" }
func (p *Provider) Freeze()               {}
func (p *Provider) Truth() starlark.Bool  { return true }
func (p *Provider) Hash() (uint32, error) { return starlark.String(fmt.Sprintf("%p", p.id)).Hash() }
func (p *Provider) Name() string {
	if p.name == "" {
		return "provider"
	}
	return p.name
}

// CallInternal constructs an instance: Info(field = value, ...).
func (p *Provider) CallInternal(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: unexpected positional arguments; providers take keyword arguments", p.Name())
	}
	inst := &ProviderInstance{provider: p, fields: make(starlark.StringDict, len(kwargs))}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if p.fields != nil && !contains(p.fields, k) {
			msg := fmt.Sprintf("%s: unexpected field %q", p.Name(), k)
			if s := graph.Suggest(k, p.fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, fmt.Errorf("%s", msg)
		}
		inst.fields[k] = kv[1]
	}
	if p == defaultInfo {
		for k, v := range inst.fields {
			if k == "files" && v != starlark.None {
				if _, ok := v.(*Depset); !ok {
					return nil, fmt.Errorf("DefaultInfo: files: got %s, want depset", v.Type())
				}
			}
		}
	}
	return inst, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ProviderInstance is a value returned by calling a provider.
type ProviderInstance struct {
	provider *Provider
	fields   starlark.StringDict
}

var _ starlark.HasAttrs = (*ProviderInstance)(nil)

func (i *ProviderInstance) String() string {
	keys := i.AttrNames()
	parts := make([]string, len(keys))
	for j, k := range keys {
		parts[j] = k + " = " + i.fields[k].String()
	}
	return i.provider.Name() + "(" + strings.Join(parts, ", ") + ")"
}
func (i *ProviderInstance) Type() string { return i.provider.Name() }
func (i *ProviderInstance) Freeze() {
	for _, v := range i.fields {
		v.Freeze()
	}
}
func (i *ProviderInstance) Truth() starlark.Bool  { return true }
func (i *ProviderInstance) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", i.Type()) }
func (i *ProviderInstance) Attr(name string) (starlark.Value, error) {
	if v, ok := i.fields[name]; ok {
		return v, nil
	}
	if i.provider.fields != nil && contains(i.provider.fields, name) {
		return starlark.None, nil
	}
	return nil, nil
}
func (i *ProviderInstance) AttrNames() []string {
	out := make([]string, 0, len(i.fields))
	for k := range i.fields {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	defaultInfo     = newProvider("DefaultInfo", []string{"files", "executable", "runfiles", "data_runfiles", "default_runfiles"}, "The default outputs of a target.")
	outputGroupInfo = newProvider("OutputGroupInfo", nil, "Named groups of outputs.")
)

// LabelValue is the Starlark Label type.
type LabelValue struct{ l graph.Label }

var _ starlark.HasAttrs = (*LabelValue)(nil)
var _ starlark.Comparable = (*LabelValue)(nil)

func (v *LabelValue) String() string        { return v.l.String() }
func (v *LabelValue) Type() string          { return "Label" }
func (v *LabelValue) Freeze()               {}
func (v *LabelValue) Truth() starlark.Bool  { return true }
func (v *LabelValue) Hash() (uint32, error) { return starlark.String(v.l.String()).Hash() }
func (v *LabelValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return starlark.Compare(op, starlark.String(v.l.String()), starlark.String(y.(*LabelValue).l.String()))
}
func (v *LabelValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(v.l.Name), nil
	case "package":
		return starlark.String(v.l.Pkg), nil
	case "workspace_name", "repo_name":
		return starlark.String(v.l.Repo), nil
	case "workspace_root":
		if v.l.Repo == "" {
			return starlark.String(""), nil
		}
		return starlark.String("external/" + v.l.Repo), nil
	case "relative", "same_package_label":
		return starlark.NewBuiltin("Label."+name, func(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s string
			if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &s); err != nil {
				return nil, err
			}
			if name == "same_package_label" {
				s = ":" + s
			}
			l, err := graph.ParseRelativeIn(s, v.l.Repo, v.l.Pkg)
			if err != nil {
				return nil, err
			}
			return &LabelValue{l}, nil
		}), nil
	}
	return nil, nil
}
func (v *LabelValue) AttrNames() []string {
	return []string{"name", "package", "relative", "repo_name", "same_package_label", "workspace_name", "workspace_root"}
}

func labelBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &s); err != nil {
		return nil, err
	}
	file := thread.Local(localFile).(graph.Label)
	l, err := graph.ParseRelativeIn(s, file.Repo, file.Pkg)
	if err != nil {
		return nil, fmt.Errorf("Label: %v", err)
	}
	return &LabelValue{l}, nil
}
