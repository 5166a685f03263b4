package main

import (
	"fmt"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
	"github.com/hepbuild/hepbuild/storage"
)

// FetchCmd refreshes hepbuild.lock.
type FetchCmd struct {
	RemoteDataFlags
	Targets []string `arg:"" optional:"" name:"target" help:"Targets whose remote files to record (default: //..., which also drops what no target reads any more)."`
}

// Run asks storage for the size, modification time and checksum of every
// remote file the targets read, again for each, and records them.
func (c *FetchCmd) Run(g *Globals, e *env) error {
	if c.Offline {
		return badInput("fetch asks storage: --offline does not go with it")
	}
	w, err := openWorkspace(g, e)
	if err != nil {
		return err
	}
	patterns := c.Targets
	whole := len(patterns) == 0
	if whole {
		patterns = []string{"//..."}
	}
	var targets []*graph.Target
	if whole {
		// Every target, manual ones included: the lock then lists what
		// any target reads, and an --offline build of a manual target
		// finds its files (expand leaves manual targets out of //...).
		targets, err = graph.ExpandArgs(w.loader, patterns, w.workingPkg)
	} else {
		targets, err = w.expand(patterns)
	}
	if err != nil {
		return err
	}
	rd, err := c.openRemoteData(e.ctx, w.root)
	if err != nil {
		return err
	}
	defer rd.Close()
	rd.resolver.Refresh = true
	w.loader.SetRemoteData(globFunc(rd.glob(false)))
	labels := make([]graph.Label, len(targets))
	for i, t := range targets {
		labels[i] = t.Label
	}
	ag, err := w.loader.Analyze(labels)
	if err != nil {
		return err
	}
	var roots []exec.Artifact
	for _, outs := range ag.TargetOutputs {
		roots = append(roots, outs...)
	}
	actions := remoteActions(ag.Needed(roots))
	lock := rd.resolver.Lock()
	before := map[string]storage.Identity{}
	for _, a := range actions {
		if id, ok := lock.File(a.Extras().Remote.URL); ok {
			before[a.Extras().Remote.URL] = id
		}
	}
	if whole {
		// Every target is here: what none reads leaves the lock.
		files, globs := map[string]bool{}, map[string]bool{}
		for _, a := range actions {
			files[a.Extras().Remote.URL] = true
		}
		for _, t := range targets {
			if t.Class() == "remote_glob" {
				globs[attrURL(t)] = true
			}
		}
		lock.Keep(files, globs)
	}
	if err := rd.resolve(actions, nil); err != nil {
		return err
	}
	added, changed := 0, 0
	seen := map[string]bool{}
	for _, a := range actions {
		u := a.Extras().Remote.URL
		if seen[u] {
			continue
		}
		seen[u] = true
		id, _ := lock.File(u)
		switch was, ok := before[u]; {
		case !ok:
			added++
		case was != id:
			changed++
			fmt.Fprintf(e.stdout, "changed: %s\n", a.Extras().Remote.Identity())
		}
	}
	fmt.Fprintf(e.stdout, "%s: %d remote files (%d new, %d changed); %d queries to storage, %d of them checksums\n",
		lock.Path(), len(seen), added, changed, rd.resolver.Queries(), rd.resolver.Checksums())
	return nil
}

// attrURL is a remote_glob target's url attribute.
func attrURL(t *graph.Target) string {
	a, _ := t.Attr("url")
	s, _ := a.Value.(string)
	return s
}
