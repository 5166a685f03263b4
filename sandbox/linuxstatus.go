package sandbox

import (
	"fmt"
	"sync"
)

// LinuxStatus says whether the linux strategy works on this machine.
type LinuxStatus struct {
	// Bwrap is the path of bubblewrap.
	Bwrap string
	// Err says why the strategy is unavailable; nil when it is available.
	Err error
}

// ProbeLinux finds bubblewrap and runs it once with the namespaces the
// strategy uses. The answer is computed once per process: a build starts
// it beside loading (see StartProbeLinux), since it takes a process start
// and a set of namespaces, as long as restoring a small build from the
// cache.
var ProbeLinux = sync.OnceValue(probeLinux)

// StartProbeLinux starts ProbeLinux in the background; a later call of it
// waits for that answer.
func StartProbeLinux() { go ProbeLinux() }

// BwrapVersion says what version of bubblewrap ProbeLinux found
// ("bubblewrap 0.8.0"); "" when none, or when it does not say.
var BwrapVersion = sync.OnceValue(func() string {
	if st := ProbeLinux(); st.Bwrap != "" {
		return bwrapVersion(st.Bwrap)
	}
	return ""
})

// UnavailableError says that a strategy was asked for but cannot run here.
type UnavailableError struct {
	Strategy string
	Reason   error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("the %s sandbox is not available: %v (use --sandbox symlink)", e.Strategy, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return e.Reason }
