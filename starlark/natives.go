package starlark

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/internal/shell"
)

// HostPath is the PATH every action gets unless its environment sets another:
// fixed, so that users with different login shells share cache hits.
const HostPath = "/usr/local/bin:/usr/bin:/bin"

// hostEnv is the variables of an action that declares none. Shared: read only.
var hostEnv = map[string]string{"PATH": HostPath}

func taskAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"srcs":      {typ: graph.AttrLabelList, def: []graph.Label(nil), allowFiles: true, doc: "Inputs: files, or targets whose default outputs are used."},
		"outs":      {typ: graph.AttrOutputList, def: []graph.Label(nil), mandatory: true, doc: "Declared outputs, relative to the package."},
		"cmd":       {typ: graph.AttrString, def: "", mandatory: true, doc: "The bash command; see the substitutions in BUILD.md."},
		"tools":     {typ: graph.AttrLabelList, def: []graph.Label(nil), allowFiles: true, doc: "Executables the command runs; their content is part of the key."},
		"env":       {typ: graph.AttrLabel, def: graph.Label{}, doc: "The software environment (an environment() target); default: host."},
		"environ":   {typ: graph.AttrStringDict, def: map[string]string(nil), doc: "Extra environment variables."},
		"resources": {typ: graph.AttrStringDict, def: map[string]string(nil), doc: "cpu, memory (\"2GB\"), walltime (\"1h\"), tmp (\"4GB\": the linux sandbox's /tmp)."},
		"retries":   {typ: graph.AttrInt, def: int64(0), doc: "Re-run a failed action up to this many more times."},
		"timeout":   {typ: graph.AttrString, def: "", doc: "Kill the action after this duration (\"30m\")."},
		"message":   {typ: graph.AttrString, def: "", doc: "Progress message shown while the action runs."},
	}
}

func filegroupAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"srcs": {typ: graph.AttrLabelList, def: []graph.Label(nil), allowFiles: true, doc: "The files of the group."},
		"data": {typ: graph.AttrLabelList, def: []graph.Label(nil), allowFiles: true, doc: "Accepted for compatibility; not part of the group's files."},
	}
}

func environmentAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"kind":                 {typ: graph.AttrString, def: "host", doc: "host, shell, venv, conda, container or cmssw."},
		"setup":                {typ: graph.AttrLabel, def: graph.Label{}, allowFiles: true, allowSingleFile: true, doc: "shell: the setup script sourced before each command."},
		"requirements":         {typ: graph.AttrLabel, def: graph.Label{}, allowFiles: true, allowSingleFile: true, doc: "venv/conda: the requirements or lock file."},
		"key":                  {typ: graph.AttrString, def: "", doc: "An extra string hashed into the environment's digest (e.g. an LCG release name)."},
		"release":              {typ: graph.AttrString, def: "", doc: "cmssw: the CMSSW release."},
		"arch":                 {typ: graph.AttrString, def: "", doc: "cmssw: the SCRAM architecture."},
		"image":                {typ: graph.AttrString, def: "", doc: "container: the image (path or reference)."},
		"environ":              {typ: graph.AttrStringDict, def: map[string]string(nil), doc: "Variables the environment sets for every action."},
		"files":                {typ: graph.AttrLabelList, def: []graph.Label(nil), allowFiles: true, doc: "Further files whose content identifies the environment."},
		"system_site_packages": {typ: graph.AttrBool, def: false, doc: "venv: give the venv access to the interpreter's own packages (python3 -m venv --system-site-packages)."},
	}
}

func attrString(t *graph.Target, name string) string {
	a, _ := t.Attr(name)
	s, _ := a.Value.(string)
	return s
}

func attrLabels(t *graph.Target, name string) []graph.Label {
	a, _ := t.Attr(name)
	ls, _ := a.Value.([]graph.Label)
	return ls
}

func attrLabel(t *graph.Target, name string) graph.Label {
	a, _ := t.Attr(name)
	l, _ := a.Value.(graph.Label)
	return l
}

func attrDict(t *graph.Target, name string) map[string]string {
	a, _ := t.Attr(name)
	d, _ := a.Value.(map[string]string)
	return d
}

func attrInt(t *graph.Target, name string) int64 {
	a, _ := t.Attr(name)
	n, _ := a.Value.(int64)
	return n
}

func attrStrings(t *graph.Target, name string) []string {
	a, _ := t.Attr(name)
	s, _ := a.Value.([]string)
	return s
}

func analyzeFilegroup(a *analyzer, t *graph.Target) (*configured, error) {
	var files []*File
	seen := map[string]bool{}
	for _, l := range attrLabels(t, "srcs") {
		for _, f := range a.dep(l).files {
			if !seen[f.art.Path] {
				seen[f.art.Path] = true
				files = append(files, f)
			}
		}
	}
	c := &configured{target: t, files: files}
	if len(files) == 1 {
		c.executable = a.dep(attrLabels(t, "srcs")[0]).executable
	}
	return c, nil
}

func analyzeEnvironment(a *analyzer, t *graph.Target) (*configured, error) {
	kind := attrString(t, "kind")
	switch kind {
	case "host", "shell", "venv", "conda", "container", "cmssw":
	default:
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("environment: kind %q: want one of host, shell, venv, conda, container, cmssw", kind)}
	}
	env := &exec.Environment{Label: t.Label, Kind: kind, Params: map[string]string{}}
	for _, p := range []string{"key", "release", "arch", "image"} {
		if v := attrString(t, p); v != "" {
			env.Params[p] = v
		}
	}
	for k, v := range attrDict(t, "environ") {
		env.Params["environ."+k] = v
	}
	if ssp, ok := t.Attr("system_site_packages"); ok && ssp.Value == true {
		if kind != "venv" {
			return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("environment: system_site_packages is for kind \"venv\", not %q", kind)}
		}
		env.Params["system_site_packages"] = "true"
	}
	var files []*File
	for _, p := range []string{"setup", "requirements"} {
		if l := attrLabel(t, p); !l.IsZero() {
			f := a.dep(l).files[0]
			env.Params[p] = f.art.Path
			env.Files = append(env.Files, f.art)
			files = append(files, f)
		}
	}
	for _, l := range attrLabels(t, "files") {
		for _, f := range a.dep(l).files {
			env.Files = append(env.Files, f.art)
			files = append(files, f)
		}
	}
	switch {
	case kind == "shell" && attrLabel(t, "setup").IsZero():
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: "environment: kind \"shell\" needs setup = \"a_setup_script.sh\""}
	case (kind == "venv" || kind == "conda") && attrLabel(t, "requirements").IsZero():
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf("environment: kind %q needs requirements = \"requirements.txt\" (or a lock file)", kind)}
	case kind == "container" && env.Params["image"] == "":
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: "environment: kind \"container\" needs image = \"...\""}
	case kind == "cmssw" && (env.Params["release"] == "" || env.Params["arch"] == ""):
		return nil, &Error{Pos: t.Pos, Target: t.Label, Msg: "environment: kind \"cmssw\" needs release and arch"}
	}
	c := &configured{target: t, files: files, details: &targetDetails{env: env}}
	return c, nil
}

func defaultInfoFor(files []*File) *ProviderInstance {
	return &ProviderInstance{provider: defaultInfo, fields: map[string]starlarkValue{"files": depsetOf(files)}}
}

// taskAttrValues are the attributes of a task that analyzeTask reads.
type taskAttrValues struct {
	srcs, tools           []graph.Label
	cmd, message, timeout string
	environ, resources    map[string]string
	tags                  []string
	retries               int64
	env                   graph.Label
}

// readTaskAttrs reads the attributes of task t in one pass over them,
// rather than search them for each: a large package has a million tasks.
// As for Target.Attr, an attribute set in the BUILD file hides its default.
func readTaskAttrs(t *graph.Target) taskAttrValues {
	var v taskAttrValues
	set := func(at *graph.Attr) {
		switch at.Name {
		case "srcs":
			v.srcs, _ = at.Value.([]graph.Label)
		case "tools":
			v.tools, _ = at.Value.([]graph.Label)
		case "cmd":
			v.cmd, _ = at.Value.(string)
		case "message":
			v.message, _ = at.Value.(string)
		case "timeout":
			v.timeout, _ = at.Value.(string)
		case "environ":
			v.environ, _ = at.Value.(map[string]string)
		case "resources":
			v.resources, _ = at.Value.(map[string]string)
		case "tags":
			v.tags, _ = at.Value.([]string)
		case "retries":
			v.retries, _ = at.Value.(int64)
		case "env":
			v.env, _ = at.Value.(graph.Label)
		}
	}
	if t.Rule == nil {
		return v
	}
	for i := range t.Defaults {
		set(&t.Defaults[i])
	}
	for i := range t.Attrs {
		set(&t.Attrs[i])
	}
	return v
}

func analyzeTask(a *analyzer, t *graph.Target) (*configured, error) {
	fail := func(format string, args ...any) error {
		return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf(format, args...)}
	}
	at := readTaskAttrs(t)
	var srcs []*File
	srcDeps := a.attrDeps("srcs", at.srcs)
	if len(srcDeps) == 1 {
		srcs = srcDeps[0].files
	} else {
		n := 0
		for _, d := range srcDeps {
			n += len(d.files)
		}
		srcs = make([]*File, 0, n)
		for _, d := range srcDeps {
			srcs = append(srcs, d.files...)
		}
	}
	var toolArts []exec.Artifact
	toolDeps := a.attrDeps("tools", at.tools)
	for _, d := range toolDeps {
		for _, f := range toolFiles(d) {
			toolArts = append(toolArts, f.art)
		}
	}
	if len(t.Outputs) == 0 {
		// outs is mandatory: a task without outputs would never run, and
		// say nothing about it.
		return nil, fail("%s: outs is empty: a task declares at least one output", t.RuleClass)
	}
	var c *configured
	if len(t.Outputs) == 1 {
		c = newConfiguredFile(t, outputArtifact(t.Outputs[0], false), t)
	} else {
		outs := make([]*File, len(t.Outputs))
		for i, l := range t.Outputs {
			outs[i] = &File{art: outputArtifact(l, false), owner: t}
		}
		c = &configured{target: t, files: outs}
	}
	outs := c.files
	// The files of each label in srcs and tools, for $(location ...): made
	// only for the commands that use it, as a map per task is costly.
	locations := func() map[graph.Label][]*File {
		m := make(map[graph.Label][]*File, len(at.srcs)+len(at.tools))
		for i, l := range at.srcs {
			m[l] = srcDeps[i].files
		}
		for i, l := range at.tools {
			m[l] = toolFiles(toolDeps[i])
		}
		return m
	}
	var err error
	a.cmdBuf, err = expandTaskCmd(a.cmdBuf[:0], at.cmd, t, srcs, outs, locations)
	if err != nil {
		return nil, fail("%s: cmd: %v", t.RuleClass, err)
	}
	cmd := string(a.cmdBuf)
	env := hostEnv // shared and never modified: most tasks set no variables
	if len(at.environ) > 0 {
		env = map[string]string{"PATH": HostPath}
		for k, v := range at.environ {
			env[k] = v
		}
	}
	act := &exec.Action{
		Owner:    t.Label,
		Mnemonic: "Task",
		Progress: at.message,
		Kind:     exec.KindRun,
		Argv:     []string{shell.Bash, "-c", cmd}, // shell.TaskArgv, the prefix added above
		Env:      env,
		Pos:      t.Pos,
	}
	extra := exec.Extra{Tools: toolArts, Tags: at.tags, Retries: int(at.retries)}
	if act.Progress == "" {
		act.Progress = "Running %{label}" // expanded by Describe, when shown
	}
	if t.RuleClass == "genrule" {
		act.Mnemonic = "Genrule"
	}
	// Inputs and outputs share one array, each slice clipped to its part:
	// one allocation rather than two for each of a million actions.
	nIn := len(srcs) + len(toolArts)
	arts := make([]exec.Artifact, nIn+len(outs))
	act.Inputs = arts[:0:nIn]
	for _, f := range srcs {
		act.Inputs = append(act.Inputs, f.art)
	}
	act.Inputs = append(act.Inputs, toolArts...)
	act.Outputs = arts[nIn:]
	for i, f := range outs {
		act.Outputs[i] = f.art
	}
	if !at.env.IsZero() {
		ec := a.dep(at.env)
		if ec.env() == nil {
			return nil, fail("%s: env: %s is not an environment() target", t.RuleClass, at.env)
		}
		act.Environment = ec.env()
		act.Inputs = append(act.Inputs, ec.env().Files...)
	}
	if len(at.resources) > 0 {
		extra.Resources, err = exec.ParseResources(at.resources)
		if err != nil {
			return nil, fail("%s: resources: %v", t.RuleClass, err)
		}
	}
	if at.timeout != "" {
		extra.Timeout, err = time.ParseDuration(at.timeout)
		if err != nil || extra.Timeout <= 0 {
			return nil, fail("%s: timeout %q: want a duration such as \"30m\" or \"2h\"", t.RuleClass, at.timeout)
		}
	}
	if extra.Retries < 0 {
		return nil, fail("%s: retries must not be negative", t.RuleClass)
	}
	if err := checkTags(extra.Tags); err != nil {
		return nil, fail("%s: %v", t.RuleClass, err)
	}
	if len(extra.Tools) > 0 || len(extra.Tags) > 0 || extra.Retries != 0 || extra.Resources != (exec.Resources{}) || extra.Timeout != 0 {
		// Copied here, so that the tasks that set none allocate none.
		x := extra
		act.Extra = &x
	}
	if err := a.addAction(act); err != nil {
		return nil, err
	}
	c.action = act
	if len(outs) == 1 {
		c.executable = outs[0]
	}
	return c, nil
}

// checkTags rejects a tag that starts with "no-" but is not a known
// execution requirement (exec.Tags): most likely a typo of one, which would
// otherwise be a silent label. Other unknown tags are labels for humans and
// queries.
func checkTags(tags []string) error {
	for _, tg := range tags {
		if _, ok := exec.LookupTag(tg); !ok && strings.HasPrefix(tg, "no-") {
			msg := fmt.Sprintf("unknown execution requirement tag %q", tg)
			if s := graph.Suggest(tg, exec.TagNames()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

// toolFiles are the files a task's tool stands for: its executable first.
func toolFiles(c *configured) []*File {
	if c.executable == nil {
		return c.files
	}
	fs := []*File{c.executable}
	if len(c.files) > 1 {
		fs = append(fs, c.files...)
	}
	return fs
}

// expandTaskCmd appends to b task's cmd, prefixed with shell.TaskPrefix and
// with its $(...) substitutions made. locations gives the files of each
// label in srcs and tools. The caller reuses b, and makes a string of the
// exact size: a million tasks have a million commands.
func expandTaskCmd(b []byte, cmd string, t *graph.Target, srcs, outs []*File, locations func() map[graph.Label][]*File) ([]byte, error) {
	paths := func(b []byte, fs []*File) []byte {
		for i, f := range fs {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, shellQuote(execPath(f.art))...)
		}
		return b
	}
	ruledir := exec.OutDir + "/" + t.Label.Pkg
	if t.Label.Pkg == "" {
		ruledir = exec.OutDir
	}
	var byLabel map[graph.Label][]*File
	b = append(b, shell.TaskPrefix...)
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if c != '$' {
			b = append(b, c)
			continue
		}
		if i+1 >= len(cmd) {
			return nil, fmt.Errorf("a lone $ at the end: write $$ for a literal $")
		}
		switch next := cmd[i+1]; next {
		case '$':
			b = append(b, '$')
			i++
		case '@':
			if len(outs) != 1 {
				return nil, fmt.Errorf("$@ needs exactly one output, the task has %d: use $(OUTS) or $(location name)", len(outs))
			}
			b = append(b, shellQuote(outs[0].art.Path)...)
			i++
		case '<':
			if len(srcs) != 1 {
				return nil, fmt.Errorf("$< needs exactly one input file, the task has %d: use $(SRCS) or $(location name)", len(srcs))
			}
			b = append(b, shellQuote(execPath(srcs[0].art))...)
			i++
		case '(':
			end := strings.IndexByte(cmd[i:], ')')
			if end < 0 {
				return nil, fmt.Errorf("unterminated $( at column %d", i+1)
			}
			expr := cmd[i+2 : i+end]
			i += end
			fn, arg, hasArg := strings.Cut(expr, " ")
			arg = strings.TrimSpace(arg)
			switch {
			case expr == "SRCS":
				b = paths(b, srcs)
			case expr == "OUTS":
				b = paths(b, outs)
			case expr == "RULEDIR":
				b = append(b, ruledir...)
			case expr == "@D":
				if len(outs) == 1 {
					b = append(b, path.Dir(outs[0].art.Path)...)
				} else {
					b = append(b, ruledir...)
				}
			case hasArg && (fn == "location" || fn == "execpath" || fn == "rootpath"):
				if byLabel == nil {
					byLabel = locations()
				}
				fs, err := locate(arg, t, byLabel, outs)
				if err != nil {
					return nil, err
				}
				if len(fs) != 1 {
					return nil, fmt.Errorf("$(%s %s) expands to %d files; use $(%ss %s)", fn, arg, len(fs), fn, arg)
				}
				b = append(b, shellQuote(execPath(fs[0].art))...)
			case hasArg && (fn == "locations" || fn == "execpaths" || fn == "rootpaths"):
				if byLabel == nil {
					byLabel = locations()
				}
				fs, err := locate(arg, t, byLabel, outs)
				if err != nil {
					return nil, err
				}
				b = paths(b, fs)
			default:
				return nil, fmt.Errorf("unknown substitution $(%s): known are $(SRCS), $(OUTS), $(RULEDIR), $(@D), $(location L), $(locations L), $(execpath L), $(execpaths L), $@, $<; write $$ for a literal $", expr)
			}
		default:
			if next == '{' || next == '_' || (next >= 'A' && next <= 'Z') || (next >= 'a' && next <= 'z') || (next >= '0' && next <= '9') {
				return nil, fmt.Errorf("$%c...: shell variables need $$ (as in $${HOME} or $$1), because $ starts a substitution", next)
			}
			b = append(b, '$')
		}
	}
	return b, nil
}

func locate(arg string, t *graph.Target, byLabel map[graph.Label][]*File, outs []*File) ([]*File, error) {
	l, err := graph.ParseRelative(arg, t.Label.Pkg)
	if err != nil {
		return nil, err
	}
	if fs, ok := byLabel[l]; ok {
		return fs, nil
	}
	for _, o := range t.Outputs {
		if o == l {
			return []*File{{art: outputArtifact(l, false), owner: t}}, nil
		}
	}
	return nil, fmt.Errorf("$(location %s): %s is not in srcs, tools or outs", arg, l)
}

// shellQuote quotes a path for bash when it needs it.
func shellQuote(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+=:,@%", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
