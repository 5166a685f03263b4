//go:build !linux

package reaper

import (
	"errors"
	"runtime"
)

// Supported says whether this OS has child subreapers, without which no
// reaper can work. Elsewhere than Linux, a command's orphans go to init
// and only its process group is killed.
const Supported = false

// BecomeSubreaper fails: child subreapers are a Linux feature.
func BecomeSubreaper() error {
	return errors.New("child subreapers are not available on " + runtime.GOOS)
}
