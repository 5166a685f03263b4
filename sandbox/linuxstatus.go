package sandbox

import (
	"fmt"
	"sync"
)

// LinuxStatus says whether the linux strategy works on this machine.
type LinuxStatus struct {
	// Bwrap is the path of bubblewrap, Version what it says it is ("bubblewrap 0.8.0").
	Bwrap, Version string
	// Err says why the strategy is unavailable; nil when it is available.
	Err error
}

// ProbeLinux finds bubblewrap and runs it once with the namespaces the
// strategy uses. The answer is computed once per process.
var ProbeLinux = sync.OnceValue(probeLinux)

// UnavailableError says that a strategy was asked for but cannot run here.
type UnavailableError struct {
	Strategy string
	Reason   error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("the %s sandbox is not available: %v (use --sandbox symlink)", e.Strategy, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return e.Reason }
