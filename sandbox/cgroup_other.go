//go:build !linux

package sandbox

import (
	"errors"
	"runtime"
)

// CgroupStatus says why memory and cpu limits cannot be enforced: cgroups
// are a Linux feature.
func CgroupStatus() error {
	return errors.New("cgroups are not available on " + runtime.GOOS)
}
