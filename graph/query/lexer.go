package query

import (
	"fmt"
	"strings"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokWord
	tokLParen
	tokRParen
	tokComma
	tokPlus
	tokMinus
	tokCaret
	tokEquals
	// Keywords: unquoted words with a meaning of their own.
	tokLet
	tokIn
	tokSet
	tokUnion
	tokExcept
	tokIntersect
)

var keywords = map[string]tokenKind{
	"let":       tokLet,
	"in":        tokIn,
	"set":       tokSet,
	"union":     tokUnion,
	"except":    tokExcept,
	"intersect": tokIntersect,
}

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of query"
	case tokWord:
		return "word"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokComma:
		return "','"
	case tokPlus:
		return "'+'"
	case tokMinus:
		return "'-'"
	case tokCaret:
		return "'^'"
	case tokEquals:
		return "'='"
	}
	for w, kw := range keywords {
		if kw == k {
			return "'" + w + "'"
		}
	}
	return fmt.Sprintf("token %d", int(k))
}

type token struct {
	kind   tokenKind
	word   string // for tokWord and keywords
	quoted bool
	col    int // 1-based column (in bytes) of the token's first character
}

// isWordChar reports whether c may appear in an unquoted word; the set is
// Bazel's, so that labels, patterns, "$var" and file names need no quotes.
func isWordChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("*/@.-_:$~[]", c) >= 0
}

// lex splits a query into tokens. A '-' starts a word only inside one, so
// "a - b" and "a -b" are a difference while "foo-bar" is one word.
func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		col := i + 1
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		case '(':
			toks = append(toks, token{kind: tokLParen, col: col})
		case ')':
			toks = append(toks, token{kind: tokRParen, col: col})
		case ',':
			toks = append(toks, token{kind: tokComma, col: col})
		case '+':
			toks = append(toks, token{kind: tokPlus, col: col})
		case '-':
			toks = append(toks, token{kind: tokMinus, col: col})
		case '^':
			toks = append(toks, token{kind: tokCaret, col: col})
		case '=':
			toks = append(toks, token{kind: tokEquals, col: col})
		case '\'', '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, &SyntaxError{Col: col, Msg: "unclosed quotation"}
			}
			toks = append(toks, token{kind: tokWord, word: s[i+1 : i+1+end], quoted: true, col: col})
			i += end + 2
			continue
		default:
			if !isWordChar(c) {
				return nil, &SyntaxError{Col: col, Msg: fmt.Sprintf("unexpected character %q", c)}
			}
			j := i
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			w := s[i:j]
			kind := tokWord
			if kw, ok := keywords[w]; ok {
				kind = kw
			}
			toks = append(toks, token{kind: kind, word: w, col: col})
			i = j
			continue
		}
		i++
	}
	toks = append(toks, token{kind: tokEOF, col: len(s) + 1})
	return toks, nil
}

// SyntaxError is a malformed query, with the 1-based column where it was found.
type SyntaxError struct {
	Col int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at column %d: %s", e.Col, e.Msg)
}
