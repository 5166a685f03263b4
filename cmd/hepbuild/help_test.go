package main

import (
	"strings"
	"testing"
)

func TestHelpTopics(t *testing.T) {
	dir := t.TempDir()
	for topic, t0 := range helpTopics {
		r := hepbuild(t, dir, "help", topic)
		if r.code != 0 || !strings.HasPrefix(r.stdout, t0.heading+"\n") || strings.Count(r.stdout, "\n") < 10 {
			t.Errorf("hepbuild help %s: exit %d, printed:\n%s%s", topic, r.code, r.stdout, r.stderr)
		}
	}
	// The query topic is the whole chapter: syntax, every function, the
	// output formats.
	q := hepbuild(t, dir, "help", "query").stdout
	for _, want := range []string{"### Syntax", "`somepath(from, to)`", "`loadfiles(x)`", "label_kind"} {
		if !strings.Contains(q, want) {
			t.Errorf("hepbuild help query lacks %q", want)
		}
	}
	if strings.Contains(q, "## 8.") {
		t.Error("hepbuild help query runs on into the next chapter")
	}
	if r := hepbuild(t, dir, "help"); r.code != 0 || !strings.Contains(r.stdout, "patterns") || !strings.Contains(r.stdout, "hepbuildrc") {
		t.Errorf("hepbuild help: exit %d\n%s", r.code, r.stdout)
	}
	if r := hepbuild(t, dir, "help", "clean"); r.code != 0 || !strings.Contains(r.stdout, "Usage: hepbuild clean") {
		t.Errorf("hepbuild help clean: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := hepbuild(t, dir, "help", "paterns"); r.code != 2 || !strings.Contains(r.stderr, `did you mean "patterns"?`) {
		t.Errorf("hepbuild help paterns: exit %d\n%s", r.code, r.stderr)
	}
}
