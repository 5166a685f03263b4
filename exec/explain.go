package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/cache"
)

// Explanation says why an action will run (or why it does not).
type Explanation struct {
	Action *Action
	// Outcome is what a build would do now: up to date, restore, or run.
	Outcome Outcome
	// NoPrevious says that the action has never run in this output base.
	NoPrevious bool
	// Pending lists inputs made by actions that have not run yet: the
	// action's key is known only once they have.
	Pending []string
	// Changes lists what differs from the last run, one human-readable line each.
	Changes []string
}

// Explain compares the action as it is now with the record of its last run
// in the journal. It runs nothing and writes nothing. Safe for concurrent use
// once the Runner is configured.
func (r *Runner) Explain(ctx context.Context, a *Action) (*Explanation, error) {
	r.init()
	ex := &Explanation{Action: a}
	prev := r.previous(a)
	ex.NoPrevious = prev == nil
	in := &inputDigests{r: r, a: a}
	key, err := r.key(a, in)
	if err != nil {
		var ae *ActionError
		if !errors.As(err, &ae) {
			return nil, err
		}
		// A generated input that does not exist yet: its action runs first.
		for _, art := range a.Inputs {
			if !art.Source {
				if _, _, derr := in.Digest(art); derr != nil {
					ex.Pending = append(ex.Pending, art.Path)
				}
			}
		}
		if len(ex.Pending) == 0 {
			return nil, err
		}
		ex.Outcome = OutcomeExecuted
		return ex, nil
	}
	switch {
	case r.upToDate(a, key.Digest):
		ex.Outcome = OutcomeUpToDate
	case r.cacheable(a):
		if res, ok := r.cache.actionResult(ctx, key.Digest); ok && resultCovers(a, res) {
			ex.Outcome = OutcomeCached
		} else {
			ex.Outcome = OutcomeExecuted
		}
	default:
		ex.Outcome = OutcomeExecuted
	}
	if prev != nil {
		ex.Changes = changesSince(prev, a, in.seen(), key)
	}
	return ex, nil
}

// previous is the journal's record of the action's last run here, or nil.
func (r *Runner) previous(a *Action) *ActionRecord {
	if r.Journal == nil || len(a.Outputs) == 0 {
		return nil
	}
	prev, _ := r.Journal.Previous(a.Outputs[0].Path)
	return prev
}

// changesSince lists what differs between the action's last run (prev)
// and the action now, with its inputs' digests and key; nil when the key
// is the same.
func changesSince(prev *ActionRecord, a *Action, inputs map[string]cache.Digest, key *Key) []string {
	if prev.Key == key.Digest {
		return nil
	}
	if changes := diffRecord(prev, a, inputs, key); len(changes) > 0 {
		return changes
	}
	return []string{"the action key changed (hepbuild version, tags, timeout or outputs)"}
}

// diffRecord lists the differences between the recorded run and the action now.
func diffRecord(prev *ActionRecord, a *Action, inputs map[string]cache.Digest, key *Key) []string {
	var out []string
	if strings.Join(prev.Argv, "\x00") != strings.Join(a.Argv, "\x00") {
		out = append(out, "command line changed: "+wordDiff(prev.Argv, a.Argv))
	}
	keys := map[string]bool{}
	for k := range prev.Env {
		keys[k] = true
	}
	for k := range a.Env {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		was, wok := prev.Env[k]
		now, nok := a.Env[k]
		switch {
		case !wok:
			out = append(out, fmt.Sprintf("variable %s added: %q", k, now))
		case !nok:
			out = append(out, fmt.Sprintf("variable %s removed (was %q)", k, was))
		case was != now:
			out = append(out, fmt.Sprintf("variable %s changed: %q -> %q", k, was, now))
		}
	}
	var paths []string
	seen := map[string]bool{}
	for p := range prev.Inputs {
		paths = append(paths, p)
		seen[p] = true
	}
	for p := range inputs {
		if !seen[p] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		was, wok := prev.Inputs[p]
		now, nok := inputs[p]
		switch {
		case !wok:
			out = append(out, "input added: "+p)
		case !nok:
			out = append(out, "input removed: "+p)
		case was != now:
			out = append(out, fmt.Sprintf("input changed: %s (%s -> %s)", p, short(was), short(now)))
		}
	}
	if prev.Environment != key.Environment && !(prev.Environment.IsZero() && key.Environment.IsZero()) {
		name := "host"
		if a.Environment != nil {
			name = a.Environment.Label.String()
		}
		out = append(out, fmt.Sprintf("software environment %s changed (%s -> %s)", name, short(prev.Environment), short(key.Environment)))
	}
	if a.Extras().Remote != nil && prev.Remote != a.Extras().Remote.Identity() {
		was := prev.Remote
		if was == "" {
			was = "not recorded"
		}
		out = append(out, fmt.Sprintf("remote file changed on storage: %s -> %s", was, a.Extras().Remote.Identity()))
	} else if a.Kind == KindWrite && prev.Content != cache.FromBytes(a.Extras().Content) {
		out = append(out, "written content changed")
	}
	return out
}

func short(d cache.Digest) string {
	if len(d.Hash) < 12 {
		return "none"
	}
	return d.Hash[:12]
}

// wordDiff shows what changed between two command lines: the words between
// their common beginning and common end, e.g. `-name ttbb_jesUp` -> `-name
// ttbb_CMS_scale_jUp`, with one word of context either side.
func wordDiff(was, now []string) string {
	split := func(argv []string) []string {
		var w []string
		for _, a := range argv {
			w = append(w, strings.Fields(a)...)
		}
		return w
	}
	a, b := split(was), split(now)
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ctx := func(words []string) string {
		lo, hi := max(pre-1, 0), min(len(words)-suf+1, len(words))
		s := strings.Join(words[lo:hi], " ")
		if lo > 0 {
			s = "... " + s
		}
		if hi < len(words) {
			s += " ..."
		}
		return "`" + s + "`"
	}
	if len(a) == len(b) && pre == len(a) {
		return "the same words, different spacing or quoting"
	}
	return ctx(a) + " -> " + ctx(b)
}
