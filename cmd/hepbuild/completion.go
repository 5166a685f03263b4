package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/hepbuild/hepbuild/graph/query"
)

// CompletionCmd prints the script that makes a shell complete hepbuild's
// command lines. The script only collects the line up to the cursor and
// asks `hepbuild __complete`, so what is completed, and how, is decided
// here, once, for every shell.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Run prints the script for the shell.
func (c *CompletionCmd) Run(e *env) error {
	script, ok := completionScripts[c.Shell]
	if !ok {
		return badInput("completion: no script for the shell %q: bash, zsh or fish", c.Shell)
	}
	_, err := fmt.Fprint(e.stdout, script)
	return err
}

// CompleteCmd is what the completion scripts run on every Tab: it prints
// the candidates for the word under the cursor, one a line. It never
// fails where the user can see it: a broken BUILD file, a missing
// workspace or a line it cannot make sense of complete nothing.
type CompleteCmd struct {
	Shell string   `arg:"" help:"bash, zsh or fish: how to print the candidates."`
	Line  string   `arg:"" help:"The command line up to the cursor."`
	Cur   []string `arg:"" optional:"" passthrough:"" help:"zsh: the part of the current word it replaces; bash: COMP_WORDBREAKS, the characters where it starts that part."`
}

// Run prints the candidates.
func (c *CompleteCmd) Run(kctx *kong.Context, e *env) (err error) {
	// A bug here must cost the user a completion, not a stack trace
	// under the prompt.
	defer func() {
		if recover() != nil {
			err = nil
		}
	}()
	lw := splitShellLine(c.Line)
	if len(lw.words) == 0 {
		return nil // not even the program's name
	}
	comp := &completer{root: kctx.Model.Node, cwd: e.cwd}
	cands := comp.complete(lw.words[1:], lw.cur)
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	cur := ""
	if len(c.Cur) > 0 {
		cur = c.Cur[0]
	}
	if c.Shell == "bash" {
		// bash gets COMP_WORDBREAKS: readline replaces the text after the
		// last of them, which COMP_WORDS does not always say (after a
		// ":", its current word is ":" but readline's is empty).
		// Inside quotes, it replaces all that follows the quote.
		if lw.quote != 0 {
			cur = lw.rawCur[lw.quoteAt+1:]
		} else {
			cur = c.Line[strings.LastIndexAny(c.Line, cur+" \t\n")+1:]
		}
	}
	if c.Shell == "bash" {
		var lines []string
		for _, cand := range cands {
			if s, ok := lw.bashReplacement(cand, cur); ok {
				lines = append(lines, s)
			}
		}
		// Inside quotes, readline closes the quote after the only match,
		// which would end a query expression half-way: a second match
		// that differs only by a trailing blank keeps it open.
		if len(lines) == 1 && lw.quote != 0 {
			lines = append(lines, lines[0]+" ")
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		return nil
	}
	if c.Shell == "fish" && len(cands) == 1 && lw.quote != 0 {
		// fish too closes the quote after the only match (see bash above).
		cands = append(cands, cands[0]+" ")
	}
	for _, cand := range cands {
		switch c.Shell {
		case "zsh":
			// zsh quotes what it inserts itself, but its word may be
			// only the end of ours (inside quotes it splits at blanks).
			if strings.HasSuffix(lw.cur, cur) && strings.HasPrefix(cand, lw.cur) {
				cand = cand[len(lw.cur)-len(cur):]
			}
			// A query expression is listed by its last word, after a tab.
			if d := lastQueryWord(cand); lw.quote != 0 && d != cand {
				cand += "\t" + d
			}
			fmt.Fprintln(w, cand)
		default:
			fmt.Fprintln(w, cand)
		}
	}
	return nil
}

// shellLine is a command line up to the cursor, split into words as a
// POSIX shell splits it.
type shellLine struct {
	words  []string // every word before the one under the cursor, unquoted
	cur    string   // the word under the cursor, unquoted ("" after a blank)
	rawCur string   // the same as typed, quotes and backslashes included
	quote  byte     // the quote still open at the cursor: 0, '\'' or '"'
	// quoteAt is where in rawCur that quote opened.
	quoteAt int
}

func splitShellLine(line string) shellLine {
	var sl shellLine
	var word strings.Builder
	inWord, start, quoteAt := false, 0, 0
	var quote byte
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				word.WriteByte(ch)
			}
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0:
				i++
				word.WriteByte(line[i])
			default:
				word.WriteByte(ch)
			}
		case ch == ';' || ch == '&' || ch == '|':
			// A new command starts: complete what follows.
			sl.words, inWord = nil, false
			word.Reset()
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				sl.words = append(sl.words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			if !inWord {
				inWord, start = true, i
			}
			switch ch {
			case '\'', '"':
				quote, quoteAt = ch, i
			case '\\':
				if i+1 < len(line) {
					i++
					word.WriteByte(line[i])
				}
			default:
				word.WriteByte(ch)
			}
		}
	}
	if inWord {
		sl.cur, sl.rawCur, sl.quote, sl.quoteAt = word.String(), line[start:], quote, quoteAt-start
	}
	if !inWord && len(sl.words) == 0 {
		return sl
	}
	// The program's name is a word even while it is being typed.
	if inWord && len(sl.words) == 0 {
		sl.words = []string{sl.cur}
		sl.cur, sl.rawCur = "", ""
	}
	return sl
}

// bashReplacement turns a candidate for the whole current word into what
// bash puts in place of cur: bash splits words at its COMP_WORDBREAKS too
// (":", "=", "(" among them) and replaces only the last piece, and it
// inserts a candidate as typed, so the quoting in force is carried on.
// Every candidate but those meant to be continued (a package "//a/",
// "//a:", a flag "--x=", a function "deps(") ends with the blank bash
// would otherwise add, as the script turns bash's own off.
func (sl shellLine) bashReplacement(cand, cur string) (string, bool) {
	if !strings.HasPrefix(cand, sl.cur) {
		return "", false
	}
	raw := sl.rawCur + quoteFor(cand[len(sl.cur):], sl.quote)
	if !continued(cand) && sl.quote == 0 {
		// Inside quotes (a query expression) the word goes on.
		raw += " "
	}
	// cur ends at the cursor, or goes on past it: keep what is before it.
	for k := len(cur); k >= 0; k-- {
		if strings.HasSuffix(sl.rawCur, cur[:k]) {
			return raw[len(sl.rawCur)-k:], true
		}
	}
	return raw, true
}

// lastQueryWord is the last word of a query expression, with the
// parenthesis of a function: what a list of candidates shows of each.
func lastQueryWord(expr string) string {
	body := strings.TrimSuffix(expr, "(")
	i := len(body)
	for i > 0 && isQueryWordByte(body[i-1]) {
		i--
	}
	return expr[i:]
}

// continued says whether a candidate is a beginning the user goes on
// typing after, so no blank follows it.
func continued(cand string) bool {
	return cand == "" || strings.ContainsAny(cand[len(cand)-1:], "/:=(")
}

// quoteFor escapes s for the quoting in force where it is inserted.
func quoteFor(s string, quote byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch quote {
		case '\'':
			if ch == '\'' {
				b.WriteString(`'\''`)
				continue
			}
		case '"':
			if strings.IndexByte("\"\\$`", ch) >= 0 {
				b.WriteByte('\\')
			}
		default:
			if strings.IndexByte(" \t\n'\"\\$&;|<>()*?[]{}!#`", ch) >= 0 {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// completer finds the candidates for a word of a hepbuild command line.
type completer struct {
	root *kong.Node
	cwd  string
	// outputBase, when set, overrides where the target index lives (tests).
	outputBase string
}

// complete returns the candidates for cur, given the words before it
// (without the program's name), sorted and without duplicates.
func (c *completer) complete(words []string, cur string) []string {
	cmd := (*kong.Node)(nil)
	dir := ""
	positional := 0
	var expecting *kong.Flag
	dashdash := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		node := c.nodeOr(cmd)
		switch {
		case dashdash:
			positional++
		case w == "--":
			dashdash = true
		case strings.HasPrefix(w, "--"):
			name, value, hasValue := strings.Cut(w[2:], "=")
			f := c.flag(node, name)
			if f == nil || !takesValue(f) || hasValue {
				if f != nil && f.Name == "directory" {
					dir = value
				}
				continue
			}
			if i+1 == len(words) {
				expecting = f
				continue
			}
			i++
			if f.Name == "directory" {
				dir = words[i]
			}
		case strings.HasPrefix(w, "-") && len(w) > 1:
			for j := 1; j < len(w); j++ {
				f := c.short(node, rune(w[j]))
				if f == nil || !takesValue(f) {
					continue
				}
				value := w[j+1:]
				if value == "" {
					if i+1 == len(words) {
						expecting = f
						break
					}
					i++
					value = words[i]
				}
				if f.Name == "directory" {
					dir = value
				}
				break
			}
		default:
			if cmd == nil {
				if n := c.command(w); n != nil {
					cmd = n
					continue
				}
				cmd = c.command("build")
			}
			positional++
		}
	}
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(c.cwd, dir)
	} else if dir == "" {
		dir = c.cwd
	}
	node := c.nodeOr(cmd)
	var cands []string
	switch {
	case expecting != nil:
		cands = c.flagValues(expecting, "", cur, dir)
	case !dashdash && strings.HasPrefix(cur, "--") && strings.Contains(cur, "="):
		name, value, _ := strings.Cut(cur[2:], "=")
		if f := c.flag(node, name); f != nil {
			cands = c.flagValues(f, "--"+name+"=", value, dir)
		}
	case !dashdash && strings.HasPrefix(cur, "-"):
		cands = c.flags(node, cur)
	case cmd == nil:
		for _, n := range c.root.Children {
			if !n.Hidden && strings.HasPrefix(n.Name, cur) {
				cands = append(cands, n.Name)
			}
		}
		if len(cands) == 0 || strings.HasPrefix(cur, "/") || strings.HasPrefix(cur, ":") {
			cands = append(cands, c.labels(dir, cur, targetKinds)...)
		}
	default:
		cands = c.arguments(cmd.Name, positional, dashdash, cur, dir)
	}
	sort.Strings(cands)
	return slices.Compact(cands)
}

func (c *completer) nodeOr(cmd *kong.Node) *kong.Node {
	if cmd == nil {
		// Before a command word, the flags are those of the default build.
		if b := c.command("build"); b != nil {
			return b
		}
		return c.root
	}
	return cmd
}

func (c *completer) command(name string) *kong.Node {
	for _, n := range c.root.Children {
		if n.Name == name && !n.Hidden {
			return n
		}
	}
	return nil
}

func takesValue(f *kong.Flag) bool { return !f.IsBool() && !f.IsCounter() }

func (c *completer) flag(node *kong.Node, name string) *kong.Flag {
	for _, group := range node.AllFlags(true) {
		for _, f := range group {
			if f.Name == name || (f.Tag.Negatable != "" && name == "no-"+f.Name) {
				return f
			}
		}
	}
	return nil
}

func (c *completer) short(node *kong.Node, r rune) *kong.Flag {
	for _, group := range node.AllFlags(true) {
		for _, f := range group {
			if f.Short == r {
				return f
			}
		}
	}
	return nil
}

// flags lists the flags of the command: "--name" (and "--no-name" for a
// negatable one; "--name=" for one that takes a value), and "-x" for the
// short ones when no second dash was typed.
func (c *completer) flags(node *kong.Node, cur string) []string {
	var out []string
	add := func(s string) {
		if strings.HasPrefix(s, cur) {
			out = append(out, s)
		}
	}
	for _, group := range node.AllFlags(true) {
		for _, f := range group {
			long := "--" + f.Name
			if takesValue(f) {
				long += "="
			}
			add(long)
			if f.Tag.Negatable != "" {
				add("--no-" + f.Name)
			}
			if f.Short != 0 && !strings.HasPrefix(cur, "--") {
				add("-" + string(f.Short))
			}
		}
	}
	return out
}

// flagValues lists the values of a flag that start with value, each after
// prefix: the choices of an enum, paths for a flag that names a file or a
// folder, the profiles of .hepbuildrc for --config.
func (c *completer) flagValues(f *kong.Flag, prefix, value, dir string) []string {
	var vals []string
	switch {
	case f.Enum != "":
		for _, v := range f.EnumSlice() {
			if v != "" && strings.HasPrefix(v, value) {
				vals = append(vals, v)
			}
		}
	case f.Name == "config":
		vals = rcProfiles(dir, value)
	case f.PlaceHolder == "DIR":
		vals = pathCandidates(c.cwd, value, true)
	case f.PlaceHolder == "FILE" || f.PlaceHolder == "PATH":
		vals = pathCandidates(c.cwd, value, false)
	}
	for i := range vals {
		vals[i] = prefix + vals[i]
	}
	return vals
}

// infoKeys are the items of hepbuild info (a test holds them to its output).
var infoKeys = []string{"workspace", "workspace_name", "output_base", "output_path", "disk_cache", "cache_tiers", "sandbox", "resource_limits", "batch_systems", "cores"}

// arguments completes the positional arguments of a command.
func (c *completer) arguments(cmd string, positional int, dashdash bool, cur, dir string) []string {
	pick := func(words []string) []string {
		var out []string
		for _, w := range words {
			if strings.HasPrefix(w, cur) {
				out = append(out, w)
			}
		}
		return out
	}
	switch cmd {
	case "build", "status", "explain", "clean", "fetch", "export":
		return c.labels(dir, cur, targetKinds)
	case "run":
		if positional == 0 && !dashdash {
			return c.labels(dir, cur, ruleKinds)
		}
		return pathCandidates(c.cwd, cur, false)
	case "query", "aquery":
		return c.queryExpression(dir, cur)
	case "help":
		var words []string
		for t := range helpTopics {
			words = append(words, t)
		}
		for _, n := range c.root.Children {
			if !n.Hidden {
				words = append(words, n.Name)
			}
		}
		return pick(words)
	case "info":
		return pick(infoKeys)
	case "completion":
		return pick([]string{"bash", "zsh", "fish"})
	case "fmt":
		return pathCandidates(c.cwd, cur, false)
	case "init":
		return pathCandidates(c.cwd, cur, true)
	}
	return nil
}

// queryExpression completes the last word of a query expression being
// typed: a function name (with its parenthesis) or a label; what comes
// before the word is kept.
func (c *completer) queryExpression(dir, cur string) []string {
	start := len(cur)
	for start > 0 && isQueryWordByte(cur[start-1]) {
		start--
	}
	before, word := cur[:start], cur[start:]
	var out []string
	if !strings.HasPrefix(word, "/") && !strings.HasPrefix(word, ":") && !strings.HasPrefix(word, "$") {
		for _, fn := range query.Functions() {
			if strings.HasPrefix(fn, word) {
				out = append(out, fn+"(")
			}
		}
	}
	if word != "" || len(out) == 0 || strings.TrimSpace(before) != "" {
		out = append(out, c.labels(dir, word, allKinds)...)
	} else {
		out = append(out, "//")
	}
	for i := range out {
		out[i] = before + out[i]
	}
	return out
}

// isQueryWordByte reports whether b may be part of a word of the query
// language (BUILD.md, "Syntax").
func isQueryWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("*/@.-_:$~[]", b) >= 0
}

// pathCandidates completes a file or folder name relative to cwd: folders end in
// "/" so that the user can go on into them.
func pathCandidates(cwd, value string, dirsOnly bool) []string {
	d, base := filepath.Split(value)
	abs := d
	if !filepath.IsAbs(d) {
		abs = filepath.Join(cwd, d)
	}
	if strings.HasPrefix(value, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			abs = filepath.Join(h, d[2:])
		}
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(abs, name)); err == nil {
				isDir = fi.IsDir()
			}
		}
		switch {
		case isDir:
			out = append(out, d+name+"/")
		case !dirsOnly:
			out = append(out, d+name)
		}
	}
	return out
}

// rcProfiles lists the NAMEs of "COMMAND:NAME" lines in the .hepbuildrc
// files that apply in dir.
func rcProfiles(dir, value string) []string {
	var files []string
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".hepbuildrc"))
	}
	if root, _, err := findWorkspaceQuietly(dir); err == nil {
		files = append(files, filepath.Join(root, ".hepbuildrc"))
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			if _, name, ok := strings.Cut(fields[0], ":"); ok && name != "" && strings.HasPrefix(name, value) {
				out = append(out, name)
			}
		}
	}
	return out
}

// completionScripts are what `hepbuild completion SHELL` prints. Each
// hands the line up to the cursor to `hepbuild __complete` and offers what
// it prints; errors go nowhere, so nothing lands on the user's prompt.
var completionScripts = map[string]string{
	"bash": `# bash completion for hepbuild. Install: source <(hepbuild completion bash)
_hepbuild_complete() {
    COMPREPLY=()
    # Candidates end with the blank to insert, or none when the word goes on
    # (a package "//a:", a folder, "--flag=", "deps("): bash adds none itself.
    mapfile -t COMPREPLY < <(command hepbuild __complete bash "${COMP_LINE:0:COMP_POINT}" "$COMP_WORDBREAKS" 2>/dev/null)
}
complete -o nospace -o noquote -F _hepbuild_complete hepbuild
`,
	"zsh": `#compdef hepbuild
# zsh completion for hepbuild. Install: hepbuild completion zsh > ~/.zfunc/_hepbuild
# with fpath+=(~/.zfunc) before compinit in ~/.zshrc, or source <(hepbuild completion zsh)
# after compinit.
_hepbuild() {
    local -a goon goonshown ends endsshown
    local c
    # The words as typed, and the current one up to the cursor: zsh takes
    # the quotes out of LBUFFER, and inside quotes PREFIX is all after one.
    local line="${(j: :)words[1,CURRENT-1]} ${QIPREFIX}${PREFIX}"
    # Each line is a candidate, and after a tab what a list shows of it.
    for c in ${(f)"$(command hepbuild __complete zsh "$line" "$PREFIX" 2>/dev/null)"}; do
        if [[ ${c%%$'\t'*} == *[/:=\(] ]]; then
            goon+=("${c%%$'\t'*}"); goonshown+=("${c#*$'\t'}")
        else
            ends+=("${c%%$'\t'*}"); endsshown+=("${c#*$'\t'}")
        fi
    done
    (( $#goon )) && compadd -S '' -d goonshown -- "${goon[@]}"
    if [[ -n $compstate[quote] ]]; then
        # Inside quotes (a query expression) the word goes on: no
        # closing quote, no blank.
        (( $#ends )) && compadd -S '' -d endsshown -- "${ends[@]}"
    else
        (( $#ends )) && compadd -d endsshown -- "${ends[@]}"
    fi
    return 0
}
if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _hepbuild "$@"
else
    compdef _hepbuild hepbuild
fi
`,
	"fish": `# fish completion for hepbuild. Install:
#   hepbuild completion fish > ~/.config/fish/completions/hepbuild.fish
complete -c hepbuild -e
complete -c hepbuild -f -a '(command hepbuild __complete fish (commandline -cp) (commandline -ct) 2>/dev/null)'
`,
}
