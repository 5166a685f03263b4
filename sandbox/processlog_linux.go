package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A command run by a helper that kills everything the command left before
// it replies (a resident reaper, a resident linux sandbox) writes its log
// into a spare log file: an unnamed file (O_TMPFILE) on the log folder's
// file system, kept open by hepbuild from one command to the next. Most
// commands print nothing; after those the spare is still empty, nothing
// remains to be done, and it serves the next command. A pipe, a goroutine
// copying it and the poller's bookkeeping cost about a tenth of hepbuild's
// own CPU per cheap action; the spare costs two system calls. A spare that
// received output is linked under the log's name, which makes it the log,
// and a new spare is made for later commands. Since every process of the
// command's is dead when the helper replies, none of theirs writes to a
// spare after it went back to the pool, nor to a log after the command's
// end. A process that is not the command's, to which the command handed
// its stdout (systemd-run --pipe, or any descriptor passing), is not
// killed: the spare of a command stopped from outside, when such a
// process is usually left, is not used again. One that a command ending
// by itself leaves writing would write into later logs, where a pipe
// would have had it fail.
//
// Today's log semantics hold: stdout and stderr are one file, interleaved
// as written; a silent run leaves no log (the previous run's is removed
// before the command starts); and the log of a long command shows up
// while it runs, within liveLogAfter of its first byte, as the spare is
// linked into place as soon as it is found not empty.

// liveLogAfter is how often the spare of a running command is checked for
// output, which is then linked into place to be followed as it grows.
const liveLogAfter = 500 * time.Millisecond

// spareFile is a spare log file with the status flags it was opened with
// and what its inode was like then. A command may change the flags of its
// stdout (they belong to the open file, which the command shares), and
// the inode: give it a name (linkat of /proc/self/fd/1), which the next
// command's log would reach, change its mode, owner or attributes, which
// the next log would carry, or allocate blocks to it. A spare changed in
// any of these ways is not used again.
type spareFile struct {
	f     *os.File
	flags int
	made  unix.Stat_t
}

// untouched says whether st, the spare's fstat after a command, is the
// spare as it was made: empty, unnamed, with no blocks and no change to
// its metadata (the change time tells of attributes and ACLs, where its
// granularity allows; mode and owner are compared all the same).
func (s *spareFile) untouched(st *unix.Stat_t) bool {
	return st.Size == 0 && st.Nlink == 0 && st.Blocks == 0 && st.Mode == s.made.Mode &&
		st.Uid == s.made.Uid && st.Gid == s.made.Gid && st.Ctim == s.made.Ctim
}

// spareLogs are the spares not in use. There are as many as commands
// have run at once, each an open descriptor of an empty, unnamed file.
var spareLogs struct {
	mu   sync.Mutex
	free []spareFile
	// off says the file system cannot make unnamed files (O_TMPFILE):
	// commands get a pipe instead.
	off bool
}

// spareLog is a spare in use by one command, which writes its log at path.
type spareLog struct {
	spareFile
	path string

	mu     sync.Mutex // the live check against the end
	timer  *time.Timer
	linked bool // the file is the log at path
	done   bool
}

// takeSpareLog returns a spare for the command whose log is path, or nil
// when there is none to be had (the command then gets a pipe).
func takeSpareLog(path string) *spareLog {
	spareLogs.mu.Lock()
	if spareLogs.off {
		spareLogs.mu.Unlock()
		return nil
	}
	if n := len(spareLogs.free); n > 0 {
		s := spareLogs.free[n-1]
		spareLogs.free = spareLogs.free[:n-1]
		spareLogs.mu.Unlock()
		return &spareLog{spareFile: s, path: path}
	}
	spareLogs.mu.Unlock()
	s, err := openSpare(filepath.Dir(path))
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			// No O_TMPFILE here (an old kernel, a network file system).
			spareLogs.mu.Lock()
			spareLogs.off = true
			spareLogs.mu.Unlock()
		}
		return nil
	}
	return &spareLog{spareFile: s, path: path}
}

// openSpare makes an unnamed file in dir, or in the nearest folder above
// it that exists: the log's folder is made only when there is a log.
func openSpare(dir string) (spareFile, error) {
	for {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err == nil {
			s := spareFile{}
			if err := unix.Fstat(fd, &s.made); err != nil {
				unix.Close(fd)
				return spareFile{}, err
			}
			if s.flags, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil {
				unix.Close(fd)
				return spareFile{}, err
			}
			s.f = os.NewFile(uintptr(fd), "log")
			return s, nil
		}
		parent := filepath.Dir(dir)
		if err != unix.ENOENT || parent == dir {
			return spareFile{}, err
		}
		dir = parent
	}
}

// watch starts looking for output while the command runs.
func (s *spareLog) watch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.timer = time.AfterFunc(liveLogAfter, s.check)
	}
}

// check links the spare into place once it holds output.
func (s *spareLog) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.linked {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(int(s.f.Fd()), &st) == nil && st.Size > 0 && s.link() == nil {
		return
	}
	s.timer.Reset(liveLogAfter)
}

// finish ends the command's use of the spare: the log is in place when
// there was output, absent when there was none. writersGone says that no
// process can write to the spare any more; only then may an empty spare
// serve another command.
func (s *spareLog) finish(writersGone bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	if s.timer != nil {
		s.timer.Stop()
	}
	fd := int(s.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		s.f.Close()
		return fmt.Errorf("log: %w", err)
	}
	if st.Size == 0 {
		if s.linked {
			// Emptied since (truncated): a silent run leaves no log.
			if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.f.Close()
				return fmt.Errorf("removing empty log: %w", err)
			}
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); writersGone && !s.linked && err == nil && flags == s.flags && s.untouched(&st) {
			spareLogs.mu.Lock()
			spareLogs.free = append(spareLogs.free, s.spareFile)
			spareLogs.mu.Unlock()
			return nil
		}
		s.f.Close()
		return nil
	}
	defer s.f.Close()
	if s.linked {
		return nil
	}
	if err := s.link(); err == nil {
		return nil
	}
	return s.copyOut(st.Size)
}

// link gives the spare the log's name.
func (s *spareLog) link() error {
	src := "/proc/self/fd/" + strconv.Itoa(int(s.f.Fd()))
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, s.path, unix.AT_SYMLINK_FOLLOW)
	if err == unix.ENOENT {
		if err = os.MkdirAll(filepath.Dir(s.path), 0o755); err == nil {
			err = unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, s.path, unix.AT_SYMLINK_FOLLOW)
		}
	}
	if err == nil {
		s.linked = true
	}
	return err
}

// copyOut writes the spare's first size bytes to the log, where it cannot
// be linked (another file system, no /proc).
func (s *spareLog) copyOut(size int64) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	_, err = io.Copy(f, io.NewSectionReader(s.f, 0, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing log: %w", err)
	}
	return nil
}
