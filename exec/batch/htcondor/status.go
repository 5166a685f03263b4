package htcondor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// jobAd is the part of a job ClassAd that Poll and History read. Pointers
// tell "absent" from zero: an ad without its id or status is rejected.
type jobAd struct {
	ClusterId         *int64
	ProcId            *int64
	JobStatus         *int
	HoldReason        string
	HoldReasonCode    int
	HoldReasonSubCode int
	ExitCode          *int
	ExitBySignal      bool
	ExitSignal        int
	RemoveReason      string
}

// ParseJobs reads the output of condor_q -json or condor_history -json: a
// JSON array of job ClassAds, or nothing at all when no job matched. It
// returns each job's status by id "cluster.proc"; anything else than
// such an array is an error, never a guessed state.
func ParseJobs(out []byte) (map[string]batch.Status, error) {
	jobs := map[string]batch.Status{}
	if len(bytes.TrimSpace(out)) == 0 {
		return jobs, nil
	}
	var ads []jobAd
	if err := json.Unmarshal(out, &ads); err != nil {
		return nil, fmt.Errorf("not a JSON array of job ads: %w (output starts %q)", err, head(out))
	}
	for i, ad := range ads {
		if ad.ClusterId == nil || ad.ProcId == nil || ad.JobStatus == nil {
			return nil, fmt.Errorf("job ad %d lacks ClusterId, ProcId or JobStatus", i)
		}
		jobs[fmt.Sprintf("%d.%d", *ad.ClusterId, *ad.ProcId)] = statusOf(ad)
	}
	return jobs, nil
}

func head(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// Hold reason codes (HTCondor manual, "Job ClassAd Attributes", HoldReasonCode).
const (
	holdJobOutOfResources   = 34 // over the memory (or disk) it asked for
	holdJobDurationExceeded = 46 // allowed_job_duration
	holdJobExecuteExceeded  = 47 // allowed_execute_duration
)

// statusOf maps JobStatus (1 Idle, 2 Running, 3 Removed, 4 Completed,
// 5 Held, 6 Transferring Output, 7 Suspended) to the engine's states.
func statusOf(ad jobAd) batch.Status {
	switch *ad.JobStatus {
	case 1:
		return batch.Status{State: batch.StatePending}
	case 2:
		return batch.Status{State: batch.StateRunning}
	case 3:
		reason := ad.RemoveReason
		if reason == "" {
			reason = "removed"
		}
		return batch.Status{State: batch.StateFailed, Reason: reason, OverMemory: overMemory(0, reason), OverTime: overTime(0, reason)}
	case 4:
		if ad.ExitBySignal {
			return batch.Status{State: batch.StateFailed, Reason: fmt.Sprintf("killed by signal %d", ad.ExitSignal)}
		}
		s := batch.Status{State: batch.StateDone}
		if ad.ExitCode != nil {
			s.ExitCode = *ad.ExitCode
		}
		return s
	case 5:
		reason := ad.HoldReason
		if reason == "" {
			reason = fmt.Sprintf("held (HoldReasonCode %d)", ad.HoldReasonCode)
		}
		return batch.Status{
			State:      batch.StateHeld,
			Reason:     reason,
			OverMemory: overMemory(ad.HoldReasonCode, reason),
			OverTime:   overTime(ad.HoldReasonCode, reason),
		}
	case 6:
		return batch.Status{State: batch.StateRunning, Reason: "transferring output"}
	case 7:
		return batch.Status{State: batch.StateRunning, Reason: "suspended"}
	}
	return batch.Status{State: batch.StatePending, Reason: fmt.Sprintf("unknown JobStatus %d", *ad.JobStatus)}
}

// overMemory recognises memory holds by their code, or by their words when
// a pool's own policy (SYSTEM_PERIODIC_HOLD, code 26 or 3) held the job.
func overMemory(code int, reason string) bool {
	r := strings.ToLower(reason)
	if code == holdJobOutOfResources && !strings.Contains(r, "disk") {
		return true
	}
	return strings.Contains(r, "memory") && containsAny(r, "limit", "exceed", "over ", "usage")
}

func overTime(code int, reason string) bool {
	if code == holdJobDurationExceeded || code == holdJobExecuteExceeded {
		return true
	}
	r := strings.ToLower(reason)
	return containsAny(r, "maxruntime", "walltime", "wall time", "wallclock", "runtime", "execute duration", "job duration", "execution time") &&
		containsAny(r, "limit", "exceed", "over ", "greater")
}

func containsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
