package starlark

import (
	"fmt"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

type starlarkValue = starlark.Value

func depsetOf(files []*File) *Depset {
	d := &Depset{order: "default", direct: make([]starlark.Value, len(files))}
	for i, f := range files {
		d.direct[i] = f
	}
	return d
}

// TargetValue is a dependency as rule code sees it: ctx.attr.deps[0], with
// .label, .files and dep[Provider].
type TargetValue struct{ c *configured }

var (
	_ starlark.HasAttrs = (*TargetValue)(nil)
	_ starlark.Mapping  = (*TargetValue)(nil)
)

func (v *TargetValue) String() string        { return "<target " + v.c.label().String() + ">" }
func (v *TargetValue) Type() string          { return "Target" }
func (v *TargetValue) Freeze()               {}
func (v *TargetValue) Truth() starlark.Bool  { return true }
func (v *TargetValue) Hash() (uint32, error) { return starlark.String(v.c.label().String()).Hash() }
func (v *TargetValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "label":
		return &LabelValue{v.c.label()}, nil
	case "files":
		return depsetOf(v.c.files), nil
	}
	return nil, nil
}
func (v *TargetValue) AttrNames() []string { return []string{"files", "label"} }

// Get implements dep[Provider] and `Provider in dep`.
func (v *TargetValue) Get(k starlark.Value) (starlark.Value, bool, error) {
	p, ok := k.(*Provider)
	if !ok {
		return nil, false, fmt.Errorf("a target is indexed by a provider, not a %s", k.Type())
	}
	if p == defaultInfo {
		if inst, ok := v.c.providers()[defaultInfo]; ok {
			return inst, true, nil
		}
		return defaultInfoFor(v.c.files), true, nil
	}
	inst, ok := v.c.providers()[p]
	if !ok {
		return nil, false, fmt.Errorf("%s does not provide %s", v.c.label(), p.Name())
	}
	return inst, true, nil
}

// ruleContext is ctx: the state of one rule implementation call.
type ruleContext struct {
	a        *analyzer
	r        *ruleInstance
	deps     map[graph.Label]*configured
	declared map[string]*File // exec path -> file declared by this target
	written  map[string]bool  // exec path -> some action writes it
	outputs  starlark.Value
	frozen   bool
}

func (c *ruleContext) t() *graph.Target { return c.r.target }

func (c *ruleContext) String() string        { return "<ctx for " + c.t().Label.String() + ">" }
func (c *ruleContext) Type() string          { return "ctx" }
func (c *ruleContext) Freeze()               {}
func (c *ruleContext) Truth() starlark.Bool  { return true }
func (c *ruleContext) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: ctx") }
func (c *ruleContext) AttrNames() []string {
	return []string{"actions", "attr", "bin_dir", "build_file_path", "executable", "file", "files", "genfiles_dir", "label", "outputs", "var", "workspace_name"}
}

func (c *ruleContext) Attr(name string) (starlark.Value, error) {
	t := c.t()
	switch name {
	case "label":
		return &LabelValue{t.Label}, nil
	case "workspace_name":
		return starlark.String(c.a.l.workspaceName), nil
	case "bin_dir", "genfiles_dir":
		return newStruct("root", starlark.StringDict{"path": starlark.String(exec.OutDir)}), nil
	case "build_file_path":
		p, _ := c.a.l.Package(t.Label.Repo, t.Label.Pkg)
		return starlark.String(p.BuildFile), nil
	case "var":
		return starlark.NewDict(0), nil
	case "actions":
		return &actionsValue{c: c}, nil
	case "outputs":
		return c.outputs, nil
	case "attr", "file", "files", "executable":
		return c.attrView(name)
	case "toolchains", "configuration", "fragments", "host_configuration", "host_fragments", "target_platform_has_constraint", "aspect_ids", "exec_groups", "runfiles", "split_attr", "coverage_instrumented", "expand_make_variables", "resolve_command", "resolve_tools", "expand_location", "info_file", "version_file", "features", "disabled_features", "super":
		return nil, fmt.Errorf("ctx.%s is not supported by hepbuild (see BUILD.md for the supported rule API)", name)
	}
	return nil, nil
}

// attrView builds ctx.attr, ctx.file, ctx.files or ctx.executable.
func (c *ruleContext) attrView(view string) (starlark.Value, error) {
	t := c.t()
	d := starlark.StringDict{}
	for at := range t.AllAttrs() {
		spec := c.r.class.attrs[at.Name]
		switch view {
		case "attr":
			d[at.Name] = c.attrValue(at)
		case "files":
			if at.Type == graph.AttrLabel || at.Type == graph.AttrLabelList || at.Type == graph.AttrOutput || at.Type == graph.AttrOutputList {
				var fs []starlark.Value
				for _, l := range labelsOf(at.Value) {
					if at.Type == graph.AttrOutput || at.Type == graph.AttrOutputList {
						fs = append(fs, c.outputFile(l))
						continue
					}
					for _, f := range c.deps[l].files {
						fs = append(fs, f)
					}
				}
				d[at.Name] = starlark.NewList(fs)
			}
		case "file":
			if spec.allowSingleFile || at.Type == graph.AttrOutput {
				d[at.Name] = starlark.None
				if l, ok := at.Value.(graph.Label); ok && !l.IsZero() {
					if at.Type == graph.AttrOutput {
						d[at.Name] = c.outputFile(l)
					} else {
						d[at.Name] = c.deps[l].files[0]
					}
				}
			}
		case "executable":
			if spec.executable {
				d[at.Name] = starlark.None
				ls := labelsOf(at.Value)
				if len(ls) == 1 {
					d[at.Name] = c.deps[ls[0]].executable
				}
			}
		}
	}
	return newStruct(view, d), nil
}

func labelsOf(v any) []graph.Label {
	switch x := v.(type) {
	case graph.Label:
		if x.IsZero() {
			return nil
		}
		return []graph.Label{x}
	case []graph.Label:
		return x
	}
	return nil
}

func (c *ruleContext) outputFile(l graph.Label) *File {
	p := outputArtifact(l, false).Path
	if f, ok := c.declared[p]; ok {
		return f
	}
	f := &File{art: outputArtifact(l, false), owner: c.t()}
	c.declared[p] = f
	return f
}

func (c *ruleContext) attrValue(at graph.Attr) starlark.Value {
	switch v := at.Value.(type) {
	case string:
		return starlark.String(v)
	case int64:
		return starlark.MakeInt64(v)
	case bool:
		return starlark.Bool(v)
	case []string:
		l := make([]starlark.Value, len(v))
		for i, s := range v {
			l[i] = starlark.String(s)
		}
		return starlark.NewList(l)
	case []int64:
		l := make([]starlark.Value, len(v))
		for i, s := range v {
			l[i] = starlark.MakeInt64(s)
		}
		return starlark.NewList(l)
	case map[string]string:
		d := starlark.NewDict(len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_ = d.SetKey(starlark.String(k), starlark.String(v[k]))
		}
		return d
	case graph.Label:
		if v.IsZero() {
			return starlark.None
		}
		if at.Type == graph.AttrOutput {
			return c.outputFile(v)
		}
		return c.deps[v].targetValue()
	case []graph.Label:
		l := make([]starlark.Value, len(v))
		for i, x := range v {
			if at.Type == graph.AttrOutputList {
				l[i] = c.outputFile(x)
			} else {
				l[i] = c.deps[x].targetValue()
			}
		}
		return starlark.NewList(l)
	}
	return starlark.None
}

// runImplementation calls a user rule's implementation function.
func (a *analyzer) runImplementation(r *ruleInstance, deps map[graph.Label]*configured) (*configured, error) {
	t := r.target
	c := &ruleContext{a: a, r: r, deps: deps, declared: map[string]*File{}, written: map[string]bool{}}
	// ctx.outputs: predeclared outputs by key, attr.output(_list) by attribute name.
	outs := starlark.StringDict{}
	var predeclared []*File
	keys := make([]string, 0, len(r.class.outputs))
	for k := range r.class.outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, _ := expandOutputTemplate(r.class.outputs[k], t)
		f := c.outputFile(graph.Label{Repo: t.Label.Repo, Pkg: t.Label.Pkg, Name: name})
		outs[k] = f
		predeclared = append(predeclared, f)
	}
	for at := range t.AllAttrs() {
		switch at.Type {
		case graph.AttrOutput:
			if l, ok := at.Value.(graph.Label); ok && !l.IsZero() {
				f := c.outputFile(l)
				outs[at.Name] = f
				predeclared = append(predeclared, f)
			} else {
				outs[at.Name] = starlark.None
			}
		case graph.AttrOutputList:
			var fs []starlark.Value
			for _, l := range labelsOf(at.Value) {
				f := c.outputFile(l)
				fs = append(fs, f)
				predeclared = append(predeclared, f)
			}
			outs[at.Name] = starlark.NewList(fs)
		}
	}
	c.outputs = newStruct("outputs", outs)

	thread := a.l.newThread("analysis of "+t.Label.String(), r.class.defFile, &loadEntry{label: r.class.defFile})
	thread.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
		return nil, fmt.Errorf("load() is not allowed during analysis")
	}
	var ret starlark.Value
	err := a.l.interruptible(thread, "analysing "+t.Label.String(), func() error {
		var err error
		ret, err = starlark.Call(thread, r.class.impl, starlark.Tuple{c}, nil)
		return err
	})
	c.frozen = true
	if a.l.interrupted(err) {
		return nil, err
	}
	if err != nil {
		e := formatError(err)
		var se *Error
		if ok := asError(e, &se); ok {
			se.Target = t.Label
			if se.Msg != "" && !strings.Contains(se.Backtrace, "in the implementation of") {
				se.Msg = fmt.Sprintf("in the implementation of rule %s: %s", r.class.Name(), se.Msg)
			}
			return nil, se
		}
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: e.Error()}
	}
	providers := map[*Provider]*ProviderInstance{}
	conf := &configured{target: t, details: &targetDetails{providers: providers, predeclared: predeclared}}
	var list []starlark.Value
	switch v := ret.(type) {
	case starlark.NoneType:
	case *starlark.List:
		for i := 0; i < v.Len(); i++ {
			list = append(list, v.Index(i))
		}
	case starlark.Tuple:
		list = v
	case *ProviderInstance:
		list = []starlark.Value{v}
	default:
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("the implementation of rule %s returned %s; want a list of providers", r.class.Name(), ret.Type())}
	}
	for _, v := range list {
		p, ok := v.(*ProviderInstance)
		if !ok {
			return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("the implementation of rule %s returned a %s in its list; want providers only (struct providers are not supported)", r.class.Name(), v.Type())}
		}
		if _, dup := providers[p.provider]; dup {
			return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("the implementation of rule %s returned %s twice", r.class.Name(), p.provider.Name())}
		}
		providers[p.provider] = p
	}
	if di, ok := providers[defaultInfo]; ok {
		if d, ok := di.fields["files"].(*Depset); ok {
			for _, x := range d.toList() {
				if f, ok := x.(*File); ok {
					conf.files = append(conf.files, f)
				}
			}
		} else {
			conf.files = predeclared
		}
		if ex, ok := di.fields["executable"].(*File); ok {
			conf.executable = ex
		}
	} else {
		conf.files = predeclared
		providers[defaultInfo] = defaultInfoFor(predeclared)
	}
	if f, ok := outs["executable"].(*File); ok && conf.executable == nil {
		conf.executable = f
	}
	// Every declared file must be written by an action of this target.
	var missing []string
	for p := range c.declared {
		if !c.written[p] {
			missing = append(missing, strings.TrimPrefix(p, exec.OutDir+"/"))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("rule %s declared outputs that no action writes: %s", r.class.Name(), strings.Join(missing, ", "))}
	}
	return conf, nil
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}
