//go:build !linux

package sandbox

import (
	"errors"
	"testing"
)

// bothWays skips: the linux strategy needs Linux namespaces.
func bothWays(t *testing.T, f func(t *testing.T, l *Linux, root, base string)) {
	t.Skip("the linux strategy needs Linux namespaces")
}

// Off Linux the linux strategy exists only to say that it cannot run.
func TestLinuxUnavailable(t *testing.T) {
	if st := ProbeLinux(); st.Err == nil {
		t.Errorf("ProbeLinux() = %+v, want an error", st)
	}
	var unavailable *UnavailableError
	if _, err := NewLinux(t.TempDir()); !errors.As(err, &unavailable) {
		t.Errorf("NewLinux: got %v, want an *UnavailableError", err)
	}
	if err := CgroupStatus(); err == nil {
		t.Error("CgroupStatus() = nil, want an error")
	}
}
