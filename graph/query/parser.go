package query

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/graph"
)

type argKind int

const (
	argExpr argKind = iota
	argWord
	argInt
)

type funcSpec struct {
	args     []argKind
	required int // the rest are optional
}

// functions lists every query function with its signature; Parse checks
// calls against it, so Eval never sees a malformed call.
var functions = map[string]funcSpec{
	"allpaths":   {[]argKind{argExpr, argExpr}, 2},
	"attr":       {[]argKind{argWord, argWord, argExpr}, 3},
	"buildfiles": {[]argKind{argExpr}, 1},
	"deps":       {[]argKind{argExpr, argInt}, 1},
	"filter":     {[]argKind{argWord, argExpr}, 2},
	"kind":       {[]argKind{argWord, argExpr}, 2},
	"labels":     {[]argKind{argWord, argExpr}, 2},
	"loadfiles":  {[]argKind{argExpr}, 1},
	"rdeps":      {[]argKind{argExpr, argExpr, argInt}, 2},
	"siblings":   {[]argKind{argExpr}, 1},
	"some":       {[]argKind{argExpr, argInt}, 1},
	"somepath":   {[]argKind{argExpr, argExpr}, 2},
}

// Functions returns the names of the query functions, sorted (for completion
// and help texts).
func Functions() []string {
	names := make([]string, 0, len(functions)+1)
	for n := range functions {
		names = append(names, n)
	}
	names = append(names, "set")
	sort.Strings(names)
	return names
}

// Parse parses a query expression. Errors are *SyntaxError values giving the
// column, for malformed input, unknown functions and wrong argument counts.
//
// Grammar, as Bazel's:
//
//	expr    := primary { op primary }   all operators equal in precedence, left-associative
//	op      := '+' | 'union' | '-' | 'except' | '^' | 'intersect'
//	primary := word | '$'name | func '(' args ')' | 'set' '(' {word} ')'
//	         | 'let' name '=' expr 'in' expr | '(' expr ')'
func Parse(s string) (Expr, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.unexpected(t, "an operator or the end of the query")
	}
	return e, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) unexpected(t token, want string) error {
	got := t.kind.String()
	if t.kind == tokWord {
		got = fmt.Sprintf("word %s", quoteWord(t.word))
	}
	return &SyntaxError{Col: t.col, Msg: fmt.Sprintf("unexpected %s, expected %s", got, want)}
}

func (p *parser) expect(k tokenKind, want string) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, p.unexpected(t, want)
	}
	return t, nil
}

func (p *parser) expr() (Expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		var op BinaryOp
		switch p.peek().kind {
		case tokPlus, tokUnion:
			op = Union
		case tokMinus, tokExcept:
			op = Except
		case tokCaret, tokIntersect:
			op = Intersect
		default:
			return x, nil
		}
		p.next()
		y, err := p.primary()
		if err != nil {
			return nil, err
		}
		x = &Binary{Op: op, X: x, Y: y}
	}
}

func (p *parser) primary() (Expr, error) {
	t := p.next()
	switch t.kind {
	case tokWord:
		if !t.quoted && p.peek().kind == tokLParen {
			return p.call(t)
		}
		if !t.quoted && strings.HasPrefix(t.word, "$") {
			if len(t.word) == 1 {
				return nil, &SyntaxError{Col: t.col, Msg: "missing variable name after $"}
			}
			return &Var{Name: t.word[1:], Col: t.col}, nil
		}
		return &Word{Value: t.word, Col: t.col}, nil
	case tokLet:
		name, err := p.expect(tokWord, "a variable name after let")
		if err != nil {
			return nil, err
		}
		if name.quoted || strings.HasPrefix(name.word, "$") {
			return nil, &SyntaxError{Col: name.col, Msg: fmt.Sprintf("invalid variable name %s: write let name = ..., and $name to use it", quoteWord(name.word))}
		}
		if _, err := p.expect(tokEquals, "'=' after let "+name.word); err != nil {
			return nil, err
		}
		value, err := p.expr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokIn, "'in'"); err != nil {
			return nil, err
		}
		body, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &Let{Name: name.word, Value: value, Body: body}, nil
	case tokSet:
		if _, err := p.expect(tokLParen, "'(' after set"); err != nil {
			return nil, err
		}
		s := &SetExpr{}
		for p.peek().kind == tokWord {
			w := p.next()
			s.Words = append(s.Words, &Word{Value: w.word, Col: w.col})
		}
		if _, err := p.expect(tokRParen, "a word or ')' in set(...)"); err != nil {
			return nil, err
		}
		return s, nil
	case tokLParen:
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	}
	return nil, p.unexpected(t, "a target pattern, a function, let, set or '('")
}

func (p *parser) call(name token) (Expr, error) {
	spec, ok := functions[name.word]
	if !ok {
		msg := fmt.Sprintf("unknown function %q", name.word)
		if s := graph.Suggest(name.word, Functions()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, &SyntaxError{Col: name.col, Msg: msg}
	}
	p.next() // (
	c := &Call{Func: name.word, Col: name.col}
	for p.peek().kind != tokRParen {
		if len(c.Args) > 0 {
			if _, err := p.expect(tokComma, "',' or ')'"); err != nil {
				return nil, err
			}
		}
		if len(c.Args) == len(spec.args) {
			return nil, p.arity(c, spec)
		}
		a, err := p.arg(c, spec.args[len(c.Args)])
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, a)
	}
	p.next() // )
	if len(c.Args) < spec.required {
		return nil, p.arity(c, spec)
	}
	return c, nil
}

func (p *parser) arity(c *Call, spec funcSpec) error {
	n := strconv.Itoa(spec.required)
	if len(spec.args) > spec.required {
		n += " or " + strconv.Itoa(len(spec.args))
	}
	return &SyntaxError{Col: c.Col, Msg: fmt.Sprintf("function %s takes %s arguments: %s", c.Func, n, signature(c.Func, spec))}
}

func signature(name string, spec funcSpec) string {
	parts := make([]string, len(spec.args))
	for i, k := range spec.args {
		switch k {
		case argExpr:
			parts[i] = "expr"
		case argWord:
			parts[i] = "word"
		case argInt:
			parts[i] = "integer"
		}
		if i >= spec.required {
			parts[i] = "[" + parts[i] + "]"
		}
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}

func (p *parser) arg(c *Call, k argKind) (Arg, error) {
	switch k {
	case argWord:
		t := p.next()
		// A keyword is an ordinary word here, as in attr(set, ...).
		if t.kind != tokWord && t.word == "" {
			return Arg{}, p.unexpected(t, fmt.Sprintf("a word as argument %d of %s", len(c.Args)+1, c.Func))
		}
		return Arg{Word: t.word}, nil
	case argInt:
		t := p.next()
		n, err := strconv.Atoi(t.word)
		if t.kind != tokWord || err != nil || n < 0 {
			return Arg{}, p.unexpected(t, fmt.Sprintf("a non-negative integer as argument %d of %s", len(c.Args)+1, c.Func))
		}
		return Arg{Int: n}, nil
	}
	e, err := p.expr()
	if err != nil {
		return Arg{}, err
	}
	return Arg{Expr: e}, nil
}
