package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecutorWithoutItsTools: --executor=slurm where Slurm is not
// installed (a laptop, not a login node) is one clear error naming the
// tool and the flag, before anything is uploaded or written to the batch
// folder, not one failure per action after the build started.
func TestExecutorWithoutItsTools(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []string{"sh", "bash"} {
		p, err := lookPathIn(b, "/usr/bin:/bin")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, b)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	root, diskCache := clone(t, map[string]string{"BUILD": `
task(name = "x", outs = ["x.txt"], cmd = "echo x > $@")
task(name = "y", outs = ["y.txt"], cmd = "echo y > $@")
`})
	for _, system := range []string{"slurm", "htcondor", "lsf"} {
		t.Run(system, func(t *testing.T) {
			r := hepbuild(t, root, "//:all", "--disk-cache", diskCache, "--executor="+system, "--progress=plain", "--batch-window=50ms")
			if r.code != exitInfra {
				t.Errorf("exit %d, want %d\n%s", r.code, exitInfra, r.stderr)
			}
			if n := strings.Count(r.stderr, "ERROR"); n != 1 || !strings.Contains(r.stderr, "--executor") {
				t.Errorf("want one error naming --executor, got:\n%s", r.stderr)
			}
			base := strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout)
			if _, err := os.Stat(filepath.Join(base, "batch", system)); err == nil {
				t.Errorf("the batch folder %s was written", filepath.Join(base, "batch", system))
			}
		})
	}
}

func lookPathIn(name, path string) (string, error) {
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
