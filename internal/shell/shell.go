// Package shell recognises the task commands that bash would run as a single
// pipeline of plain programs, so that hepbuild can start those programs
// itself instead of starting bash to start them.
//
// A task's command runs as `/bin/bash -c 'set -euo pipefail\nCMD'` (see
// TaskArgv). Nearly every command of an analysis is one line such as
// `sed 's/$/ up/' in.txt > out.txt` or `cat a b | wc -l > n.txt`: no
// variable, no glob, no builtin, nothing for bash to do but open the
// redirections, connect the pipes and start the programs. Starting bash
// first costs more than such a program's own run (bash starts slower than
// most tools, and with a redirection it forks again rather than executing
// the program in its place). Parse accepts exactly those commands and
// refuses everything else, which then runs in bash as written: a command
// is taken over only when what it does cannot depend on the shell.
//
// What Parse accepts, and nothing else:
//   - one line: words and the operators | < > >> n< n> n>> n>&m (n, m in
//     0..2) between blanks, around it blanks and newlines;
//   - words made of letters, digits and _ - . / , : + @ % ^ =, and of
//     single-quoted strings, and of double-quoted strings without $ ` \ !;
//   - a command word that is no bash keyword or builtin, holds no = or
//     quote and does not start with % (a job); a redirection's word that
//     is not empty;
//   - at most MaxStages commands, each with at least one word.
//
// Running the result as bash would (environment, path search, exit status
// under pipefail) is the caller's part: see package sandbox.
package shell

import (
	"strings"
)

// TaskPrefix starts every task's command, so that a failing step fails the
// task: errexit, nounset and pipefail.
const TaskPrefix = "set -euo pipefail\n"

// Bash is the shell tasks run in.
const Bash = "/bin/bash"

// TaskArgv is the command line of a task whose command, with its
// substitutions made, is cmd.
func TaskArgv(cmd string) []string {
	return []string{Bash, "-c", TaskPrefix + cmd}
}

// TaskCommand returns the command of a task's command line (one made by
// TaskArgv), without the prefix.
func TaskCommand(argv []string) (string, bool) {
	if len(argv) != 3 || argv[0] != Bash || argv[1] != "-c" || !strings.HasPrefix(argv[2], TaskPrefix) {
		return "", false
	}
	return argv[2][len(TaskPrefix):], true
}

// MaxStages bounds the commands of a pipeline Parse accepts.
const MaxStages = 8

// Op is what a redirection does.
type Op uint8

const (
	// Read opens Path for reading (n<word).
	Read Op = iota + 1
	// Truncate creates or truncates Path for writing (n>word).
	Truncate
	// Append creates Path or opens it to append (n>>word).
	Append
	// Dup makes FD a copy of From (n>&m).
	Dup
)

// Redirect is one redirection, applied in order after the pipe's.
type Redirect struct {
	FD   int
	Op   Op
	Path string
	From int
}

// Stage is one command of a pipeline: the program's arguments, Argv[0]
// being its name as written (a path when it holds a slash, else looked up
// on PATH), and its redirections in the order written.
type Stage struct {
	Argv      []string
	Redirects []Redirect
}

// Pipeline is the commands joined by |, the output of each the input of
// the next.
type Pipeline []Stage

// Forks says whether bash would start the pipeline's programs in processes
// of its own rather than executing the only one in its place: it does with
// a pipe or a redirection. The difference shows in SHLVL, which a program
// that bash executed in its place sees one lower, and in how a program
// killed by a signal is reported.
func (p Pipeline) Forks() bool {
	return len(p) > 1 || len(p[0].Redirects) > 0
}

// String is the pipeline as bash would read it, quoted where needed.
func (p Pipeline) String() string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 {
			b.WriteString(" | ")
		}
		for j, a := range s.Argv {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(Quote(a))
		}
		for _, r := range s.Redirects {
			b.WriteByte(' ')
			switch r.Op {
			case Read:
				if r.FD != 0 {
					b.WriteByte(byte('0' + r.FD))
				}
				b.WriteString("<" + Quote(r.Path))
			case Truncate, Append:
				if r.FD != 1 {
					b.WriteByte(byte('0' + r.FD))
				}
				b.WriteByte('>')
				if r.Op == Append {
					b.WriteByte('>')
				}
				b.WriteString(Quote(r.Path))
			case Dup:
				b.WriteString(string(rune('0'+r.FD)) + ">&" + string(rune('0'+r.From)))
			}
		}
	}
	return b.String()
}

// Quote quotes s for bash, when it needs quotes.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return r > 0x7f || !plain[r] }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// plain are the characters that stand for themselves in a word outside
// quotes. = is among them, but not in a command word (an assignment).
var plain = func() (t [128]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-./,:+@%^=" {
		t[c] = true
	}
	return t
}()

// notCommands are bash's keywords and builtins (bash 5): a command word
// among them is not a program.
var notCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		if then else elif fi case esac for select while until do done in function time { } ! [[ ]] coproc
		. : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare
		dirs disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill
		let local logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt
		source suspend test times trap true type typeset ulimit umask unalias unset wait`) {
		m[w] = true
	}
	return m
}()

// Parse returns the pipeline cmd stands for, or false when cmd uses
// anything beyond what the package comment lists.
func Parse(cmd string) (Pipeline, bool) {
	// Blank lines before the command are empty commands, and one newline
	// may end it; anything after that newline is another command, and
	// then bash forks rather than executing the last program in its place.
	// A NUL cannot reach bash (an argument ends at it): its command line
	// does not start, which no pipeline imitates.
	if strings.IndexByte(cmd, 0) >= 0 {
		return nil, false
	}
	s := strings.TrimSuffix(strings.TrimLeft(cmd, " \t\n"), "\n")
	p := parser{s: strings.TrimRight(s, " \t")}
	if p.s == "" {
		return nil, false
	}
	pl := Pipeline{}
	for {
		st, ok := p.stage()
		if !ok {
			return nil, false
		}
		pl = append(pl, st)
		if p.i == len(p.s) {
			return pl, true
		}
		// stage stops only at the end or at a lone |.
		p.i++
		if len(pl) == MaxStages {
			return nil, false
		}
	}
}

type parser struct {
	s string
	i int
}

// stage reads one command up to the end or a |, which it leaves.
func (p *parser) stage() (Stage, bool) {
	var st Stage
	for {
		p.blanks()
		if p.i == len(p.s) {
			break
		}
		c := p.s[p.i]
		if c == '|' {
			if p.i+1 < len(p.s) && (p.s[p.i+1] == '|' || p.s[p.i+1] == '&') {
				return st, false // || and |& are not pipes
			}
			break
		}
		if c == '<' || c == '>' {
			r, ok := p.redirect(-1)
			if !ok {
				return st, false
			}
			st.Redirects = append(st.Redirects, r)
			continue
		}
		w, quoted, ok := p.word()
		if !ok {
			return st, false
		}
		// Digits right before < or > are the descriptor redirected.
		if !quoted && p.i < len(p.s) && (p.s[p.i] == '<' || p.s[p.i] == '>') && strings.Trim(w, "0123456789") == "" {
			if len(w) != 1 || w[0] > '2' {
				return st, false
			}
			r, ok := p.redirect(int(w[0] - '0'))
			if !ok {
				return st, false
			}
			st.Redirects = append(st.Redirects, r)
			continue
		}
		// A command word starting with % is a job for bash (fg %1).
		if len(st.Argv) == 0 && (quoted || strings.Contains(w, "=") || notCommands[w] || strings.HasPrefix(w, "%")) {
			return st, false
		}
		st.Argv = append(st.Argv, w)
	}
	return st, len(st.Argv) > 0
}

func (p *parser) blanks() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// word reads a word up to a blank, an operator or the end; quoted says it
// had quotes (a quoted word is never a descriptor, a keyword or an
// assignment).
func (p *parser) word() (w string, quoted, ok bool) {
	var b strings.Builder
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '|' || c == '<' || c == '>':
			return b.String(), quoted, p.i > start
		case c == '\'':
			end := strings.IndexByte(p.s[p.i+1:], '\'')
			if end < 0 {
				return "", false, false
			}
			b.WriteString(p.s[p.i+1 : p.i+1+end])
			p.i += end + 2
			quoted = true
		case c == '"':
			end := strings.IndexByte(p.s[p.i+1:], '"')
			if end < 0 {
				return "", false, false
			}
			in := p.s[p.i+1 : p.i+1+end]
			if strings.ContainsAny(in, "$`\\!") {
				return "", false, false
			}
			b.WriteString(in)
			p.i += end + 2
			quoted = true
		case c < 0x80 && plain[c]:
			b.WriteByte(c)
			p.i++
		default:
			// $ ` \ ; & ( ) * ? [ ] { } ~ # ! newline, and bytes beyond
			// ASCII, whose meaning depends on the locale.
			return "", false, false
		}
	}
	return b.String(), quoted, p.i > start
}

// redirect reads an operator at p.i and its word; fd is the descriptor
// written before it, -1 for none.
func (p *parser) redirect(fd int) (Redirect, bool) {
	var r Redirect
	switch {
	case strings.HasPrefix(p.s[p.i:], ">>"):
		r.Op, r.FD = Append, 1
		p.i += 2
	case strings.HasPrefix(p.s[p.i:], ">&"), strings.HasPrefix(p.s[p.i:], "<&"):
		r.Op, r.FD = Dup, 1
		if p.s[p.i] == '<' {
			r.FD = 0
		}
		p.i += 2
		if fd >= 0 {
			r.FD = fd
		}
		// Only n>&m with a digit m: >&word is &>word, >&- closes.
		if p.i >= len(p.s) || p.s[p.i] < '0' || p.s[p.i] > '2' {
			return r, false
		}
		r.From = int(p.s[p.i] - '0')
		p.i++
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' && p.s[p.i] != '|' && p.s[p.i] != '<' && p.s[p.i] != '>' {
			return r, false
		}
		return r, true
	case p.s[p.i] == '>':
		r.Op, r.FD = Truncate, 1
		p.i++
		// >| ignores noclobber, <> opens for both, << is a here-document.
		if p.i < len(p.s) && (p.s[p.i] == '|' || p.s[p.i] == '<') {
			return r, false
		}
	default: // <
		r.Op, r.FD = Read, 0
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '<' || p.s[p.i] == '>') {
			return r, false
		}
	}
	if fd >= 0 {
		r.FD = fd
	}
	p.blanks()
	w, _, ok := p.word()
	if !ok || w == "" {
		return r, false
	}
	r.Path = w
	return r, true
}
