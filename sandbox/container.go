package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// checkImage fails for an image given by path that does not exist. Other
// images are references for Apptainer or Podman.
func checkImage(image string) error {
	if image == "" {
		return errors.New("no image")
	}
	if isImagePath(image) {
		if _, err := os.Stat(image); err != nil {
			return fmt.Errorf("container image %s does not exist: %w", image, err)
		}
	}
	return nil
}

func isImagePath(image string) bool {
	return strings.HasPrefix(image, "/") || strings.HasPrefix(image, "./") || strings.HasPrefix(image, "../")
}

// runInImage runs the command in s.Image with dir as working folder, the
// rw paths bound writable and the ro paths read-only, at their own paths.
// An unpacked root file system runs through bubblewrap, other images
// through Apptainer, Singularity or Podman.
func runInImage(ctx context.Context, s Spec, dir string, rw, ro []string) (Result, error) {
	l := launch{dir: dir, inImage: true}
	rw, ro = realPaths(rw), realPaths(ro)
	var err error
	if isDir(s.Image) {
		l.wrapper, err = imageFolderArgv(s.Image, dir, rw, ro)
	} else {
		l.wrapper, err = runtimeArgv(s, hostOf(dir), rw, ro, false)
	}
	if err != nil {
		return Result{}, err
	}
	return launchProcess(ctx, s, l)
}

// runtimeArgv is the command line that runs an image with Apptainer,
// Singularity or Podman, whichever is installed, ending where the command's
// argv follows.
func runtimeArgv(s Spec, dir string, rw, ro []string, isolate bool) ([]string, error) {
	for _, name := range []string{"apptainer", "singularity", "podman"} {
		if path, err := exec.LookPath(name); err == nil {
			return containerArgv(name, path, s, dir, rw, ro, isolate), nil
		}
	}
	return nil, &EnvironmentError{Kind: "container", Err: fmt.Errorf(
		"image %s: neither apptainer, singularity nor podman is installed, and it is not an unpacked root file system folder", s.Image)}
}

// containerArgv builds the command line of the runtime (apptainer,
// singularity or podman at path). The command's variables are passed
// explicitly: the runtimes would otherwise add the host's.
func containerArgv(runtime, path string, s Spec, dir string, rw, ro []string, isolate bool) []string {
	names := make([]string, 0, len(s.Env))
	for k := range s.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []string
	switch runtime {
	case "podman":
		args = []string{path, "run", "--rm", "--init", "--workdir", dir}
		if isolate && !s.Network {
			args = append(args, "--network", "none")
		}
		for _, p := range rw {
			args = append(args, "--volume", p+":"+p)
		}
		for _, p := range ro {
			args = append(args, "--volume", p+":"+p+":ro")
		}
		for _, k := range names {
			args = append(args, "--env", k+"="+s.Env[k])
		}
	default: // apptainer, singularity
		args = []string{path, "exec", "--containall", "--cleanenv", "--no-home", "--pwd", dir}
		if isolate && !s.Network {
			args = append(args, "--net", "--network", "none")
		}
		for _, p := range rw {
			args = append(args, "--bind", p+":"+p)
		}
		for _, p := range ro {
			args = append(args, "--bind", p+":"+p+":ro")
		}
		for _, k := range names {
			args = append(args, "--env", k+"="+s.Env[k])
		}
	}
	image := s.Image
	if isImagePath(image) {
		image, _ = filepath.Abs(image)
	}
	return append(args, image)
}
