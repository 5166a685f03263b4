package exec

import "sort"

// TagInfo describes an execution-requirement tag that hepbuild knows. Any
// other tag is a label for humans and queries: it never reaches the key.
type TagInfo struct {
	Name string
	// InKey says that the tag enters the action key (platform property
	// PropTags): only tags that can change what a successful run writes.
	InKey bool
	// Effect says what the tag does (BUILD.md's tag table shows it).
	Effect string
	// Why says why the tag does or does not reach the key.
	Why string
}

// Tags is the one table of execution-requirement tags: analysis accepts
// these (and rejects unknown tags starting with "no-" as likely typos),
// and ComputeKey hashes those with InKey. BUILD.md's table is checked
// against it (cmd/hepbuild/doc_test.go), and so is the key
// (TestKeyTagsFollowTheTable).
var Tags = []TagInfo{
	{Name: "no-cache", Effect: "the action's result is neither read from nor written to the cache (it still does not rerun when up to date)",
		Why: "whether a result is cached does not change it"},
	{Name: "no-sandbox", InKey: true, Effect: "run with the `none` strategy whatever `--sandbox` says",
		Why: "without a sandbox the command sees undeclared files and the network, so its outputs may depend on them; they are not shared with sandboxed runs"},
	{Name: "requires-network", InKey: true, Effect: "the action needs the network (sandboxes that cut the network leave it on). Under `linux` it then shares the host's network namespace: every address the host reaches, the host's loopback services and its abstract Unix sockets (`@name`, which live in the network namespace). Socket files stay out of reach: home folders, `/tmp`, `/var/tmp`, `/dev/shm` and `/run` stay hidden, but for what name resolution reads there (the file `/etc/resolv.conf` leads to, `/run/systemd/resolve`, `/run/nscd`) |",
		Why: "what the command reads from the network can change its outputs"},
	{Name: "no-remote", Effect: "the action runs on this machine, never on a batch system or remote executor ([distributed execution](#distributed-execution-batch-systems-and-remote-execution)), and its result is neither read from nor written to `--remote-cache` (the disk cache keeps it), as Bazel's tag",
		Why: "where an action runs or is cached, not what it computes"},
	{Name: "no-remote-cache", Effect: "the action's result and outputs are neither read from nor written to `--remote-cache` (the disk cache keeps them; an input it reads may still come from the remote); it runs on this machine, as a batch job would store its result remotely",
		Why: "which cache keeps the result, not what it is"},
	{Name: "no-remote-exec", Effect: "the action runs on this machine, never on a batch system or remote executor",
		Why: "where an action runs, not what it computes"},
	{Name: "local", Effect: "the action runs on this machine, never on a batch system or remote executor, whatever `--executor` says",
		Why: "where an action runs, not what it computes"},
	{Name: "manual", Effect: "`build`, `status`, `explain` and `clean` leave the target out when it comes from a pattern such as `//...` or `:all`, and build it when named; `query` still matches it ([§1](#target-patterns))",
		Why: "which patterns select the target, not what its actions compute"},
}

var tagsByName = func() map[string]TagInfo {
	m := make(map[string]TagInfo, len(Tags))
	for _, t := range Tags {
		m[t.Name] = t
	}
	return m
}()

// LookupTag returns the known tag called name.
func LookupTag(name string) (TagInfo, bool) {
	t, ok := tagsByName[name]
	return t, ok
}

// TagNames returns the known tags' names, sorted.
func TagNames() []string {
	names := make([]string, 0, len(Tags))
	for _, t := range Tags {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

// keyTags returns the action's tags that enter the key, sorted, without
// duplicates.
func keyTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if tagsByName[t].InKey {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return dedupe(out)
}
