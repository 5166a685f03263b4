package glite

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

var fieldRE = regexp.MustCompile(`(\w+)\s*=\s*\[([^\]\n]*)\]`)

// ParseStatus reads glite-ce-job-status output: per job a block that
// starts with "******  JobID=[url]" followed by "Key = [value]" lines
// (Status, ExitCode, FailureReason, Description, ...). Output with text
// but no such block, or a block without a Status, is an error.
func ParseStatus(out []byte) (map[string]batch.Status, error) {
	jobs := map[string]batch.Status{}
	blocks := bytes.Split(out, []byte("******"))
	for _, l := range strings.Split(string(blocks[0]), "\n") {
		// The CLI may print its complaints about purged jobs on standard
		// output too; anything else before the first block is not status.
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "not found") {
			return nil, fmt.Errorf("unexpected text before the first job: %q", head(blocks[0]))
		}
	}
	for _, block := range blocks[1:] {
		f := map[string]string{}
		for _, m := range fieldRE.FindAllSubmatch(block, -1) {
			f[string(m[1])] = strings.TrimSpace(string(m[2]))
		}
		id, status := f["JobID"], f["Status"]
		if !jobIDRE.MatchString(id) || status == "" {
			return nil, fmt.Errorf("a job's block lacks its JobID or Status: %q", head(block))
		}
		jobs[id] = statusOf(status, f["ExitCode"], f["FailureReason"], f["Description"])
	}
	return jobs, nil
}

func head(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// statusOf maps CREAM's job states (CREAM user guide, "CREAM job states").
// REGISTERED, PENDING and IDLE wait; RUNNING (the job wrapper started on
// the node) and REALLY-RUNNING run; HELD is held. DONE-OK ended. A
// DONE-FAILED job with an exit status ended like any other (the cache
// says whether its actions succeeded), unless the batch system's message
// says it was killed over its memory or time limit; without an exit
// status, and CANCELLED and ABORTED, it failed. UNKNOWN and anything new
// wait, with the state as the reason.
func statusOf(state, exit, failure, description string) batch.Status {
	reason := failure
	if reason == "" {
		reason = description
	}
	code, codeErr := strconv.Atoi(exit)
	switch state {
	case "REGISTERED", "PENDING", "IDLE":
		return batch.Status{State: batch.StatePending}
	case "RUNNING", "REALLY-RUNNING":
		return batch.Status{State: batch.StateRunning}
	case "HELD":
		if reason == "" {
			reason = "HELD"
		}
		return batch.Status{State: batch.StateHeld, Reason: reason}
	case "DONE-OK":
		return batch.Status{State: batch.StateDone, ExitCode: code}
	case "DONE-FAILED":
		mem, over := overMemory(reason), overTime(reason)
		if codeErr == nil && !mem && !over {
			return batch.Status{State: batch.StateDone, ExitCode: code, Reason: reason}
		}
		if reason == "" {
			reason = "DONE-FAILED"
		}
		return batch.Status{State: batch.StateFailed, ExitCode: code, Reason: reason, OverMemory: mem, OverTime: over}
	case "CANCELLED", "ABORTED":
		if reason == "" {
			reason = state
		} else {
			reason = state + ": " + reason
		}
		return batch.Status{State: batch.StateFailed, Reason: reason}
	}
	return batch.Status{State: batch.StatePending, Reason: "CREAM state " + state}
}

// overMemory and overTime read the batch system's words that CREAM
// passes on: Torque/PBS "job killed: vmem N exceeded limit M", "walltime
// N exceeded limit M", and the like from other systems.
func overMemory(reason string) bool {
	r := strings.ToLower(reason)
	return containsAny(r, "vmem", "pmem", "mem ", "memory") && containsAny(r, "exceed", "limit")
}

func overTime(reason string) bool {
	r := strings.ToLower(reason)
	return containsAny(r, "walltime", "wall time", "wallclock", "cput", "cpu time", "run time", "runlimit") && containsAny(r, "exceed", "limit")
}

func containsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
