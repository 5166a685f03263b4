package sandbox

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Whether the kernel executes a program file (executesDirectly) depends
// on its content, which only a read tells, and on what it names (its
// program interpreter, a script's interpreter), which must be there and
// executable. Parsing the ELF headers of the same few programs for every
// command cost a helper a tenth of its CPU, so what the content says (the
// file's format) is kept per file, keyed by what changes whenever the
// content does; what it names is looked at every time.

// execFormat is what a program file's content says about executing it.
type execFormat struct {
	kind formatKind
	// names are an ELF file's program interpreters, or a script's
	// interpreter; absolute paths.
	names []string
}

type formatKind uint8

const (
	// formatOther is neither of the others: the kernel refuses it, or
	// bash would run it in a copy of itself.
	formatOther formatKind = iota
	// formatELF is an ELF executable for this machine.
	formatELF
	// formatScript starts with an interpreter line naming an absolute path.
	formatScript
)

// fileKey identifies a file's content: the file, and its size and
// modification and change times. Writing a file changes its change
// time, and replacing it changes the inode.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
}

func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// execFormats caches the formats of the program files looked at. Safe for
// concurrent use.
var execFormats struct {
	sync.Mutex
	m map[fileKey]execFormat
}

// maxExecFormats bounds the cache; a full one starts afresh.
const maxExecFormats = 4096

// execFormatMinAge is how long ago a file must have changed for its
// format to be cached. A file's times may be as coarse as the kernel's
// clock tick (up to 10 ms): a second write within the tick of the first
// could leave size and times as they were, and the cached format stale.
const execFormatMinAge = 100 * time.Millisecond

// executableFile stats the file at p into st and says whether it is a
// regular file this process may execute.
func executableFile(p string, st *unix.Stat_t) bool {
	return unix.Stat(p, st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && unix.Access(p, unix.X_OK) == nil
}

// executesDirectly says whether the kernel executes the file at p: an
// executable ELF binary, or a script whose interpreter is one.
func executesDirectly(p string) bool {
	var st unix.Stat_t
	return executableFile(p, &st) && executesDirectlyStat(p, &st)
}

// executesDirectlyStat is executesDirectly for a file executableFile
// said yes to with st.
func executesDirectlyStat(p string, st *unix.Stat_t) bool {
	for depth := 0; ; depth++ {
		f := formatOf(p, st)
		switch {
		case f.kind == formatELF:
			// Its program interpreter must be an executable file.
			for _, interp := range f.names {
				var ist unix.Stat_t
				if !executableFile(interp, &ist) {
					return false
				}
			}
			return true
		case f.kind == formatScript && depth == 0:
			// The interpreter of a script must be a binary.
			p = f.names[0]
			if !executableFile(p, st) {
				return false
			}
		default:
			return false
		}
	}
}

// formatOf is the format of the file at p, whose stat is st: cached, or
// read from the file.
func formatOf(p string, st *unix.Stat_t) execFormat {
	key := keyOf(st)
	execFormats.Lock()
	f, ok := execFormats.m[key]
	execFormats.Unlock()
	if ok {
		return f
	}
	f, key, ok = readFormat(p)
	if !ok || time.Now().UnixNano()-key.ctime < int64(execFormatMinAge) {
		return f
	}
	execFormats.Lock()
	if execFormats.m == nil || len(execFormats.m) >= maxExecFormats {
		execFormats.m = map[fileKey]execFormat{}
	}
	execFormats.m[key] = f
	execFormats.Unlock()
	return f
}

// readFormat reads the format of the file at p, and the key of the file
// it read; ok is false when it could not.
func readFormat(p string) (execFormat, fileKey, bool) {
	file, err := os.Open(p)
	if err != nil {
		return execFormat{}, fileKey{}, false
	}
	defer file.Close()
	var st unix.Stat_t
	if unix.Fstat(int(file.Fd()), &st) != nil {
		return execFormat{}, fileKey{}, false
	}
	head := make([]byte, 256)
	n, _ := file.ReadAt(head, 0)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("\x7fELF")) {
		return elfFormat(file), keyOf(&st), true
	}
	if !bytes.HasPrefix(head, []byte("#!")) {
		return execFormat{}, keyOf(&st), true
	}
	line, _, found := bytes.Cut(head[2:], []byte("\n"))
	if !found {
		return execFormat{}, keyOf(&st), true
	}
	// The interpreter as the kernel reads it (binfmt_script): after
	// spaces and tabs, up to a space, a tab or a NUL; a carriage return
	// is part of its name.
	name := strings.TrimLeft(string(line), " \t")
	if i := strings.IndexAny(name, " \t\x00"); i >= 0 {
		name = name[:i]
	}
	if !filepath.IsAbs(name) {
		return execFormat{}, keyOf(&st), true
	}
	return execFormat{kind: formatScript, names: []string{name}}, keyOf(&st), true
}

// elfFormat is the format of an ELF file: formatELF when it is one the
// kernel would execute on this machine, given program interpreters that
// are executable files. A later stage of a pipeline that fails to
// execute is reported in hepbuild's words, not bash's: such a file runs
// in bash.
func elfFormat(file *os.File) execFormat {
	host := hostELF()
	f, err := elf.NewFile(file)
	if err != nil || host == nil {
		return execFormat{}
	}
	if f.Machine != host.Machine || f.Class != host.Class || f.Data != host.Data || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		return execFormat{}
	}
	format := execFormat{kind: formatELF}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return execFormat{}
		}
		interp := strings.TrimRight(string(b), "\x00")
		if !filepath.IsAbs(interp) {
			return execFormat{}
		}
		format.names = append(format.names, interp)
	}
	return format
}

// hostELF is the header of this binary, for the machine it runs on.
var hostELF = sync.OnceValue(func() *elf.FileHeader {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return nil
	}
	defer f.Close()
	h := f.FileHeader
	return &h
})
