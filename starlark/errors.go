package starlark

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/hepbuild/hepbuild/graph"
)

// Error is a loading or analysis error: bad input in a BUILD or .star file.
// It names where (file:line:col), which target when known, and for errors
// raised inside rule or macro code the Starlark backtrace.
type Error struct {
	Pos       graph.Pos
	Target    graph.Label
	Msg       string
	Backtrace string
	// Err is the cause, when it is not the BUILD file's fault: storage
	// that could not be reached while a remote_glob listed it.
	Err error
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.File != "" {
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if !e.Target.IsZero() && !strings.HasPrefix(e.Msg, e.Target.String()) {
		b.WriteString(e.Target.String())
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Backtrace != "" {
		b.WriteString("\n")
		b.WriteString(e.Backtrace)
	}
	return b.String()
}

// targetError is returned by builtins that know which target they were building.
type targetError struct {
	target graph.Label
	msg    string
}

func (e *targetError) Error() string { return e.target.String() + ": " + e.msg }

func errorf(target graph.Label, format string, args ...any) error {
	return &targetError{target: target, msg: fmt.Sprintf(format, args...)}
}

func posOf(p syntax.Position) graph.Pos {
	return graph.Pos{File: p.Filename(), Line: p.Line, Col: p.Col}
}

// formatError turns an interpreter error into an *Error with a position.
func formatError(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		var ee *starlark.EvalError
		if !errors.As(err, &ee) {
			return already
		}
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return &Error{Pos: posOf(se.Pos), Msg: "syntax error: " + se.Msg}
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) && len(rl) > 0 {
		msgs := make([]string, 0, len(rl))
		for _, e := range rl[1:] {
			msgs = append(msgs, fmt.Sprintf("%s: %s", e.Pos, e.Msg))
		}
		e := &Error{Pos: posOf(rl[0].Pos), Msg: rl[0].Msg}
		if len(msgs) > 0 {
			e.Backtrace = strings.Join(msgs, "\n")
		}
		return e
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		out := &Error{Msg: ee.Msg}
		var te *targetError
		if errors.As(err, &te) {
			out.Target, out.Msg = te.target, te.msg
		}
		// An error from a nested evaluation (a load, a rule implementation)
		// already carries its own position: keep it, add this stack.
		var inner *Error
		if errors.As(ee.Unwrap(), &inner) {
			return inner
		}
		frames := 0
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			fr := ee.CallStack[i]
			if fr.Pos.Filename() == "<builtin>" || fr.Pos.Line == 0 {
				continue
			}
			if out.Pos.File == "" {
				out.Pos = posOf(fr.Pos)
			}
			frames++
		}
		if frames > 1 {
			out.Backtrace = ee.Backtrace()
		}
		return out
	}
	return err
}
