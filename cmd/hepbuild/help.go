package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	reference "github.com/hepbuild/hepbuild"
	"github.com/hepbuild/hepbuild/graph"
)

// HelpCmd prints a topic of the reference, or a command's help.
type HelpCmd struct {
	Topic string `arg:"" optional:"" help:"A topic (labels, patterns, query, hepbuildrc, exit-codes) or a command."`
}

// helpTopics name the sections of BUILD.md that `hepbuild help` prints:
// the heading that starts each (it ends at the next heading of its level
// or above).
var helpTopics = map[string]struct{ heading, about string }{
	"labels":     {"### Labels", "how targets are named: //pkg:name, :name, files"},
	"patterns":   {"### Target patterns", "naming many targets: //..., //pkg:all, :*, -//pkg/..."},
	"query":      {"## 7. The query language", "the query language: functions, operators, output formats"},
	"hepbuildrc": {"### .hepbuildrc", "flags from ~/.hepbuildrc and the workspace's .hepbuildrc"},
	"exit-codes": {"### Exit codes", "what hepbuild's exit status means"},
}

func (HelpCmd) Help() string {
	return `Examples:
  hepbuild help patterns                     # //..., :all and the other target patterns
  hepbuild help query                        # the query language
  hepbuild help build                        # the same as hepbuild build --help`
}

// Run prints the topic, the command's help, or the list of topics.
func (c *HelpCmd) Run(e *env) error {
	topic := strings.TrimPrefix(strings.ToLower(c.Topic), ".")
	if topic == "" {
		fmt.Fprintln(e.stdout, "Usage: hepbuild help TOPIC|COMMAND\n\nTopics:")
		for _, name := range sortedTopics() {
			fmt.Fprintf(e.stdout, "  %-12s %s\n", name, helpTopics[name].about)
		}
		fmt.Fprintln(e.stdout, "\nCommands: hepbuild --help lists them; hepbuild help COMMAND shows one.")
		return nil
	}
	if t, ok := helpTopics[topic]; ok {
		text, err := mdSection(reference.BuildMD, t.heading)
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, text)
		return nil
	}
	if slices.Contains(commandNames(), topic) && topic != "help" {
		if code := run(e.ctx, []string{topic, "--help"}, e); code != 0 {
			return silentError{fmt.Errorf("hepbuild %s --help failed", topic)}
		}
		return nil
	}
	msg := fmt.Sprintf("no help topic or command %q: the topics are %s", c.Topic, strings.Join(sortedTopics(), ", "))
	var names []string
	names = append(names, sortedTopics()...)
	names = append(names, commandNames()...)
	if s := graph.Suggest(topic, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return badInput("%s", msg)
}

func sortedTopics() []string {
	var names []string
	for name := range helpTopics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// mdSection returns the part of doc from the line heading to the next
// heading of the same level or above, without horizontal rules.
func mdSection(doc, heading string) (string, error) {
	lines := strings.Split(doc, "\n")
	level := strings.Index(heading, " ")
	start := -1
	for i, l := range lines {
		if l == heading {
			start = i
			break
		}
	}
	if start < 0 {
		return "", fmt.Errorf("BUILD.md has no section %q", heading)
	}
	var b strings.Builder
	inCode := false
	for i := start; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if i > start && !inCode && strings.HasPrefix(l, "#") {
			if n := strings.Index(l, " "); n > 0 && n <= level && strings.Trim(l[:n], "#") == "" {
				break
			}
		}
		if l == "---" {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n") + "\n", nil
}
