// Package cmds holds the command-line programs of the toy ttH(bb) analysis; each main package
// under examples/tth/tools is a one-line call into it, so the whole chain can be tested in one
// process.
package cmds

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command is a program: it parses args (without the program name) and writes its report to stdout.
type Command func(args []string, stdout io.Writer) error

// Main runs the command with the process's arguments and exits: 0 on success, 2 on a usage
// error, 1 on any other error, which is printed as "name: error".
func Main(name string, cmd Command) {
	os.Exit(Run(name, cmd, os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs cmd and returns the exit status Main would use.
func Run(name string, cmd Command, args []string, stdout, stderr io.Writer) int {
	err := cmd(args, stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// newFlags returns a flag set that reports errors instead of exiting, with a usage line.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; a flag error is a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// listFlag collects a repeatable flag; commas separate values too.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// repeatFlag collects a repeatable flag without splitting at commas.
type repeatFlag []string

func (l *repeatFlag) String() string { return strings.Join(*l, " ") }

func (l *repeatFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func requireOutput(o string) error {
	if o == "" {
		return usagef("no output file: give -o")
	}
	return nil
}
