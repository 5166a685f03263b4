package shell

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAccepts(t *testing.T) {
	w := func(path string) Redirect { return Redirect{FD: 1, Op: Truncate, Path: path} }
	for cmd, want := range map[string]Pipeline{
		`sed 's/$/ s0/' raw/d0_f0.txt > 'hepbuild-out/out/sel/d0_f0_s0.txt'`: {{
			Argv: []string{"sed", "s/$/ s0/", "raw/d0_f0.txt"}, Redirects: []Redirect{w("hepbuild-out/out/sel/d0_f0_s0.txt")}}},
		`cat a b | wc -l > n.txt`:          {{Argv: []string{"cat", "a", "b"}}, {Argv: []string{"wc", "-l"}, Redirects: []Redirect{w("n.txt")}}},
		"\n  ./fit --mu=1.5 -o out.root\n": {{Argv: []string{"./fit", "--mu=1.5", "-o", "out.root"}}},
		`prog>out 2>&1 <in`:                {{Argv: []string{"prog"}, Redirects: []Redirect{w("out"), {FD: 2, Op: Dup, From: 1}, {FD: 0, Op: Read, Path: "in"}}}},
		`prog 2>>log >&2`:                  {{Argv: []string{"prog"}, Redirects: []Redirect{{FD: 2, Op: Append, Path: "log"}, {FD: 1, Op: Dup, From: 2}}}},
		`a2>x`:                             {{Argv: []string{"a2"}, Redirects: []Redirect{w("x")}}},
		`prog '2'>x`:                       {{Argv: []string{"prog", "2"}, Redirects: []Redirect{w("x")}}},
		`prog "a b" '' x"y"'z'`:            {{Argv: []string{"prog", "a b", "", "xyz"}}},
		`python3 -c 'import sys; print(sys.argv)' a=b`: {{Argv: []string{"python3", "-c", "import sys; print(sys.argv)", "a=b"}}},
		`tr a-z A-Z<in|sort|uniq -c>out`: {{Argv: []string{"tr", "a-z", "A-Z"}, Redirects: []Redirect{{FD: 0, Op: Read, Path: "in"}}},
			{Argv: []string{"sort"}}, {Argv: []string{"uniq", "-c"}, Redirects: []Redirect{w("out")}}},
		"prog \n": {{Argv: []string{"prog"}}},
	} {
		got, ok := Parse(cmd)
		if !ok {
			t.Errorf("Parse(%q) refused", cmd)
			continue
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("Parse(%q): -want +got\n%s", cmd, d)
		}
		// The pipeline's own text parses to itself.
		again, ok := Parse(got.String())
		if !ok || cmp.Diff(got, again) != "" {
			t.Errorf("Parse(%q).String() = %q does not parse back", cmd, got.String())
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, cmd := range []string{
		"", "  \n", "|", "a |", "| a", "a || b", "a && b", "a |& b", "a; b", "a & b", "a\nb", "a\n\n", "a\n ",
		"echo hi", "cd x", "test -f a", "[ -f a ]", "exec prog", "time prog", "! prog", "{ prog; }", "(prog)",
		"A=1 prog", "./a=b", "'prog' x", `"prog"`,
		"prog $HOME", "prog ${X}", "prog `date`", "prog $(date)", `prog "$X"`, `prog "a\"b"`, `prog "a!"`,
		"prog *.txt", "prog a?", "prog [ab]", "prog {a,b}", "prog ~", "prog ~/x", "prog #c", "prog a\\ b",
		"prog 'unterminated", `prog "unterminated`, "prog >", "prog > ''", "prog >|x", "prog <>x", "prog <<EOF",
		"prog <<<x", "prog &>x", "prog >&x", "prog >&-", "prog 3>x", "prog 10>x", "prog 2>&3", "prog 2>&1x",
		"prog é", "prog\r", "> out", "a|b|c|d|e|f|g|h|i", "%1", "%prog > x", "prog 'a\x00b'", "a | b \"\x00\"",
	} {
		if p, ok := Parse(cmd); ok {
			t.Errorf("Parse(%q) = %#v, want refused", cmd, p)
		}
	}
}

func TestForks(t *testing.T) {
	for cmd, want := range map[string]bool{"prog a": false, "prog > x": true, "a | b": true, "prog 2>&1": true} {
		p, ok := Parse(cmd)
		if !ok || p.Forks() != want {
			t.Errorf("Parse(%q).Forks() = %v, want %v", cmd, p.Forks(), want)
		}
	}
}

func TestTaskCommand(t *testing.T) {
	cmd, ok := TaskCommand(TaskArgv("cat a > b"))
	if !ok || cmd != "cat a > b" {
		t.Errorf("TaskCommand(TaskArgv) = %q, %v", cmd, ok)
	}
	for _, argv := range [][]string{{"/bin/bash", "-c", "cat a"}, {"/bin/sh", "-c", TaskPrefix + "a"}, append(TaskArgv("a"), "x")} {
		if _, ok := TaskCommand(argv); ok {
			t.Errorf("TaskCommand(%q) accepted", argv)
		}
	}
}
