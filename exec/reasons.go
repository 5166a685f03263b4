package exec

// reasons.go says why an action runs, for those who watch a build (the
// build's page on hepbuild serve): the answer explain gives before a
// build, computed while it runs.

// tellReasons hands Runner.Reasons why the action must run; nothing is
// computed without a listener.
func (r *Runner) tellReasons(a *Action, key *Key, in *inputDigests) {
	if r.Reasons == nil || key == nil {
		return
	}
	r.Reasons(a, key.Digest.String(), r.reasons(a, key, in))
}

// reasons compares the action with the journal's record of its last run,
// as Explain does.
func (r *Runner) reasons(a *Action, key *Key, in *inputDigests) []string {
	prev := r.previous(a)
	if prev == nil {
		return []string{"never run here before"}
	}
	if changes := changesSince(prev, a, in.seen(), key); changes != nil {
		return changes
	}
	// Same key: nothing it reads changed; what it made did, and no cache
	// had the result.
	return []string{"its outputs are missing or changed since its last run, and no cache holds the result"}
}

// DescribeCommand shows what an action runs, as its failure message does:
// the script of a bash -c command, else the quoted argv; a line for
// writes, copies and downloads.
func DescribeCommand(a *Action) string { return describeCommand(a) }
