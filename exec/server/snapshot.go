package server

import (
	"bytes"
	"encoding/gob"
	"fmt"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// snapshot is the per-action state of an ended build, as stored: the plan
// is stored apart (plan_chunks), the action details too (action_info).
type snapshot struct {
	State    []uint8
	Attempts []uint8
	Exit     []int32
	Queued   []int64
	Started  []int64
	Finished []int64
	Duration []int64
	Message  map[int32]string
	JobOf    map[int32]string
	Slot     map[int32]int32
	Failures []api.Failure
	Warnings []string
	Jobs     []api.Job
}

func (b *build) encodeSnapshot() ([]byte, error) {
	s := snapshot{State: b.state, Attempts: b.attempts, Exit: b.exit, Queued: b.queued, Started: b.started,
		Finished: b.finished, Duration: b.duration, Message: b.message, JobOf: b.jobOf, Slot: b.slot,
		Failures: b.failures, Warnings: b.warnings}
	for _, j := range b.jobs {
		s.Jobs = append(s.Jobs, *j)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return nil, fmt.Errorf("encoding the state of build %s: %w", b.start.ID, err)
	}
	return buf.Bytes(), nil
}

// restoreSnapshot sets the per-action state of b, whose plan is loaded,
// and recounts.
func (b *build) restoreSnapshot(data []byte) error {
	var s snapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return fmt.Errorf("decoding the state of build %s: %w", b.start.ID, err)
	}
	n := len(s.State)
	if len(s.Attempts) != n || len(s.Exit) != n || len(s.Queued) != n || len(s.Started) != n || len(s.Finished) != n || len(s.Duration) != n {
		return fmt.Errorf("decoding the state of build %s: arrays of different lengths", b.start.ID)
	}
	b.grow(n)
	copy(b.attempts, s.Attempts)
	copy(b.exit, s.Exit)
	copy(b.queued, s.Queued)
	copy(b.started, s.Started)
	copy(b.finished, s.Finished)
	copy(b.duration, s.Duration)
	for id, st := range s.State {
		if st < numStates {
			b.setState(int32(id), st)
		}
	}
	if s.Message != nil {
		b.message = s.Message
	}
	if s.JobOf != nil {
		b.jobOf = s.JobOf
	}
	if s.Slot != nil {
		b.slot = s.Slot
	}
	b.failures, b.warnings = s.Failures, s.Warnings
	for i := range s.Jobs {
		j := s.Jobs[i]
		b.jobs[j.Executor+" "+j.ID] = &j
	}
	return nil
}
