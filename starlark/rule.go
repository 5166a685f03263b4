package starlark

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/graph"
)

// nativeImpl analyses a native rule target. It takes the target alone: a
// ruleInstance for each of a million tasks would be a million allocations.
type nativeImpl func(a *analyzer, t *graph.Target) (*configured, error)

// ruleClass is a rule: native (task, filegroup, environment) or made by rule().
type ruleClass struct {
	name       string // the rule's name; for rule() the global it is bound to
	attrs      map[string]*attrSpec
	attrNames  []string
	attrSpecs  []*attrSpec // attrs in the order of attrNames
	impl       starlark.Callable
	native     nativeImpl
	outputs    map[string]string // predeclared output name templates, "%{name}.txt"
	executable bool
	doc        string
	defFile    graph.Label
	// defaults are the attributes with a default value, sorted by name, as
	// every target of the class shares them (graph.Target.Defaults).
	defaults []graph.Attr
}

var (
	_ starlark.Callable = (*ruleClass)(nil)
)

func (r *ruleClass) String() string        { return "<rule " + r.Name() + ">" }
func (r *ruleClass) Type() string          { return "rule" }
func (r *ruleClass) Freeze()               {}
func (r *ruleClass) Truth() starlark.Bool  { return true }
func (r *ruleClass) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: rule") }
func (r *ruleClass) Name() string {
	if r.name == "" {
		return "unnamed_rule"
	}
	return r.name
}

// commonAttrs every rule has.
func commonAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"name":        {typ: graph.AttrString, def: "", mandatory: true, doc: "The target's name."},
		"tags":        {typ: graph.AttrStringList, def: []string(nil), doc: "Execution requirements: no-cache, no-sandbox, no-remote, requires-network, local."},
		"visibility":  {typ: graph.AttrStringList, def: []string(nil), doc: "Accepted for compatibility; hepbuild does not restrict visibility."},
		"testonly":    {typ: graph.AttrBool, def: false, doc: "Accepted for compatibility."},
		"deprecation": {typ: graph.AttrString, def: "", doc: "A warning shown when something depends on the target."},
	}
}

func newRuleClass(name string, attrs map[string]*attrSpec) *ruleClass {
	all := commonAttrs()
	for k, v := range attrs {
		all[k] = v
	}
	r := &ruleClass{name: name, attrs: all, attrNames: sortedAttrNames(all)}
	for _, k := range r.attrNames {
		spec := all[k]
		r.attrSpecs = append(r.attrSpecs, spec)
		if !spec.mandatory {
			r.defaults = append(r.defaults, graph.Attr{Name: k, Type: spec.typ, Value: spec.def})
		}
	}
	return r
}

// CallInternal instantiates the rule in the package being loaded.
func (r *ruleClass) CallInternal(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	b, err := currentPackage(thread, r.Name())
	if err != nil {
		return nil, err
	}
	pos := callerPos(thread, b.pkg.BuildFile)
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: rules take keyword arguments only, as in %s(name = \"x\", ...)", r.Name(), r.Name())
	}
	var name string
	for _, kv := range kwargs {
		if kv[0].(starlark.String) == "name" {
			s, ok := kv[1].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("%s: attribute name: got %s, want string", r.Name(), kv[1].Type())
			}
			name = string(s)
		}
	}
	if name == "" {
		return nil, fmt.Errorf("%s: missing mandatory attribute name", r.Name())
	}
	lbl := b.label(name)
	if !graph.ValidName(name) {
		// ParseRelative says why, as for any label.
		if _, err := graph.ParseRelative(":"+name, b.pkg.Name); err != nil {
			return nil, errorf(lbl, "%v", err)
		}
	}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if _, ok := r.attrs[k]; !ok {
			msg := fmt.Sprintf("%s has no attribute %q", r.Name(), k)
			if s := graph.Suggest(k, r.attrNames); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, errorf(lbl, "%s", msg)
		}
		if strings.HasPrefix(k, "_") {
			return nil, errorf(lbl, "attribute %s is private to the rule and cannot be set", k)
		}
	}
	// Walk the class's attributes and the arguments, both sorted by name,
	// side by side: an argument becomes an attribute of the target, an
	// attribute without one takes the class's shared default.
	var buf [16]starlark.Tuple
	given := append(buf[:0], kwargs...)
	slices.SortStableFunc(given, func(x, y starlark.Tuple) int {
		return strings.Compare(string(x[0].(starlark.String)), string(y[0].(starlark.String)))
	})
	// The name is the label's: graph.Target.Attr and AllAttrs yield it.
	attrs := make([]graph.Attr, 0, len(given)-1)
	for i, k := range r.attrNames {
		spec := r.attrSpecs[i]
		var v starlark.Value = starlark.None
		if len(given) > 0 && string(given[0][0].(starlark.String)) == k {
			v = given[0][1]
		}
		for len(given) > 0 && string(given[0][0].(starlark.String)) == k {
			given = given[1:]
		}
		if v == starlark.None {
			if spec.mandatory {
				return nil, errorf(lbl, "%s: missing mandatory attribute %s", r.Name(), k)
			}
			continue
		}
		if k == "name" {
			continue // a string, checked above
		}
		var val any
		if s, ok := v.(starlark.String); ok && spec.typ == graph.AttrString && len(spec.values) == 0 {
			// What convertAttr would check of a string, without
			// boxing a text that boxString has boxed already:
			// texts (commands, messages) often repeat.
			val = b.boxString(string(s))
		} else {
			val, err = convertAttr(spec, k, v, "", b.pkg.Name)
			if err != nil {
				return nil, errorf(lbl, "%s: %v", r.Name(), err)
			}
			switch x := val.(type) {
			case string:
				val = b.boxString(x)
			case []graph.Label:
				if spec.typ == graph.AttrLabelList && len(x) > 0 {
					// Not outputs: each target has its own.
					val = b.shareLabels(spec, x, val)
				}
			}
		}
		attrs = append(attrs, graph.Attr{Name: k, Type: spec.typ, Value: val, Explicit: true})
	}
	b.rules++
	b.startQueue(thread)
	if b.queue != nil {
		b.queue.push(queuedRule{lbl, pos, r, attrs})
		return starlark.None, nil
	}
	t := newRuleTarget(lbl, pos, r, attrs)
	if err := b.declareRule(t, r); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

// newRuleTarget returns the rule target lbl of class r declared at pos,
// with attrs, sorted by name, set in the BUILD file.
func newRuleTarget(lbl graph.Label, pos graph.Pos, r *ruleClass, attrs []graph.Attr) *graph.Target {
	t := graph.NewRule(lbl, r.Name(), pos)
	t.Attrs, t.Defaults = attrs, r.defaults
	return t
}

// declareRule adds the rule target t of class r, its attributes converted,
// to the package: its outputs, its name, the sources it mentions. It runs
// on the interpreter's goroutine or on the package's ruleQueue.
func (b *pkgBuilder) declareRule(t *graph.Target, r *ruleClass) error {
	for a := range t.AllAttrs() {
		switch x := a.Value.(type) {
		case graph.Label:
			if x.IsZero() {
				continue // None: an unset label or output
			}
			if a.Type == graph.AttrOutput {
				if err := b.addOutput(t, x); err != nil {
					return err
				}
			} else {
				b.ref(x)
			}
		case []graph.Label:
			if a.Type != graph.AttrOutputList {
				if len(x) > 0 && &x[0] == b.lastRefs {
					// The list the previous target shared with this
					// one (shareLabels): its labels are recorded.
					continue
				}
				for _, l := range x {
					b.ref(l)
				}
				if len(x) > 0 {
					b.lastRefs = &x[0]
				}
				continue
			}
			for _, l := range x {
				if err := b.declareOutput(t, l); err != nil {
					return err
				}
			}
			if t.Outputs == nil {
				// Most rules have one list of outputs: share it rather
				// than copy it, capped so that appending copies.
				t.Outputs = slices.Clip(x)
			} else {
				t.Outputs = append(t.Outputs, x...)
			}
		}
	}
	if err := b.add(t, t.Label); err != nil {
		return err
	}
	// Predeclared outputs of rule(outputs = {...}) and executable rules.
	keys := make([]string, 0, len(r.outputs))
	for k := range r.outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "executable" {
			// As in Bazel, an executable rule's program is named after the
			// rule and has no target of its own: //pkg:name is the rule.
			continue
		}
		out, err := expandOutputTemplate(r.outputs[k], t)
		if err != nil {
			return errorf(t.Label, "outputs[%q]: %v", k, err)
		}
		ol, err := graph.ParseRelative(":"+out, b.pkg.Name)
		if err != nil {
			return errorf(t.Label, "outputs[%q]: %v", k, err)
		}
		if err := b.addOutput(t, ol); err != nil {
			return err
		}
	}
	b.classes.add(t, r)
	return nil
}

// addOutput declares out an output of rule and adds it to rule.Outputs.
func (b *pkgBuilder) addOutput(rule *graph.Target, out graph.Label) error {
	if err := b.declareOutput(rule, out); err != nil {
		return err
	}
	rule.Outputs = append(rule.Outputs, out)
	return nil
}

// declareOutput adds the generated-file target out of rule to the package.
func (b *pkgBuilder) declareOutput(rule *graph.Target, out graph.Label) error {
	if out.Repo != "" || out.Pkg != b.pkg.Name {
		return errorf(rule.Label, "output %s is outside the package %s: outputs are names relative to the package", out, b.pkg.Name)
	}
	if out.Name == rule.Label.Name {
		return errorf(rule.Label, "output %q has the same name as the rule", out.Name)
	}
	if kind := b.l.sourceKind(out.Pkg, out.Name); kind != "" {
		return errorf(rule.Label, "generated file %q in rule %q conflicts with existing source %s %s", out.Name, rule.Label.Name, kind, out.Path())
	}
	return b.add(&graph.Target{Label: out, Generator: &rule.Label, Pos: rule.Pos}, rule.Label)
}

func expandOutputTemplate(tmpl string, t *graph.Target) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "%{")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unterminated %%{ in %q", tmpl)
		}
		name := tmpl[i+2 : i+j]
		b.WriteString(tmpl[:i])
		a, ok := t.Attr(name)
		if !ok {
			return "", fmt.Errorf("template refers to unknown attribute %q", name)
		}
		switch v := a.Value.(type) {
		case string:
			b.WriteString(v)
		case graph.Label:
			b.WriteString(v.Name)
		default:
			return "", fmt.Errorf("template attribute %q must be a string or label", name)
		}
		tmpl = tmpl[i+j+1:]
	}
}

// ruleBuiltin implements rule(implementation, attrs, outputs, executable, test, doc, ...).
func ruleBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var impl starlark.Callable
	var attrs, outputs *starlark.Dict
	var executable, test bool
	var doc string
	var toolchains, fragments, cfg, provides, execGroups, initFn, parent, buildSetting, execCompat starlark.Value
	var outputToGenfiles bool
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "implementation", &impl, "attrs?", &attrs, "outputs?", &outputs,
		"executable?", &executable, "test?", &test, "doc?", &doc, "toolchains?", &toolchains, "fragments?", &fragments,
		"host_fragments?", &fragments, "cfg?", &cfg, "provides?", &provides, "exec_groups?", &execGroups, "initializer?", &initFn,
		"parent?", &parent, "build_setting?", &buildSetting, "exec_compatible_with?", &execCompat, "output_to_genfiles?", &outputToGenfiles,
		"incompatible_use_toolchain_transition?", new(bool), "_skylark_testable?", new(bool)); err != nil {
		return nil, err
	}
	notSupported := func(what string, v starlark.Value) error {
		if v == nil || v == starlark.None {
			return nil
		}
		if l, ok := v.(*starlark.List); ok && l.Len() == 0 {
			return nil
		}
		return fmt.Errorf("rule: %s is not supported by hepbuild (no toolchains, configurations, transitions or execution groups; see BUILD.md)", what)
	}
	for _, c := range []struct {
		n string
		v starlark.Value
	}{{"toolchains", toolchains}, {"fragments", fragments}, {"cfg", cfg}, {"exec_groups", execGroups}, {"initializer", initFn}, {"parent", parent}, {"build_setting", buildSetting}, {"exec_compatible_with", execCompat}} {
		if err := notSupported(c.n, c.v); err != nil {
			return nil, err
		}
	}
	if test {
		return nil, fmt.Errorf("rule: test rules are not supported yet by hepbuild")
	}
	specs := map[string]*attrSpec{}
	if attrs != nil {
		for _, kv := range attrs.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("rule: attrs keys must be strings")
			}
			s, ok := kv[1].(*attrSpec)
			if !ok {
				return nil, fmt.Errorf("rule: attrs[%q]: got %s, want an attr.* value", string(k), kv[1].Type())
			}
			if _, common := commonAttrs()[string(k)]; common {
				return nil, fmt.Errorf("rule: attrs[%q]: %s is an attribute every rule already has", string(k), string(k))
			}
			specs[string(k)] = s
		}
	}
	rc := newRuleClass("", specs)
	rc.impl = impl
	rc.executable = executable
	rc.doc = doc
	rc.defFile = thread.Local(localFile).(graph.Label)
	if outputs != nil {
		rc.outputs = map[string]string{}
		for _, kv := range outputs.Items() {
			k, ok1 := kv[0].(starlark.String)
			v, ok2 := kv[1].(starlark.String)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("rule: outputs must be a dict of string to string template")
			}
			if _, clash := specs[string(k)]; clash {
				return nil, fmt.Errorf("rule: outputs[%q] clashes with the attribute of the same name", string(k))
			}
			rc.outputs[string(k)] = string(v)
		}
	}
	if executable {
		if rc.outputs == nil {
			rc.outputs = map[string]string{}
		}
		rc.outputs["executable"] = "%{name}"
	}
	return rc, nil
}

func providerBuiltin(_ *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var doc string
	var fields, init starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "doc?", &doc, "fields?", &fields, "init?", &init); err != nil {
		return nil, err
	}
	if init != nil && init != starlark.None {
		return nil, fmt.Errorf("provider: init is not supported by hepbuild")
	}
	var names []string
	switch f := fields.(type) {
	case nil, starlark.NoneType:
	case *starlark.List:
		for i := 0; i < f.Len(); i++ {
			s, ok := starlark.AsString(f.Index(i))
			if !ok {
				return nil, fmt.Errorf("provider: fields must be strings")
			}
			names = append(names, s)
		}
	case *starlark.Dict:
		for _, k := range f.Keys() {
			s, ok := starlark.AsString(k)
			if !ok {
				return nil, fmt.Errorf("provider: fields must be strings")
			}
			names = append(names, s)
		}
	default:
		return nil, fmt.Errorf("provider: fields: got %s, want list or dict", fields.Type())
	}
	if names == nil && fields != nil && fields != starlark.None {
		names = []string{}
	}
	return newProvider("", names, doc), nil
}

// nameExports gives rules and providers the names of the globals they are bound to.
func nameExports(globals starlark.StringDict) {
	for name, v := range globals {
		switch x := v.(type) {
		case *ruleClass:
			if x.name == "" {
				x.name = name
			}
		case *Provider:
			if x.name == "" {
				x.name = name
			}
		}
	}
}
