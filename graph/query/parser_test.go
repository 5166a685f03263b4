package query

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`//foo:bar`, `//foo:bar`},
		{`"//foo:bar"`, `//foo:bar`},
		{`'//foo:bar'`, `//foo:bar`},
		{`'//foo bar'`, `"//foo bar"`},
		{`'say "x"'`, `'say "x"'`},
		{`"union"`, `"union"`},
		{`"-//foo"`, `"-//foo"`},
		{`"$v"`, `"$v"`},
		{`foo-bar - baz`, `(foo-bar - baz)`},
		{`//... -//data/...`, `(//... - //data/...)`},
		{`deps(//a, 2)`, `deps(//a, 2)`},
		{`deps ( //a )`, `deps(//a)`},
		{`rdeps(//..., //a:b, 0)`, `rdeps(//..., //a:b, 0)`},
		{`a + b - c ^ d`, `(((a + b) - c) ^ d)`},
		{`a union b except c intersect d`, `(((a + b) - c) ^ d)`},
		{`a ^ b + c`, `((a ^ b) + c)`},
		{`a + (b - c)`, `(a + (b - c))`},
		{`let v = deps(a) in $v - b`, `let v = deps(a) in ($v - b)`},
		{`(let v = a in $v) + b`, `((let v = a in $v) + b)`},
		{`let a = x in let b = y in $a ^ $b`, `let a = x in let b = y in ($a ^ $b)`},
		{`kind("source file", //...)`, `kind("source file", //...)`},
		{`kind(rule, //...)`, `kind(rule, //...)`},
		{`attr('tags', "[a, b]", x)`, `attr(tags, "[a, b]", x)`},
		{`filter("\.csv$", x)`, `filter("\.csv$", x)`},
		{`set(a 'b c' //d)`, `set(a "b c" //d)`},
		{`set()`, `set()`},
		{`some(x, 3) + labels(srcs, y)`, `(some(x, 3) + labels(srcs, y))`},
		{`allpaths(a, b) ^ somepath(a, b)`, `(allpaths(a, b) ^ somepath(a, b))`},
		{`buildfiles(x) - loadfiles(x) + siblings(x)`, `((buildfiles(x) - loadfiles(x)) + siblings(x))`},
		{"deps(\n\t//a:b\n)", `deps(//a:b)`},
	}
	for _, tc := range tests {
		e, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		// The canonical form must read back to itself.
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("Parse(%q) (canonical form of %q): %v", e.String(), tc.in, err)
			continue
		}
		if e2.String() != e.String() {
			t.Errorf("round trip of %q: %q became %q", tc.in, e.String(), e2.String())
		}
	}
}

func TestParseStructure(t *testing.T) {
	e, err := Parse(`let v = //a in $v + "//b c"`)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := e.(*Let)
	if !ok || l.Name != "v" {
		t.Fatalf("got %#v, want a let of v", e)
	}
	b, ok := l.Body.(*Binary)
	if !ok || b.Op != Union {
		t.Fatalf("let body = %#v, want a union", l.Body)
	}
	if v, ok := b.X.(*Var); !ok || v.Name != "v" {
		t.Errorf("left operand = %#v, want $v", b.X)
	}
	if w, ok := b.Y.(*Word); !ok || w.Value != "//b c" || w.Col != 21 {
		t.Errorf("right operand = %#v, want the word //b c at column 21", b.Y)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{`deps(//a`, 9, "unexpected end of query, expected ',' or ')'"},
		{`depz(//a)`, 1, `unknown function "depz" (did you mean "deps"?)`},
		{`frobnicate(//a)`, 1, `unknown function "frobnicate"`},
		{`deps()`, 1, "function deps takes 1 or 2 arguments: deps(expr, [integer])"},
		{`deps(//a, 1, 2)`, 1, "function deps takes 1 or 2 arguments"},
		{`x + rdeps(//a)`, 5, "function rdeps takes 2 or 3 arguments: rdeps(expr, expr, [integer])"},
		{`attr(tags, //a)`, 1, "function attr takes 3 arguments"},
		{`deps(//a, x)`, 11, "unexpected word x, expected a non-negative integer as argument 2 of deps"},
		{`deps(//a, -1)`, 11, "expected a non-negative integer"},
		{`kind((x), y)`, 6, "expected a word as argument 1 of kind"},
		{`//a +`, 6, "unexpected end of query, expected a target pattern"},
		{`'//a`, 1, "unclosed quotation"},
		{`//a & //b`, 5, `unexpected character '&'`},
		{`let = //a in $x`, 5, "unexpected '=', expected a variable name after let"},
		{`let $x = //a in $x`, 5, "invalid variable name"},
		{`let x = //a $x`, 13, "unexpected word \"$x\", expected 'in'"},
		{`set(//a deps(//b))`, 13, "unexpected '(', expected a word or ')' in set(...)"},
		{`(//a`, 5, "expected ')'"},
		{`//a //b`, 5, "unexpected word //b, expected an operator or the end of the query"},
		{`$`, 1, "missing variable name after $"},
		{``, 1, "unexpected end of query"},
		{`)`, 1, "unexpected ')'"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error = %v, want a *SyntaxError", tc.in, err)
			continue
		}
		if se.Col != tc.col || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %q, want column %d and %q", tc.in, err, tc.col, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "syntax error at column ") {
			t.Errorf("Parse(%q) error %q does not say where", tc.in, err)
		}
	}
}

func TestFunctionsListed(t *testing.T) {
	got := strings.Join(Functions(), " ")
	want := "allpaths attr buildfiles deps filter kind labels loadfiles rdeps set siblings some somepath"
	if got != want {
		t.Errorf("Functions() = %q, want %q", got, want)
	}
}
