package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
)

// tagTable is BUILD.md's table of execution-requirement tags, made from
// exec.Tags, the table that analysis and the action key use.
func tagTable() string {
	var b strings.Builder
	b.WriteString("| Tag | Effect | In the key | Why |\n| --- | --- | --- | --- |\n")
	for _, tag := range exec.Tags {
		inKey := "no"
		if tag.InKey {
			inKey = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", tag.Name, tag.Effect, inKey, tag.Why)
	}
	return b.String()
}

// TestBuildMDTagTable: BUILD.md lists exactly the tags of exec.Tags, each
// with its effect and whether it enters the key, as the code has them.
func TestBuildMDTagTable(t *testing.T) {
	tags := section(t, readBuildMD(t), "### tags")
	if want := tagTable(); !strings.Contains(tags, want) {
		t.Errorf("BUILD.md's tag table is not exec.Tags; it should read:\n\n%s\ngot section:\n%s", want, tags)
	}
}
