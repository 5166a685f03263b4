// Package standin makes the batch-system stand-ins of
// exec/batch/internal/standin (HTCondor, LSF and gLite/CREAM tools built
// from their documentation, for tests) available to tests outside
// exec/batch, such as cmd/hepbuild's end-to-end tests, which Go's rule for
// internal packages keeps from importing them. See that package for the
// state folder and the trouble a test can script.
package standin

import "github.com/hepbuild/hepbuild/exec/batch/internal/standin"

// Trouble is what a stand-in does to a job instead of running it to its end.
type Trouble = standin.Trouble

// The trouble a test can plan or inflict.
const (
	Held       = standin.Held
	OverMemory = standin.OverMemory
	OverTime   = standin.OverTime
	Vanished   = standin.Vanished
)

// The functions of exec/batch/internal/standin.
var (
	Install    = standin.Install
	Calls      = standin.Calls
	Count      = standin.Count
	Fail       = standin.Fail
	Garbage    = standin.Garbage
	Pause      = standin.Pause
	Resume     = standin.Resume
	Plan       = standin.Plan
	Inflict    = standin.Inflict
	Status     = standin.Status
	Alive      = standin.Alive
	WaitStatus = standin.WaitStatus
	Submitted  = standin.Submitted
	Tools      = standin.Tools
)
