//go:build !linux

package sandbox

import "os"

// spareLog is a Linux feature (unnamed files, O_TMPFILE): elsewhere a
// command's log is written through a pipe.
type spareLog struct{ f *os.File }

func takeSpareLog(path string) *spareLog          { return nil }
func (s *spareLog) watch()                        {}
func (s *spareLog) finish(writersGone bool) error { return nil }
