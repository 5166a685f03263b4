package starlark

import (
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/hepbuild/hepbuild/graph"
)

var (
	taskRule        = newRuleClass("task", taskAttrs())
	genruleRule     = newRuleClass("genrule", taskAttrs())
	filegroupRule   = newRuleClass("filegroup", filegroupAttrs())
	environmentRule = newRuleClass("environment", environmentAttrs())
	remoteFilesRule = newRuleClass("remote_files", remoteFilesAttrs())
	remoteGlobRule  = newRuleClass("remote_glob", remoteGlobAttrs())
)

func init() {
	taskRule.native = analyzeTask
	genruleRule.native = analyzeTask
	filegroupRule.native = analyzeFilegroup
	environmentRule.native = analyzeEnvironment
	remoteFilesRule.native = analyzeRemoteFiles
	remoteGlobRule.native = analyzeRemoteGlob
}

// nativeRules are callable from BUILD files and as native.<name> from macros.
func nativeRules() starlark.StringDict {
	return starlark.StringDict{
		"task":         taskRule,
		"genrule":      genruleRule,
		"filegroup":    filegroupRule,
		"environment":  environmentRule,
		"remote_files": remoteFilesRule,
		"remote_glob":  remoteGlobRule,
		"glob":         starlark.NewBuiltin("glob", globBuiltin),
		"package_name": starlark.NewBuiltin("package_name", packageNameBuiltin),
		"repository_name": starlark.NewBuiltin("repository_name", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.String("@"), nil
		}),
		"exports_files":  starlark.NewBuiltin("exports_files", exportsFilesBuiltin),
		"package":        starlark.NewBuiltin("package", packageBuiltin),
		"existing_rules": starlark.NewBuiltin("existing_rules", existingRulesBuiltin),
		"read_json":      starlark.NewBuiltin("read_json", readJSONBuiltin),
	}
}

func common() starlark.StringDict {
	return starlark.StringDict{
		"json":           json.Module,
		"struct":         starlark.NewBuiltin("struct", starlarkstruct.Make),
		"depset":         starlark.NewBuiltin("depset", depsetBuiltin),
		"select":         unsupported("select"),
		"Label":          starlark.NewBuiltin("Label", labelBuiltin),
		"workspace_name": starlark.NewBuiltin("workspace_name", workspaceNameBuiltin),
	}
}

// buildPredeclared are the globals of BUILD files; starPredeclared those of .star/.bzl files.
var buildPredeclared, starPredeclared = func() (starlark.StringDict, starlark.StringDict) {
	build := common()
	for k, v := range nativeRules() {
		build[k] = v
	}
	star := common()
	star["rule"] = starlark.NewBuiltin("rule", ruleBuiltin)
	star["attr"] = attrModule
	star["provider"] = starlark.NewBuiltin("provider", providerBuiltin)
	star["DefaultInfo"] = defaultInfo
	star["OutputGroupInfo"] = outputGroupInfo
	star["native"] = newStruct("native", nativeRules())
	for _, n := range []string{"aspect", "transition", "config_setting", "toolchain_type", "config_common", "platform_common", "exec_group", "analysis_test_transition", "configuration_field", "module_extension", "repository_rule", "tag_class"} {
		star[n] = unsupported(n)
	}
	build.Freeze()
	star.Freeze()
	return build, star
}()

func packageNameBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	b, err := currentPackage(thread, fn.Name())
	if err != nil {
		return nil, err
	}
	return starlark.String(b.pkg.Name), nil
}

func workspaceNameBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	return starlark.String(thread.Local(localLoader).(*Loader).workspaceName), nil
}

func globBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var include, exclude *starlark.List
	excludeDirs := 1
	allowEmpty := true
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "include?", &include, "exclude?", &exclude, "exclude_directories?", &excludeDirs, "allow_empty?", &allowEmpty); err != nil {
		return nil, err
	}
	b, err := currentPackage(thread, fn.Name())
	if err != nil {
		return nil, err
	}
	inc, err := stringList(include, "glob: include")
	if err != nil {
		return nil, err
	}
	exc, err := stringList(exclude, "glob: exclude")
	if err != nil {
		return nil, err
	}
	files, err := b.glob(inc, exc, excludeDirs != 0, allowEmpty)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		b.noteEmptyGlob(thread, inc, kwargs)
	}
	out := make([]starlark.Value, len(files))
	for i, f := range files {
		out[i] = starlark.String(f)
	}
	return starlark.NewList(out), nil
}

func stringList(l *starlark.List, what string) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	out := make([]string, l.Len())
	for i := range out {
		s, ok := starlark.AsString(l.Index(i))
		if !ok {
			return nil, fmt.Errorf("%s: element %s is not a string", what, l.Index(i))
		}
		out[i] = s
	}
	return out, nil
}

func exportsFilesBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var srcs *starlark.List
	var visibility, licenses starlark.Value
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "srcs", &srcs, "visibility?", &visibility, "licenses?", &licenses); err != nil {
		return nil, err
	}
	b, err := currentPackage(thread, fn.Name())
	if err != nil {
		return nil, err
	}
	names, err := stringList(srcs, "exports_files: srcs")
	if err != nil {
		return nil, err
	}
	if err := b.syncQueue(); err != nil {
		return nil, err
	}
	for _, n := range names {
		l, err := graph.ParseRelative(n, b.pkg.Name)
		if err != nil {
			return nil, fmt.Errorf("exports_files: %v", err)
		}
		b.ref(l)
	}
	return starlark.None, nil
}

func packageBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("package: unexpected positional arguments")
	}
	if _, err := currentPackage(thread, fn.Name()); err != nil {
		return nil, err
	}
	for _, kv := range kwargs {
		switch k := string(kv[0].(starlark.String)); k {
		case "default_visibility", "default_testonly", "features", "licenses", "default_applicable_licenses", "default_deprecation":
		default:
			return nil, fmt.Errorf("package: unknown argument %q", k)
		}
	}
	return starlark.None, nil
}

func existingRulesBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 0); err != nil {
		return nil, err
	}
	b, err := currentPackage(thread, fn.Name())
	if err != nil {
		return nil, err
	}
	if err := b.syncQueue(); err != nil {
		return nil, err
	}
	d := starlark.NewDict(0)
	for _, name := range b.pkg.Order {
		t := b.pkg.Targets[name]
		if t.IsRule() {
			_ = d.SetKey(starlark.String(name), starlarkstruct.FromStringDict(starlark.String("rule"), starlark.StringDict{
				"name": starlark.String(name), "kind": starlark.String(t.RuleClass),
			}))
		}
	}
	return d, nil
}

// readJSONBuiltin reads and decodes a JSON file of the workspace; the file
// becomes a dependency of the package.
func readJSONBuiltin(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 1, &name); err != nil {
		return nil, err
	}
	b, err := currentPackage(thread, fn.Name())
	if err != nil {
		return nil, err
	}
	lbl, err := graph.ParseRelative(name, b.pkg.Name)
	if err != nil {
		return nil, fmt.Errorf("read_json: %v", err)
	}
	rel := lbl.Path()
	b.l.depend(rel) // its state before the read
	data, err := os.ReadFile(filepath.Join(b.l.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("read_json: cannot read %s: %v", rel, err)
	}
	b.readFiles = append(b.readFiles, rel)
	decode, _ := json.Module.Members["decode"].(*starlark.Builtin)
	v, err := starlark.Call(thread, decode, starlark.Tuple{starlark.String(data)}, nil)
	if err != nil {
		return nil, fmt.Errorf("read_json: %s: %v", rel, err)
	}
	return v, nil
}
