package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	hstarlark "github.com/hepbuild/hepbuild/starlark"
)

// commands are the subcommand names, for finding where flags from .hepbuildrc go.
var commands = map[string]bool{"build": true, "query": true, "aquery": true, "status": true, "explain": true, "clean": true,
	"run": true, "fmt": true, "lint": true, "serve": true, "worker": true, "completion": true, "info": true, "version": true, "init": true, "help": true}

// expandConfig inserts the flags of .hepbuildrc files (home folder, then
// workspace; later ones win) for the command being run, like .bazelrc: lines
// "COMMAND FLAGS...", "COMMAND:NAME FLAGS..." applied with --config NAME, and
// "common FLAGS..." for every command.
//
// accepts reports whether a command has a long flag (without the dashes);
// flags of "common" lines that the command does not have are left out, as
// in Bazel, so `common --sandbox=none` does not break `hepbuild query`.
// Nil accepts everything.
//
// from lists where each inserted flag came from, so that an error about
// its value can name the file and line.
func expandConfig(args []string, cwd string, accepts *flagModel) (expanded []string, from []rcFlag, err error) {
	cmdIdx, cmd := -1, "build"
	var configs []string
	dir := cwd
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			i = len(args)
		case a == "--config" || a == "-C" || a == "--directory":
			if i+1 < len(args) {
				if a == "--config" {
					configs = append(configs, args[i+1])
				} else {
					dir = resolveDir(cwd, args[i+1])
				}
				i++
			}
		case strings.HasPrefix(a, "--config="):
			configs = append(configs, strings.TrimPrefix(a, "--config="))
		case strings.HasPrefix(a, "--directory="):
			dir = resolveDir(cwd, strings.TrimPrefix(a, "--directory="))
		case !strings.HasPrefix(a, "-") && cmdIdx < 0:
			cmdIdx = i
			if commands[a] {
				cmd = a
			}
		}
	}
	if cmd == "worker" || (cmdIdx >= 0 && args[cmdIdx] == "__complete") {
		// A batch job's worker gets everything from its arguments: a
		// .hepbuildrc in the node's home folder (common --disk-cache=...)
		// must not change what the submitting build asked for. Completion
		// gets a command line to look at, not flags to apply.
		return args, nil, nil
	}
	var rcFiles []string
	if home, err := os.UserHomeDir(); err == nil {
		rcFiles = append(rcFiles, filepath.Join(home, ".hepbuildrc"))
	}
	if root, _, err := hstarlark.FindWorkspace(dir); err == nil {
		rcFiles = append(rcFiles, filepath.Join(root, ".hepbuildrc"))
	}
	var extra []string
	found := map[string]bool{}
	for _, f := range rcFiles {
		flags, err := readRC(f, cmd, configs, found, accepts)
		if err != nil {
			return nil, nil, err
		}
		for _, fl := range flags {
			extra = append(extra, fl.text)
		}
		from = append(from, flags...)
	}
	for _, c := range configs {
		if !found[c] {
			return nil, nil, fmt.Errorf("--config %s: no line %q or \"common:%s\" in .hepbuildrc (looked in %s)", c, cmd+":"+c, c, strings.Join(rcFiles, ", "))
		}
	}
	if len(extra) == 0 {
		return args, nil, nil
	}
	// Flags go right after the command word, so that command-line flags,
	// which come later, win.
	out := make([]string, 0, len(args)+len(extra))
	if cmdIdx >= 0 && commands[args[cmdIdx]] {
		out = append(out, args[:cmdIdx+1]...)
		out = append(out, extra...)
		out = append(out, args[cmdIdx+1:]...)
	} else {
		out = append(out, extra...)
		out = append(out, args...)
	}
	return out, from, nil
}

// rcOrigin returns where in a .hepbuildrc the flag that msg complains
// about was set ("FILE:LINE"), or "" when it came from the command line.
// msg names the flag first, as kong's errors and hepbuild's own do
// ("--jobs: ...", "--output-base DIR: ..."); when the flag is set both in a
// file and on the command line, the value quoted in msg tells which.
func rcOrigin(msg string, shortNames map[string]string, from []rcFlag) string {
	for i, f := range from {
		var name, value string
		hasValue := false
		switch {
		case strings.HasPrefix(f.text, "--"):
			name, value, hasValue = strings.Cut(f.text[2:], "=")
		case strings.HasPrefix(f.text, "-") && len(f.text) >= 2:
			name, value, hasValue = shortNames[f.text[1:2]], f.text[2:], len(f.text) > 2
		default:
			continue
		}
		if !hasValue && i+1 < len(from) && !strings.HasPrefix(from[i+1].text, "-") {
			value, hasValue = from[i+1].text, true
		}
		if name == "" || !strings.HasPrefix(msg, "--"+name) {
			continue
		}
		if rest := msg[len("--"+name):]; rest != "" && !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, " ") {
			continue // --cache is not --cache-max-size
		}
		if hasValue && value != "" && !strings.Contains(msg, value) {
			continue
		}
		return f.where
	}
	return ""
}

func resolveDir(cwd, d string) string {
	if filepath.IsAbs(d) {
		return d
	}
	return filepath.Join(cwd, d)
}

// rcFlag is one word of a .hepbuildrc line and where it is.
type rcFlag struct {
	text  string // as written: "--jobs=4", "-j", "4"
	where string // "FILE:LINE"
}

func readRC(path, cmd string, configs []string, found map[string]bool, accepts *flagModel) ([]rcFlag, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var base, named []rcFlag
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields, err := rcWords(line)
		if err != nil {
			// Not quoted: the line may hold a credential.
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		head, name, _ := strings.Cut(fields[0], ":")
		if head != "common" && !commands[head] {
			return nil, fmt.Errorf("%s:%d: unknown command %q (want common or one of the hepbuild commands)", path, n, head)
		}
		// run builds first: it takes build's lines too, as in Bazel.
		inherited := head == "build" && cmd == "run"
		if head != "common" && head != cmd && !inherited {
			continue
		}
		flags := fields[1:]
		if inherited {
			flags = slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == "--nobuild" })
		}
		if accepts != nil {
			if i := strayWord(flags, accepts); i >= 0 {
				// Not quoted: most likely the rest of a value with a
				// space, such as a header's token.
				return nil, fmt.Errorf("%s:%d: word %d is neither a flag nor a flag's value; quote a value that holds a space (--remote-header=\"authorization=Bearer @FILE\")", path, n, i+2)
			}
		}
		if head == "common" && accepts != nil {
			flags = commonFlags(flags, cmd, accepts)
		}
		words := make([]rcFlag, len(flags))
		for i, f := range flags {
			words[i] = rcFlag{f, fmt.Sprintf("%s:%d", path, n)}
		}
		if name == "" {
			base = append(base, words...)
			continue
		}
		for _, c := range configs {
			if c == name {
				found[c] = true
				named = append(named, words...)
			}
		}
	}
	return append(base, named...), sc.Err()
}

// rcWords splits a .hepbuildrc line into words as a shell would: at
// blanks, except inside '...' or "..." or after a backslash (inside "...",
// a backslash escapes only " and \).
func rcWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range line {
		switch {
		case escaped:
			if quote == '"' && r != '"' && r != '\\' {
				w.WriteRune('\\')
			}
			w.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("a quote is not closed")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// strayWord returns the index of the first of an rc line's words that is
// neither a flag nor the value of the flag before it, or -1. Such a word
// would become a target of the command.
func strayWord(flags []string, fm *flagModel) int {
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		var key string
		switch {
		case strings.HasPrefix(f, "--"):
			name, _, eq := strings.Cut(f[2:], "=")
			if eq {
				continue
			}
			key = name
		case strings.HasPrefix(f, "-") && len(f) >= 2:
			if len(f) > 2 {
				continue
			}
			key = f
		default:
			return i
		}
		if fm.value[key] && i+1 < len(flags) {
			i++ // its value, whatever it looks like
		}
	}
	return -1
}

// flagModel says which flags each command has; see flagAccepter.
type flagModel struct {
	has   map[string]map[string]bool // command → long names and "-x" short flags
	value map[string]bool            // flag (of any command) → takes a value
}

// commonFlags keeps the flags of a "common" line that cmd has, dropping
// the others with their values (attached, or the next word).
func commonFlags(flags []string, cmd string, fm *flagModel) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		var key string
		attached := false
		switch {
		case strings.HasPrefix(f, "--"):
			name, _, eq := strings.Cut(f[2:], "=")
			if fm.has[cmd][name] { // negatable flags are listed as no-NAME too
				out = append(out, f)
				continue
			}
			key, attached = name, eq
		case strings.HasPrefix(f, "-") && len(f) >= 2:
			key, attached = f[:2], len(f) > 2
			if fm.has[cmd][key] {
				out = append(out, f)
				continue
			}
		default:
			out = append(out, f) // a value of a kept flag
			continue
		}
		if !attached && fm.value[key] && i+1 < len(flags) && !strings.HasPrefix(flags[i+1], "-") {
			i++ // the dropped flag's value
		}
	}
	return out
}
