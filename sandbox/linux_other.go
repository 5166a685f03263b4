//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"io"
	"runtime"
)

// Linux is the linux strategy, which needs Linux namespaces: elsewhere
// NewLinux always fails, and builds use the symlink strategy by default.
type Linux struct {
	Root string
	Hide []string
	Warn io.Writer
}

var errNoNamespaces = errors.New("it needs Linux namespaces, which " + runtime.GOOS + " does not have")

func probeLinux() LinuxStatus { return LinuxStatus{Err: errNoNamespaces} }

func bwrapVersion(string) string { return "" }

// NewLinux returns an *UnavailableError.
func NewLinux(root string, hide ...string) (*Linux, error) {
	return nil, &UnavailableError{Strategy: "linux", Reason: errNoNamespaces}
}

// Name returns "linux".
func (*Linux) Name() string { return "linux" }

// Run returns an *UnavailableError.
func (*Linux) Run(ctx context.Context, s Spec) (Result, error) {
	return Result{}, &UnavailableError{Strategy: "linux", Reason: errNoNamespaces}
}

// Close does nothing.
func (*Linux) Close() error { return nil }
