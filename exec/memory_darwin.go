package exec

import (
	"sync"

	"golang.org/x/sys/unix"
)

// physicalMemory is the hw.memsize sysctl, or 0 when unknown.
var physicalMemory = sync.OnceValue(func() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0
	}
	return int64(n)
})
