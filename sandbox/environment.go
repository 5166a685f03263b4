package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Environment is a software environment as the sandbox applies it.
type Environment struct {
	// Kind is host, shell, venv, conda, container or cmssw; "" is host.
	Kind string
	// Params are the environment's settings: "setup" and "requirements"
	// (exec-root relative paths of declared inputs), "image", "release",
	// "arch", "key", "system_site_packages" ("true"), and "environ.NAME"
	// for each variable the environment sets.
	Params map[string]string
}

// EnvironmentError says that the software environment of a command could
// not be set up: an image that does not exist, a requirement pip cannot
// install, CVMFS not mounted. Like a StartError it is a failure of the
// action, not of the machine. Output holds what the setup tool printed.
type EnvironmentError struct {
	Kind   string
	Err    error
	Output string
}

func (e *EnvironmentError) Error() string {
	return fmt.Sprintf("%s environment: %v", e.Kind, e.Err)
}

func (e *EnvironmentError) Unwrap() error { return e.Err }

// Environments applies software environments to commands and builds those
// that must be built (venvs, conda environments, CMSSW release areas) once,
// under Root, keyed by what identifies them, so later builds reuse them.
// Safe for concurrent use; builds of one environment are serialised across
// processes by a lock file.
type Environments struct {
	// Root holds the built environments, e.g. $XDG_CACHE_HOME/hepbuild/environments.
	Root string
	// CVMFS is where cms.cern.ch is mounted; empty means /cvmfs/cms.cern.ch.
	CVMFS string

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per built environment, within this process
}

// NewEnvironments returns Environments that build under root.
func NewEnvironments(root string) *Environments {
	return &Environments{Root: root}
}

// DefaultCVMFS is where CMS software is usually mounted.
const DefaultCVMFS = "/cvmfs/cms.cern.ch"

// Apply returns s changed to run in env: its argv wrapped (shell, conda,
// cmssw), its variables extended (venv, and every kind's "environ.NAME"),
// HostPaths and Image set. It builds venvs, conda environments and release
// areas on first use. Errors are *EnvironmentError, except ctx.Err().
//
// The variables of the result are exactly s.Env, the environment's own
// variables (which win over s.Env's of the same name) and what the kind
// sets; nothing comes from this process's environment.
func (e *Environments) Apply(ctx context.Context, s Spec, env *Environment) (Spec, error) {
	if env == nil {
		return s, nil
	}
	kind := env.Kind
	if kind == "" {
		kind = "host"
	}
	vars := maps.Clone(s.Env)
	if vars == nil {
		vars = map[string]string{}
	}
	for k, v := range env.Params {
		if name, ok := strings.CutPrefix(k, "environ."); ok {
			vars[name] = v
		}
	}
	s.Env = vars
	fail := func(err error) (Spec, error) {
		if ctx.Err() != nil {
			return Spec{}, ctx.Err()
		}
		var ee *EnvironmentError
		if errors.As(err, &ee) {
			return Spec{}, ee
		}
		return Spec{}, &EnvironmentError{Kind: kind, Err: err}
	}
	switch kind {
	case "host":
		return s, nil
	case "shell":
		setup := env.Params["setup"]
		if setup == "" {
			return fail(errors.New("no setup script"))
		}
		s.Argv = shellArgv(setup, s.Argv)
		return s, nil
	case "venv":
		dir, err := e.venv(ctx, s, env)
		if err != nil {
			return fail(err)
		}
		s.Env["VIRTUAL_ENV"] = dir
		s.Env["PATH"] = joinPath(filepath.Join(dir, "bin"), s.Env["PATH"])
		delete(s.Env, "PYTHONHOME")
		s.HostPaths = append(s.HostPaths, dir)
		return s, nil
	case "conda":
		tool, err := findConda(s.Env["PATH"])
		if err != nil {
			return fail(err)
		}
		dir, err := e.conda(ctx, s, env, tool)
		if err != nil {
			return fail(err)
		}
		s.Argv = condaRunArgv(tool, dir, s.Argv)
		s.HostPaths = append(s.HostPaths, dir)
		return s, nil
	case "container":
		image := env.Params["image"]
		if err := checkImage(image); err != nil {
			return fail(err)
		}
		s.Image = image
		return s, nil
	case "cmssw":
		area, err := e.cmsswArea(ctx, s, env)
		if err != nil {
			return fail(err)
		}
		s.Argv = cmsswArgv(e.cvmfs(), env.Params["arch"], area, s.Argv)
		s.HostPaths = append(s.HostPaths, area)
		return s, nil
	}
	return fail(fmt.Errorf("unknown kind %q", kind))
}

// shellScript sources the setup script with no positional parameters (a
// setup script may parse its own), then runs the command it was given.
const shellScript = `__hepbuild_setup=$1; shift; __hepbuild_cmd=("$@"); set --
source "$__hepbuild_setup" || { __hepbuild_status=$?; echo "hepbuild: setup script $__hepbuild_setup failed with exit status $__hepbuild_status" >&2; exit $__hepbuild_status; }
exec "${__hepbuild_cmd[@]}"`

// shellArgv wraps argv to run after sourcing setup.
func shellArgv(setup string, argv []string) []string {
	return append([]string{"/bin/bash", "-c", shellScript, "hepbuild-setup", setup}, argv...)
}

func joinPath(dir, path string) string {
	if path == "" {
		return dir
	}
	return dir + string(filepath.ListSeparator) + path
}

// lock serialises the building of one environment folder, within this
// process by a mutex and across processes by a lock file beside it.
func (e *Environments) lock(dir string) (unlock func(), err error) {
	e.mu.Lock()
	if e.locks == nil {
		e.locks = map[string]*sync.Mutex{}
	}
	m, ok := e.locks[dir]
	if !ok {
		m = &sync.Mutex{}
		e.locks[dir] = m
	}
	e.mu.Unlock()
	m.Lock()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		m.Unlock()
		return nil, err
	}
	f, err := lockFile(dir + ".lock")
	if err != nil {
		m.Unlock()
		return nil, err
	}
	return func() { f.Close(); m.Unlock() }, nil
}

// completeMarker is written last into a built environment: a folder without
// it is a build that died half-way and is redone.
const completeMarker = ".hepbuild-complete"

// built runs build into dir unless dir is complete already. A failed build
// leaves nothing behind.
func (e *Environments) built(dir string, build func(dir string) error) error {
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		return nil
	}
	unlock, err := e.lock(dir)
	if err != nil {
		return fmt.Errorf("locking %s: %w", dir, err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		return nil // built by another build while we waited
	}
	if err := removeAll(dir); err != nil {
		return fmt.Errorf("removing the incomplete %s: %w", dir, err)
	}
	if err := build(dir); err != nil {
		_ = removeAll(dir)
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, completeMarker), nil, 0o644); err != nil {
		_ = removeAll(dir)
		return err
	}
	return nil
}

// fileDigest is the hex SHA-256 of the exec-root relative file.
func fileDigest(execRoot, rel string) (string, []byte, error) {
	b, err := os.ReadFile(filepath.Join(execRoot, rel))
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b, nil
}

// identity is the hex SHA-256 of the parts, for folder names.
func identity(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

func (e *Environments) cvmfs() string {
	if e.CVMFS != "" {
		return e.CVMFS
	}
	return DefaultCVMFS
}
