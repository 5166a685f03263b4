package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file builds the environments that are built once and reused: venvs,
// conda environments and CMSSW release areas.

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// setupError is an EnvironmentError carrying the tool's output.
func setupError(kind, what string, err error, out []byte) error {
	return &EnvironmentError{Kind: kind, Err: fmt.Errorf("%s: %w", what, err), Output: string(out)}
}

// runSetup runs a command that builds an environment, with exactly env
// (plus a private HOME) as its variables, and returns its output. It is
// killed with its process group when ctx ends.
func runSetup(ctx context.Context, env map[string]string, dir string, argv ...string) ([]byte, error) {
	home, err := os.MkdirTemp("", "hepbuild-setup-home-")
	if err != nil {
		return nil, err
	}
	defer removeAll(home)
	vars := maps.Clone(env)
	if vars == nil {
		vars = map[string]string{}
	}
	vars["HOME"] = home
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = envList(vars)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.Process != nil {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	if ctx.Err() != nil {
		return out.Bytes(), ctx.Err()
	}
	return out.Bytes(), err
}

// pythonVersions memoises PythonIdentity by interpreter path.
var pythonVersions sync.Map

// PythonIdentity names the python3 found on path: its real path and full
// version, which enter the identity of every venv built with it.
func PythonIdentity(path string) (string, error) {
	python, err := lookPath("python3", path, "/")
	if err != nil {
		return "", err
	}
	real := hostOf(python)
	if v, ok := pythonVersions.Load(real); ok {
		return v.(string), nil
	}
	out, err := exec.Command(real, "-c", "import sys; print(sys.version)").Output()
	if err != nil {
		return "", fmt.Errorf("asking %s for its version: %w", real, err)
	}
	id := real + " " + strings.Join(strings.Fields(string(out)), " ")
	pythonVersions.Store(real, id)
	return id, nil
}

// requirementsEmpty reports whether a requirements file names nothing to
// install, so the venv needs no pip.
func requirementsEmpty(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if strings.TrimSpace(line) != "" {
			return false
		}
	}
	return true
}

// venv returns the folder of the venv for env's requirements, built with
// the python3 on the command's PATH on first use. Its name is derived from
// the requirements' content, the interpreter and the options, so a change
// of any builds a new one and the old one stays valid for old keys.
func (e *Environments) venv(ctx context.Context, s Spec, env *Environment) (string, error) {
	req := env.Params["requirements"]
	if req == "" {
		return "", errors.New("no requirements file")
	}
	digest, content, err := fileDigest(s.ExecRoot, req)
	if err != nil {
		return "", fmt.Errorf("reading requirements: %w", err)
	}
	py, err := PythonIdentity(s.Env["PATH"])
	if err != nil {
		return "", fmt.Errorf("finding python3 to build the venv: %w", err)
	}
	python, _, _ := strings.Cut(py, " ")
	site := env.Params["system_site_packages"] == "true"
	dir := filepath.Join(e.Root, "venv", identity(digest, py, strconv.FormatBool(site)))
	err = e.built(dir, func(dir string) error {
		args := []string{python, "-m", "venv"}
		if site {
			args = append(args, "--system-site-packages")
		}
		empty := requirementsEmpty(content)
		if empty || (site && exec.CommandContext(ctx, python, "-c", "import pip").Run() == nil) {
			// Nothing to install, or the interpreter's own pip serves the
			// venv through its site packages: skip the slow ensurepip.
			args = append(args, "--without-pip")
		}
		if out, err := runSetup(ctx, s.Env, s.ExecRoot, append(args, dir)...); err != nil {
			return setupError("venv", "python3 -m venv", err, out)
		}
		if empty {
			return nil
		}
		pip := []string{filepath.Join(dir, "bin", "python"), "-m", "pip", "install", "--no-input",
			"--disable-pip-version-check", "--no-cache-dir", "-r", filepath.Join(s.ExecRoot, req)}
		if out, err := runSetup(ctx, s.Env, s.ExecRoot, pip...); err != nil {
			return setupError("venv", "pip install -r "+req, err, out)
		}
		return nil
	})
	return dir, err
}

// findConda finds micromamba, mamba or conda on the command's PATH, then
// on hepbuild's own (conda usually lives in the user's home, which the
// command's fixed PATH does not name).
func findConda(path string) (string, error) {
	for _, p := range []string{path, os.Getenv("PATH")} {
		for _, name := range []string{"micromamba", "mamba", "conda"} {
			if found, err := lookPath(name, p, "/"); err == nil {
				return found, nil
			}
		}
	}
	return "", fmt.Errorf("conda environments need micromamba, mamba or conda, and none is on PATH (%s)", path)
}

// condaCreateArgv is the command that creates the environment at dir from
// file: an environment.yml, an explicit lock file (@EXPLICIT) or a list of
// package specs.
func condaCreateArgv(tool, dir, file string, content []byte) []string {
	if filepath.Base(tool) == "micromamba" {
		return []string{tool, "create", "--yes", "--prefix", dir, "--file", file}
	}
	if ext := filepath.Ext(file); (ext == ".yml" || ext == ".yaml") && !bytes.Contains(content, []byte("@EXPLICIT")) {
		return []string{tool, "env", "create", "--prefix", dir, "--file", file}
	}
	return []string{tool, "create", "--yes", "--prefix", dir, "--file", file}
}

// condaRunArgv runs argv in the environment at dir.
func condaRunArgv(tool, dir string, argv []string) []string {
	if filepath.Base(tool) == "micromamba" {
		return append([]string{tool, "run", "--prefix", dir}, argv...)
	}
	return append([]string{tool, "run", "--prefix", dir, "--no-capture-output"}, argv...)
}

func (e *Environments) conda(ctx context.Context, s Spec, env *Environment, tool string) (string, error) {
	req := env.Params["requirements"]
	if req == "" {
		return "", errors.New("no requirements or lock file")
	}
	digest, content, err := fileDigest(s.ExecRoot, req)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", req, err)
	}
	dir := filepath.Join(e.Root, "conda", identity(digest, filepath.Base(tool)))
	err = e.built(dir, func(dir string) error {
		vars := maps.Clone(s.Env)
		vars["MAMBA_ROOT_PREFIX"] = filepath.Join(e.Root, "conda", "root")
		argv := condaCreateArgv(tool, dir, filepath.Join(s.ExecRoot, req), content)
		if out, err := runSetup(ctx, vars, s.ExecRoot, argv...); err != nil {
			return setupError("conda", strings.Join(argv[:2], " "), err, out)
		}
		return nil
	})
	return dir, err
}

// cmsswScript sources cmsset_default.sh, enters the release area's
// runtime environment and runs the command in the folder it started in.
const cmsswScript = `__hepbuild_cvmfs=$1 __hepbuild_arch=$2 __hepbuild_area=$3; shift 3; __hepbuild_cmd=("$@"); set --
source "$__hepbuild_cvmfs/cmsset_default.sh" || { echo "hepbuild: sourcing $__hepbuild_cvmfs/cmsset_default.sh failed" >&2; exit 1; }
export SCRAM_ARCH=$__hepbuild_arch
__hepbuild_here=$PWD
cd "$__hepbuild_area/src" && eval "$(scram runtime -sh)" && cd "$__hepbuild_here" || { echo "hepbuild: scram runtime failed in $__hepbuild_area" >&2; exit 1; }
exec "${__hepbuild_cmd[@]}"`

// cmsswArgv wraps argv to run in the release area.
func cmsswArgv(cvmfs, arch, area string, argv []string) []string {
	return append([]string{"/bin/bash", "-c", cmsswScript, "hepbuild-cmssw", cvmfs, arch, area}, argv...)
}

// cmsswProjectScript creates the release area with scram project.
const cmsswProjectScript = `source "$1/cmsset_default.sh" && export SCRAM_ARCH=$2 && cd "$3" && scram project CMSSW "$4"`

// cmsswArea returns the release area for env's release and arch, created
// with scram on first use.
func (e *Environments) cmsswArea(ctx context.Context, s Spec, env *Environment) (string, error) {
	cvmfs := e.cvmfs()
	setup := filepath.Join(cvmfs, "cmsset_default.sh")
	if _, err := os.Stat(setup); err != nil {
		return "", fmt.Errorf("CVMFS not mounted: %s not found; cmssw environments need %s (mount it with the CernVM-FS client, or use a container environment)", setup, cvmfs)
	}
	release, arch := env.Params["release"], env.Params["arch"]
	if release == "" || arch == "" || strings.ContainsAny(release+arch, "/ ") {
		return "", fmt.Errorf("release %q and arch %q: want names such as CMSSW_14_0_7 and el9_amd64_gcc12", release, arch)
	}
	dir := filepath.Join(e.Root, "cmssw", identity(cvmfs, release, arch))
	err := e.built(dir, func(dir string) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		out, err := runSetup(ctx, s.Env, dir, "/bin/bash", "-c", cmsswProjectScript, "hepbuild-scram", cvmfs, arch, dir, release)
		if err != nil {
			return setupError("cmssw", "scram project CMSSW "+release, err, out)
		}
		return nil
	})
	return filepath.Join(dir, release), err
}

// Identify returns what identifies env on this machine beyond its declared
// parameters and files, to be added to its parameters before keys are
// computed: for a venv the python3 it is built with (found on path, the
// actions' PATH), for a container image file its SHA-256. The answers are
// memoised per process.
func Identify(env *Environment, path string) (map[string]string, error) {
	if env == nil {
		return nil, nil
	}
	switch env.Kind {
	case "venv":
		if p, ok := env.Params["environ.PATH"]; ok {
			path = p // the environment's PATH replaces the action's
		}
		py, err := PythonIdentity(path)
		if err != nil {
			return nil, fmt.Errorf("venv: finding python3: %w", err)
		}
		return map[string]string{"python": py}, nil
	case "container":
		image := env.Params["image"]
		if !isImagePath(image) || isDir(image) {
			return nil, nil
		}
		d, err := imageDigest(image)
		if err != nil {
			return nil, fmt.Errorf("container image %s: %w", image, err)
		}
		return map[string]string{"image_digest": d}, nil
	}
	return nil, nil
}

var imageDigests sync.Map // path, size, mtime → hex SHA-256

func imageDigest(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano())
	if d, ok := imageDigests.Load(key); ok {
		return d.(string), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	d := hex.EncodeToString(h.Sum(nil))
	imageDigests.Store(key, d)
	return d, nil
}
