//go:build !linux

package sandbox

// resident is a resident sandbox, which only the linux strategy starts:
// elsewhere no slot has one.
type resident struct{}

func (*resident) stop() {}
