package arc

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// logName is the file in the job's session folder that holds its standard
// output and error; arcget brings it back and Retrieve moves it to Job.Log.
const logName = "hepbuild-job.log"

// xrsl returns the array as one xRSL description: a multi-job request
// ("+" followed by one "&" conjunction per job), which arcsub submits as
// separate jobs with one call. Array options that start with "(" are
// extra xRSL relations added to every job, e.g. "(queue=short)" or
// "(runtimeenvironment=ENV/SINGULARITY)"; the others are arcsub options.
func xrsl(a *batch.Array) (string, error) {
	var common []string
	for _, o := range a.Options {
		if strings.HasPrefix(o, "(") {
			common = append(common, o)
		}
	}
	var sb strings.Builder
	// One job is a plain conjunction, without the parentheses around each
	// of a multi-job request's (arcsub rejects "(&...)" alone).
	multi := len(a.Jobs) > 1
	if multi {
		sb.WriteString("+\n")
	}
	for i, j := range a.Jobs {
		if len(j.Command) == 0 {
			return "", fmt.Errorf("job %d of %s has no command", i, a.Name)
		}
		if multi {
			sb.WriteByte('(')
		}
		sb.WriteByte('&')
		rel := func(attr string, values ...string) {
			sb.WriteString("\n  (" + attr + "=")
			for k, v := range values {
				if k > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(quote(v))
			}
			sb.WriteByte(')')
		}
		rel("jobname", fmt.Sprintf("%s-%d", a.Name, i))
		argv, env := j.Command, j.Env
		if expanded(argv) {
			argv, env = viaEnv(argv, env)
		}
		rel("executable", argv[0])
		if len(argv) > 1 {
			rel("arguments", argv[1:]...)
		}
		// One file for both streams, fetched by arcget: an empty
		// destination in outputfiles means "keep it for the client".
		if len(a.Ship) > 0 {
			// Sent with the job into its session folder: arcsub uploads
			// each local file, so the node needs no shared file system.
			sb.WriteString("\n  (inputfiles=")
			for _, f := range a.Ship {
				sb.WriteString("(" + quote(filepath.Base(f)) + " " + quote(f) + ")")
			}
			sb.WriteByte(')')
		}
		rel("stdout", logName)
		rel("join", "yes")
		sb.WriteString("\n  (outputfiles=(" + quote(logName) + " \"\"))")
		if len(env) > 0 {
			keys := make([]string, 0, len(env))
			for k := range env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			sb.WriteString("\n  (environment=")
			for _, k := range keys {
				sb.WriteString("(" + quote(k) + " " + quote(env[k]) + ")")
			}
			sb.WriteByte(')')
		}
		r := a.Resources
		if r.CPU > 1 {
			rel("count", fmt.Sprint(int(math.Ceil(r.CPU))))
		}
		if r.Memory > 0 {
			// xRSL memory is in MiB per slot; round up, never ask for less.
			rel("memory", fmt.Sprint((r.Memory+(1<<20)-1)>>20))
		}
		if r.Walltime > 0 {
			// A bare number is minutes; say seconds to keep short limits.
			secs := fmt.Sprintf("%d seconds", int64(math.Ceil(r.Walltime.Seconds())))
			rel("walltime", secs)
			// ARC's cputime is the total over all slots.
			cpus := math.Max(1, math.Ceil(r.CPU))
			rel("cputime", fmt.Sprintf("%d seconds", int64(math.Ceil(r.Walltime.Seconds()*cpus))))
		}
		for _, c := range common {
			sb.WriteString("\n  " + c)
		}
		if multi {
			sb.WriteString("\n)")
		}
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// commandVar carries a command whose arguments A-REX would mangle.
const commandVar = "HEPBUILD_ARC_COMMAND"

// expanded says whether A-REX would change the command: its LRMS scripts
// write each argument into the job script between double quotes, escaping
// only backslashes and double quotes, so the job script's shell expands
// "$" and "`" in them (seen with A-REX 6.17: "$0" became the job script's
// name). Environment values are quoted safely.
func expanded(argv []string) bool {
	for _, a := range argv {
		if strings.ContainsAny(a, "$`") {
			return true
		}
	}
	return false
}

// viaEnv moves the command into the environment, quoted for the shell,
// and returns a command without "$" or "`" that writes it to a script in
// the job's session folder and runs it there.
func viaEnv(argv []string, env map[string]string) ([]string, map[string]string) {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	withCmd := make(map[string]string, len(env)+1)
	for k, v := range env {
		withCmd[k] = v
	}
	withCmd[commandVar] = "exec " + strings.Join(quoted, " ")
	script := "hepbuild-command.sh"
	return []string{"/bin/sh", "-c", "printenv " + commandVar + " > " + script + " && exec /bin/sh " + script}, withCmd
}

// quote makes s an xRSL literal. xRSL strings are double-quoted, and a
// double quote inside is written twice.
func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
