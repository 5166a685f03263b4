package sandbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// workspace lays out an exec root with hepbuild-out linking into an output
// base, as hepbuild does, and returns both.
func workspace(t *testing.T) (root, base string) {
	t.Helper()
	root, base = t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "out"), filepath.Join(root, "hepbuild-out")); err != nil {
		t.Fatal(err)
	}
	return root, base
}

// allStrategies returns every strategy available here for a workspace
// whose output base is base.
func allStrategies(t *testing.T, base string) []Strategy {
	list := []Strategy{None{}, NewSymlink(filepath.Join(base, "sandbox"))}
	if l, err := NewLinux(filepath.Join(base, "sandbox"), base); err == nil {
		list = append(list, l)
	}
	return list
}

// runIn applies env to a bash script and runs it with the strategy.
func runIn(t *testing.T, envs *Environments, st Strategy, env *Environment, s Spec, script string) (Result, string, error) {
	t.Helper()
	var out bytes.Buffer
	s.Argv = []string{"/bin/bash", "-c", script}
	if s.Env == nil {
		s.Env = hostEnv()
	}
	s.Stdout, s.Stderr = &out, &out
	s.Grace = time.Second
	s, err := envs.Apply(context.Background(), s, env)
	if err != nil {
		return Result{}, "", err
	}
	res, err := st.Run(context.Background(), s)
	return res, out.String(), err
}

func TestShellEnvironment(t *testing.T) {
	root, base := workspace(t)
	writeFile(t, root, "envs/setup.sh", `export STACK=lcg-105
export PATH=/opt/stack/bin:$PATH
echo "setup saw $# arguments"
`, 0o644)
	writeFile(t, root, "envs/broken.sh", "echo broken setup >&2\nreturn 3\n", 0o644)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	for _, st := range allStrategies(t, base) {
		t.Run(st.Name(), func(t *testing.T) {
			env := &Environment{Kind: "shell", Params: map[string]string{"setup": "envs/setup.sh", "environ.FROM_ENV": "yes"}}
			res, out, err := runIn(t, envs, st, env, Spec{ExecRoot: root, Inputs: []string{"envs/setup.sh"}},
				`echo "$STACK $FROM_ENV ${PATH%%:*} $#" "$@"`)
			if err != nil || !res.Success() {
				t.Fatalf("got %+v, %v; output:\n%s", res, err, out)
			}
			if want := "setup saw 0 arguments\nlcg-105 yes /opt/stack/bin 0\n"; out != want {
				t.Errorf("output = %q, want %q", out, want)
			}

			broken := &Environment{Kind: "shell", Params: map[string]string{"setup": "envs/broken.sh"}}
			res, out, err = runIn(t, envs, st, broken, Spec{ExecRoot: root, Inputs: []string{"envs/broken.sh"}}, "echo the command ran")
			if err != nil {
				t.Fatal(err)
			}
			if res.Success() || res.ExitCode != 3 || !strings.Contains(out, "broken setup") ||
				!strings.Contains(out, "setup script envs/broken.sh failed with exit status 3") || strings.Contains(out, "the command ran") {
				t.Errorf("got %+v, output %q; want exit status 3 with the script's output, and the command not run", res, out)
			}
		})
	}
}

// The command's variables are exactly the action's and the environment's:
// nothing of this process's.
func TestEnvironmentAddsNothingFromHost(t *testing.T) {
	t.Setenv("HEPBUILD_SHOULD_NOT_LEAK", "1")
	root, base := workspace(t)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	env := &Environment{Kind: "host", Params: map[string]string{"environ.A": "from env", "environ.PATH": "/usr/bin:/bin"}}
	var out bytes.Buffer
	s, err := envs.Apply(context.Background(), Spec{ExecRoot: root, Argv: []string{"/usr/bin/env"},
		Env: map[string]string{"PATH": "/nowhere", "B": "from action"}, Stdout: &out}, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (None{}).Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("A=from env\nB=from action\nPATH=/usr/bin:/bin\n", out.String()); diff != "" {
		t.Errorf("variables mismatch (-want +got):\n%s", diff)
	}
}

func TestVenvEnvironment(t *testing.T) {
	if _, err := PythonIdentity(hostEnv()["PATH"]); err != nil {
		t.Skipf("no python3 on %s: %v", hostEnv()["PATH"], err)
	}
	root, base := workspace(t)
	writeFile(t, root, "envs/requirements.txt", "# nothing to install: the venv needs no index\n", 0o644)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	env := &Environment{Kind: "venv", Params: map[string]string{"requirements": "envs/requirements.txt"}}
	var dir string
	for _, st := range allStrategies(t, base) {
		t.Run(st.Name(), func(t *testing.T) {
			res, out, err := runIn(t, envs, st, env, Spec{ExecRoot: root, Inputs: []string{"envs/requirements.txt"}},
				`python3 -c 'import sys, os; print(sys.prefix == os.environ["VIRTUAL_ENV"], sys.prefix)'`)
			if err != nil || !res.Success() {
				t.Fatalf("got %+v, %v; output:\n%s", res, err, out)
			}
			ok, prefix, _ := strings.Cut(strings.TrimSpace(out), " ")
			if ok != "True" || !strings.HasPrefix(prefix, envs.Root) {
				t.Errorf("python ran in %q, want the venv under %s", out, envs.Root)
			}
			if dir == "" {
				dir = prefix
			} else if prefix != dir {
				t.Errorf("venv %s built again as %s; want it reused", dir, prefix)
			}
		})
	}
	// A changed requirements file is another venv.
	writeFile(t, root, "envs/requirements.txt", "# still nothing, but other content\n", 0o644)
	s, err := envs.Apply(context.Background(), Spec{ExecRoot: root, Env: hostEnv()}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Env["VIRTUAL_ENV"] == dir || s.Env["VIRTUAL_ENV"] == "" {
		t.Errorf("changed requirements use venv %q, want a new one (old %s)", s.Env["VIRTUAL_ENV"], dir)
	}
}

// A requirement pip cannot install fails with pip's message and leaves no
// venv behind.
func TestVenvUninstallableRequirement(t *testing.T) {
	if _, err := PythonIdentity(hostEnv()["PATH"]); err != nil {
		t.Skipf("no python3 on %s: %v", hostEnv()["PATH"], err)
	}
	root, base := workspace(t)
	writeFile(t, root, "envs/requirements.txt", "--no-index\nhepbuild-no-such-package==1.0\n", 0o644)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	env := &Environment{Kind: "venv", Params: map[string]string{"requirements": "envs/requirements.txt", "system_site_packages": "true"}}
	_, err := envs.Apply(context.Background(), Spec{ExecRoot: root, Env: hostEnv()}, env)
	var ee *EnvironmentError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want an EnvironmentError", err)
	}
	if !strings.Contains(ee.Output, "hepbuild-no-such-package") || !strings.Contains(ee.Error(), "pip install") {
		t.Errorf("error %q with output %q; want pip's message naming the package", ee.Error(), ee.Output)
	}
	left, _ := filepath.Glob(filepath.Join(envs.Root, "venv", "*"))
	for _, p := range left {
		if !strings.HasSuffix(p, ".lock") {
			t.Errorf("a failed venv left %s behind", p)
		}
	}
}

// busyboxImage builds a root file system holding only busybox and its
// applets, or skips the test where Debian's busybox-static is missing.
func busyboxImage(t *testing.T) string {
	t.Helper()
	bb := "/bin/busybox"
	if checkExecutable(bb) != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static): no root file system to test containers with")
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Skipf("%s --list: %v (need the static busybox)", bb, err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "image-name"), []byte("busybox-test-image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin", filepath.Join(dir, "sbin")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestContainerRootFS(t *testing.T) {
	if checkExecutable("/usr/bin/bwrap") != nil {
		if _, err := exec.LookPath("bwrap"); err != nil {
			t.Skip("bubblewrap is not installed: root file system images cannot run")
		}
	}
	image := busyboxImage(t)
	root, base := workspace(t)
	writeFile(t, root, "pkg/in.txt", "input", 0o644)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	env := &Environment{Kind: "container", Params: map[string]string{"image": image}}
	for _, st := range allStrategies(t, base) {
		t.Run(st.Name(), func(t *testing.T) {
			var out bytes.Buffer
			s, err := envs.Apply(context.Background(), Spec{
				ExecRoot: root,
				// /bin/sh is the image's busybox: the host's bash is not there.
				Argv:    []string{"/bin/sh", "-c", `cat /etc/image-name; test ! -e /usr/bin/bash && echo no host bash; cat pkg/in.txt > hepbuild-out/pkg/out.txt`},
				Env:     map[string]string{"PATH": "/bin"},
				Inputs:  []string{"pkg/in.txt"},
				Outputs: []string{"hepbuild-out/pkg/out.txt"},
				Stdout:  &out, Stderr: &out,
			}, env)
			if err != nil {
				t.Fatal(err)
			}
			res, err := st.Run(context.Background(), s)
			if err != nil || !res.Success() {
				t.Fatalf("got %+v, %v; output:\n%s", res, err, out.String())
			}
			if want := "busybox-test-image\nno host bash\n"; out.String() != want {
				t.Errorf("output = %q, want %q", out.String(), want)
			}
			if got := readFile(t, root, "hepbuild-out/pkg/out.txt"); got != "input" {
				t.Errorf("output file = %q, want %q", got, "input")
			}
		})
	}
}

func TestContainerMissingImage(t *testing.T) {
	root, base := workspace(t)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	missing := filepath.Join(base, "no-such-image")
	_, err := envs.Apply(context.Background(), Spec{ExecRoot: root, Argv: []string{"true"}},
		&Environment{Kind: "container", Params: map[string]string{"image": missing}})
	var ee *EnvironmentError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Errorf("got %v, want an EnvironmentError saying the image does not exist", err)
	}
}

func TestContainerRuntimeArgv(t *testing.T) {
	s := Spec{Image: "docker://almalinux:9", Env: map[string]string{"PATH": "/usr/bin", "A": "1"}}
	tests := []struct {
		runtime string
		isolate bool
		want    []string
	}{
		{"apptainer", true, []string{"/x/apptainer", "exec", "--containall", "--cleanenv", "--no-home", "--pwd", "/ws",
			"--net", "--network", "none", "--bind", "/ws:/ws", "--bind", "/in:/in:ro", "--env", "A=1", "--env", "PATH=/usr/bin", "docker://almalinux:9"}},
		{"singularity", false, []string{"/x/singularity", "exec", "--containall", "--cleanenv", "--no-home", "--pwd", "/ws",
			"--bind", "/ws:/ws", "--bind", "/in:/in:ro", "--env", "A=1", "--env", "PATH=/usr/bin", "docker://almalinux:9"}},
		{"podman", true, []string{"/x/podman", "run", "--rm", "--init", "--workdir", "/ws", "--network", "none",
			"--volume", "/ws:/ws", "--volume", "/in:/in:ro", "--env", "A=1", "--env", "PATH=/usr/bin", "docker://almalinux:9"}},
	}
	for _, tc := range tests {
		got := containerArgv(tc.runtime, "/x/"+tc.runtime, s, "/ws", []string{"/ws"}, []string{"/in"}, tc.isolate)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tc.runtime, diff)
		}
	}
}

func TestCondaCommands(t *testing.T) {
	tests := []struct {
		tool, file, content string
		create, run         []string
	}{
		{"/opt/bin/micromamba", "/ws/env.yml", "name: x\n",
			[]string{"/opt/bin/micromamba", "create", "--yes", "--prefix", "/e", "--file", "/ws/env.yml"},
			[]string{"/opt/bin/micromamba", "run", "--prefix", "/e", "python", "x.py"}},
		{"/opt/bin/conda", "/ws/environment.yaml", "dependencies: [numpy]\n",
			[]string{"/opt/bin/conda", "env", "create", "--prefix", "/e", "--file", "/ws/environment.yaml"},
			[]string{"/opt/bin/conda", "run", "--prefix", "/e", "--no-capture-output", "python", "x.py"}},
		{"/opt/bin/mamba", "/ws/conda-linux-64.lock", "@EXPLICIT\nhttps://x/numpy.conda\n",
			[]string{"/opt/bin/mamba", "create", "--yes", "--prefix", "/e", "--file", "/ws/conda-linux-64.lock"},
			[]string{"/opt/bin/mamba", "run", "--prefix", "/e", "--no-capture-output", "python", "x.py"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.create, condaCreateArgv(tc.tool, "/e", tc.file, []byte(tc.content))); diff != "" {
			t.Errorf("%s create: mismatch (-want +got):\n%s", tc.file, diff)
		}
		if diff := cmp.Diff(tc.run, condaRunArgv(tc.tool, "/e", []string{"python", "x.py"})); diff != "" {
			t.Errorf("%s run: mismatch (-want +got):\n%s", tc.file, diff)
		}
	}
}

func TestCondaMissing(t *testing.T) {
	t.Setenv("PATH", "/nowhere")
	root, base := workspace(t)
	writeFile(t, root, "env.yml", "name: x\n", 0o644)
	_, err := NewEnvironments(filepath.Join(base, "environments")).Apply(context.Background(),
		Spec{ExecRoot: root, Env: map[string]string{"PATH": "/also/nowhere"}},
		&Environment{Kind: "conda", Params: map[string]string{"requirements": "env.yml"}})
	if err == nil || !strings.Contains(err.Error(), "need micromamba, mamba or conda") {
		t.Errorf("got %v, want an error saying no conda was found", err)
	}
}

func TestCMSSWWithoutCVMFS(t *testing.T) {
	root, base := workspace(t)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	envs.CVMFS = filepath.Join(base, "cvmfs", "cms.cern.ch")
	_, err := envs.Apply(context.Background(), Spec{ExecRoot: root, Env: hostEnv()},
		&Environment{Kind: "cmssw", Params: map[string]string{"release": "CMSSW_14_0_7", "arch": "el9_amd64_gcc12"}})
	if err == nil || !strings.Contains(err.Error(), "CVMFS not mounted: ") {
		t.Errorf("got %v, want \"CVMFS not mounted: ...\"", err)
	}
}

// A stand-in for /cvmfs/cms.cern.ch whose scram creates a release area and
// prints its runtime environment proves the commands hepbuild runs: the
// area is created once with scram project, and each command runs after
// scram runtime in the folder it started in.
func TestCMSSWCommands(t *testing.T) {
	root, base := workspace(t)
	cvmfs := filepath.Join(base, "cvmfs", "cms.cern.ch")
	writeFile(t, cvmfs, "cmsset_default.sh", "export PATH="+filepath.Join(cvmfs, "common")+":$PATH\n", 0o644)
	writeFile(t, cvmfs, "common/scram", `#!/bin/bash
set -eu
echo "scram $*" >> "`+filepath.Join(base, "scram.log")+`"
case "$1" in
project) mkdir -p "$3/src" ;;
runtime) echo "export CMSSW_BASE=$(dirname "$PWD") CMSSW_ARCH_SEEN=$SCRAM_ARCH" ;;
esac
`, 0o755)
	envs := NewEnvironments(filepath.Join(base, "environments"))
	envs.CVMFS = cvmfs
	env := &Environment{Kind: "cmssw", Params: map[string]string{"release": "CMSSW_14_0_7", "arch": "el9_amd64_gcc12"}}
	for i := 0; i < 2; i++ {
		res, out, err := runIn(t, envs, None{}, env, Spec{ExecRoot: root}, `echo "$CMSSW_BASE $CMSSW_ARCH_SEEN $PWD"`)
		if err != nil || !res.Success() {
			t.Fatalf("got %+v, %v; output:\n%s", res, err, out)
		}
		fields := strings.Fields(out)
		if len(fields) != 3 || filepath.Base(fields[0]) != "CMSSW_14_0_7" || !strings.HasPrefix(fields[0], envs.Root) ||
			fields[1] != "el9_amd64_gcc12" || fields[2] != root {
			t.Errorf("output %q: want the release area under %s, the arch, and the exec root %s", out, envs.Root, root)
		}
	}
	log := readFile(t, base, "scram.log")
	if want := "scram project CMSSW CMSSW_14_0_7\nscram runtime -sh\nscram runtime -sh\n"; log != want {
		t.Errorf("scram calls = %q, want %q (the area made once)", log, want)
	}
}
