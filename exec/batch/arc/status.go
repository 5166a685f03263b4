package arc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// Poll returns the jobs' states with one arcstat call. The ids go in a
// file (arcstat -i), so any number of jobs fits in one call. Jobs the job
// list no longer has (cleaned, killed) are absent; jobs the CE did not
// report on while it answered for others are pending, with a reason; a CE
// that answered for none is an error, so that a CE down is never mistaken
// for jobs gone.
func (b *Backend) Poll(ctx context.Context, ids []string) (map[string]batch.Status, error) {
	out := make(map[string]batch.Status, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	infos, err := b.status(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if info, ok := infos[id]; ok {
			out[id] = info.status()
		}
	}
	return out, nil
}

// jobInfo is what arcstat -l says about one job.
type jobInfo struct {
	Name, State, Specific string
	ExitCode              *int
	Errors                []string
	unavailable           bool // listed, but the CE gave no status
}

// status runs arcstat -l for the ids and parses its answer.
func (b *Backend) status(ctx context.Context, ids []string) (map[string]jobInfo, error) {
	file, err := writeIDs("", ids)
	if err != nil {
		return nil, fmt.Errorf("writing the job ids for arcstat: %w", err)
	}
	defer os.Remove(file)
	argv := append([]string{"arcstat", "-l"}, b.clientArgs()...)
	argv = append(argv, "-i", file)
	res, err := b.run(ctx, argv)
	if err != nil {
		return nil, fmt.Errorf("polling %d jobs: %w", len(ids), err)
	}
	infos, err := parseStatus(res.Stdout, res.Stderr, ids)
	if err != nil {
		return nil, fmt.Errorf("polling %d jobs: %w (exit status %d): %s", len(ids), err, res.ExitCode, res.Brief())
	}
	return infos, nil
}

var (
	notInListRE = regexp.MustCompile(`Job not found in job list: (\S+)`)
	summaryRE   = regexp.MustCompile(`^Status of (\d+) jobs? (?:was|were) queried, (\d+) jobs? returned information`)
)

// parseStatus reads arcstat -l output: a block per job that starts with
// "Job: <id>" followed by indented "Key: value" lines, then a summary line.
// Warnings on the error output name jobs the job list does not have. The
// result has an entry for each id the CE reported on and each id it was
// asked about but did not report on (unavailable); ids the job list does
// not know are missing. Output it cannot read is an error, never a state.
func parseStatus(stdout, stderr []byte, ids []string) (map[string]jobInfo, error) {
	infos := make(map[string]jobInfo)
	unknown := make(map[string]bool)
	for _, m := range notInListRE.FindAllSubmatch(stderr, -1) {
		unknown[string(m[1])] = true
	}
	for _, m := range notInListRE.FindAllSubmatch(stdout, -1) {
		unknown[string(m[1])] = true
	}
	var (
		cur      string
		info     jobInfo
		queried  = -1
		returned = -1
		noJobs   bool
	)
	flush := func() error {
		if cur == "" {
			return nil
		}
		if info.State == "" {
			return fmt.Errorf("arcstat gave job %s no state", cur)
		}
		infos[cur] = info
		cur, info = "", jobInfo{}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Job: "):
			if err := flush(); err != nil {
				return nil, err
			}
			cur = strings.TrimSpace(strings.TrimPrefix(line, "Job: "))
			if cur == "" {
				return nil, fmt.Errorf("arcstat printed a job without an id")
			}
		case trimmed == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case cur != "" && (line[0] == ' ' || line[0] == '\t'):
			key, value, ok := strings.Cut(trimmed, ":")
			if !ok {
				continue // a continuation, e.g. a delegation id
			}
			value = strings.TrimSpace(value)
			switch key {
			case "Name":
				info.Name = value
			case "State":
				info.State = value
			case "Specific state":
				info.Specific = value
			case "Exit Code":
				n, err := strconv.Atoi(value)
				if err != nil {
					return nil, fmt.Errorf("arcstat gave job %s the exit code %q", cur, value)
				}
				info.ExitCode = &n
			case "Job Error":
				info.Errors = append(info.Errors, value)
			}
		default:
			if err := flush(); err != nil {
				return nil, err
			}
			if m := summaryRE.FindStringSubmatch(trimmed); m != nil {
				queried, _ = strconv.Atoi(m[1])
				returned, _ = strconv.Atoi(m[2])
			} else if strings.HasPrefix(trimmed, "No jobs found") {
				noJobs = true
			} else if logLine(trimmed) {
				// a log message on the standard output: not a job's state;
				// the summary says whether the CE answered
			} else {
				return nil, fmt.Errorf("unexpected arcstat output %q", trimmed)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if noJobs {
		// None of the ids is in the job list any more.
		if len(infos) > 0 {
			return nil, fmt.Errorf("arcstat reported jobs and also that it found none")
		}
		return infos, nil
	}
	if queried < 0 {
		return nil, fmt.Errorf("arcstat printed no summary")
	}
	if returned == 0 && queried > 0 {
		return nil, fmt.Errorf("the CE returned no information on %d jobs", queried)
	}
	if len(infos) != returned {
		return nil, fmt.Errorf("arcstat reported %d jobs but said it returned information on %d", len(infos), returned)
	}
	for _, id := range ids {
		if _, ok := infos[id]; !ok && !unknown[id] {
			infos[id] = jobInfo{unavailable: true}
		}
	}
	return infos, nil
}

// status maps ARC's job states (arcstat's generic ones, which every CE
// interface reports) to the engine's. A job that ended with a non-zero
// exit status is Failed for ARC but done for the engine: the command ran
// and the cache holds what it did; Failed without an exit status, or
// killed over a limit, is failed.
func (j jobInfo) status() batch.Status {
	if j.unavailable {
		return batch.Status{State: batch.StatePending, Reason: "the CE gave no status for the job"}
	}
	reason := strings.Join(j.Errors, "; ")
	exit := 0
	if j.ExitCode != nil {
		exit = *j.ExitCode
	}
	switch strings.ToLower(j.State) {
	case "accepted", "preparing", "submitting", "queuing":
		return batch.Status{State: batch.StatePending, Reason: j.State}
	case "hold":
		// ARC holds a job while it waits on its own limits (data
		// staging, the LRMS); it resumes by itself, unlike an HTCondor hold.
		return batch.Status{State: batch.StatePending, Reason: "held by the CE: " + j.Specific}
	case "running", "finishing":
		// Finishing: the command has ended, its output is being staged
		// out; the log is not retrievable yet.
		return batch.Status{State: batch.StateRunning}
	case "finished":
		return batch.Status{State: batch.StateDone, ExitCode: exit}
	case "failed":
		st := batch.Status{State: batch.StateFailed, ExitCode: exit, Reason: reason}
		st.OverTime, st.OverMemory = overLimits(reason)
		if j.ExitCode != nil && exit != 0 && !st.OverTime && !st.OverMemory && exitedWrong(reason) {
			st.State = batch.StateDone
		}
		if st.Reason == "" {
			st.Reason = "Failed"
		}
		return st
	case "killed":
		return batch.Status{State: batch.StateFailed, ExitCode: exit, Reason: "Killed"}
	case "deleted":
		// The CE removed the job (it stayed too long): what it did, if
		// anything, is in the cache.
		return batch.Status{State: batch.StateFailed, Reason: "Deleted by the CE"}
	}
	// Other, Undefined or a state newer than this code: not an end.
	return batch.Status{State: batch.StatePending, Reason: fmt.Sprintf("ARC state %q (%s)", j.State, j.Specific)}
}

// exitedWrong says that A-REX failed the job only because the command
// exited non-zero ("Job finished with wrong exit code - 1 != 0").
func exitedWrong(reason string) bool {
	return reason == "" || strings.Contains(reason, "wrong exit code")
}

// overLimits reads the LRMS's reason for killing a job: the scan scripts
// write "job killed: wall", "job killed: cput", "job killed: vmem", "Job
// exceeded time limit"; Slurm behind ARC says TIMEOUT or OUT_OF_MEMORY.
func overLimits(reason string) (overTime, overMemory bool) {
	r := strings.ToLower(reason)
	overTime = strings.Contains(r, "killed: wall") || strings.Contains(r, "killed: cput") ||
		strings.Contains(r, "exceeded time limit") || strings.Contains(r, "timeout")
	overMemory = strings.Contains(r, "killed: vmem") || strings.Contains(r, "killed: mem") ||
		strings.Contains(r, "out_of_memory") || strings.Contains(r, "memory limit")
	return overTime, overMemory
}

// logLine says whether an unindented line is one of the ARC client's log
// messages ("ERROR: ...", "Warning: ...").
func logLine(s string) bool {
	for _, p := range []string{"ERROR:", "WARNING:", "Warning:", "INFO:", "VERBOSE:", "DEBUG:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// writeIDs writes ids one a line into a new file in dir ("" for the
// system's temporary folder) for the tools' -i option.
func writeIDs(dir string, ids []string) (string, error) {
	f, err := os.CreateTemp(dir, "arc-*.ids")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(strings.Join(ids, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return filepath.Clean(f.Name()), nil
}
