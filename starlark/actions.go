package starlark

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// actionsValue is ctx.actions.
type actionsValue struct{ c *ruleContext }

func (v *actionsValue) String() string        { return "<actions>" }
func (v *actionsValue) Type() string          { return "actions" }
func (v *actionsValue) Freeze()               {}
func (v *actionsValue) Truth() starlark.Bool  { return true }
func (v *actionsValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: actions") }
func (v *actionsValue) AttrNames() []string {
	return []string{"args", "declare_directory", "declare_file", "declare_symlink", "expand_template", "run", "run_shell", "symlink", "write"}
}

func (v *actionsValue) Attr(name string) (starlark.Value, error) {
	var fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)
	switch name {
	case "declare_file":
		fn = func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return v.declare(b, args, kwargs, declaredFile)
		}
	case "declare_directory":
		fn = func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return v.declare(b, args, kwargs, declaredDirectory)
		}
	case "declare_symlink":
		fn = func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return v.declare(b, args, kwargs, declaredSymlink)
		}
	case "args":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			return &Args{}, nil
		}
	case "run":
		fn = v.run
	case "run_shell":
		fn = v.runShell
	case "write":
		fn = v.write
	case "expand_template":
		fn = v.expandTemplate
	case "symlink":
		fn = v.symlink
	case "do_nothing", "template_dict", "transform_info_file", "transform_version_file":
		return nil, fmt.Errorf("ctx.actions.%s is not supported by hepbuild", name)
	default:
		return nil, nil
	}
	return starlark.NewBuiltin("actions."+name, fn), nil
}

func (v *actionsValue) checkOpen(fn string) error {
	if v.c.frozen {
		return fmt.Errorf("%s: the rule implementation has returned; actions can no longer be created", fn)
	}
	return nil
}

// declaredKind is what ctx.actions.declare_* declares.
type declaredKind uint8

const (
	declaredFile declaredKind = iota
	declaredDirectory
	declaredSymlink
)

func (k declaredKind) String() string {
	return [...]string{"file", "directory", "symlink"}[k]
}

func kindOfArtifact(a exec.Artifact) declaredKind {
	switch {
	case a.Dir:
		return declaredDirectory
	case a.Symlink:
		return declaredSymlink
	}
	return declaredFile
}

func (v *actionsValue) declare(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, kind declaredKind) (starlark.Value, error) {
	if err := v.checkOpen(b.Name()); err != nil {
		return nil, err
	}
	var name string
	var sibling starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "filename", &name, "sibling?", &sibling); err != nil {
		return nil, err
	}
	t := v.c.t()
	rel := name
	if s, ok := sibling.(*File); ok {
		if s.art.Source {
			return nil, fmt.Errorf("%s: sibling must be an output of this target", b.Name())
		}
		dir := path.Dir(s.shortPath())
		pkgPrefix := t.Label.Pkg
		rel = strings.TrimPrefix(strings.TrimPrefix(dir, pkgPrefix), "/")
		rel = path.Join(rel, name)
	}
	if path.IsAbs(rel) || strings.HasPrefix(path.Clean(rel), "..") {
		return nil, fmt.Errorf("%s: %q must be a path inside the package", b.Name(), name)
	}
	// "" (or ".") would name the package's output folder itself: an action
	// writing it would replace every other output of the package.
	if path.Clean(rel) == "." || name == "" {
		return nil, fmt.Errorf("%s: %q names no file: want a name such as \"out.root\"", b.Name(), name)
	}
	l := graph.Label{Repo: t.Label.Repo, Pkg: t.Label.Pkg, Name: path.Clean(rel)}
	art := outputArtifact(l, kind == declaredDirectory)
	art.Symlink = kind == declaredSymlink
	if f, ok := v.c.declared[art.Path]; ok {
		if k := kindOfArtifact(f.art); k != kind {
			return nil, fmt.Errorf("%s: %s was already declared as a %s", b.Name(), name, k)
		}
		return f, nil
	}
	if l.Repo == "" {
		if src := v.c.a.l.sourceKind(l.Pkg, l.Name); src != "" {
			return nil, fmt.Errorf("%s: generated %s %q in rule %q (%s) conflicts with existing source %s %s", b.Name(), kind, l.Name, t.Label.Name, t.Pos, src, l.Path())
		}
	}
	f := &File{art: art, owner: t}
	v.c.declared[art.Path] = f
	return f, nil
}

// outputsOf checks that every output is a file declared by this target and not yet written.
func (v *actionsValue) outputsOf(fn string, val starlark.Value) ([]exec.Artifact, error) {
	files, err := filesOf(fn+": outputs", val)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: an action needs at least one output", fn)
	}
	var out []exec.Artifact
	for _, f := range files {
		if f.art.Source || f.owner != v.c.t() {
			return nil, fmt.Errorf("%s: output %s was not declared by this target (use ctx.actions.declare_file)", fn, f.shortPath())
		}
		if v.c.written[f.art.Path] {
			return nil, fmt.Errorf("%s: output %s is already written by another action of this target", fn, f.shortPath())
		}
		v.c.written[f.art.Path] = true
		out = append(out, f.art)
	}
	return out, nil
}

// filesOf accepts a File, a list of Files or a depset of Files.
func filesOf(what string, val starlark.Value) ([]*File, error) {
	if val == nil || val == starlark.None {
		return nil, nil
	}
	var elems []starlark.Value
	switch x := val.(type) {
	case *File:
		return []*File{x}, nil
	case *Depset:
		elems = x.toList()
	case starlark.Iterable:
		for e := range starlark.Elements(x) {
			if d, ok := e.(*Depset); ok {
				elems = append(elems, d.toList()...)
			} else {
				elems = append(elems, e)
			}
		}
	default:
		return nil, fmt.Errorf("%s: got %s, want a list or depset of Files", what, val.Type())
	}
	out := make([]*File, 0, len(elems))
	for _, e := range elems {
		f, ok := e.(*File)
		if !ok {
			return nil, fmt.Errorf("%s: element %s is a %s, not a File", what, e, e.Type())
		}
		out = append(out, f)
	}
	return out, nil
}

func artifacts(fs []*File) []exec.Artifact {
	out := make([]exec.Artifact, len(fs))
	for i, f := range fs {
		out[i] = f.art
	}
	return out
}

// common keyword arguments of run and run_shell
type runArgs struct {
	outputs, inputs, tools, arguments, env, execReq, resources, software starlark.Value
	mnemonic, progress                                                   string
	useDefaultShellEnv                                                   bool
	executable                                                           starlark.Value
	command                                                              starlark.Value
}

func (v *actionsValue) run(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var r runArgs
	var ignored starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "outputs", &r.outputs, "inputs?", &r.inputs, "executable", &r.executable,
		"tools?", &r.tools, "arguments?", &r.arguments, "mnemonic?", &r.mnemonic, "progress_message?", &r.progress,
		"use_default_shell_env?", &r.useDefaultShellEnv, "env?", &r.env, "execution_requirements?", &r.execReq,
		"input_manifests?", &ignored, "resources?", &r.resources, "software_env?", &r.software,
		"exec_group?", &ignored, "shadowed_action?", &ignored, "resource_set?", &ignored, "toolchain?", &ignored); err != nil {
		return nil, err
	}
	return v.makeRun(b.Name(), &r, false)
}

func (v *actionsValue) runShell(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var r runArgs
	var ignored starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "outputs", &r.outputs, "inputs?", &r.inputs, "tools?", &r.tools,
		"arguments?", &r.arguments, "mnemonic?", &r.mnemonic, "command", &r.command, "progress_message?", &r.progress,
		"use_default_shell_env?", &r.useDefaultShellEnv, "env?", &r.env, "execution_requirements?", &r.execReq,
		"input_manifests?", &ignored, "resources?", &r.resources, "software_env?", &r.software,
		"exec_group?", &ignored, "shadowed_action?", &ignored, "resource_set?", &ignored, "toolchain?", &ignored); err != nil {
		return nil, err
	}
	return v.makeRun(b.Name(), &r, true)
}

func (v *actionsValue) makeRun(fn string, r *runArgs, shell bool) (starlark.Value, error) {
	if err := v.checkOpen(fn); err != nil {
		return nil, err
	}
	t := v.c.t()
	act := &exec.Action{Owner: t.Label, Kind: exec.KindRun, Mnemonic: r.mnemonic, Pos: t.Pos, Env: map[string]string{}}
	extra := act.SetExtra()
	if act.Mnemonic == "" {
		act.Mnemonic = "Action"
	}
	inputs, err := filesOf(fn+": inputs", r.inputs)
	if err != nil {
		return nil, err
	}
	tools, err := filesOf(fn+": tools", r.tools)
	if err != nil {
		return nil, err
	}
	act.Inputs = append(artifacts(inputs), artifacts(tools)...)
	extra.Tools = artifacts(tools)
	// As in Bazel, files named in arguments are not inputs unless listed in inputs or tools.
	argv, err := expandArguments(fn, r.arguments)
	if err != nil {
		return nil, err
	}
	if shell {
		var cmd string
		switch c := r.command.(type) {
		case starlark.String:
			cmd = string(c)
		case *starlark.List:
			return nil, fmt.Errorf("%s: command as a list is deprecated in the rule API; use run() with an executable", fn)
		default:
			return nil, fmt.Errorf("%s: command: got %s, want string", fn, r.command.Type())
		}
		act.Argv = append([]string{"/bin/bash", "-c", cmd, ""}, argv...)
	} else {
		switch x := r.executable.(type) {
		case *File:
			act.Argv = append([]string{x.art.Path}, argv...)
			act.Inputs = append(act.Inputs, x.art)
			extra.Tools = append(extra.Tools, x.art)
		case starlark.String:
			act.Argv = append([]string{string(x)}, argv...)
		case *TargetValue:
			if x.c.executable == nil {
				return nil, fmt.Errorf("%s: executable %s is not executable", fn, x.c.label())
			}
			act.Argv = append([]string{x.c.executable.art.Path}, argv...)
			act.Inputs = append(act.Inputs, artifacts(x.c.files)...)
			act.Inputs = append(act.Inputs, x.c.executable.art)
			extra.Tools = append(extra.Tools, x.c.executable.art)
		default:
			return nil, fmt.Errorf("%s: executable: got %s, want File or string", fn, r.executable.Type())
		}
	}
	if r.useDefaultShellEnv {
		act.Env["PATH"] = HostPath
	}
	if d, ok := r.env.(*starlark.Dict); ok {
		for _, kv := range d.Items() {
			k, ok1 := starlark.AsString(kv[0])
			val, ok2 := starlark.AsString(kv[1])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: env must be a dict of strings", fn)
			}
			act.Env[k] = val
		}
	} else if r.env != nil && r.env != starlark.None {
		return nil, fmt.Errorf("%s: env: got %s, want dict of environment variables (the software environment is software_env)", fn, r.env.Type())
	}
	if d, ok := r.execReq.(*starlark.Dict); ok {
		for _, k := range d.Keys() {
			s, _ := starlark.AsString(k)
			extra.Tags = append(extra.Tags, s)
		}
		sort.Strings(extra.Tags)
	}
	extra.Tags = append(extra.Tags, attrStrings(t, "tags")...)
	if d, ok := r.resources.(*starlark.Dict); ok {
		m := map[string]string{}
		for _, kv := range d.Items() {
			k, _ := starlark.AsString(kv[0])
			if s, ok := starlark.AsString(kv[1]); ok {
				m[k] = s
			} else {
				m[k] = kv[1].String()
			}
		}
		if extra.Resources, err = exec.ParseResources(m); err != nil {
			return nil, fmt.Errorf("%s: resources: %v", fn, err)
		}
	}
	if r.software != nil && r.software != starlark.None {
		tv, ok := r.software.(*TargetValue)
		if !ok || tv.c.env() == nil {
			return nil, fmt.Errorf("%s: software_env: want an environment() target (an attr.label attribute value), got %s", fn, r.software)
		}
		act.Environment = tv.c.env()
		act.Inputs = append(act.Inputs, tv.c.env().Files...)
	}
	act.Progress = r.progress // Describe expands %{label}
	act.Outputs, err = v.outputsOf(fn, r.outputs)
	if err != nil {
		return nil, err
	}
	if err := v.c.a.addAction(act); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (v *actionsValue) write(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := v.checkOpen(b.Name()); err != nil {
		return nil, err
	}
	var output *File
	var content starlark.Value
	var isExec bool
	var mnemonic string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "output", &output, "content", &content, "is_executable?", &isExec, "mnemonic?", &mnemonic); err != nil {
		return nil, err
	}
	var text string
	switch c := content.(type) {
	case starlark.String:
		text = string(c)
	case *Args:
		argv, err := c.expand(b.Name())
		if err != nil {
			return nil, err
		}
		text = strings.Join(argv, "\n") + "\n"
	default:
		return nil, fmt.Errorf("%s: content: got %s, want string or Args", b.Name(), content.Type())
	}
	outs, err := v.outputsOf(b.Name(), output)
	if err != nil {
		return nil, err
	}
	if mnemonic == "" {
		mnemonic = "FileWrite"
	}
	t := v.c.t()
	return starlark.None, v.c.a.addAction(&exec.Action{Owner: t.Label, Kind: exec.KindWrite, Mnemonic: mnemonic, Pos: t.Pos,
		Outputs: outs, Extra: &exec.Extra{Content: []byte(text)}, Executable: isExec, Progress: "Writing " + output.shortPath()})
}

func (v *actionsValue) expandTemplate(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := v.checkOpen(b.Name()); err != nil {
		return nil, err
	}
	var template, output *File
	var subs *starlark.Dict
	var isExec bool
	var computed starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "template", &template, "output", &output, "substitutions?", &subs, "is_executable?", &isExec, "computed_substitutions?", &computed); err != nil {
		return nil, err
	}
	if !template.art.Source {
		return nil, fmt.Errorf("%s: the template must be a source file; %s is generated", b.Name(), template.shortPath())
	}
	data, err := os.ReadFile(filepath.Join(v.c.a.l.root, filepath.FromSlash(template.art.Path)))
	if err != nil {
		return nil, fmt.Errorf("%s: reading template %s: %v", b.Name(), template.art.Path, err)
	}
	text := string(data)
	if subs != nil {
		keys := subs.Keys()
		pairs := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			val, _, _ := subs.Get(k)
			ks, ok1 := starlark.AsString(k)
			vs, ok2 := starlark.AsString(val)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: substitutions must map strings to strings", b.Name())
			}
			pairs = append(pairs, ks, vs)
		}
		text = strings.NewReplacer(pairs...).Replace(text)
	}
	outs, err := v.outputsOf(b.Name(), output)
	if err != nil {
		return nil, err
	}
	t := v.c.t()
	// The template's content is in Content, so it is part of the key; the
	// template itself is an input so that editing it reruns analysis users.
	return starlark.None, v.c.a.addAction(&exec.Action{Owner: t.Label, Kind: exec.KindWrite, Mnemonic: "TemplateExpand", Pos: t.Pos,
		Outputs: outs, Inputs: []exec.Artifact{template.art}, Extra: &exec.Extra{Content: []byte(text)}, Executable: isExec, Progress: "Expanding " + output.shortPath()})
}

func (v *actionsValue) symlink(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := v.checkOpen(b.Name()); err != nil {
		return nil, err
	}
	var output, target *File
	var targetPath starlark.Value
	var isExec bool
	var progress string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "output", &output, "target_file?", &target, "target_path?", &targetPath, "is_executable?", &isExec, "progress_message?", &progress); err != nil {
		return nil, err
	}
	var path string
	if targetPath != nil && targetPath != starlark.None {
		s, ok := starlark.AsString(targetPath)
		if !ok {
			return nil, fmt.Errorf("%s: target_path: got %s, want string", b.Name(), targetPath.Type())
		}
		path = s
	}
	switch {
	case output.art.Symlink && (target != nil || targetPath == nil || targetPath == starlark.None):
		return nil, fmt.Errorf("%s: output %s was declared with declare_symlink: give its target as target_path", b.Name(), output.shortPath())
	case output.art.Symlink && path == "":
		return nil, fmt.Errorf("%s: target_path must not be empty", b.Name())
	case !output.art.Symlink && targetPath != nil && targetPath != starlark.None:
		return nil, fmt.Errorf("%s: target_path needs an output declared with ctx.actions.declare_symlink; %s is a %s", b.Name(), output.shortPath(), kindOfArtifact(output.art))
	case !output.art.Symlink && target == nil:
		return nil, fmt.Errorf("%s: target_file is required", b.Name())
	case target != nil && target.art.Symlink:
		// Copying what a declared link points to would follow it on the host.
		return nil, fmt.Errorf("%s: target_file %s is a declared symlink: hepbuild does not follow it; declare the output with declare_symlink and pass target_path", b.Name(), target.shortPath())
	}
	outs, err := v.outputsOf(b.Name(), output)
	if err != nil {
		return nil, err
	}
	t := v.c.t()
	if output.art.Symlink {
		return starlark.None, v.c.a.addAction(&exec.Action{Owner: t.Label, Kind: exec.KindSymlink, Mnemonic: "Symlink", Pos: t.Pos,
			Outputs: outs, Extra: &exec.Extra{Content: []byte(path)}, Progress: progress})
	}
	return starlark.None, v.c.a.addAction(&exec.Action{Owner: t.Label, Kind: exec.KindSymlink, Mnemonic: "Symlink", Pos: t.Pos,
		Outputs: outs, Inputs: []exec.Artifact{target.art}, Executable: isExec, Progress: progress})
}

// expandArguments flattens run(arguments = [...]) of strings and Args.
func expandArguments(fn string, v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("%s: arguments: got %s, want list", fn, v.Type())
	}
	var out []string
	for e := range starlark.Elements(it) {
		switch x := e.(type) {
		case *Args:
			argv, err := x.expand(fn)
			if err != nil {
				return nil, err
			}
			out = append(out, argv...)
		default:
			s, err := argString(e)
			if err != nil {
				return nil, fmt.Errorf("%s: arguments: %v", fn, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}
