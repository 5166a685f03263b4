package query

import (
	"strconv"
	"strings"
)

// Expr is a parsed query expression. Its String method gives a canonical
// spelling that Parse reads back to the same expression. Exprs are immutable
// and safe for concurrent use.
type Expr interface {
	String() string
	expr()
}

// Word is a target pattern, as in "//pkg:all" or "'//pkg:name'".
type Word struct {
	Value string
	Col   int // 1-based column in the query, for messages
}

// Var is a reference to a let-bound variable, "$name".
type Var struct {
	Name string
	Col  int
}

// Let binds Name to the value of Value while evaluating Body.
type Let struct {
	Name  string
	Value Expr
	Body  Expr
}

// SetExpr is "set(w1 w2 ...)", the union of its target patterns.
type SetExpr struct {
	Words []*Word
}

// BinaryOp is a set operator. The three spellings of each ("+" and "union",
// "-" and "except", "^" and "intersect") mean the same.
type BinaryOp int

const (
	Union BinaryOp = iota
	Except
	Intersect
)

func (op BinaryOp) String() string {
	switch op {
	case Except:
		return "-"
	case Intersect:
		return "^"
	}
	return "+"
}

// Binary is "X op Y".
type Binary struct {
	Op   BinaryOp
	X, Y Expr
}

// Call is a function call such as "deps(//x, 2)". Each argument is an Expr,
// a word (a regular expression or attribute name) or an integer, as the
// function's signature says.
type Call struct {
	Func string
	Args []Arg
	Col  int
}

// Arg is one argument of a Call: exactly one of Expr, Word or Int is meant,
// according to the function's signature.
type Arg struct {
	Expr Expr
	Word string
	Int  int
}

func (*Word) expr()    {}
func (*Var) expr()     {}
func (*Let) expr()     {}
func (*SetExpr) expr() {}
func (*Binary) expr()  {}
func (*Call) expr()    {}

func (w *Word) String() string { return quoteWord(w.Value) }
func (v *Var) String() string  { return "$" + v.Name }

func (l *Let) String() string {
	return "let " + l.Name + " = " + l.Value.String() + " in " + l.Body.String()
}

func (s *SetExpr) String() string {
	parts := make([]string, len(s.Words))
	for i, w := range s.Words {
		parts[i] = w.String()
	}
	return "set(" + strings.Join(parts, " ") + ")"
}

// String parenthesises every binary expression, so the canonical form does
// not depend on precedence or associativity.
func (b *Binary) String() string {
	return "(" + operand(b.X) + " " + b.Op.String() + " " + operand(b.Y) + ")"
}

// operand parenthesises a let, whose body would otherwise swallow the
// rest of the binary expression.
func operand(e Expr) string {
	if _, ok := e.(*Let); ok {
		return "(" + e.String() + ")"
	}
	return e.String()
}

func (c *Call) String() string {
	spec := functions[c.Func]
	parts := make([]string, len(c.Args))
	for i, a := range c.Args {
		switch spec.args[i] {
		case argExpr:
			parts[i] = a.Expr.String()
		case argWord:
			parts[i] = quoteWord(a.Word)
		case argInt:
			parts[i] = strconv.Itoa(a.Int)
		}
	}
	return c.Func + "(" + strings.Join(parts, ", ") + ")"
}

// quoteWord returns w as the lexer reads it back: bare when it is a plain
// word, otherwise in quotes.
func quoteWord(w string) string {
	plain := w != "" && w[0] != '-' && w[0] != '$'
	if _, kw := keywords[w]; kw {
		plain = false
	}
	for i := 0; plain && i < len(w); i++ {
		plain = isWordChar(w[i])
	}
	if plain {
		return w
	}
	if strings.Contains(w, `"`) {
		return "'" + w + "'"
	}
	return `"` + w + `"`
}
