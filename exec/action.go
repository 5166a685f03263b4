package exec

import (
	"fmt"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/graph"
)

// OutDir is the exec-root-relative folder that holds every generated file:
// the output of //pkg:name is hepbuild-out/pkg/name, a source file is pkg/name.
const OutDir = "hepbuild-out"

// Kind says how an action produces its outputs. It is a byte so that it
// packs with Action.Executable: a large analysis holds millions of actions.
type Kind uint8

const (
	// KindRun runs Argv as a process.
	KindRun Kind = iota
	// KindWrite writes Content to its single output (ctx.actions.write, expand_template).
	KindWrite
	// KindSymlink makes its single output a copy of (or link to) its single input.
	KindSymlink
	// KindFetch downloads the remote file Fetch names into its single
	// output, verified against the file's size and checksum.
	KindFetch
)

func (k Kind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindSymlink:
		return "symlink"
	case KindFetch:
		return "fetch"
	}
	return "run"
}

// Artifact is a file or folder an action reads or writes, by its exec-root
// relative path ("pkg/file" for sources, "hepbuild-out/pkg/file" for outputs).
type Artifact struct {
	Path   string
	Source bool // a source file of the workspace, not made by an action
	Dir    bool // a folder (declare_directory or a source folder)
	// Symlink marks a declared symbolic link (declare_symlink): the action
	// writes a link whose target, any string, is its content; hepbuild
	// neither checks nor follows it. Other outputs may be links only
	// inside the action's outputs.
	Symlink bool
	// URL is set on the identity file of a remote file streamed by URL
	// (remote_files with stream = True): the action is given URL, not
	// Path, and reads the file from storage itself. Path holds the
	// file's identity (URL, size, checksum), which is what its readers'
	// keys see.
	URL string
}

// RemoteFile is a file on grid storage, identified without its bytes by
// its URL, its size and the checksum the storage keeps.
type RemoteFile struct {
	URL  string
	Size int64
	// Checksum is "algo:hex" (adler32), or "" when the storage keeps none.
	Checksum string
	// ModTime (Unix seconds) identifies the content only when there is no
	// checksum: the file is then taken to change when its size or
	// modification time does.
	ModTime int64
}

// Identity is the canonical text of what identifies the file's content:
// the fetch action's key holds it.
func (f *RemoteFile) Identity() string {
	if f.Checksum != "" {
		return fmt.Sprintf("%s size=%d %s", f.URL, f.Size, f.Checksum)
	}
	return fmt.Sprintf("%s size=%d mtime=%d", f.URL, f.Size, f.ModTime)
}

// Resources an action declares; zero means the default (1 cpu, no memory
// bound, /tmp bounded by memory or the sandbox's default).
type Resources struct {
	CPU      float64
	Memory   int64 // bytes
	Walltime time.Duration
	Tmp      int64 // bytes of the in-memory /tmp (and /dev/shm) of the linux sandbox
}

// Environment is the software environment an action runs in. The zero value
// (Label zero, Kind "host") is the host environment.
type Environment struct {
	Label graph.Label
	Kind  string // host, shell, venv, conda, container, cmssw
	// Params are the kind's settings (release, arch, image, key, ...), hashed into the key.
	Params map[string]string
	// Files are the environment's own files (setup script, requirements), hashed into the key.
	Files []Artifact
}

// Action is one unit of work: a process to run, or a file to write. All
// fields but those marked otherwise enter the action key (see Key).
// Actions are immutable after analysis and safe for concurrent reads.
type Action struct {
	// Owner is the target whose analysis created the action.
	Owner graph.Label
	// Mnemonic names the kind of work, e.g. "Task", "Histogram", "FileWrite".
	Mnemonic string
	// Progress is the message shown while the action runs (see Describe);
	// %{label} in it stands for the owner's label. Analysis keeps the
	// template rather than a message of its own for each action.
	Progress string
	Kind     Kind
	// Executable marks the output of a KindWrite action executable.
	Executable bool
	// Argv is the command line of a KindRun action; Argv[0] is an exec-root
	// relative path or a name looked up on the environment's PATH.
	Argv []string
	// Env holds the action's environment variables.
	Env map[string]string
	// Inputs are every file the action reads, tools included, sorted by path.
	Inputs []Artifact
	// Outputs the action must produce, sorted by path.
	Outputs []Artifact
	// Environment is the software environment; nil means host.
	Environment *Environment
	// Pos is where the owning target was declared, for error messages.
	Pos graph.Pos
	// Extra holds the fields few actions set; nil when all are zero. Read
	// them with Extras, set them through SetExtra. Behind one pointer they
	// cost most actions 8 bytes rather than 152: a large analysis holds
	// millions of actions.
	Extra *Extra
}

// Extra is the part of an Action that few actions set (see Action.Extra).
type Extra struct {
	// Tools are the subset of Inputs that are executables (for display).
	Tools []Artifact
	// Content is what a KindWrite action writes.
	Content   []byte
	Resources Resources
	// Tags are execution requirements: no-cache, no-sandbox, no-remote, requires-network, local.
	Tags []string
	// Retries is how often a failed run is retried.
	Retries int
	// Timeout bounds one run; zero means no bound beyond Resources.Walltime.
	Timeout time.Duration
	// Remote is the remote file a KindFetch action downloads, or whose
	// identity a KindWrite action records (a file streamed by URL).
	Remote *RemoteFile
	// SandboxExpose are host paths the linux sandbox shows read-only
	// although it hides them (--sandbox-expose), sorted: the action may
	// read them, so they are part of what it sees.
	SandboxExpose []string
}

// Extras returns a copy of the action's extra fields, the zero Extra
// when it has none. A copy, so that nothing writes to them by mistake
// through it: SetExtra is for writing.
func (a *Action) Extras() Extra {
	if a.Extra == nil {
		return Extra{}
	}
	return *a.Extra
}

// SetExtra returns the action's extra fields for writing, made first
// when it has none. Only the goroutine making an action may call it.
func (a *Action) SetExtra() *Extra {
	if a.Extra == nil {
		a.Extra = &Extra{}
	}
	return a.Extra
}

// HasTag reports whether the action carries the execution requirement tag.
func (a *Action) HasTag(tag string) bool {
	if a.Extra == nil {
		return false
	}
	for _, t := range a.Extra.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Describe returns the progress message with %{label} expanded, or
// mnemonic and owner.
func (a *Action) Describe() string {
	if a.Progress == "" {
		return a.Mnemonic + " " + a.Owner.String()
	}
	return strings.ReplaceAll(a.Progress, "%{label}", a.Owner.String())
}

// RunTimeout bounds one attempt of the action: the smaller of Timeout and
// Resources.Walltime that is set, or zero for no bound.
func (a *Action) RunTimeout() time.Duration {
	x := a.Extras()
	t, w := x.Timeout, x.Resources.Walltime
	switch {
	case t <= 0:
		return max(w, 0)
	case w <= 0:
		return t
	}
	return min(t, w)
}
