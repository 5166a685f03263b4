package lsf

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// record is one line of bjobs -o "...": -json prints every value as a
// string, and an ERROR record for an id it does not know.
type record struct {
	JOBID, JOBINDEX, STAT         text
	EXIT_CODE, EXIT_REASON, ERROR text
	PEND_REASON                   text
}

// text is a value of bjobs -json: a string, though a number is taken too.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = text(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("bjobs value %s is neither a string nor a number", b)
	}
	*t = text(n)
	return nil
}

// ParseJobs reads bjobs -o "jobid jobindex stat exit_code exit_reason
// pend_reason" -json and returns each job's status by id "JOBID[INDEX]"
// ("JOBID" for a job that is no array). Records for unknown jobs are left
// out; anything that is not such a document is an error.
func ParseJobs(out []byte) (map[string]batch.Status, error) {
	var doc struct {
		RECORDS *[]record
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("not bjobs -json output: %w (output starts %q)", err, head(out))
	}
	if doc.RECORDS == nil {
		return nil, fmt.Errorf("bjobs -json output without RECORDS (output starts %q)", head(out))
	}
	jobs := map[string]batch.Status{}
	for i, r := range *doc.RECORDS {
		if r.ERROR != "" {
			continue
		}
		if _, err := strconv.ParseUint(string(r.JOBID), 10, 64); err != nil || r.STAT == "" {
			return nil, fmt.Errorf("record %d has no job id or state: %+v", i, r)
		}
		id := string(r.JOBID)
		switch r.JOBINDEX {
		case "", "0":
		default:
			if _, err := strconv.ParseUint(string(r.JOBINDEX), 10, 64); err != nil {
				return nil, fmt.Errorf("record %d: job index %q", i, r.JOBINDEX)
			}
			id += "[" + string(r.JOBINDEX) + "]"
		}
		jobs[id] = statusOf(r)
	}
	return jobs, nil
}

func head(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// statusOf maps LSF's job states (bjobs(1), "Job states"): PEND, PROV and
// WAIT wait; RUN runs, and so do SSUSP jobs (the system suspended them
// for load and resumes them); PSUSP and USUSP were suspended by the user
// or an administrator and stay so: held. DONE ended with status 0. EXIT
// ended otherwise: a plain non-zero exit status is an ending like any
// other (the cache says whether the actions succeeded), while a TERM_
// reason means LSF killed it: failed, with TERM_MEMLIMIT and
// TERM_RUNLIMIT (and their words) marking memory and run limits. UNKWN
// (the node does not answer) waits; ZOMBI failed.
func statusOf(r record) batch.Status {
	switch r.STAT {
	case "PEND", "PROV", "WAIT":
		return batch.Status{State: batch.StatePending, Reason: string(r.PEND_REASON)}
	case "RUN":
		return batch.Status{State: batch.StateRunning}
	case "SSUSP":
		return batch.Status{State: batch.StateRunning, Reason: "suspended by LSF"}
	case "PSUSP", "USUSP":
		reason := string(r.PEND_REASON)
		if reason == "" {
			reason = string(r.STAT) + ": suspended by its owner or an administrator"
		}
		return batch.Status{State: batch.StateHeld, Reason: reason}
	case "DONE":
		return batch.Status{State: batch.StateDone}
	case "EXIT":
		code, _ := strconv.Atoi(strings.TrimSpace(string(r.EXIT_CODE)))
		reason := strings.TrimSpace(string(r.EXIT_REASON))
		if reason == "-" {
			reason = ""
		}
		if !strings.Contains(reason, "TERM_") && !strings.Contains(strings.ToLower(reason), "killed") {
			return batch.Status{State: batch.StateDone, ExitCode: code, Reason: reason}
		}
		low := strings.ToLower(reason)
		return batch.Status{
			State:      batch.StateFailed,
			ExitCode:   code,
			Reason:     reason,
			OverMemory: strings.Contains(reason, "TERM_MEMLIMIT") || strings.Contains(low, "memory usage limit"),
			OverTime:   strings.Contains(reason, "TERM_RUNLIMIT") || strings.Contains(low, "run time limit"),
		}
	case "ZOMBI":
		return batch.Status{State: batch.StateFailed, Reason: "ZOMBI: killed while its node did not answer"}
	case "UNKWN":
		return batch.Status{State: batch.StatePending, Reason: "UNKWN: LSF lost contact with the job's node"}
	}
	return batch.Status{State: batch.StatePending, Reason: "unknown LSF state " + string(r.STAT)}
}
