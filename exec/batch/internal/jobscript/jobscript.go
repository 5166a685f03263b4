// Package jobscript writes the bash script a batch job runs: the script
// picks one job of an array by its index, sets the job's environment,
// sends its output to the job's log and runs its command. Batch systems
// pass a job little more than an index, so every backend that submits
// arrays uses one script per array instead of quoting argv for each
// system's own argument syntax.
package jobscript

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Script returns a bash script that runs jobs[i] when the shell word
// index (e.g. "$1" or "$LSB_JOBINDEX") is first+i.
func Script(name string, jobs []batch.Job, index string, first int) ([]byte, error) {
	var b strings.Builder
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '_' // a newline would end the comment
		}
		return r
	}, name)
	fmt.Fprintf(&b, "#!/bin/bash\n# hepbuild array %s: %d jobs; the job to run is %s (the first is %d).\n", name, len(jobs), index, first)
	fmt.Fprintf(&b, "case \"%s\" in\n", index)
	for i, j := range jobs {
		if len(j.Command) == 0 {
			return nil, fmt.Errorf("job %d has no command", i)
		}
		if !filepath.IsAbs(j.Log) {
			return nil, fmt.Errorf("job %d: log %q is not an absolute path", i, j.Log)
		}
		fmt.Fprintf(&b, "%d)\n", first+i)
		fmt.Fprintf(&b, "\tmkdir -p %s && exec >%s 2>&1\n", Quote(filepath.Dir(j.Log)), Quote(j.Log))
		keys := make([]string, 0, len(j.Env))
		for k := range j.Env {
			if !envName.MatchString(k) {
				return nil, fmt.Errorf("job %d: %q is not an environment variable name", i, k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "\texport %s=%s\n", k, Quote(j.Env[k]))
		}
		words := make([]string, len(j.Command))
		for k, w := range j.Command {
			words[k] = Quote(w)
		}
		fmt.Fprintf(&b, "\texec %s\n\t;;\n", strings.Join(words, " "))
	}
	fmt.Fprintf(&b, "*)\n\techo \"hepbuild: no job %%s in this array\" \"%s\" >&2\n\texit 2\n\t;;\nesac\n", index)
	return []byte(b.String()), nil
}

// Write writes Script to path, executable.
func Write(path, name string, jobs []batch.Job, index string, first int) error {
	s, err := Script(name, jobs, index, first)
	if err != nil {
		return err
	}
	return os.WriteFile(path, s, 0o755)
}

// Quote quotes s for bash as one word.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Args splits the user's options into arguments: an option "-q long" is
// the flag and its value ("-q", "long"), split at the first space, so
// that --batch-option=lsf:"-R rusage[mem=1] span[hosts=1]" keeps its
// value whole; anything else is one argument.
func Args(options []string) []string {
	var args []string
	for _, o := range options {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if flag, value, ok := strings.Cut(o, " "); ok && strings.HasPrefix(flag, "-") && !strings.Contains(flag, "=") {
			args = append(args, flag, strings.TrimSpace(value))
			continue
		}
		args = append(args, o)
	}
	return args
}
